/**
 * Issue 13, items B.7, B.8 and D.16 over a stub HttpClient (the `HttpClient` transport), time on
 * TestClock: the byte count, the event cap, the stream deadlines, a body cut after its whole JSON.
 * test/hostile/bounded.test.ts runs the same faults over real sockets, on both transports.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { ChatClient } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { chunkEvent as chunk, completion as fixture, stubClient } from "./helpers.js"

const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "hi" }] }
const completion = JSON.stringify(fixture({ content: "whole", usage: { prompt_tokens: 5, completion_tokens: 2 } }))

/** Lets real I/O (the stub's body) make progress until `check` holds. */
const until = (check: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000 && !check(); i++) yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))
    if (!check()) throw new Error("condition never held")
  })

/** The client over `layer`, alive for the test's scope. */
const client = (layer: Layer.Layer<HttpClient.HttpClient>, options: ChatClient.Overrides = {}) =>
  Effect.map(
    Layer.build(ChatClient.layerWithoutHttpClient({ baseUrl: "http://stub.test/v1", retry: { initialDelay: "1 millis" }, ...options }).pipe(Layer.provide(layer))),
    (context) => Context.get(context, ChatClient.ChatClient)
  )

describe("maxResponseBytes (stub HttpClient)", () => {
  it.scoped("13.7 a body without a length is counted as it arrives: past the limit, a final RESPONSE_TOO_LARGE after one request", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, body: `{"pad":"${"a".repeat(200_000)}"}` }])
      const chat = yield* client(s.layer, { maxResponseBytes: 100_000 })
      const error = yield* Effect.flip(chat.create(request))
      expect(error).toMatchObject({ _tag: "TransportError", code: "RESPONSE_TOO_LARGE", attempts: 1 })
      expect(error.message).toContain("maxResponseBytes (100000 bytes)")
      expect(error.message).toContain("SHEPHERD_MAX_RESPONSE_BYTES")
      expect(s.sent).toHaveLength(1)
    }))

  it.scoped("13.7 a content-length past the limit is refused before the body is read; one at the limit is read", () =>
    Effect.gen(function* () {
      const big = stubClient([{ status: 200, body: completion, headers: { "content-type": "application/json", "content-length": String(completion.length) } }])
      const error = yield* Effect.flip((yield* client(big.layer, { maxResponseBytes: completion.length - 1 })).create(request))
      expect(error).toMatchObject({ _tag: "TransportError", code: "RESPONSE_TOO_LARGE" })
      expect(big.sent).toHaveLength(1)
      const exact = stubClient([{ status: 200, body: completion, headers: { "content-type": "application/json", "content-length": String(completion.length) } }])
      const answer = yield* (yield* client(exact.layer, { maxResponseBytes: completion.length })).create(request)
      expect(answer.choices[0]?.message.content).toBe("whole")
      const counted = stubClient([{ status: 200, body: completion }])
      const again = yield* (yield* client(counted.layer, { maxResponseBytes: completion.length })).create(request)
      expect(again.choices[0]?.message.content).toBe("whole")
    }))

  it.scoped("13.7 an error answer is held to the limit too (a huge 500 page is not retried into memory)", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 500, body: "<html>" + "x".repeat(50_000) }])
      const error = yield* Effect.flip((yield* client(s.layer, { maxResponseBytes: 10_000 })).create(request))
      expect(error).toMatchObject({ _tag: "TransportError", code: "RESPONSE_TOO_LARGE" })
      expect(s.sent).toHaveLength(1)
    }))

  it.effect("13.7 SHEPHERD_MAX_RESPONSE_BYTES sets the option; a limit that is not a positive integer is a ConfigError naming it", () =>
    Effect.gen(function* () {
      const env = yield* ChatClient.optionsConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SHEPHERD_MAX_RESPONSE_BYTES", "1048576"]]))))
      expect(env.maxResponseBytes).toBe(1_048_576)
      expect(ChatClient.defaults.maxResponseBytes).toBe(32 * 1024 * 1024)
      for (const bad of [0, -1, 1.5, Number.NaN]) {
        const exit = yield* Effect.exit(ChatClient.resolveOptions({ baseUrl: "http://127.0.0.1:9/v1", maxResponseBytes: bad }))
        expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("maxResponseBytes")
      }
      const exit = yield* Effect.exit(ChatClient.resolveOptions({ baseUrl: "http://127.0.0.1:9/v1", maxEventBytes: 0 }))
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("maxEventBytes")
    }))
})

describe("a body cut after its whole answer (stub HttpClient)", () => {
  it.scoped("13.16 a chunked 200 whose JSON arrived whole before the connection broke is used: one request", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, headers: { "content-type": "application/json" }, body: [completion.slice(0, 40), completion.slice(40)], then: "reset" }])
      const answer = yield* (yield* client(s.layer)).create(request)
      expect(answer.choices[0]?.message.content).toBe("whole")
      expect(s.count()).toBe(1)
    }))

  // Live: the retries' backoff (1 ms) runs on the real clock.
  it.scopedLive("13.16 one cut inside its JSON is the transport failure, retried", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, headers: { "content-type": "application/json" }, body: [completion.slice(0, 40)], then: "reset" }])
      const error = yield* Effect.flip((yield* client(s.layer, { retry: { maxRetries: 2, initialDelay: "1 millis" } })).create(request))
      expect(error).toMatchObject({ _tag: "TransportError", attempts: 3 })
      expect(s.count()).toBe(3)
    }))
})

describe("bounded streams (stub HttpClient, TestClock)", () => {
  it.scoped("13.8 keep-alive comments before any event do not stop the attempt timeout", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, body: [": keep-alive\n\n", "\n", ": keep-alive\n\n"], then: "hang" }])
      const chat = yield* client(s.layer, { timeout: "10 seconds", idleTimeout: "30 seconds", retry: { maxRetries: 0 } })
      const fiber = yield* Effect.fork(Effect.flip(Stream.runDrain(chat.stream(request))))
      yield* until(() => s.count() === 1)
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20))) // the comments are read
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TimeoutError", phase: "attempt", timeoutMillis: 10_000 })
    }))

  it.scoped("13.8 totalTimeout bounds a stream after its first chunk: TimeoutError{phase: total}", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, body: [chunk("a")], then: "hang" }])
      const chat = yield* client(s.layer, { idleTimeout: "30 seconds", retry: { totalTimeout: "5 seconds" } })
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Effect.flip(Stream.runForEach(chat.stream(request), (c) => Effect.sync(() => { seen.push(c.choices[0]!.delta.content ?? "") }))))
      yield* until(() => seen.length === 1)
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TimeoutError", phase: "total", timeoutMillis: 5000 })
    }))

  it.scoped("13.8 one event past maxEventBytes ends the stream with a final EVENT_TOO_LARGE; smaller ones pass", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, body: [chunk("a"), "data: " + "x".repeat(20_000), "x".repeat(20_000)], then: "hang" }])
      const seen: Array<string> = []
      const error = yield* Effect.flip(
        Stream.runForEach((yield* client(s.layer, { maxEventBytes: 16_384 })).stream(request), (c) => Effect.sync(() => { seen.push(c.choices[0]!.delta.content ?? "") }))
      )
      expect(error).toMatchObject({ _tag: "TransportError", code: "EVENT_TOO_LARGE" })
      expect(error.message).toContain("maxEventBytes")
      expect(seen).toEqual(["a"])
      const first = stubClient([{ status: 200, body: ["data: " + "x".repeat(20_000)], then: "hang" }])
      const early = yield* Effect.flip(Stream.runDrain((yield* client(first.layer, { maxEventBytes: 16_384 })).stream(request)))
      expect(early).toMatchObject({ _tag: "TransportError", code: "EVENT_TOO_LARGE", attempts: 1 })
      expect(first.count()).toBe(1) // final: not retried
    }))

  it.scoped("13.8 a stream past maxResponseBytes ends with RESPONSE_TOO_LARGE", () =>
    Effect.gen(function* () {
      const s = stubClient([{ status: 200, body: Array.from({ length: 100 }, () => chunk("x".repeat(100))), then: "hang" }])
      const error = yield* Effect.flip(Stream.runDrain((yield* client(s.layer, { maxResponseBytes: 5_000 })).stream(request)))
      expect(error).toMatchObject({ _tag: "TransportError", code: "RESPONSE_TOO_LARGE" })
    }))
})
