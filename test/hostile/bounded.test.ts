/**
 * Issue 13, items B.7, B.8 and D.16 against servers that misbehave on purpose: answers too large to
 * hold or without an end, streams that never deliver an event or never finish, and a whole answer
 * followed by a reset.
 *
 * Tests that could run forever on a client without limits carry a guard (`guarded`): it turns "no
 * outcome yet" into a failed assertion instead of a hung (or killed) test run. It is not a timing
 * assertion: with the limits, each outcome comes long before it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { ChatClient } from "../../src/index.js"
import type { ChatError } from "../../src/index.js"
import * as Modes from "./modes/bounded.js"
import * as Hostile from "./server.js"

const KEY = "sk-hostile-bounded-0123456789"
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hi" }] }
const MB = 1024 * 1024

const clientFor = (server: Hostile.Hostile, options: ChatClient.Overrides) =>
  Effect.map(
    Layer.build(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY), retry: { initialDelay: "1 millis" }, ...options })),
    (context) => Context.get(context, ChatClient.ChatClient)
  )

/** The call's outcome, or a failure of the test if there is none after `seconds`. */
const guarded = <A, E, R>(effect: Effect.Effect<A, E, R>, seconds = 10) =>
  Effect.timeoutFail(effect, { duration: `${seconds} seconds`, onTimeout: () => "no outcome: the client is unbounded" as const })

const failure = <A, R>(effect: Effect.Effect<A, ChatError.ChatError, R>) =>
  Effect.flatMap(Effect.either(guarded(effect)), (result) =>
    result._tag === "Right"
      ? Effect.dieMessage("expected a failure, got a success")
      : typeof result.left === "string"
      ? Effect.dieMessage(result.left)
      : Effect.succeed(result.left))

for (const transport of ["undici", "platform"] as const) {
  describe(`bounded answers (transport: ${transport})`, () => {
    for (const contentLength of [true, false]) {
      it.scopedLive(`13.7 a 64 MB body over maxResponseBytes fails final after one request, naming the limit (${contentLength ? "content-length" : "chunked"})`, () =>
        Effect.gen(function* () {
          const server = yield* Hostile.serve(Modes.hugeBody(64 * MB, contentLength))
          const chat = yield* clientFor(server, { transport, maxResponseBytes: 1 * MB })
          const error = yield* failure(chat.create(request))
          assert.strictEqual(error._tag, "TransportError")
          assert.strictEqual((error as ChatError.TransportError).code, "RESPONSE_TOO_LARGE")
          assert.include(error.message, "maxResponseBytes")
          assert.include(error.message, "SHEPHERD_MAX_RESPONSE_BYTES")
          assert.strictEqual(server.requests.length, 1)
        }))
    }

    it.scopedLive("13.7 an endless body ends with the size error, not retried", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.endlessBody)
        const chat = yield* clientFor(server, { transport, maxResponseBytes: 1 * MB })
        const error = yield* failure(chat.create(request))
        assert.deepInclude(error, { _tag: "TransportError", code: "RESPONSE_TOO_LARGE", attempts: 1 })
        assert.strictEqual(server.requests.length, 1)
      }))

    it.scopedLive("13.7 an answer under maxResponseBytes is unaffected, with or without a length", () =>
      Effect.gen(function* () {
        for (const contentLength of [true, false]) {
          const server = yield* Hostile.serve(Modes.completionOf(64 * 1024, contentLength))
          const chat = yield* clientFor(server, { transport, maxResponseBytes: 1 * MB })
          const completion = yield* chat.create(request)
          assert.strictEqual(completion.choices[0]?.message.content?.length, 64 * 1024)
        }
      }))
  })

  describe(`bounded streams (transport: ${transport})`, () => {
    it.scopedLive("13.8 a stream whose first data: line never ends fails final with the event-size error", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.endlessDataLine)
        const chat = yield* clientFor(server, { transport, maxEventBytes: 256 * 1024 })
        const error = yield* failure(Stream.runDrain(chat.stream(request)))
        assert.deepInclude(error, { _tag: "TransportError", code: "EVENT_TOO_LARGE", attempts: 1 })
        assert.include(error.message, "maxEventBytes")
        assert.strictEqual(server.requests.length, 1)
      }))

    it.scopedLive("13.8 a stream past maxResponseBytes ends with the size error", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.endlessStream)
        const chat = yield* clientFor(server, { transport, maxResponseBytes: 1 * MB })
        let chunks = 0
        const error = yield* failure(Stream.runForEach(chat.stream(request), () => Effect.sync(() => chunks++)))
        assert.deepInclude(error, { _tag: "TransportError", code: "RESPONSE_TOO_LARGE" })
        assert.isAbove(chunks, 0)
        assert.strictEqual(server.requests.length, 1)
      }))

    it.scopedLive("13.8 keep-alive comments and no event: the attempt timeout ends the stream (and is retried as any attempt timeout)", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.keepAliveForever(20))
        const chat = yield* clientFor(server, { transport, timeout: "300 millis", retry: { maxRetries: 1, initialDelay: "1 millis" } })
        const error = yield* failure(Stream.runDrain(chat.stream(request)))
        assert.deepInclude(error, { _tag: "TimeoutError", phase: "attempt", timeoutMillis: 300, attempts: 2 })
        assert.strictEqual(server.requests.length, 2)
      }))

    it.scopedLive("13.8 totalTimeout bounds a stream whose chunks keep coming: TimeoutError{phase: total}", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.chunksForever(20))
        const chat = yield* clientFor(server, { transport, retry: { totalTimeout: "500 millis" } })
        const chunks: Array<string> = []
        const error = yield* failure(
          Stream.runForEach(chat.stream(request), (chunk) => Effect.sync(() => chunks.push(chunk.choices[0]?.delta.content ?? "")))
        )
        assert.deepInclude(error, { _tag: "TimeoutError", phase: "total", timeoutMillis: 500 })
        assert.strictEqual(chunks[0], "first")
        assert.strictEqual(server.requests.length, 1)
      }))
  })

  describe(`a whole answer, then a reset (transport: ${transport})`, () => {
    it.scopedLive("13.16 a 200 with its whole Content-Length body, then a reset, is used: one request", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.wholeThenReset("reset"))
        const chat = yield* clientFor(server, { transport })
        const completion = yield* guarded(chat.create(request))
        assert.strictEqual(completion.choices[0]?.message.content, "whole")
        assert.strictEqual(server.requests.length, 1)
      }))

    it.scopedLive("13.16 a chunked 200 whose JSON is whole but whose last chunk never came (reset) is used: one request", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.chunkedWithoutEnd(false))
        const chat = yield* clientFor(server, { transport })
        const completion = yield* guarded(chat.create(request))
        assert.strictEqual(completion.choices[0]?.message.content, "whole")
        assert.strictEqual(server.requests.length, 1)
      }))

    it.scopedLive("13.16 a chunked 200 cut inside its JSON is still a transport failure, retried", () =>
      Effect.gen(function* () {
        const server = yield* Hostile.serve(Modes.chunkedWithoutEnd(true))
        const chat = yield* clientFor(server, { transport, retry: { maxRetries: 2, initialDelay: "1 millis" } })
        const error = yield* failure(chat.create(request))
        assert.deepInclude(error, { _tag: "TransportError", attempts: 3 })
        assert.strictEqual(server.requests.length, 3)
      }))
  })
}

describe("bounded streams: an honest stream under small limits", () => {
  it.scopedLive("13.8 chunks of a stream under the limits all arrive", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve(Modes.finiteStream(50))
      const chat = yield* clientFor(server, { maxResponseBytes: 1 * MB, maxEventBytes: 4 * 1024 })
      const chunks = yield* guarded(Stream.runCollect(chat.stream(request)))
      assert.strictEqual(Chunk.size(chunks), 50)
    }))
})
