/**
 * `shepherd run`'s configuration: the flags and the environment (the API key, the base URL, the Redis
 * URL, the test window) read into one checked `RunConfig`, before anything is built, read or sent.
 * Every problem found here is a usage error (exit 2) naming the flag or variable to change.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as ChatClient from "../ChatClient.js"
import * as Shared from "../internal/redis.js"
import * as Pricing from "../Pricing.js"
import type * as Router from "../Router.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import * as RunDeployments from "./runDeployments.js"
import type { RunOptions } from "./runFlags.js"
import { testWindow } from "./testWindow.js"

/** Where the shared limits and budget live, with `--redis` (or the variable that holds its URL). */
export interface RedisConfig {
  readonly url: string
  readonly namespace: string
  /** The shard count: local limits are divided by it when Redis is down and `--redis-fallback` is on. */
  readonly workers: number
  readonly onUnavailable: "fallbackLocal" | "failClosed"
  /** Where the URL came from, for messages: `--redis` or `the environment variable NAME`. */
  readonly source: string
}

/** Everything a run needs to know, checked. */
export interface RunConfig {
  readonly input: string
  readonly out: string
  readonly concurrency: number
  readonly skipInvalid: boolean
  readonly noProgress: boolean
  readonly progressInterval: Duration.Duration
  readonly summary: Option.Option<string>
  readonly metrics: Option.Option<string>
  readonly grace: Duration.Duration
  readonly prices: Pricing.PriceTable
  readonly shard: Option.Option<{ readonly index: number; readonly count: number }>
  /** Whether an input line (1-based number) belongs to this run's shard. */
  readonly inShard: (lineNumber: number) => boolean
  readonly budgetUsd: Option.Option<number>
  /** The variable the API key is read from (`--api-key-env`, default `OPENAI_API_KEY`). */
  readonly keyVariable: string
  /** The base URL came from `OPENAI_BASE_URL` (not `--base-url`). */
  readonly baseUrlFromEnv: boolean
  /** The URL requests go to, for messages. */
  readonly apiUrl: string
  /** The client's options: the key only from the environment. */
  readonly client: ChatClient.Overrides
  readonly redis: Option.Option<RedisConfig>
  /** `--cache`: a directory, or a `redis://` URL. */
  readonly cache: Option.Option<string>
  /** Where the Redis URL is (or would be) read from, for messages. */
  readonly redisSource: string
  /** With `--deployments FILE`: the file, and the router's options read from it. */
  readonly deployments: Option.Option<{ readonly file: string; readonly options: Router.Options }>
}

const usage = (detail: string) => new CliError({ detail, exitCode: ExitStatus.USAGE })

const nonBlank = (text: string | undefined): boolean => text !== undefined && text.trim() !== ""

/** The API key from the environment: `--api-key-env` names a variable that must be set. */
const readApiKey = (o: RunOptions) =>
  Effect.gen(function* () {
    const keyVariable = Option.getOrElse(o.apiKeyEnv, () => "OPENAI_API_KEY")
    const keyText = process.env[keyVariable]
    if (Option.isSome(o.apiKeyEnv) && !nonBlank(keyText)) {
      return yield* usage(`--api-key-env names ${keyVariable}, which is not set: export it first`)
    }
    return { keyVariable, apiKey: nonBlank(keyText) ? Redacted.make(keyText!) : undefined }
  })

/** The built-in price table, with `--prices` added. */
const readPrices = (o: RunOptions) =>
  Effect.gen(function* () {
    if (Option.isNone(o.prices)) return Pricing.defaultTable
    const decoded = Pricing.decodeTable(Fs.readFileSync(o.prices.value, "utf8"))
    if (Either.isLeft(decoded)) {
      return yield* usage(`${o.prices.value} is not a price table: ${decoded.left.message.split("\n").slice(0, 6).join(" ")}`)
    }
    return Pricing.withPrices(decoded.right)
  })

/** The Redis URL: --redis, else the variable --redis-url-env names (default SHEPHERD_REDIS_URL), out of the process list. */
const readRedis = (o: RunOptions) =>
  Effect.gen(function* () {
    const redisVariable = Option.getOrElse(o.redisUrlEnv, () => "SHEPHERD_REDIS_URL")
    const redisText = process.env[redisVariable]?.trim() ?? ""
    if (Option.isSome(o.redis) && Option.isSome(o.redisUrlEnv)) return yield* usage("give the Redis URL with --redis or with --redis-url-env, not both")
    if (Option.isSome(o.redisUrlEnv) && redisText === "") return yield* usage(`--redis-url-env names ${redisVariable}, which is not set: export it first`)
    const url = Option.orElse(o.redis, () => (redisText === "" ? Option.none() : Option.some(redisText)))
    const source = Option.isSome(o.redis) ? "--redis" : `the environment variable ${redisVariable}`
    if (Option.isNone(url) && o.redisFallback) return yield* usage(`--redis-fallback needs --redis (or the Redis URL in ${redisVariable})`)
    if (Option.isSome(o.redis) && URL.canParse(o.redis.value) && new URL(o.redis.value).password !== "") {
      yield* Console.error("shepherd run: warning: the password in --redis shows in the process list; give the URL in SHEPHERD_REDIS_URL (or --redis-url-env NAME) instead")
    }
    const namespaceProblem = Shared.namespaceProblem(o.namespace)
    if (namespaceProblem !== undefined) return yield* usage(`--namespace: ${namespaceProblem}`)
    const redis = Option.map(url, (url): RedisConfig => ({
      url,
      namespace: o.namespace,
      workers: Option.match(o.shard, { onNone: () => 1, onSome: (s) => s.count }),
      onUnavailable: o.redisFallback ? "fallbackLocal" : "failClosed",
      source
    }))
    return { redis, source }
  })

/** `--cache`: live sends only; a password in a redis:// URL shows in the process list. */
const readCache = (o: RunOptions) =>
  Effect.gen(function* () {
    if (Option.isNone(o.cache)) return o.cache
    if (Option.getOrUndefined(o.via) === "batch-api") return yield* usage("--cache goes with live sends (--via live or auto), not with --via batch-api")
    if (o.cache.value.trim() === "") return yield* usage("--cache takes a directory or a redis:// URL, got an empty value")
    if (/^rediss?:/i.test(o.cache.value) && URL.canParse(o.cache.value) && new URL(o.cache.value).password !== "") {
      yield* Console.error("shepherd run: warning: the password in --cache shows in the process list")
    }
    return o.cache
  })

/** The base URL: --base-url, else OPENAI_BASE_URL when set and not blank. */
const readBaseUrl = (o: RunOptions) => {
  const fromEnv = Option.fromNullable(process.env["OPENAI_BASE_URL"]).pipe(Option.filter((u) => u.trim() !== ""))
  return {
    baseUrl: Option.getOrUndefined(Option.orElse(o.baseUrl, () => fromEnv)),
    baseUrlFromEnv: Option.isNone(o.baseUrl) && Option.isSome(fromEnv)
  }
}

/**
 * Reads and checks the flags and the environment, in the order a user meets the problems: the key
 * variable, the price table, the Redis URL and namespace, then the test window.
 */
export const read = (o: RunOptions): Effect.Effect<RunConfig, CliError> =>
  Effect.gen(function* () {
    const { apiKey, keyVariable } = yield* readApiKey(o)
    const prices = yield* readPrices(o)
    const { redis, source } = yield* readRedis(o)
    const cache = yield* readCache(o)
    const { baseUrl, baseUrlFromEnv } = readBaseUrl(o)
    const limits = { rpm: Option.getOrUndefined(o.rpm), tpm: Option.getOrUndefined(o.tpm), window: yield* testWindow }
    const deployments = yield* readDeployments(o, limits.window)
    return {
      input: o.input,
      out: o.out,
      concurrency: o.concurrency,
      skipInvalid: o.skipInvalid,
      noProgress: o.noProgress,
      progressInterval: o.progressInterval,
      summary: o.summary,
      metrics: o.metrics,
      grace: o.grace,
      prices,
      shard: o.shard,
      inShard: Option.match(o.shard, {
        onNone: () => () => true,
        onSome: ({ count, index }) => (lineNumber: number) => (lineNumber - 1) % count === index
      }),
      budgetUsd: o.budgetUsd,
      keyVariable,
      baseUrlFromEnv,
      apiUrl: baseUrl ?? ChatClient.DEFAULT_BASE_URL,
      client: {
        apiKey,
        baseUrl,
        timeout: Option.getOrUndefined(o.timeout),
        retry: Option.match(o.maxRetries, { onNone: () => ({}), onSome: (maxRetries) => ({ maxRetries }) }),
        limits
      },
      redis,
      cache,
      redisSource: source,
      deployments
    }
  })

/** `--deployments FILE`: the router's options; the flags it replaces may not be given beside it. */
const readDeployments = (o: RunOptions, window: Duration.Duration | undefined) =>
  Effect.gen(function* () {
    if (Option.isNone(o.deployments)) return Option.none()
    const file = o.deployments.value
    const clash: ReadonlyArray<readonly [string, boolean]> = [
      ["--base-url", Option.isSome(o.baseUrl)],
      ["--rpm", Option.isSome(o.rpm)],
      ["--tpm", Option.isSome(o.tpm)],
      ["--api-key-env", Option.isSome(o.apiKeyEnv)]
    ]
    for (const [flag, given] of clash) {
      if (given) return yield* usage(`${flag} goes with one endpoint; with --deployments, give it per deployment in ${file}`)
    }
    return Option.some({ file, options: yield* RunDeployments.read(file, window) })
  })
