/** ChatClient against the real MockServer over loopback HTTP. */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { ChatClient } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { validatorFor } from "./helpers.js"

const KEY = "sk-integration-9d8c7b6a5f4e3d2c1b0a"
const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "Where is my order 42?" }] }

/** A server and a client on it, both closed with the test's scope. */
const setup = (transport: ChatClient.Options["transport"], server: Partial<MockServer.Options> = {}, client: ChatClient.Overrides = {}) =>
  Effect.gen(function* () {
    const mock = yield* MockServer.make({ apiKey: KEY, ...server })
    // One attempt: these tests are about what each answer becomes (retries: test/retry.integration.test.ts).
    const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY), transport, retry: { maxRetries: 0 }, ...client }))
    return { mock, chat: Context.get(context, ChatClient.ChatClient) }
  })

// Any unhandled rejection or uncaught exception during these tests fails the last test.
const stray: Array<unknown> = []
const onStray = (e: unknown) => { stray.push(e) }
beforeAll(() => { process.on("unhandledRejection", onStray); process.on("uncaughtException", onStray) })
afterAll(() => { process.off("unhandledRejection", onStray); process.off("uncaughtException", onStray) })

// Both ways `ChatClient.layer` can send: straight onto undici, and through the platform's HttpClient.
for (const transport of ["undici", "platform"] as const) describe(`ChatClient against MockServer (transport: ${transport})`, () => {
  it.scopedLive("answers with a decoded completion and its metadata; the body it sent is spec-valid", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport)
      const result = yield* chat.createWithMetadata(request)
      expect(result.completion.choices[0]!.message.content).toContain("Where is my order 42?")
      expect(result.requestId).toBe("req_mock_1")
      expect(result.status).toBe(200)
      expect(result.latencyMillis).toBeGreaterThanOrEqual(0)
      const [entry] = yield* mock.journal
      expect(entry!.headers["user-agent"]).toMatch(/^effect-shepherd\//)
      expect(entry!.headers["authorization"]).toBeUndefined()
      expect(validatorFor("CreateChatCompletionRequest")(entry!.body)).toBeUndefined()
    }))

  it.scopedLive("every fault kind gives its typed error", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, {}, { timeout: "300 millis" })
      const cases: ReadonlyArray<readonly [MockServer.Fault, string, Record<string, unknown>]> = [
        // The next call waits out this pause (the client's shared pause): 1 s, not more.
        [{ type: "rate_limit", retryAfterSeconds: 1 }, "RateLimitError", { retryAfterMillis: 1000, code: "rate_limit_exceeded", requestId: "req_mock_1" }],
        [{ type: "rate_limit", retryAfterMillis: 250 }, "RateLimitError", { retryAfterMillis: 250 }],
        [{ type: "server_error", status: 503 }, "ApiError", { status: 503 }],
        [{ type: "server_error" }, "ApiError", { status: 502 }],
        [{ type: "bad_request" }, "ApiError", { status: 400, type: "invalid_request_error", code: "invalid_value", param: "messages" }],
        [{ type: "reset" }, "TransportError", {}],
        [{ type: "truncated_body" }, "TransportError", {}],
        [{ type: "malformed_json" }, "ResponseDecodeError", { status: 200 }],
        [{ type: "hang" }, "TimeoutError", { phase: "attempt", timeoutMillis: 300 }]
      ]
      yield* mock.setScript(cases.map(([fault]) => fault))
      for (const [fault, tag, fields] of cases) {
        const error = yield* Effect.flip(chat.create(request))
        expect({ fault: fault.type, tag: error._tag }).toEqual({ fault: fault.type, tag })
        expect(error).toMatchObject(fields)
        expect(error.message.length).toBeGreaterThan(20)
      }
      // and the client still works afterwards
      const after = yield* chat.create(request)
      expect(after.object).toBe("chat.completion")
      expect(stray).toEqual([])
    }))

  it.scopedLive("a wrong key gets 401 as ApiError with advice, and the key is not in it", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY })
      const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make("sk-wrong-key-000"), transport }))
      const error = yield* Effect.flip(Context.get(context, ChatClient.ChatClient).create(request))
      expect(error).toMatchObject({ _tag: "ApiError", status: 401, code: "invalid_api_key" })
      expect(error.message).toContain("OPENAI_API_KEY")
    }))

  it.scopedLive("an invalid request is answered 400 by the server's schema check", () =>
    Effect.gen(function* () {
      const { chat } = yield* setup(transport)
      const error = yield* Effect.flip(chat.create({ model: "m", messages: [{ role: "user", content: "x" }], temperature: 9 }))
      expect(error).toMatchObject({ _tag: "ApiError", status: 400, type: "invalid_request_error", param: "temperature" })
    }))

  it.scopedLive("interrupting create aborts the request: the journal shows the client hung up", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { script: [{ type: "hang" }] })
      const fiber = yield* Effect.fork(chat.create(request))
      yield* Effect.retry(Effect.flatMap(mock.journal, (j) => (j.length === 1 ? Effect.void : Effect.fail("not yet"))), Schedule.spaced("5 millis"))
      yield* Fiber.interrupt(fiber)
      const hungUp = yield* Effect.retry(
        Effect.flatMap(mock.journal, (j) => (j[0]!.hungUp ? Effect.succeed(true) : Effect.fail("not yet"))),
        Schedule.spaced("5 millis").pipe(Schedule.upTo("5 seconds"))
      )
      expect(hungUp).toBe(true)
    }))

  it.scopedLive("closing the layer's scope closes its connection pool: a call still in flight ends, and its socket closes", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "5 seconds" })
      const layerScope = yield* Scope.make()
      const context = yield* Scope.extend(Layer.build(ChatClient.layer({ baseUrl: mock.url, transport, retry: { maxRetries: 0 } })), layerScope)
      // The call runs in a fiber of its own, not tied to the layer's scope and never interrupted.
      const call = yield* Effect.fork(Effect.either(Context.get(context, ChatClient.ChatClient).create(request)))
      yield* Effect.retry(Effect.flatMap(mock.journal, (j) => (j.length === 1 ? Effect.void : Effect.fail("not yet"))), Schedule.spaced("5 millis"))
      yield* Scope.close(layerScope, Exit.void)
      const outcome = yield* Fiber.join(call)
      expect(outcome._tag).toBe("Left") // ended by the pool's destruction, long before the 5 s answer
      const [entry] = yield* Effect.retry(
        Effect.flatMap(mock.journal, (j) => (j[0]!.hungUp ? Effect.succeed(j) : Effect.fail("not yet"))),
        Schedule.spaced("5 millis").pipe(Schedule.upTo("4 seconds"))
      )
      expect(entry!.hungUp).toBe(true)
    }))

  it.scopedLive("the key appears in no error, log line or journal entry across every fault", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const logger = Logger.make(({ message }) => { lines.push(JSON.stringify(message)) })
      const { chat, mock } = yield* setup(transport, { faultRate: 1, faults: [{ type: "rate_limit", retryAfterMillis: 100 }, { type: "server_error" }, { type: "bad_request" }, { type: "malformed_json" }, { type: "reset" }] }, { timeout: "2 seconds" })
      const errors = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), () =>
        Effect.flip(chat.create(request)).pipe(Effect.tap((e) => Effect.logError("call failed", e))),
      { concurrency: 5 }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const journal = yield* mock.journal
      const everything = [...errors.map((e) => `${e.message} ${JSON.stringify(e)} ${String(e)}`), ...lines, JSON.stringify(journal)].join("\n")
      expect(errors).toHaveLength(20)
      expect(everything).not.toContain(KEY)
    }))

  it.scopedLive("embed: POST /embeddings, a spec-valid body, a decoded response; retried like chat calls", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { script: [{ type: "server_error", status: 503 }] }, { retry: { maxRetries: 1, initialDelay: "1 millis" } })
      const result = yield* chat.embedWithMetadata({ model: "text-embedding-3-small", input: ["red shoes", "blue hat"], dimensions: 4 })
      expect(result.attempts).toBe(2)
      expect(result.embeddings.data.map((d) => d.embedding.length)).toEqual([4, 4])
      expect(result.embeddings.usage.prompt_tokens).toBeGreaterThan(0)
      const journal = yield* mock.journal
      expect(journal.map((e) => [e.path, e.status])).toEqual([["/v1/embeddings", 503], ["/v1/embeddings", 200]])
      expect(validatorFor("CreateEmbeddingRequest")(journal[1]!.body)).toBeUndefined()
      const invalid = yield* Effect.flip(chat.embed({ model: "text-embedding-3-small", input: [] as unknown as ["x"] }))
      expect(invalid).toMatchObject({ _tag: "ApiError", status: 400 })
    }))
})
