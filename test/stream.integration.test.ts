/** ChatClient.stream against the real MockServer over loopback: SSE edge cases, retries before the first chunk, idle timeouts. */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { ChatClient, ChatSchema } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { validatorFor } from "./helpers.js"

const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "Where is my order 42?" }], stream_options: { include_usage: true } }

const setup = (transport: ChatClient.Options["transport"], server: Partial<MockServer.Options> = {}, client: ChatClient.Overrides = {}) =>
  Effect.gen(function* () {
    const mock = yield* MockServer.make(server)
    const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, transport, retry: { initialDelay: "1 millis" }, ...client }))
    return { mock, chat: Context.get(context, ChatClient.ChatClient) }
  })

const isChunk = validatorFor("CreateChatCompletionStreamResponse")

for (const transport of ["undici", "platform"] as const) describe(`ChatClient.stream against MockServer (transport: ${transport})`, () => {
  it.scopedLive("streams spec-valid chunks that fold into the same completion create gives; the usage chunk comes last", () =>
    Effect.gen(function* () {
      const { chat } = yield* setup(transport, { streaming: { chunkChars: 5, keepAlive: true, multiLineData: true } })
      const chunks = Chunk.toArray(yield* Stream.runCollect(chat.stream(request)))
      expect(chunks.length).toBeGreaterThan(5)
      for (const chunk of chunks) expect(isChunk(chunk)).toBeUndefined()
      const folded = ChatSchema.accumulate(chunks)
      const whole = yield* chat.create(request)
      expect(folded.choices[0]!.message.content).toBe(whole.choices[0]!.message.content)
      expect(folded.choices[0]!.finish_reason).toBe("stop")
      expect(folded.usage).toEqual(whole.usage)
      expect(chunks.at(-1)!.choices).toEqual([])
    }))

  it.scopedLive("a failure before the first chunk is retried; one after it ends the stream with its typed error", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { script: [{ type: "server_error", status: 503 }, "ok", { type: "stream_disconnect", afterChunks: 3 }] })
      const ok = yield* Stream.runCollect(chat.stream(request))
      expect(ok.length).toBeGreaterThan(3)
      const seen: Array<ChatSchema.ChatCompletionChunk> = []
      const error = yield* Effect.flip(Stream.runForEach(chat.stream(request), (c) => Effect.sync(() => { seen.push(c) })))
      expect(seen).toHaveLength(3)
      expect(error._tag).toBe("TransportError")
      expect((yield* mock.journal).map((e) => e.status)).toEqual([503, 200, 200]) // not retried after the first chunk
    }))

  it.scopedLive("an error event mid-stream becomes an ApiError", () =>
    Effect.gen(function* () {
      const { chat } = yield* setup(transport, { script: [{ type: "stream_error", afterChunks: 2 }] })
      const error = yield* Effect.flip(Stream.runDrain(chat.stream(request)))
      expect(error).toMatchObject({ _tag: "ApiError", status: 200, type: "server_error" })
    }))

  it.scopedLive("a stall between chunks ends the stream with TimeoutError{phase: idle}", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { script: [{ type: "stream_stall", afterChunks: 2 }] }, { idleTimeout: "200 millis" })
      const error = yield* Effect.flip(Stream.runDrain(chat.stream(request)))
      expect(error).toMatchObject({ _tag: "TimeoutError", phase: "idle", timeoutMillis: 200 })
      yield* Effect.retry(Effect.flatMap(mock.journal, (j) => (j[0]!.hungUp ? Effect.void : Effect.fail("open"))), Schedule.spaced("10 millis").pipe(Schedule.upTo("3 seconds")))
    }))

  it.scopedLive("interrupting the stream closes the connection", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { streaming: { interval: "50 millis" } })
      const fiber = yield* Effect.fork(Stream.runDrain(chat.stream(request)))
      yield* Effect.retry(Effect.flatMap(mock.journal, (j) => (j.length === 1 ? Effect.void : Effect.fail("not yet"))), Schedule.spaced("10 millis").pipe(Schedule.upTo("3 seconds")))
      yield* Effect.sleep("120 millis")
      yield* Fiber.interrupt(fiber)
      yield* Effect.retry(Effect.flatMap(mock.journal, (j) => (j[0]!.hungUp ? Effect.void : Effect.fail("open"))), Schedule.spaced("10 millis").pipe(Schedule.upTo("3 seconds")))
    }))

  it.scopedLive("a 429 before the first chunk is retried after the delay asked", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { script: [{ type: "rate_limit", retryAfterMillis: 50 }] })
      const chunks = yield* Stream.runCollect(chat.stream(request))
      expect(ChatSchema.accumulate(chunks).choices[0]!.message.content).toContain("Where is my order 42?")
      const journal = yield* mock.journal
      expect(journal.map((e) => e.status)).toEqual([429, 200])
      expect((journal[1]!.body as { stream: boolean }).stream).toBe(true)
    }))
})
