/** Stream decoding (internal/chatStream.ts) and the classification of stream events (internal/classify.ts). */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as MutableRef from "effect/MutableRef"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as ChatSchema from "../src/ChatSchema.js"
import * as ChatStream from "../src/internal/chatStream.js"
import * as Classify from "../src/internal/classify.js"
import type * as Pipeline from "../src/internal/pipeline.js"
import * as Sse from "../src/Sse.js"

const chunk = (content: string, finish: string | null = null, usage?: object) =>
  JSON.stringify({
    id: "c", object: "chat.completion.chunk", created: 1, model: "m",
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
    ...(usage === undefined ? {} : { usage })
  })
const event = (data: string) => `data: ${data}\n\n`
const encoder = new TextEncoder()
const context: Classify.StreamContext = { status: 200, requestId: "req-9", attempts: 2 }
const scrub = Classify.makeScrub("sk-secret-key-123")
const settings: ChatStream.Settings = { open: () => Effect.die("unused"), scrub, maxEventBytes: 1024, idleMillis: 1000 }

/** An opened stream whose first read gave `first` and whose body then gives `rest`, piece by piece. */
const opened = (first: string, rest: ReadonlyArray<string>): Pipeline.Received<ChatStream.Opened> => {
  const decoder = Sse.makeDecoder({ maxEventBytes: settings.maxEventBytes })
  const pieces = [...rest]
  const pull: ChatStream.Opened["pull"] = Effect.suspend(() => {
    const next = pieces.shift()
    return next === undefined ? Effect.fail(Option.none()) : Effect.succeed(encoder.encode(next))
  })
  const value: ChatStream.Opened = { pull, decoder, first: decoder.feed(encoder.encode(first)), ended: false, usage: MutableRef.make<ChatSchema.CompletionUsage | undefined>(undefined) }
  return { value, requestId: "req-9", status: 200, attempts: 2, latencyMillis: 0, headers: {} }
}
const contents = (chunks: Chunk.Chunk<ChatSchema.ChatCompletionChunk>) => Chunk.toArray(chunks).map((c) => c.choices[0]?.delta.content)

describe("chatStream.chunks", () => {
  it.effect("the first events' chunks, then the rest as they arrive, up to [DONE]; the usage chunk is kept", () =>
    Effect.gen(function* () {
      const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }
      const received = opened(event(chunk("a")), [": keep-alive\n\n", event(chunk("b")) + event(chunk("", "stop", usage)), event("[DONE]"), event(chunk("after"))])
      const chunks = yield* Stream.runCollect(ChatStream.chunks(received, settings))
      expect(contents(chunks)).toEqual(["a", "b", ""])
      expect(MutableRef.get(received.value.usage)).toEqual(usage)
    }))

  it.effect("a body that ends without [DONE] is whole only if every choice finished", () =>
    Effect.gen(function* () {
      const finished = yield* Stream.runCollect(ChatStream.chunks(opened(event(chunk("a", "stop")), []), settings))
      expect(contents(finished)).toEqual(["a"])
      const error = yield* Effect.flip(Stream.runCollect(ChatStream.chunks(opened(event(chunk("a")), []), settings)))
      expect(error).toMatchObject({ _tag: "TransportError", code: "STREAM_ENDED_EARLY", attempts: 2 })
    }))

  it.effect("an error event mid-stream ends it with an ApiError carrying the server's error", () =>
    Effect.gen(function* () {
      const errorEvent = JSON.stringify({ error: { message: "overloaded", type: "server_error", param: null, code: 529 } })
      const error = yield* Effect.flip(Stream.runCollect(ChatStream.chunks(opened(event(chunk("a")), [event(errorEvent)]), settings)))
      expect(error).toMatchObject({ _tag: "ApiError", status: 200, type: "server_error", code: "529", detail: "overloaded", requestId: "req-9", attempts: 2 })
    }))

  it.effect("an event past maxEventBytes ends the stream with a final EVENT_TOO_LARGE", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Stream.runCollect(ChatStream.chunks(opened(event(chunk("a")), [`data: ${"x".repeat(4096)}`]), settings)))
      expect(error).toMatchObject({ _tag: "TransportError", code: "EVENT_TOO_LARGE" })
    }))
})

describe("Classify.streamEvent", () => {
  it("[DONE], a chunk, an OpenAI error, another error object, text that is not JSON, JSON that is not a chunk", () => {
    expect(Classify.streamEvent("[DONE]", context, scrub)).toEqual(Either.right("done"))
    const decoded = Classify.streamEvent(chunk("hi"), context, scrub)
    expect(Either.isRight(decoded) && decoded.right !== "done" ? decoded.right.choices[0]?.delta.content : undefined).toBe("hi")
    const openAi = Classify.streamEvent(JSON.stringify({ error: { message: "bad", type: "invalid_request_error" } }), context, scrub)
    expect(Either.isLeft(openAi) && openAi.left).toMatchObject({ _tag: "ApiError", detail: "bad", type: "invalid_request_error", serverError: { message: "bad" } })
    const other = Classify.streamEvent(JSON.stringify({ error: { reason: "quota" } }), context, scrub)
    expect(Either.isLeft(other) && other.left).toMatchObject({ _tag: "ApiError", status: 200 })
    expect(Either.isLeft(other) && other.left.message).toContain("error event arrived mid-stream")
    const text = Classify.streamEvent("not json", context, scrub)
    expect(Either.isLeft(text) && text.left).toMatchObject({ _tag: "ResponseDecodeError", bodyExcerpt: "not json" })
    const notChunk = Classify.streamEvent(JSON.stringify({ hello: 1 }), context, scrub)
    expect(Either.isLeft(notChunk) && notChunk.left.message).toContain("not a chat.completion.chunk")
  })

  it("an event that echoes the key is scrubbed before it is read", () => {
    const echoed = Classify.streamEvent(JSON.stringify({ error: { message: "key sk-secret-key-123 is invalid" } }), context, scrub)
    expect(Either.isLeft(echoed) && echoed.left.message).not.toContain("sk-secret-key-123")
    const text = Classify.streamEvent("sk-secret-key-123 <html>", context, scrub)
    expect(JSON.stringify(Either.isLeft(text) && text.left)).not.toContain("sk-secret-key-123")
  })
})
