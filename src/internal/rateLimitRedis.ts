/**
 * The rate limiter's Redis store (`RateLimit.layerStoreRedis`): one connection, and for each limiter
 * opened on it the windows and the pause in Redis, each operation one Lua script
 * (internal/rateLimitLua.ts) timed by the Redis server's clock. With `fallbackLocal`, a limiter goes
 * on with local windows (its limits divided by `workers`) while Redis cannot be reached.
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { LimiterUnavailableError } from "../ChatError.js"
import type { Admission, RateLimitStore, StoreLimits, StoreRedisOptions, Window } from "../RateLimit.js"
import * as Lua from "./rateLimitLua.js"
import * as Shared from "./redis.js"
import { script } from "./redisScript.js"
import { memoryWindow, windowMillisOf } from "./slidingWindow.js"

const admitScript = script(Lua.ADMIT)
const settleScript = script(Lua.SETTLE)
const pauseScript = script(Lua.PAUSE)
const pauseLeftScript = script(Lua.PAUSE_LEFT)

/** A bound for the script: whole ms, -1 for none. */
const bound = (millis: number | undefined) => (millis === undefined ? -1 : Math.max(0, Math.floor(millis)))

/**
 * Opens one limiter's windows in Redis under `prefix`. The window margin defaults to 1 second.
 *
 * @since 0.2.0
 * @category constructors
 */
export const openWindow = (
  connection: Shared.Connection,
  options: StoreRedisOptions,
  prefix: string,
  workers: number,
  limits: StoreLimits
): Effect.Effect<Window> =>
  Effect.gen(function* () {
    const keys = [`${prefix}rl:log`, `${prefix}rl:entries`, `${prefix}rl:state`]
    const windowMillis = windowMillisOf(limits, "1 second")
    const guard = yield* Shared.makeGuard(connection, options, "rate-limit")
    const share = (limit: number | undefined) => (limit === undefined ? undefined : Math.max(1, Math.floor(limit / workers)))
    const local = memoryWindow({ rpm: share(limits.rpm), tpm: share(limits.tpm), window: windowMillis, windowMargin: 0 })
    const localAdmissions = new WeakSet<Admission>()
    const scriptLimits = [limits.rpm ?? -1, limits.tpm ?? -1, windowMillis] as const
    const call = <A>(run: (redis: Shared.Connection["redis"]) => Promise<A>) => connection.call("rate-limit", run)
    return {
      admit: (tokens, bounds) =>
        guard.run(
          Effect.map(
            call((redis) =>
              admitScript(redis, keys, [-1, Math.max(0, Math.round(tokens)), ...scriptLimits, bound(bounds?.maxWaitMillis), bound(bounds?.maxPauseMillis)]) as Promise<
                [number, number, number, number]
              >
            ),
            ([id, at, now, refused]): Admission =>
              refused === 0 ? { id, at, waitMillis: Math.max(0, at - now) } : { id, at, waitMillis: Math.max(0, at - now), refused: refused === 1 ? "late" : "paused" }
          ),
          Effect.tap(local.admit(tokens, bounds), (admission) => Effect.sync(() => localAdmissions.add(admission)))
        ),
      earliest: (tokens) =>
        guard.run(
          Effect.map(
            call((redis) =>
              admitScript(redis, keys, [-1, Math.max(0, Math.round(tokens)), ...scriptLimits, -1, -1, 1]) as Promise<[number, number, number, number]>
            ),
            ([, at, now]) => Math.max(0, at - now)
          ),
          local.earliest!(tokens)
        ),
      // Without a tpm limit the window counts no tokens: nothing to correct, no round trip.
      settle: (admission, tokens) =>
        localAdmissions.has(admission)
          ? local.settle(admission, tokens)
          : admission.id === 0 || limits.tpm === undefined
          ? Effect.void
          : Effect.asVoid(call((redis) => settleScript(redis, keys, [admission.id, admission.at, Math.max(0, Math.round(tokens))]))),
      pause: (millis) =>
        guard.run(Effect.asVoid(call((redis) => pauseScript(redis, keys, [-1, Math.max(0, Math.round(millis)), windowMillis]))), local.pause(millis)),
      pauseRemaining: guard.run(call((redis) => pauseLeftScript(redis, keys, [-1]) as Promise<number>), local.pauseRemaining)
    }
  })

/**
 * Connects to Redis and gives the store: every limiter opened on it shares its windows and pause with
 * every process using the same base URL, API key and namespace. Checks the options first (a bad one
 * fails with a `ConfigError` naming it); fails with `LimiterUnavailableError` when Redis cannot be
 * reached and `onUnavailable` is `failClosed`, or when the password is refused.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: StoreRedisOptions): Effect.Effect<Context.Tag.Service<RateLimitStore>, LimiterUnavailableError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const { prefix, workers } = yield* Shared.resolve(options)
    const connection = yield* Shared.connect(options, "rate-limit")
    return { open: (limits) => openWindow(connection, options, prefix, workers, limits) }
  })
