/** ChatClient.stream over a stub HttpClient, time on TestClock. */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { ChatClient, ChatSchema } from "../src/index.js"
import { chunkEvent as chunk, errorBody, stubClient, type StubReply } from "./helpers.js"

/** Lets real I/O (the stub's body) make progress until `check` holds. */
const until = (check: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000 && !check(); i++) yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))
    if (!check()) throw new Error("condition never held")
  })
const liveClock = Clock.make()

const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "hi" }] }

/** A client over a stub answering each request with the next reply (its body parts as separate pieces). */
const stub = (replies: ReadonlyArray<StubReply>) => {
  const s = stubClient(replies)
  return { layer: ChatClient.layerWithoutHttpClient({ baseUrl: "http://stub.test/v1", retry: { initialDelay: "1 second" } }).pipe(Layer.provide(s.layer)), count: s.count }
}

/** The client, alive for the test's scope (its deadline manager runs in the layer's scope). */
const client = (s: ReturnType<typeof stub>) => Effect.map(Layer.build(s.layer), (ctx) => Context.get(ctx, ChatClient.ChatClient))

describe("ChatClient.stream (stub)", () => {
  it.scoped("comments, keep-alives and [DONE]: the chunks in order, then the end", () =>
    Effect.gen(function* () {
      const s = stub([{ status: 200, body: [": hello\n\n", chunk("Hel"), chunk("lo", "stop").slice(0, 20), chunk("lo", "stop").slice(20), "data: [DONE]\n\n", chunk("never")] }])
      const chat = yield* client(s)
      const chunks = Chunk.toArray(yield* Stream.runCollect(chat.stream(request)))
      expect(ChatSchema.accumulate(chunks).choices[0]!.message.content).toBe("Hello")
      expect(chunks).toHaveLength(2)
    }))

  it.scoped("a 503 before the first chunk is retried after the backoff; the idle timeout ends a stalled stream (TestClock)", () =>
    Effect.gen(function* () {
      const s = stub([{ status: 503, headers: { "content-type": "text/html" }, body: ["<html>busy</html>"] }, { status: 200, body: [chunk("a"), chunk("b")], then: "hang" }])
      const chat = yield* client(s)
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Effect.flip(Stream.runForEach(chat.stream(request), (c) => Effect.sync(() => { seen.push(c.choices[0]!.delta.content ?? "") }))))
      yield* until(() => s.count() === 1)
      yield* Effect.sleep("10 millis").pipe(Effect.withClock(liveClock)) // the 503's body is read and the backoff starts
      yield* TestClock.adjust("1 second") // the backoff (at most initialDelay with full jitter)
      yield* until(() => seen.length === 2)
      expect(s.count()).toBe(2)
      yield* TestClock.adjust("29 seconds")
      expect(fiber.unsafePoll()).toBeNull() // not idle for 30 s yet
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TimeoutError", phase: "idle", timeoutMillis: 30_000 })
    }))

  it.scoped("a body that ends before [DONE] with no finished choice is a TransportError; with one, a normal end", () =>
    Effect.gen(function* () {
      const cut = stub([{ status: 200, body: [chunk("a")] }])
      const error = yield* Effect.flip(Stream.runDrain((yield* client(cut)).stream(request)))
      expect(error).toMatchObject({ _tag: "TransportError", code: "STREAM_ENDED_EARLY" })
      const finished = stub([{ status: 200, body: [chunk("a", "stop")] }])
      const chunks = yield* Stream.runCollect((yield* client(finished)).stream(request))
      expect(chunks.length).toBe(1)
    }))

  it.scoped("a 400 is final and typed; an event that is not a chunk is a ResponseDecodeError", () =>
    Effect.gen(function* () {
      const bad = stub([{ status: 400, headers: { "content-type": "application/json" }, body: [errorBody("bad")] }])
      const e1 = yield* Effect.flip(Stream.runDrain((yield* client(bad)).stream(request)))
      expect(e1).toMatchObject({ _tag: "ApiError", status: 400, type: "invalid_request_error" })
      expect(bad.count()).toBe(1)
      const odd = stub([{ status: 200, body: [chunk("a"), "data: {\"unexpected\": true}\n\n"] }])
      const e2 = yield* Effect.flip(Stream.runDrain((yield* client(odd)).stream(request)))
      expect(e2._tag).toBe("ResponseDecodeError")
    }))
})
