/**
 * Shared state in Redis: the connection (scoped), the key prefix, and what happens when Redis cannot
 * be reached (fail closed, or fall back to local state and return to Redis when it answers again).
 * The stores' scripts sit beside their stores: internal/rateLimitLua.ts (the rate limiter's, whose
 * store is internal/rateLimitRedis.ts) and internal/budgetLua.ts (the budget's).
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { createHash } from "node:crypto"
import { LimiterUnavailableError } from "../ChatError.js"
import type { StoreRedisOptions } from "../RateLimit.js"
import * as Classify from "./classify.js"
import * as Env from "./env.js"
import * as Validate from "./validate.js"

const NAMESPACE = /^[A-Za-z0-9._:-]{1,100}$/

/**
 * Why a namespace cannot be used, or undefined when it can.
 *
 * @since 0.1.0
 * @category validation
 */
export const namespaceProblem = (namespace: string): string | undefined =>
  NAMESPACE.test(namespace) ? undefined : `the namespace ${JSON.stringify(namespace)} is not 1 to 100 letters, digits or . _ : -`

/**
 * The URL without its credentials, for messages and logs.
 *
 * @since 0.1.0
 * @category utils
 */
export const location = (url: string): string => {
  try {
    const parsed = new URL(url)
    parsed.username = ""
    parsed.password = ""
    return parsed.toString().replace(/\/$/, "")
  } catch {
    return "(an unreadable Redis URL)"
  }
}

/**
 * The prefix of every key: `shepherd:{<namespace>:<hash>}:` where the hash is 16 hex digits of
 * SHA-256 over the base URL and the API key (never the key itself). The braces keep all of one
 * namespace's keys in one Redis Cluster slot, as Lua scripts need.
 *
 * @since 0.1.0
 * @category utils
 */
export const keyPrefix = (namespace: string, baseUrl: string, apiKey: string | undefined): string => {
  const digest = createHash("sha256").update(`${baseUrl.replace(/\/+$/, "")}\n${apiKey ?? ""}`).digest("hex").slice(0, 16)
  return `shepherd:{${namespace}:${digest}}:`
}

/**
 * What both stores derive from the options: the key prefix (the identity read from the environment
 * where not given) and the worker count. Every option is checked first: a bad one fails with a
 * `ConfigError` naming it (`["url"]`, `["namespace"]`, `["workers"]`, `["commandTimeout"]`, ...).
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (options: StoreRedisOptions): Effect.Effect<{ readonly prefix: string; readonly workers: number }, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    yield* Validate.url(["url"], options.url, ["redis:", "rediss:"], "redis://127.0.0.1:6379")
    const namespace = options.namespace ?? "default"
    const problem = typeof namespace === "string" ? namespaceProblem(namespace) : "the namespace is not a string"
    if (problem !== undefined) return yield* Effect.fail(Validate.invalid(["namespace"], `is invalid: ${problem}`))
    const workers = yield* Validate.positiveInt(["workers"], options.workers ?? 1)
    if (options.commandTimeout !== undefined) yield* Validate.positiveDuration(["commandTimeout"], options.commandTimeout)
    if (options.retryInterval !== undefined) yield* Validate.positiveDuration(["retryInterval"], options.retryInterval)
    if (options.onUnavailable !== undefined) yield* Validate.oneOf(["onUnavailable"], options.onUnavailable, ["failClosed", "fallbackLocal"] as const)
    if (options.baseUrl !== undefined) yield* Validate.url(["baseUrl"], options.baseUrl, ["http:", "https:"], Env.DEFAULT_BASE_URL)
    // As the client reads them (a variable that cannot be read counts as unset).
    const baseUrl = options.baseUrl ?? Option.getOrElse(yield* Effect.orElseSucceed(Env.baseUrl, Option.none), () => Env.DEFAULT_BASE_URL)
    const apiKey = options.apiKey ?? Option.getOrUndefined(yield* Effect.orElseSucceed(Env.apiKey, Option.none))
    return { prefix: keyPrefix(namespace, baseUrl, apiKey === undefined ? undefined : Redacted.value(apiKey)), workers }
  })

/** Takes the password of a Redis URL (as written and decoded) out of a text. */
const scrubberFor = (url: string): Classify.Scrub => {
  let password = ""
  let decodedPassword = ""
  try {
    password = new URL(url).password
    decodedPassword = decodeURIComponent(password)
  } catch {
    // an unreadable URL (ioredis reports it) or a password that is not valid percent-encoding
  }
  const written = Classify.makeScrub(password)
  const decoded = Classify.makeScrub(decodedPassword)
  return (text) => decoded(written(text))
}

/** A Redis error or an unreachable server, as text for `LimiterUnavailableError.detail`. */
const describe = (error: unknown, scrub: Classify.Scrub): string => {
  const text = scrub(error instanceof Error ? error.message : String(error))
  if (/enableOfflineQueue|Stream isn't writeable|Connection is closed/i.test(text)) return "not connected"
  if (/Command timed out/i.test(text)) return "no answer in time"
  return text
}

/** Redis's answers to a wrong or missing password (or user). */
const PASSWORD_REFUSED = /\b(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/i

/**
 * One connection, opened when the scope starts and closed with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  readonly redis: Redis
  readonly location: string
  /** Runs a command; a failure or a timeout becomes `LimiterUnavailableError` for `store`. */
  readonly call: <A>(store: LimiterUnavailableError["store"], run: (redis: Redis) => Promise<A>) => Effect.Effect<A, LimiterUnavailableError>
}

/**
 * Connects to Redis. Commands are not queued while disconnected (they fail at once, and the caller
 * decides); the client reconnects in the background, every 100 ms to 2 s.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (options: StoreRedisOptions, store: LimiterUnavailableError["store"]): Effect.Effect<Connection, LimiterUnavailableError, Scope.Scope> =>
  Effect.gen(function* () {
    const where = location(options.url)
    const scrub = scrubberFor(options.url)
    const timeout = Math.max(1, Math.round(Duration.toMillis(options.commandTimeout ?? "2 seconds")))
    const redis = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          new Redis(options.url, {
            lazyConnect: true,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            commandTimeout: timeout,
            connectTimeout: timeout,
            retryStrategy: (times) => Math.min(100 * times, 2000),
            // Commands issued in the same tick share one write (many fibers admit at once).
            enableAutoPipelining: true
          }),
        catch: (e) => new LimiterUnavailableError({ store, location: where, detail: describe(e, scrub) })
      }),
      (redis) => Effect.sync(() => redis.disconnect())
    )
    // Errors are reported through the commands that fail; without a listener ioredis would print each.
    // A refused password arrives only here (the commands then fail as "not connected"): it is kept
    // until the next connection error or until the connection is ready, to name the real cause.
    let refusal: string | undefined
    redis.on("error", (e: unknown) => {
      const text = scrub(e instanceof Error ? e.message : String(e))
      refusal = PASSWORD_REFUSED.test(text) ? text : undefined
    })
    redis.on("ready", () => { refusal = undefined })
    const failure = (s: LimiterUnavailableError["store"], e: unknown): LimiterUnavailableError => {
      const detail = describe(e, scrub)
      if (PASSWORD_REFUSED.test(detail)) return new LimiterUnavailableError({ store: s, location: where, detail, reason: "password" })
      if (detail === "not connected" && refusal !== undefined) return new LimiterUnavailableError({ store: s, location: where, detail: refusal, reason: "password" })
      return new LimiterUnavailableError({ store: s, location: where, detail })
    }
    const call: Connection["call"] = (s, run) => Effect.tryPromise({ try: () => run(redis), catch: (e) => failure(s, e) })
    const connected = yield* Effect.either(Effect.tryPromise({ try: () => redis.connect(), catch: (e) => failure(store, e) }))
    // A wrong password is a mistake in the configuration, not an outage: local state would not end it.
    if (connected._tag === "Left" && (options.onUnavailable !== "fallbackLocal" || connected.left.reason === "password")) {
      return yield* Effect.fail(connected.left)
    }
    if (connected._tag === "Left") {
      yield* Effect.logWarning(`shepherd: Redis at ${where} cannot be reached (${connected.left.detail}); using local ${store} state until it can`)
    }
    return { redis, location: where, call }
  })

/**
 * Runs shared operations while Redis answers, and, with `fallbackLocal`, local ones while it does
 * not: a failed shared call switches to local state (one warning), and after `retryInterval` the next
 * call tries Redis again (`onReturn` runs first when it answers).
 *
 * @since 0.1.0
 * @category models
 */
export interface Guard {
  readonly run: <A>(shared: Effect.Effect<A, LimiterUnavailableError>, local: Effect.Effect<A, LimiterUnavailableError>) => Effect.Effect<A, LimiterUnavailableError>
}

/**
 * Builds a `Guard` over `connection` for `store`: shared only with `failClosed`; with
 * `fallbackLocal`, local from the start when the connection is not ready.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeGuard = (
  connection: Connection,
  options: StoreRedisOptions,
  store: LimiterUnavailableError["store"],
  onReturn: Effect.Effect<void, LimiterUnavailableError> = Effect.void
): Effect.Effect<Guard> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const fallback = options.onUnavailable === "fallbackLocal"
    const retryMillis = Duration.toMillis(options.retryInterval ?? "5 seconds")
    let local = connection.redis.status !== "ready" && fallback
    let retryAt = local ? clock.unsafeCurrentTimeMillis() + retryMillis : 0
    const goLocal = (error: LimiterUnavailableError) =>
      Effect.suspend(() => {
        retryAt = clock.unsafeCurrentTimeMillis() + retryMillis
        if (local) return Effect.void
        local = true
        return Effect.logWarning(
          `shepherd: Redis at ${connection.location} failed (${error.detail}); going on with local ${store} state ` +
            `(1/${options.workers ?? 1} of the limits) and trying Redis again every ${Duration.format(retryMillis)}`
        )
      })
    const run: Guard["run"] = (shared, localEffect) =>
      Effect.suspend(() => {
        if (!fallback) return shared
        if (local && clock.unsafeCurrentTimeMillis() < retryAt) return localEffect
        const wasLocal = local
        const attempt = wasLocal
          ? Effect.zipRight(Effect.zipRight(onReturn, Effect.sync(() => { local = false })), shared)
          : shared
        return attempt.pipe(
          Effect.tap(() => wasLocal ? Effect.logInfo(`shepherd: Redis at ${connection.location} answers again; ${store} state is shared again`) : Effect.void),
          Effect.catchAll((error) => Effect.zipRight(goLocal(error), localEffect))
        )
      })
    return { run }
  })

/**
 * What Budget.ts reads from here: the script runner (internal/redisScript.ts) and the budget's
 * scripts (internal/budgetLua.ts).
 *
 * @since 0.1.0
 * @category scripts
 */
export { INIT_BUDGET, REBUILD_BUDGET, RESERVE, SETTLE_BUDGET } from "./budgetLua.js"
/**
 * The script runner (internal/redisScript.ts), for Budget.ts.
 *
 * @since 0.1.0
 * @category scripts
 */
export { script } from "./redisScript.js"
