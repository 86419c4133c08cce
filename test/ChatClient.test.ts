import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { ChatClient } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { VERSION } from "../src/internal/version.js"
import { completion as fixture, stubClient, type StubReply, validatorFor } from "./helpers.js"

const KEY = "sk-test-4f9c2a7e1b3d5c6a8e0f"
const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "Hello" }] }
const completion = fixture({ content: "Hi!", usage: { prompt_tokens: 5, completion_tokens: 2 } })
const ok: StubReply = { status: 200, body: JSON.stringify(completion), headers: { "content-type": "application/json", "x-request-id": "req_1" } }

/** Runs `f` with a client over a stub answering `replies`. */
const withStub = <A, E>(
  replies: ReadonlyArray<StubReply>,
  f: (chat: ChatClient.Service) => Effect.Effect<A, E>,
  options: ChatClient.Overrides = {}
) => {
  const stub = stubClient(replies)
  // One attempt unless a test asks for retries: these tests are about what a single answer becomes.
  const layer = ChatClient.layerWithoutHttpClient({ apiKey: Redacted.make(KEY), baseUrl: "http://127.0.0.1:9/v1", retry: { maxRetries: 0 }, ...options }).pipe(Layer.provide(stub.layer))
  return Effect.map(Effect.provide(Effect.flatMap(ChatClient.ChatClient, f), layer), (a) => ({ result: a, sent: stub.sent }))
}

describe("ChatClient.create (stub HttpClient)", () => {
  it.effect("POSTs the request as JSON to {baseUrl}/chat/completions with bearer auth and a user-agent", () =>
    Effect.gen(function* () {
      const { result, sent } = yield* withStub([ok], (chat) => chat.createWithMetadata(request), { baseUrl: "http://127.0.0.1:9/v1/" })
      expect(result.completion).toEqual(completion)
      expect(result).toMatchObject({ requestId: "req_1", status: 200, attempts: 1 })
      expect(sent).toHaveLength(1)
      expect(sent[0]!.url).toBe("http://127.0.0.1:9/v1/chat/completions")
      expect(sent[0]!.method).toBe("POST")
      expect(sent[0]!.headers["authorization"]).toBe(`Bearer ${KEY}`)
      expect(sent[0]!.headers["user-agent"]).toBe(`effect-shepherd/${VERSION}`)
      expect(sent[0]!.headers["content-type"]).toBe("application/json")
      expect(JSON.parse(sent[0]!.body)).toEqual(request)
      expect(validatorFor("CreateChatCompletionRequest")(JSON.parse(sent[0]!.body))).toBeUndefined()
    }))

  it.effect("sends provider-specific fields untouched and never asks for a stream", () =>
    Effect.gen(function* () {
      const { sent } = yield* withStub([ok], (chat) => chat.create({ ...request, top_k: 40, stream: true, stream_options: { include_usage: true } }))
      expect(JSON.parse(sent[0]!.body)).toEqual({ ...request, top_k: 40 })
    }))

  it.effect("sends no authorization header when there is no key (local servers)", () =>
    Effect.gen(function* () {
      const { sent } = yield* withStub([ok], (chat) => chat.create(request), { apiKey: undefined })
      expect(sent[0]!.headers["authorization"]).toBeUndefined()
    }))

  it.effect("an OpenAI error body becomes ApiError with status, type, code, param and request id", () =>
    Effect.gen(function* () {
      const body = { error: { message: "The model `gpt-9` does not exist.", type: "invalid_request_error", param: "model", code: "model_not_found" } }
      const { result } = yield* withStub([{ status: 404, body: JSON.stringify(body), headers: { "x-request-id": "req_9" } }], (chat) => Effect.flip(chat.create(request)))
      expect(result._tag).toBe("ApiError")
      expect(result).toMatchObject({ status: 404, type: "invalid_request_error", code: "model_not_found", param: "model", requestId: "req_9", attempts: 1 })
      expect(result.message).toContain("does not exist")
      expect(result.message).toContain("Check the model name")
    }))

  it.effect("a non-JSON error page is kept, at most its first 2 KB", () =>
    Effect.gen(function* () {
      const html = "<html>" + "x".repeat(10_000) + "</html>"
      const { result } = yield* withStub([{ status: 502, body: html, headers: { "content-type": "text/html" } }], (chat) => Effect.flip(chat.create(request)))
      if (result._tag !== "ApiError") throw new Error(result._tag)
      expect(result.status).toBe(502)
      expect(result.detail.startsWith("<html>xxx")).toBe(true)
      expect(result.detail.length).toBeLessThanOrEqual(2049)
    }))

  it.effect("429 becomes RateLimitError with the delay the server asked for", () =>
    Effect.gen(function* () {
      const tooMany = (headers: Record<string, string>): StubReply => ({ status: 429, body: JSON.stringify({ error: { message: "Slow down", type: "requests", param: null, code: "rate_limit_exceeded" } }), headers })
      const ms = yield* withStub([tooMany({ "retry-after-ms": "1500", "retry-after": "9" })], (chat) => Effect.flip(chat.create(request)))
      expect(ms.result).toMatchObject({ _tag: "RateLimitError", retryAfterMillis: 1500, code: "rate_limit_exceeded", detail: "Slow down" })
      const seconds = yield* withStub([tooMany({ "retry-after": "7" })], (chat) => Effect.flip(chat.create(request)))
      expect(seconds.result).toMatchObject({ _tag: "RateLimitError", retryAfterMillis: 7000 })
      yield* TestClock.setTime(Date.parse("2026-01-01T00:00:00Z"))
      const date = yield* withStub([tooMany({ "retry-after": "Thu, 01 Jan 2026 00:00:30 GMT" })], (chat) => Effect.flip(chat.create(request)))
      expect(date.result).toMatchObject({ _tag: "RateLimitError", retryAfterMillis: 30_000 })
    }))

  it.effect("a 2xx body that is not a completion gives ResponseDecodeError with an excerpt", () =>
    Effect.gen(function* () {
      const notJson = yield* withStub([{ status: 200, body: "{\"id\": \"x\", " }], (chat) => Effect.flip(chat.create(request)))
      expect(notJson.result).toMatchObject({ _tag: "ResponseDecodeError", status: 200, bodyExcerpt: "{\"id\": \"x\", " })
      expect(notJson.result.message).toContain("invalid JSON")
      const wrongShape = yield* withStub([{ status: 200, body: JSON.stringify({ id: "x", choices: "none" }) }], (chat) => Effect.flip(chat.create(request)))
      expect(wrongShape.result._tag).toBe("ResponseDecodeError")
    }))

  it.effect("a transport failure gives TransportError with the system code", () =>
    Effect.gen(function* () {
      const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" })
      const { result } = yield* withStub([{ transport: refused }], (chat) => Effect.flip(chat.create(request)))
      expect(result).toMatchObject({ _tag: "TransportError", code: "ECONNREFUSED", attempts: 1 })
      const connectTimeout = Object.assign(new Error("Connect Timeout Error"), { code: "UND_ERR_CONNECT_TIMEOUT" })
      const timedOut = yield* withStub([{ transport: connectTimeout }], (chat) => Effect.flip(chat.create(request)), { connectTimeout: "3 seconds" })
      expect(timedOut.result).toMatchObject({ _tag: "TimeoutError", phase: "connect", timeoutMillis: 3000 })
    }))

  it.effect("an attempt that outlives `timeout` is aborted and fails with TimeoutError{attempt}", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(withStub(["hang"], (chat) => Effect.flip(chat.create(request)), { timeout: "5 seconds" }))
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const { result } = yield* Fiber.join(fiber)
      expect(result).toMatchObject({ _tag: "TimeoutError", phase: "attempt", timeoutMillis: 5000, attempts: 1 })
    }))

  it.effect("attempts that finish in time leave no deadline behind; a later one still times out", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(
        withStub([ok, ok, "hang"], (chat) =>
          Effect.gen(function* () {
            yield* chat.create(request)
            yield* chat.create(request)
            return yield* Effect.flip(chat.create(request))
          }), { timeout: "2 seconds" })
      )
      yield* TestClock.adjust("2 seconds")
      const { result } = yield* Fiber.join(fiber)
      expect(result).toMatchObject({ _tag: "TimeoutError", phase: "attempt" })
    }))

  it.effect("interrupting create aborts the request", () =>
    Effect.gen(function* () {
      const stub = stubClient(["hang"])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", retry: { maxRetries: 0 } }).pipe(Layer.provide(stub.layer))
      const fiber = yield* Effect.fork(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)), layer))
      yield* TestClock.adjust("10 millis")
      expect(stub.sent).toHaveLength(1)
      expect(stub.aborted.count).toBe(0)
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(stub.aborted.count).toBe(1)
    }))
})

describe("the API key", () => {
  it.effect("never appears in an error, its JSON or its message, even when the server echoes it", () =>
    Effect.gen(function* () {
      const echo = `Incorrect API key provided: ${KEY}. Authorization: Bearer ${KEY}`
      const replies: Array<StubReply> = [
        { status: 401, body: JSON.stringify({ error: { message: echo, type: "invalid_request_error", param: null, code: "invalid_api_key" } }) },
        { status: 500, body: `<html>${echo}</html>` },
        { status: 429, body: JSON.stringify({ error: { message: echo, type: "tokens", param: null, code: null } }) },
        { status: 200, body: `{"broken": "${KEY}"` },
        { transport: Object.assign(new Error(echo), { code: "ECONNRESET" }) }
      ]
      for (const reply of replies) {
        const { result } = yield* withStub([reply], (chat) => Effect.flip(chat.create(request)))
        const surfaces = [result.message, JSON.stringify(result), String(result), JSON.stringify(result.toJSON())]
        for (const text of surfaces) expect(text).not.toContain(KEY)
        expect(JSON.stringify(result)).toContain("[REDACTED]")
      }
    }))

  it.effect("is not shown by the service's options or the client's inspection", () =>
    Effect.gen(function* () {
      const { result } = yield* withStub([ok], (chat) => Effect.succeed(chat.options))
      expect(JSON.stringify(result)).not.toContain(KEY)
      expect(String(result.apiKey)).not.toContain(KEY)
    }))
})

describe("configuration", () => {
  const build = (options: ChatClient.Overrides) => Effect.flip(Effect.provide(ChatClient.ChatClient, ChatClient.layerWithoutHttpClient(options).pipe(Layer.provide(stubClient([ok]).layer))))

  it.effect("the default OpenAI base URL needs a key; another base URL does not", () =>
    Effect.gen(function* () {
      const error = yield* build({})
      expect(String(error)).toContain("OPENAI_API_KEY")
      const local = yield* Effect.provide(ChatClient.ChatClient, ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:8000/v1" }).pipe(Layer.provide(stubClient([ok]).layer)))
      expect(local.options.apiKey).toBeUndefined()
    }))

  it.effect("bad values fail at construction with a ConfigError naming the option", () =>
    Effect.gen(function* () {
      const base = { baseUrl: "http://127.0.0.1:8000/v1" }
      expect(String(yield* build({ baseUrl: "ftp://example.com" }))).toContain("baseUrl")
      expect(String(yield* build({ baseUrl: "not a url" }))).toContain("baseUrl")
      expect(String(yield* build({ ...base, connections: 0 }))).toContain("connections")
      expect(String(yield* build({ ...base, connections: 1.5 }))).toContain("connections")
      expect(String(yield* build({ ...base, timeout: "0 seconds" }))).toContain("timeout")
      expect(String(yield* build({ ...base, connectTimeout: -5 }))).toContain("connectTimeout")
      expect(String(yield* build({ ...base, retry: { maxRetries: -1 } }))).toContain("maxRetries")
      expect(String(yield* build({ ...base, retry: { totalTimeout: "0 millis" } }))).toContain("totalTimeout")
    }))

  it.effect("layerConfig reads OPENAI_API_KEY, OPENAI_BASE_URL and SHEPHERD_*; overrides win", () =>
    Effect.gen(function* () {
      const env = ConfigProvider.fromMap(new Map([
        ["OPENAI_API_KEY", KEY],
        ["OPENAI_BASE_URL", "http://127.0.0.1:7/v1"],
        ["SHEPHERD_CONNECTIONS", "32"],
        ["SHEPHERD_TIMEOUT", "15 seconds"],
        ["SHEPHERD_MAX_RETRIES", "2"],
        ["SHEPHERD_TOTAL_TIMEOUT", "90 seconds"]
      ]))
      const options = yield* Effect.withConfigProvider(ChatClient.optionsConfig, env)
      expect(Redacted.value(options.apiKey!)).toBe(KEY)
      expect(options).toMatchObject({ baseUrl: "http://127.0.0.1:7/v1", connections: 32 })
      expect(options.retry).toEqual({ maxRetries: 2, totalTimeout: expect.anything() })
      const chat = yield* Effect.provide(ChatClient.ChatClient, ChatClient.layerConfig({ connections: 8, retry: { maxRetries: 5 } })).pipe(Effect.withConfigProvider(env))
      expect(chat.options.connections).toBe(8)
      expect(chat.options.retry.maxRetries).toBe(5) // the override wins
      expect(chat.options.retry.totalTimeout).toBeDefined() // the environment's is kept
      expect(chat.options.baseUrl).toBe("http://127.0.0.1:7/v1")
      const missing = yield* Effect.flip(Effect.provide(ChatClient.ChatClient, ChatClient.layerConfig())).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      expect(String(missing)).toContain("OPENAI_API_KEY")
    }))
})
