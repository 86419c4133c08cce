/** `shepherd run`'s configuration (flags + environment -> RunConfig), its layers' errors in words, and how a run ends. */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { CliError } from "../src/cli/error.js"
import * as RunConfig from "../src/cli/runConfig.js"
import type { RunOptions } from "../src/cli/runFlags.js"
import * as RunLayers from "../src/cli/runLayers.js"
import * as RunOutcome from "../src/cli/runOutcome.js"
import * as RunStats from "../src/cli/runStats.js"
import { ChatClient, ChatError } from "../src/index.js"

const options = (overrides: Partial<RunOptions> = {}): RunOptions => ({
  input: "in.jsonl",
  out: "out.jsonl",
  baseUrl: Option.none(),
  concurrency: 8,
  rpm: Option.none(),
  tpm: Option.none(),
  maxRetries: Option.none(),
  timeout: Option.none(),
  budgetUsd: Option.none(),
  prices: Option.none(),
  apiKeyEnv: Option.none(),
  skipInvalid: false,
  noProgress: true,
  progressInterval: Duration.seconds(5),
  summary: Option.none(),
  metrics: Option.none(),
  grace: Duration.seconds(30),
  shard: Option.none(),
  redis: Option.none(),
  redisUrlEnv: Option.none(),
  namespace: "default",
  redisFallback: false,
  cache: Option.none(),
  via: Option.none(),
  deadline: Option.none(),
  pollInterval: Duration.seconds(30),
  maxRequestsPerFile: 50_000,
  maxBytesPerFile: 200 * 1024 * 1024,
  autoThreshold: 1000,
  deployments: Option.none(),
  ...overrides
})

const VARIABLES = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "SHEPHERD_REDIS_URL", "SHEPHERD_TEST_WINDOW", "RUNCONFIG_TEST_KEY"] as const

/** Runs `read` with exactly these variables set (the others unset), restoring the environment after. */
const readWith = (env: Partial<Record<(typeof VARIABLES)[number], string>>, o: RunOptions) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = VARIABLES.map((name) => [name, process.env[name]] as const)
      for (const name of VARIABLES) delete process.env[name]
      Object.assign(process.env, env)
      return saved
    }),
    () => Effect.either(RunConfig.read(o)),
    (saved) =>
      Effect.sync(() => {
        for (const [name, value] of saved) {
          if (value === undefined) delete process.env[name]
          else process.env[name] = value
        }
      })
  )

const usageDetail = (result: { _tag: "Left"; left: CliError } | { _tag: "Right" }) => {
  expect(result._tag).toBe("Left")
  const error = (result as { left: CliError }).left
  expect(error.exitCode).toBe(2)
  return error.detail
}

describe("RunConfig.read", () => {
  it.effect("reads the key and the base URL from the environment; the shard picks every n-th line", () =>
    Effect.gen(function* () {
      const result = yield* readWith({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: "http://127.0.0.1:9/v1" }, options({ shard: Option.some({ index: 1, count: 3 }) }))
      expect(result._tag).toBe("Right")
      if (result._tag !== "Right") return
      const config = result.right
      expect(config.client.apiKey !== undefined && Redacted.value(config.client.apiKey)).toBe("sk-test")
      expect(config.apiUrl).toBe("http://127.0.0.1:9/v1")
      expect(config.baseUrlFromEnv).toBe(true)
      expect(config.keyVariable).toBe("OPENAI_API_KEY")
      expect([1, 2, 3, 4, 5, 6].filter(config.inShard)).toEqual([2, 5])
      expect(Option.isNone(config.redis)).toBe(true)
    }))

  it.effect("without a key or a base URL: no key, the default URL, --base-url not from the environment", () =>
    Effect.gen(function* () {
      const result = yield* readWith({ OPENAI_API_KEY: "  " }, options())
      if (result._tag !== "Right") return expect.fail("expected a config")
      expect(result.right.client.apiKey).toBeUndefined()
      expect(result.right.apiUrl).toBe(ChatClient.DEFAULT_BASE_URL)
      expect(result.right.baseUrlFromEnv).toBe(false)
    }))

  it.effect("--api-key-env naming an unset variable is a usage error naming it", () =>
    Effect.gen(function* () {
      const result = yield* readWith({}, options({ apiKeyEnv: Option.some("RUNCONFIG_TEST_KEY") }))
      expect(usageDetail(result)).toContain("RUNCONFIG_TEST_KEY, which is not set")
    }))

  it.effect("the Redis URL from --redis or the variable, not both; --redis-fallback needs one", () =>
    Effect.gen(function* () {
      const both = yield* readWith({ SHEPHERD_REDIS_URL: "redis://x:1" }, options({ redis: Option.some("redis://a:1"), redisUrlEnv: Option.some("SHEPHERD_REDIS_URL") }))
      expect(usageDetail(both)).toContain("not both")
      const fallback = yield* readWith({}, options({ redisFallback: true }))
      expect(usageDetail(fallback)).toContain("--redis-fallback needs --redis")
      const fromEnv = yield* readWith({ SHEPHERD_REDIS_URL: "redis://127.0.0.1:6390" }, options({ shard: Option.some({ index: 0, count: 4 }), redisFallback: true }))
      if (fromEnv._tag !== "Right") return expect.fail("expected a config")
      expect(Option.getOrUndefined(fromEnv.right.redis)).toEqual({
        url: "redis://127.0.0.1:6390",
        namespace: "default",
        workers: 4,
        onUnavailable: "fallbackLocal",
        source: "the environment variable SHEPHERD_REDIS_URL"
      })
    }))

  it.effect("a bad --namespace is a usage error naming the flag", () =>
    Effect.gen(function* () {
      const result = yield* readWith({}, options({ namespace: "" }))
      expect(usageDetail(result)).toMatch(/^--namespace: /)
    }))
})

describe("RunLayers.configProblem", () => {
  it("names the flag or variable the user wrote, not the library's option", () => {
    const rpm = ConfigError.InvalidData(["limits", "rpm"], "must be a whole number of at least 1, got 0")
    expect(RunLayers.configProblem(rpm, "OPENAI_API_KEY", false)).toContain("--rpm")
    const noKey = ConfigError.MissingData(["OPENAI_API_KEY"], "missing")
    expect(RunLayers.configProblem(noKey, "MY_KEY", false)).toContain("Set MY_KEY")
    const baseUrl = ConfigError.InvalidData(["baseUrl"], "must be an http(s) URL")
    expect(RunLayers.configProblem(baseUrl, "OPENAI_API_KEY", true)).toContain("OPENAI_BASE_URL")
  })
})

describe("RunOutcome.exit", () => {
  const config = (overrides: Partial<RunConfig.RunConfig> = {}) =>
    ({ apiUrl: "http://api.test/v1", keyVariable: "OPENAI_API_KEY", baseUrlFromEnv: false, budgetUsd: Option.some(1), redisSource: "--redis", ...overrides }) as RunConfig.RunConfig
  const summary = (stoppedBy: RunStats.StopReason | null, remaining: number): RunStats.Summary => ({
    ...RunStats.summary(new RunStats.RunStats(0), "in.jsonl", "out.jsonl", 0, 0),
    stoppedBy,
    remaining
  })
  const failures = (overrides: Partial<RunOutcome.Failures> = {}): RunOutcome.Failures => ({ limiter: undefined, key: undefined, unreachable: undefined, ...overrides })
  const exitOf = (c: RunConfig.RunConfig, outcome: RunOutcome.Outcome) => Effect.runSyncExit(RunOutcome.exit(c, outcome))
  const failureOf = (exit: Exit.Exit<void, CliError>): CliError => {
    if (Exit.isSuccess(exit)) return expect.fail("expected a failure")
    const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    return error ?? expect.fail("expected a CliError")
  }

  it("a finished run exits 0; one with requests left exits 1; an interrupted one is interrupted", () => {
    expect(Exit.isSuccess(exitOf(config(), { summary: summary(null, 0), failures: failures() }))).toBe(true)
    expect(failureOf(exitOf(config(), { summary: summary(null, 3), failures: failures() })).exitCode).toBe(1)
    for (const stoppedBy of ["interrupted", "aborted"] as const) {
      expect(Exit.isInterrupted(exitOf(config(), { summary: summary(stoppedBy, 3), failures: failures() }))).toBe(true)
    }
  })

  it("a budget stop names the budget and the flag", () => {
    const error = failureOf(exitOf(config(), { summary: summary("budget", 5), failures: failures() }))
    expect(error.detail).toContain("stopped by the budget of $1")
    expect(error.detail).toContain("--budget-usd")
  })

  it("a refused key names the URL and the variable to check", () => {
    const key = new ChatError.ApiError({ status: 401, detail: "Incorrect API key.", code: "invalid_api_key", attempts: 1 })
    const error = failureOf(exitOf(config(), { summary: summary("key", 2), failures: failures({ key }) }))
    expect(error.detail).toContain("http://api.test/v1 refused the API key (401 invalid_api_key: Incorrect API key)")
    expect(error.detail).toContain("Check OPENAI_API_KEY")
  })

  it("a lost shared budget says what to do; Redis out of reach gives the CLI's advice", () => {
    const lost = new ChatError.LimiterUnavailableError({ store: "budget", location: "redis://r:1", detail: "the key vanished", reason: "lost" })
    expect(failureOf(exitOf(config(), { summary: summary("limiter", 2), failures: failures({ limiter: lost }) })).detail).toContain("was lost")
    expect(failureOf(exitOf(config(), { summary: summary("limiter", 2), failures: failures() })).detail).toContain(RunOutcome.LIMITER_ADVICE)
  })
})
