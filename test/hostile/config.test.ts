/**
 * Issue 13, items A.1 and A.6: prices are looked up as the table's own entries (a model named after
 * an `Object.prototype` member has no price, and no NaN ever reaches the budget), and every option of
 * every layer is checked when the layer is built: a `ConfigError` naming its path, never a defect
 * later or a hang.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Path from "node:path"
import { Budget, ChatClient, Json, JsonParser, Pricing, RateLimit, RetryPolicy } from "../../src/index.js"
import type { ChatSchema } from "../../src/index.js"
import { MockServer } from "../../src/testing/index.js"
import { KEY, runToEnd, tmp, writeInput } from "../cliHelpers.js"
import { completion as fixture, stubClient } from "../helpers.js"

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype)

const completion = JSON.stringify(fixture({ usage: { prompt_tokens: 8, completion_tokens: 2 } }))
const ok = { status: 200, body: completion } as const
const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "hi" }], max_tokens: 10 }

/** The path of the `ConfigError` an exit failed with, or what it was instead. */
const configPath = (exit: Exit.Exit<unknown, unknown>): ReadonlyArray<string> | string => {
  if (Exit.isSuccess(exit)) return "built without an error"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return `a defect or interruption: ${Cause.pretty(exit.cause).split("\n")[0]}`
  const error = failure.value
  if (!ConfigError.isConfigError(error)) return `another error: ${String(error)}`
  return error._op === "InvalidData" || error._op === "MissingData" ? error.path : `a ${error._op} ConfigError`
}

/** The message of the `ConfigError` an exit failed with. */
const configMessage = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isFailure(exit) ? Option.match(Cause.failureOption(exit.cause), { onNone: () => "", onSome: String }) : ""

const BASE = "http://127.0.0.1:9/v1"
const chat = (options: ChatClient.Overrides) =>
  Layer.build(ChatClient.layerWithoutHttpClient({ baseUrl: BASE, ...options }).pipe(Layer.provide(stubClient([ok]).layer)))
const price = { input: 1, output: 1, source: "test", asOf: "2025-01-01" }
const REDIS = "redis://127.0.0.1:1"

/** [what, building it, the path its ConfigError must name]. */
const rows: ReadonlyArray<readonly [string, () => Effect.Effect<unknown, unknown, Scope.Scope>, ReadonlyArray<string>]> = [
  // ChatClient: its own options, and the nested retry and limits, by their full path.
  ["client limits.rpm 0", () => chat({ limits: { rpm: 0 } }), ["limits", "rpm"]],
  ["client limits.rpm -1", () => chat({ limits: { rpm: -1 } }), ["limits", "rpm"]],
  ["client limits.rpm NaN", () => chat({ limits: { rpm: NaN } }), ["limits", "rpm"]],
  ["client limits.rpm 1.5", () => chat({ limits: { rpm: 1.5 } }), ["limits", "rpm"]],
  ["client limits.tpm 0", () => chat({ limits: { tpm: 0 } }), ["limits", "tpm"]],
  ["client limits.maxInFlight 0", () => chat({ limits: { maxInFlight: 0 } }), ["limits", "maxInFlight"]],
  ["client limits.windowMargin -1", () => chat({ limits: { windowMargin: -1 } }), ["limits", "windowMargin"]],
  ["client limits.windowMargin unparseable", () => chat({ limits: { windowMargin: "soon" as never } }), ["limits", "windowMargin"]],
  ["client retry.factor 0.5", () => chat({ retry: { factor: 0.5 } }), ["retry", "factor"]],
  ["client retry.factor NaN", () => chat({ retry: { factor: NaN } }), ["retry", "factor"]],
  ["client retry.maxRetries -1", () => chat({ retry: { maxRetries: -1 } }), ["retry", "maxRetries"]],
  ["client retry.maxRetries NaN", () => chat({ retry: { maxRetries: NaN } }), ["retry", "maxRetries"]],
  ["client retry.maxRetries Infinity", () => chat({ retry: { maxRetries: Infinity } }), ["retry", "maxRetries"]],
  ["client retry.initialDelay negative", () => chat({ retry: { initialDelay: "-1 seconds" } }), ["retry", "initialDelay"]],
  ["client retry.maxDelay unparseable", () => chat({ retry: { maxDelay: "a while" as never } }), ["retry", "maxDelay"]],
  ["client retry.maxRetryAfter 0", () => chat({ retry: { maxRetryAfter: 0 } }), ["retry", "maxRetryAfter"]],
  ["client retry.totalTimeout NaN", () => chat({ retry: { totalTimeout: NaN } }), ["retry", "totalTimeout"]],
  ["client timeout NaN", () => chat({ timeout: NaN }), ["timeout"]],
  ["client timeout negative", () => chat({ timeout: -5 }), ["timeout"]],
  ["client idleTimeout infinite", () => chat({ idleTimeout: Infinity }), ["idleTimeout"]],
  ["client connectTimeout negative text", () => chat({ connectTimeout: "-3 seconds" }), ["connectTimeout"]],
  ["client keepAliveTimeout unparseable", () => chat({ keepAliveTimeout: "forever" as never }), ["keepAliveTimeout"]],
  ["client connections 0", () => chat({ connections: 0 }), ["connections"]],
  ["client baseUrl not a URL", () => chat({ baseUrl: "not a url" }), ["baseUrl"]],
  ["client baseUrl ftp", () => chat({ baseUrl: "ftp://example.com/v1" }), ["baseUrl"]],
  ["client apiKey with a trailing CR", () => chat({ apiKey: Redacted.make(`${KEY}\r`) }), ["apiKey"]],
  ["client apiKey with a LF inside", () => chat({ apiKey: Redacted.make(`${KEY.slice(0, 10)}\n${KEY.slice(10)}`) }), ["apiKey"]],
  ["client apiKey beyond ASCII", () => chat({ apiKey: Redacted.make(`${KEY}é`) }), ["apiKey"]],
  ["client apiKey with a space", () => chat({ apiKey: Redacted.make(`${KEY} `) }), ["apiKey"]],
  ["client header value with CRLF", () => chat({ headers: { "x-team": "a\r\nx-injected: 1" } }), ["headers", "x-team"]],
  ["client header value with NUL", () => chat({ headers: { "x-team": "a\u0000b" } }), ["headers", "x-team"]],
  ["client header name with a space", () => chat({ headers: { "x team": "a" } }), ["headers", "x team"]],
  ["client transport unknown", () => chat({ transport: "curl" as never }), ["transport"]],
  ["client tracing not a boolean", () => chat({ tracing: "yes" as never }), ["tracing"]],
  // RateLimit: its options are the limits themselves.
  ["RateLimit.layer rpm 0", () => Layer.build(RateLimit.layer({ rpm: 0 })), ["rpm"]],
  ["RateLimit.layer tpm -1", () => Layer.build(RateLimit.layer({ tpm: -1 })), ["tpm"]],
  ["RateLimit.layer maxInFlight 1.5", () => Layer.build(RateLimit.layer({ maxInFlight: 1.5 })), ["maxInFlight"]],
  ["RateLimit.layer windowMargin negative", () => Layer.build(RateLimit.layer({ windowMargin: "-1 seconds" })), ["windowMargin"]],
  ["RateLimit.make adaptive not a boolean", () => RateLimit.make({ adaptive: "no" as never }), ["adaptive"]],
  // The Redis stores check every option before connecting (nothing listens on port 1).
  ["RateLimit.layerRedis rpm 0", () => Layer.build(RateLimit.layerRedis({ url: REDIS, rpm: 0 })), ["rpm"]],
  ["RateLimit.layerRedis url http", () => Layer.build(RateLimit.layerRedis({ url: "http://127.0.0.1:6379", rpm: 1 })), ["url"]],
  ["RateLimit.layerRedis url unparseable", () => Layer.build(RateLimit.layerRedis({ url: "redis//nowhere", rpm: 1 })), ["url"]],
  ["RateLimit.layerRedis namespace", () => Layer.build(RateLimit.layerRedis({ url: REDIS, namespace: "a b" })), ["namespace"]],
  ["RateLimit.layerRedis workers 0", () => Layer.build(RateLimit.layerRedis({ url: REDIS, workers: 0 })), ["workers"]],
  ["RateLimit.layerRedis commandTimeout negative", () => Layer.build(RateLimit.layerRedis({ url: REDIS, commandTimeout: -1 })), ["commandTimeout"]],
  ["RateLimit.layerRedis retryInterval unparseable", () => Layer.build(RateLimit.layerRedis({ url: REDIS, retryInterval: "soon" as never })), ["retryInterval"]],
  ["RateLimit.layerRedis onUnavailable unknown", () => Layer.build(RateLimit.layerRedis({ url: REDIS, onUnavailable: "retry" as never })), ["onUnavailable"]],
  ["RateLimit.layerRedis baseUrl", () => Layer.build(RateLimit.layerRedis({ url: REDIS, baseUrl: "api.example.com" })), ["baseUrl"]],
  // Budget, in memory and in Redis.
  ["Budget.layer maxUsd 0", () => Layer.build(Budget.layer({ maxUsd: 0 })), ["maxUsd"]],
  ["Budget.layer maxUsd NaN", () => Layer.build(Budget.layer({ maxUsd: NaN })), ["maxUsd"]],
  ["Budget.layer maxUsd -1", () => Layer.build(Budget.layer({ maxUsd: -1 })), ["maxUsd"]],
  ["Budget.layer maxUsd Infinity", () => Layer.build(Budget.layer({ maxUsd: Infinity })), ["maxUsd"]],
  ["Budget.layer maxUsd beyond exact micro-dollars", () => Layer.build(Budget.layer({ maxUsd: 1e12 })), ["maxUsd"]],
  ["Budget.layer a NaN price", () => Layer.build(Budget.layer({ maxUsd: 1, prices: { m: { ...price, input: NaN } } })), ["prices", "m", "input"]],
  ["Budget.layer an infinite price", () => Layer.build(Budget.layer({ maxUsd: 1, prices: { m: { ...price, output: Infinity } } })), ["prices", "m", "output"]],
  ["Budget.layer a negative price", () => Layer.build(Budget.layer({ maxUsd: 1, prices: { m: { ...price, cachedInput: -1 } } })), ["prices", "m", "cachedInput"]],
  ["Budget.layerRedis maxUsd 0", () => Layer.build(Budget.layerRedis({ url: REDIS, maxUsd: 0 })), ["maxUsd"]],
  ["Budget.layerRedis leaseDuration negative", () => Layer.build(Budget.layerRedis({ url: REDIS, maxUsd: 1, leaseDuration: -1 })), ["leaseDuration"]],
  ["Budget.layerRedis url", () => Layer.build(Budget.layerRedis({ url: "127.0.0.1:6379", maxUsd: 1 })), ["url"]],
  ["Budget.layerRedis workers NaN", () => Layer.build(Budget.layerRedis({ url: REDIS, maxUsd: 1, workers: NaN })), ["workers"]],
  // JsonParser (and Json's limits).
  ["JsonParser maxThreads 0", () => Layer.build(JsonParser.layer({ maxThreads: 0 })), ["maxThreads"]],
  ["JsonParser inlineBelowBytes -1", () => Layer.build(JsonParser.layer({ inlineBelowBytes: -1 })), ["inlineBelowBytes"]],
  ["JsonParser inlineBelowBytes NaN", () => Layer.build(JsonParser.layer({ inlineBelowBytes: NaN })), ["inlineBelowBytes"]],
  ["JsonParser deadline 0", () => Layer.build(JsonParser.layer({ deadline: 0 })), ["deadline"]],
  ["JsonParser deadline unparseable", () => Layer.build(JsonParser.layer({ deadline: "2 sec" as never })), ["deadline"]],
  ["JsonParser deadlinePerMb negative", () => Layer.build(JsonParser.layer({ deadlinePerMb: -1 })), ["deadlinePerMb"]],
  ["JsonParser idleTimeout negative", () => Layer.build(JsonParser.layer({ idleTimeout: "-1 seconds" })), ["idleTimeout"]],
  ["JsonParser maxWorkerHeapMb 0", () => Layer.build(JsonParser.layer({ maxWorkerHeapMb: 0 })), ["maxWorkerHeapMb"]],
  ["JsonParser maxDepth NaN", () => Layer.build(JsonParser.layer({ maxDepth: NaN })), ["maxDepth"]],
  ["JsonParser maxBytes 0", () => Layer.build(JsonParser.layer({ maxBytes: 0 })), ["maxBytes"]],
  // MockServer.
  ["MockServer port -1", () => MockServer.make({ port: -1 }), ["port"]],
  ["MockServer port 70000", () => MockServer.make({ port: 70_000 }), ["port"]],
  ["MockServer faultRate 2", () => MockServer.make({ faultRate: 2 }), ["faultRate"]],
  ["MockServer faultRate NaN", () => MockServer.make({ faultRate: NaN }), ["faultRate"]],
  ["MockServer rpm 0", () => MockServer.make({ rpm: 0 }), ["rpm"]],
  ["MockServer tpm -5", () => MockServer.make({ tpm: -5 }), ["tpm"]],
  ["MockServer journalLimit 0", () => MockServer.make({ journalLimit: 0 }), ["journalLimit"]],
  ["MockServer seed NaN", () => MockServer.make({ seed: NaN }), ["seed"]],
  ["MockServer latency negative", () => MockServer.make({ latency: -5 }), ["latency"]],
  ["MockServer latency range reversed", () => MockServer.make({ latency: { uniform: ["50 millis", "10 millis"] } }), ["latency", "uniform"]],
  ["MockServer latency sigma NaN", () => MockServer.make({ latency: { logNormal: { median: "10 millis", sigma: NaN } } }), ["latency", "logNormal", "sigma"]],
  ["MockServer an unknown fault", () => MockServer.make({ faults: [{ type: "nope" } as never] }), ["faults", "0", "type"]],
  ["MockServer a negative retry-after", () => MockServer.make({ script: ["ok", { type: "rate_limit", retryAfterSeconds: -1 }] }), ["script", "1", "retryAfterSeconds"]],
  ["MockServer streaming.chunkChars 0", () => MockServer.make({ streaming: { chunkChars: 0 } }), ["streaming", "chunkChars"]],
  ["MockServer apiKey with a LF", () => MockServer.make({ apiKey: "k\n" }), ["apiKey"]],
  // RetryPolicy on its own, and per call.
  ["RetryPolicy.validateOptions factor 0", () => RetryPolicy.validateOptions({ factor: 0 }), ["factor"]],
]

describe("13.A6 every option is checked when its layer is built", () => {
  for (const [what, build, path] of rows) {
    it.scoped(`13.A6 ${what} fails with a ConfigError at ${path.join(".")}`, () =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(Effect.suspend(build))
        expect(configPath(exit)).toEqual(path)
      }))
  }

  it.effect("13.A6 an API key a header cannot carry fails at ['apiKey'] and the message never holds the key", () =>
    Effect.gen(function* () {
      for (const key of [`${KEY}\r`, `${KEY}\r\n`, `\t${KEY}`, `${KEY.slice(0, 12)}\n${KEY.slice(12)}`, `${KEY}\u2028`]) {
        const exit = yield* Effect.exit(Effect.scoped(chat({ apiKey: Redacted.make(key) })))
        expect(configPath(exit)).toEqual(["apiKey"])
        const message = configMessage(exit)
        expect(message).toContain("apiKey")
        expect(message).not.toContain(KEY.slice(3, 15))
      }
    }))

  it.effect("13.A6 with rpm 0, tpm 0 or maxInFlight 0, no call crashes or hangs: the client is never built", () =>
    Effect.gen(function* () {
      for (const limits of [{ rpm: 0 }, { rpm: -1 }, { tpm: 0 }, { maxInFlight: 0 }] as const) {
        const stub = stubClient([ok])
        const calls = Effect.gen(function* () {
          const client = yield* ChatClient.ChatClient
          yield* client.create(request)
          yield* client.create(request)
          return "two calls answered"
        }).pipe(Effect.provide(ChatClient.layerWithoutHttpClient({ baseUrl: BASE, limits }).pipe(Layer.provide(stub.layer))))
        const fiber = yield* Effect.fork(Effect.exit(calls))
        // An hour of test time: the old limiter, with tpm 0, was still waiting after it.
        yield* TestClock.adjust("1 hour")
        const exit = yield* Fiber.poll(fiber)
        expect(Option.isSome(exit), `limits ${JSON.stringify(limits)}: the calls are still waiting`).toBe(true)
        if (Option.isSome(exit)) expect(configPath(Exit.flatten(exit.value))).toEqual(["limits", Object.keys(limits)[0]])
        expect(stub.sent).toHaveLength(0)
      }
    }))

  it.effect("13.A6 ChatClient.withRetry with a bad option (written in code) stops before sending, naming the option", () =>
    Effect.gen(function* () {
      const stub = stubClient([ok])
      const exit = yield* Effect.exit(
        Effect.flatMap(ChatClient.ChatClient, (c) => ChatClient.withRetry({ maxRetries: -1 })(c.create(request))).pipe(
          Effect.provide(ChatClient.layerWithoutHttpClient({ baseUrl: BASE }).pipe(Layer.provide(stub.layer)))
        )
      )
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("retry.maxRetries")
      expect(stub.sent).toHaveLength(0)
    }))

  it("13.A6 RetryPolicy.schedule, which has no error channel, refuses bad options when it is made, naming the option", () => {
    expect(() => RetryPolicy.schedule({ factor: NaN })).toThrow(/factor/)
    expect(() => RetryPolicy.schedule({ maxRetries: -1 })).toThrow(/maxRetries/)
    expect(() => RetryPolicy.schedule({ initialDelay: "-1 seconds" })).toThrow(/initialDelay/)
    expect(() => RetryPolicy.schedule({ maxRetries: 2 })).not.toThrow()
  })

  it.effect("13.A6 good options still build (the checks refuse only what is wrong)", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Effect.scoped(chat({
        apiKey: Redacted.make(KEY),
        headers: { "OpenAI-Organization": "org-123", "x-note": "a b\tc" },
        limits: { rpm: 1, tpm: 1, maxInFlight: 1, windowMargin: 0, adaptive: false },
        retry: { maxRetries: 0, factor: 1, initialDelay: 1, maxDelay: "1 second", maxRetryAfter: "1 minute", totalTimeout: "1 hour" }
      })))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(Exit.isSuccess(yield* Effect.exit(Budget.make({ maxUsd: 0.000001, prices: { m: price } })))).toBe(true)
    }))
})

describe("13.A1 a price is a table's own entry; a cost is a whole, finite, non-negative amount or none", () => {
  const models = FastCheck.oneof(
    FastCheck.constantFrom(...PROTOTYPE_NAMES, ...Object.keys(Pricing.defaultTable)),
    FastCheck.constantFrom(...PROTOTYPE_NAMES, ...Object.keys(Pricing.defaultTable)).map((name) => `${name}-2025-04-14`),
    FastCheck.string()
  )
  const tokens = FastCheck.oneof(
    FastCheck.nat(),
    FastCheck.integer({ min: 0, max: 2_000_000 }),
    FastCheck.double(),
    FastCheck.constantFrom(NaN, Infinity, -Infinity, -1, 1e300)
  )

  it.prop("13.A1 property: for any model name, Pricing.cost and worstCase give none or a finite non-negative integer", [models, tokens, tokens, tokens], ([model, prompt, completionTokens, cached]) => {
    const cost = Pricing.cost(model, { prompt_tokens: prompt, completion_tokens: completionTokens, prompt_tokens_details: { cached_tokens: cached } })
    const worst = Pricing.worstCase(model, prompt, completionTokens)
    for (const amount of [cost, worst]) {
      if (Option.isSome(amount)) {
        expect(Number.isSafeInteger(amount.value)).toBe(true)
        expect(amount.value).toBeGreaterThanOrEqual(0)
      }
    }
    if (PROTOTYPE_NAMES.includes(model)) expect(Option.isNone(Pricing.priceOf(model))).toBe(true)
  })

  it("13.A1 Object.prototype names have no price, also in a table read from JSON or built with withPrices", () => {
    const fromJson = Pricing.decodeTable(JSON.stringify({ "my-model": price }))
    expect(fromJson._tag).toBe("Right")
    const tables = [Pricing.defaultTable, Pricing.withPrices({ "my-model": price }), fromJson._tag === "Right" ? fromJson.right : {}]
    for (const table of tables) {
      for (const name of PROTOTYPE_NAMES) {
        expect(Option.isNone(Pricing.priceOf(name, table)), name).toBe(true)
        expect(Option.isNone(Pricing.cost(name, { prompt_tokens: 10, completion_tokens: 10 }, table)), name).toBe(true)
      }
    }
    // An own entry named like one is priced as written.
    expect(Pricing.cost("constructor", { prompt_tokens: 1_000_000, completion_tokens: 0 }, { constructor: price })).toEqual(Option.some(1_000_000))
  })

  it.effect("13.A1 Budget.reserve refuses a model named constructor, stays countable, and still refuses what does not fit", () =>
    Effect.gen(function* () {
      const budget = yield* Budget.make({ maxUsd: 0.002 })
      for (const name of ["constructor", "toString", "__proto__", "valueOf", "hasOwnProperty"]) {
        const refused = yield* Effect.flip(budget.reserve(name, 10, 10))
        expect(refused._tag).toBe("BudgetExceededError")
        expect(refused.message).toContain("no price")
      }
      const snapshot = yield* budget.snapshot
      expect(snapshot).toEqual({ limitMicroUsd: 2000, spentMicroUsd: 0, reservedMicroUsd: 0 })
      // gpt-4.1-mini: 10 x $0.4 + 100 x $1.6 per 1M = 164 micro-dollars; 12 fit in 2,000, the 13th does not.
      let admitted = 0
      while (Exit.isSuccess(yield* Effect.exit(budget.reserve("gpt-4.1-mini", 10, 100))) && admitted < 100) admitted++
      expect(admitted).toBe(12)
    }))

  it.effect("13.A1 a settlement that is not a whole, finite, non-negative amount charges the hold instead of poisoning the spend", () =>
    Effect.gen(function* () {
      const budget = yield* Budget.make({ maxUsd: 0.002 })
      for (const actual of [NaN, Infinity, -500, 1.5]) {
        const reservation = yield* budget.reserve("gpt-4.1-mini", 10, 100)
        yield* budget.settle(reservation, Option.some(actual))
      }
      const snapshot = yield* budget.snapshot
      expect(snapshot.spentMicroUsd).toBe(4 * 164)
      expect(snapshot.reservedMicroUsd).toBe(0)
      // 2,000 - 656 = 1,344 left: 8 more fit, not a ninth.
      let admitted = 0
      while (Exit.isSuccess(yield* Effect.exit(budget.reserve("gpt-4.1-mini", 10, 100))) && admitted < 100) admitted++
      expect(admitted).toBe(8)
    }))

  it.scopedLive("13.A1 the Redis budget refuses a model named constructor as a budget refusal, not as Redis being down", () =>
    Effect.gen(function* () {
      // Nothing listens on port 1: with fallbackLocal the budget runs on local state.
      const budget = yield* Effect.provide(Budget.Budget, Budget.layerRedis({ url: REDIS, maxUsd: 0.002, onUnavailable: "fallbackLocal", namespace: "config-test" }))
      const refused = yield* Effect.flip(budget.reserve("constructor", 10, 10))
      expect(refused._tag).toBe("BudgetExceededError")
      let admitted = 0
      while (Exit.isSuccess(yield* Effect.exit(budget.reserve("gpt-4.1-mini", 10, 100))) && admitted < 100) admitted++
      expect(admitted).toBe(12)
    }))

  it.scopedLive("13.A1 shepherd run: line 1 with model \"constructor\" and a small --budget-usd stops at the budget instead of sending every line", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({})
      const dir = tmp()
      const total = 300
      const lines = Array.from({ length: total }, (_, i) =>
        JSON.stringify({
          custom_id: `r${i}`,
          method: "POST",
          url: "/v1/chat/completions",
          body: { model: i === 0 ? "constructor" : "gpt-4.1-mini", messages: [{ role: "user", content: `question ${i}` }], max_tokens: 20 }
        }))
      const input = writeInput(dir, lines)
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--concurrency", "1", "--budget-usd", "0.002", "--no-progress"])
      expect(ended.stderr).not.toContain("$NaN")
      expect(ended.stderr).toContain("stopped by the budget")
      expect(ended.code).toBe(1)
      const reached = (yield* mock.journal).length
      expect(reached).toBeLessThan(total)
    }))

  it.scopedLive("13.A6 shepherd run --rpm 0 is a usage error naming the flag, and nothing is sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({})
      const dir = tmp()
      const input = writeInput(dir, [JSON.stringify({ custom_id: "r0", method: "POST", url: "/v1/chat/completions", body: request })])
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--rpm", "0", "--no-progress"])
      expect(ended.code).toBe(2)
      expect(ended.stderr).toContain("--rpm")
      const keyed = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--no-progress"], { OPENAI_API_KEY: `${KEY}\r` })
      expect(keyed.code).toBe(2)
      expect(keyed.stderr).toContain("OPENAI_API_KEY")
      expect(keyed.stderr).not.toContain(KEY.slice(3, 15))
      expect(yield* mock.journal).toHaveLength(0)
    }))
})

describe("13.A1 model output with bare words named after Object.prototype members", () => {
  it("13.A1 Json.parse reads {\"a\": constructor} (and every other such word) as a string or fails typed, never as a defect", () => {
    for (const word of PROTOTYPE_NAMES) {
      const exit = Effect.runSyncExit(Json.parse(`{"a": ${word}, "b": True}`))
      expect(Exit.isFailure(exit) && Option.isNone(Cause.failureOption(exit.cause)), `${word}: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""}`).toBe(false)
      if (Exit.isSuccess(exit)) expect(exit.value.value).toEqual({ a: word, b: true })
    }
  })
})

describe("13.A1 server headers named after Object.prototype members", () => {
  it.scopedLive("13.A1 a response with headers __proto__ and constructor is read as it was sent; absent names find nothing", () =>
    Effect.gen(function* () {
      const Http = yield* Effect.promise(() => import("node:http"))
      const server = Http.createServer((_req, res) => {
        // node:http refuses to write a header named __proto__ through setHeader; write it raw.
        res.socket?.write(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n__proto__: x\r\nconstructor: y\r\nx-request-id: req_1\r\n" +
            `content-length: ${Buffer.byteLength(completion)}\r\nconnection: close\r\n\r\n${completion}`
        )
        res.socket?.end()
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => { server.listen(0, "127.0.0.1", () => resume(Effect.void)) }),
        () => Effect.async<void>((resume) => { server.close(() => resume(Effect.void)); server.closeAllConnections() })
      )
      const port = (server.address() as import("node:net").AddressInfo).port
      const result = yield* Effect.flatMap(ChatClient.ChatClient, (client) => client.createWithMetadata(request)).pipe(
        Effect.provide(ChatClient.layer({ baseUrl: `http://127.0.0.1:${port}/v1`, retry: { maxRetries: 0 } }))
      )
      expect(result.requestId).toBe("req_1")
      expect(result.headers["constructor"]).toBe("y")
      expect(result.headers["__proto__"]).toBe("x")
      expect(result.headers["toString"]).toBeUndefined()
      expect(result.headers["hasOwnProperty"]).toBeUndefined()
    }))
})
