/**
 * Client-side rate limits: requests per minute, tokens per minute, requests in flight, a shared pause
 * after a 429, and an adaptive slow-down from the server's `x-ratelimit-*` headers.
 *
 * Limits are sliding windows: over any 60 seconds, the requests started never exceed `rpm` and their
 * tokens never exceed `tpm` (a request's tokens are estimated before it is sent, then corrected from
 * the usage its response reports). Requests wait in arrival order: each `acquire` is given the first
 * start time at which it fits behind everything admitted before it, so no request can overtake another.
 *
 * The windows and the pause sit in a `RateLimitStore`: the memory store (one process; the default
 * when no store is in the context) or the Redis store (`layerStoreRedis`), which shares them among
 * every process that uses the same Redis, API key and namespace. The algorithm is in
 * internal/slidingWindow.ts (Lua twin: internal/rateLimitLua.ts), the server's headers and the
 * adaptive pace in internal/serverPace.ts, the limiter itself in internal/limiter.ts.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { LimiterUnavailableError, RateLimitError, TimeoutError } from "./ChatError.js"
import * as Limiter from "./internal/limiter.js"
import * as RedisStore from "./internal/rateLimitRedis.js"
import * as ServerPace from "./internal/serverPace.js"
import * as SlidingWindow from "./internal/slidingWindow.js"
import * as Validate from "./internal/validate.js"

/**
 * Limits. Leave one out for no limit of that kind.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Requests started per minute, at most: a whole number of at least 1. @default undefined (none) */
  readonly rpm?: number | undefined
  /** Tokens (prompt plus completion allowance) per minute, at most: a whole number of at least 1. @default undefined (none) */
  readonly tpm?: number | undefined
  /** Requests in flight at once, at most: a whole number of at least 1. @default undefined (none) */
  readonly maxInFlight?: number | undefined
  /**
   * Pace requests from the server's `x-ratelimit-*` headers before it answers 429 (a bucket never
   * refilling faster than its limit a minute), and slow down when 429s arrive despite that
   * (multiplicative decrease, additive recovery). @default true
   */
  readonly adaptive?: boolean | undefined
  /**
   * Added to the 60 s window of `rpm` and `tpm`. Requests take different times to reach the server:
   * the last of one window's may arrive sooner after the first of the previous one's than they were
   * sent, and a server counting to the millisecond would refuse it. The margin absorbs that.
   * @default 0 (memory store); 1 second for `layerRedis`
   */
  readonly windowMargin?: Duration.DurationInput | undefined
  /**
   * Test-only: the period `rpm` and `tpm` count over, instead of a minute. Providers count per minute,
   * so leave it unset outside tests; a test shortens it so that a scenario spanning several windows
   * takes seconds. `shepherd run` takes it from `SHEPHERD_TEST_WINDOW` (e.g. `5s`), which only the
   * test suite sets.
   * @default "60 seconds"
   * @internal
   */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * The window of `rpm` and `tpm`, in ms: a minute.
 *
 * @since 0.1.0
 * @category constants
 */
export const WINDOW_MILLIS: number = SlidingWindow.WINDOW_MILLIS

/**
 * Checks the limits when a limiter is built: `rpm`, `tpm` and `maxInFlight` whole numbers of at least
 * 1, `windowMargin` a finite duration of at least 0, `adaptive` a boolean. Fails with a `ConfigError`
 * naming the option under `path` (`ChatClient` passes `["limits"]`: `["limits", "rpm"]`).
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Options, path: ReadonlyArray<string> = []): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (typeof options !== "object" || options === null) return yield* Effect.fail(Validate.invalid(path.length === 0 ? ["limits"] : path, "must be an object"))
    for (const name of ["rpm", "tpm", "maxInFlight"] as const) {
      if (options[name] !== undefined) yield* Validate.positiveInt([...path, name], options[name])
    }
    if (options.windowMargin !== undefined) yield* Validate.nonNegativeDuration([...path, "windowMargin"], options.windowMargin)
    if (options.window !== undefined) yield* Validate.positiveDuration([...path, "window"], options.window)
    if (options.adaptive !== undefined) yield* Validate.boolean([...path, "adaptive"], options.adaptive)
  })

/**
 * One request the store admitted.
 *
 * @since 0.1.0
 * @category store
 */
export interface Admission {
  /** The store's number for it (`settle` finds it by this and `at`). */
  readonly id: number
  /** When it may start, on the store's clock (epoch ms). */
  readonly at: number
  /** How long to wait from now before it starts, in ms (0: at once). */
  readonly waitMillis: number
  /**
   * Set when the store refused it, recording nothing (see `AdmitBounds`): `"late"`, it could start
   * only after `maxWaitMillis` (`waitMillis` says when); `"paused"`, the shared pause outlasts
   * `maxPauseMillis` (`waitMillis` is what is left of it).
   * @since 0.2.0
   */
  readonly refused?: "late" | "paused" | undefined
}

/**
 * How long a request may wait for its start; beyond that the store refuses it instead of recording
 * a start that will not be used.
 *
 * @since 0.2.0
 * @category store
 */
export interface AdmitBounds {
  /** The latest start, in ms from now. @default unbounded */
  readonly maxWaitMillis?: number | undefined
  /** The longest shared pause it waits out, in ms. @default unbounded */
  readonly maxPauseMillis?: number | undefined
}

/**
 * The limits a store's window counts: the part of `Options` the store needs.
 *
 * @since 0.2.0
 * @category store
 */
export interface StoreLimits extends Pick<Options, "rpm" | "tpm" | "windowMargin" | "window"> {}

/**
 * One limiter's windows and shared pause, as a store keeps them: every method is atomic with
 * respect to the others. The memory store's are (JavaScript runs one callback at a time); the Redis
 * store runs each as a Lua script, on the Redis server's clock, so that processes on different
 * machines share one timeline.
 *
 * @since 0.2.0
 * @category store
 */
export interface Window {
  /**
   * Admits a request of `tokens` tokens arriving now: it is given the earliest start time, not before
   * any request admitted earlier, at which the request and token windows have room and the shared
   * pause has ended. With `bounds`, a request that could start only later than they allow is
   * refused, and nothing is recorded.
   */
  readonly admit: (tokens: number, bounds?: AdmitBounds) => Effect.Effect<Admission, LimiterUnavailableError>
  /** Corrects the tokens counted for an admitted request (refund or charge the difference). */
  readonly settle: (admission: Admission, tokens: number) => Effect.Effect<void, LimiterUnavailableError>
  /**
   * Pauses every request for `millis` from now; an earlier pause never shortens a later one. The
   * limiter never asks for more than the `maxRetryAfter` of the call that met the 429.
   */
  readonly pause: (millis: number) => Effect.Effect<void, LimiterUnavailableError>
  /** What is left of the shared pause, in ms (0: none). */
  readonly pauseRemaining: Effect.Effect<number, LimiterUnavailableError>
  /** When a request of `tokens` arriving now could start, in ms from now, recording nothing (none: "at once"). @since 0.2.0 */
  readonly earliest?: ((tokens: number) => Effect.Effect<number, LimiterUnavailableError>) | undefined
}

/**
 * Where the limiter's state lives. A limiter built by `make` or `layer` opens its window on the
 * store in the context when there is one, and on a new memory store otherwise: provide
 * `layerStoreRedis` to share limits among processes, or your own implementation of `open`.
 *
 * @since 0.2.0
 * @category store
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RateLimit } from "effect-shepherd"
 *
 * const limiter = RateLimit.layer({ rpm: 600, tpm: 150_000 }).pipe(
 *   Layer.provide(RateLimit.layerStoreRedis({ url: "redis://127.0.0.1:6379", namespace: "nightly" }))
 * )
 * ```
 */
export class RateLimitStore extends Context.Tag("effect-shepherd/RateLimitStore")<RateLimitStore, {
  /**
   * Opens the window of one limiter with these limits. The memory store gives each limiter its own;
   * the Redis store gives every limiter with the same identity (base URL, API key, namespace) the
   * same shared one.
   */
  readonly open: (limits: StoreLimits) => Effect.Effect<Window>
}>() {}

/**
 * The memory store: each limiter opened on it counts in this process alone, on the Effect `Clock`.
 * It is what a limiter uses when no store is in the context.
 *
 * @since 0.2.0
 * @category store
 */
export const layerStoreMemory: Layer.Layer<RateLimitStore> = Layer.succeed(
  RateLimitStore,
  RateLimitStore.of({ open: (limits) => Effect.sync(() => SlidingWindow.memoryWindow(limits)) })
)

/**
 * Options of the Redis store: where Redis is, whose limits these are (base URL, API key, namespace)
 * and what to do without it (`onUnavailable`, `workers`, `commandTimeout`, `retryInterval`). A budget
 * kept in Redis takes the same ones (`Budget.RedisOptions`).
 *
 * @since 0.2.0
 * @category options
 */
export interface StoreRedisOptions {
  /** `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS). */
  readonly url: string
  /** Separates jobs that share one key but not their limits or budget. @default "default" */
  readonly namespace?: string | undefined
  /** The API the limits (or the budget) belong to (part of the key prefix), as the client reads it. @default OPENAI_BASE_URL, else https://api.openai.com/v1 */
  readonly baseUrl?: string | undefined
  /** The API key the limits (or the budget) belong to: only a hash of it is used. @default OPENAI_API_KEY */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /**
   * When Redis cannot be reached: `failClosed` fails each request with `LimiterUnavailableError`
   * without sending it; `fallbackLocal` goes on with local state (limits divided by `workers`), with
   * a warning, and returns to Redis when it answers again. @default "failClosed"
   */
  readonly onUnavailable?: "failClosed" | "fallbackLocal" | undefined
  /** How many processes share the limits: `fallbackLocal` gives each 1/workers of them. @default 1 */
  readonly workers?: number | undefined
  /** How long one Redis command may take before Redis counts as unreachable. @default 2 seconds */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** While on local state, how often Redis is tried again. @default 5 seconds */
  readonly retryInterval?: Duration.DurationInput | undefined
}

/**
 * The Redis store: the windows and the pause in Redis, shared by every process with the same base
 * URL, API key and namespace; each operation is one Lua script, timed by the Redis server's clock.
 * The window margin defaults to 1 second (`windowMargin`). The connection opens when the layer is
 * built and closes with it. Fails to build with a `ConfigError` naming an invalid option, and with
 * `LimiterUnavailableError` when Redis cannot be reached and `onUnavailable` is `failClosed` (the
 * default); with `fallbackLocal`, limiters go on with local windows (limits divided by `workers`)
 * while it cannot.
 *
 * @since 0.2.0
 * @category store
 */
export const layerStoreRedis = (options: StoreRedisOptions): Layer.Layer<RateLimitStore, LimiterUnavailableError | ConfigError.ConfigError> =>
  Layer.scoped(RateLimitStore, RedisStore.make(options))

/**
 * What the response said, for the limiter.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome {
  /** The tokens the request really used (its usage's total), when known. */
  readonly usedTokens?: number | undefined
  /** Response headers, lower-cased. */
  readonly headers?: Readonly<Record<string, string | undefined>> | undefined
  /** A server-asked delay (a 429's retry-after): every request pauses this long, at most `maxWaitMillis`. */
  readonly retryAfterMillis?: number | undefined
  /** The server refused the request with 429 (the adaptive pace slows down). @since 0.2.0 */
  readonly rateLimited?: boolean | undefined
}

/**
 * What bounds one request's wait for its start: the deadline of its call and the longest server-set
 * wait it accepts. `ChatClient` passes its retry policy's `totalTimeout` and `maxRetryAfter`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Bounds {
  /**
   * The call's deadline, epoch ms on the limiter's `Clock`. A request that could start only at or
   * after it fails at once, unsent, with `TimeoutError{phase: "total"}`. @default none
   */
  readonly deadline?: number | undefined
  /** The `timeoutMillis` that `TimeoutError` reports (the call's total timeout). @default 0 */
  readonly timeoutMillis?: number | undefined
  /**
   * The longest pause (after a 429) or adaptive pace (the gap between two requests the server's
   * headers or 429s call for) honoured, in ms; a longer one fails the request at once, unsent, with a
   * `RateLimitError` carrying the wait. The pause a 429 of this request sets is cut to it too.
   * @default none
   */
  readonly maxWaitMillis?: number | undefined
  /** Attempts already sent, reported by these errors. @default 0 */
  readonly attempts?: number | undefined
}

/**
 * The limiter service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * Runs `use` once a request of `tokens` tokens may start (callers are served in arrival order), then
   * reports how it ended with `outcome`: its real tokens, the server's headers, a 429's delay.
   * `bounds` limits the wait (see `Bounds`); the request then fails, unsent, with `TimeoutError` or
   * `RateLimitError`.
   */
  readonly withPermit: <A, E, R>(
    tokens: number,
    use: Effect.Effect<A, E, R>,
    outcome: (exit: Exit.Exit<A, E>) => Outcome,
    bounds?: Bounds
  ) => Effect.Effect<A, E | LimiterUnavailableError | RateLimitError | TimeoutError, R>
  /** Whether token counts are needed (a `tpm` limit, or the server reports token limits). */
  readonly countsTokens: () => boolean
  /**
   * When a request of `tokens` arriving now could start, in ms from now, by the window, the pause and
   * the pace, taking nothing; `ChatClient.layerRouter` asks each deployment's (none: "at once"). @since 0.2.0
   */
  readonly nextStart?: ((tokens: number) => Effect.Effect<number, LimiterUnavailableError>) | undefined
}

/**
 * The limiter: `ChatClient` waits for it before each attempt when it is in the context (a shared
 * limiter wins over the client's own `limits`), and builds its own from `limits` otherwise.
 *
 * @since 0.1.0
 * @category tags
 */
export class RateLimit extends Context.Tag("effect-shepherd/RateLimit")<RateLimit, Service>() {}

/**
 * Reads OpenAI's reset durations (`x-ratelimit-reset-*`): `1s`, `6m0s`, `20ms`, `1.5s`, `1h2m3s`, in
 * ms. Undefined when unreadable.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseResetDuration: (text: string | undefined) => number | undefined = ServerPace.parseResetDuration

/**
 * Builds a limiter on the `RateLimitStore` in the context (a new memory store when there is none).
 * With no limits it still pauses everyone after a 429 that carries a delay and, when `adaptive`,
 * paces requests from the server's headers and from the 429s that arrive despite them (see
 * docs/resilience.md). Fails with a `ConfigError` naming an invalid option (see {@link validateOptions}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    const store = yield* Effect.serviceOption(RateLimitStore)
    const window = Option.isSome(store) ? yield* store.value.open(options) : SlidingWindow.memoryWindow(options)
    return yield* Limiter.make(options, window)
  })

/**
 * The limiter as a layer, on the `RateLimitStore` provided to it (memory when none); `ChatClient`
 * uses it when it is in the context. Fails to build with a `ConfigError` naming an invalid option.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RateLimit, ConfigError.ConfigError> => Layer.effect(RateLimit, make(options))

/**
 * Options of `layerRedis`: the limits, where Redis is, and what to do without it.
 *
 * @since 0.1.0
 * @category options
 */
export interface RedisOptions extends Options, StoreRedisOptions {}

/**
 * A limiter shared through Redis by every process with the same base URL, API key and namespace:
 * `layer(options)` on `layerStoreRedis(options)`. `ChatClient` uses it when it is in the context.
 * Fails to build with a `ConfigError` naming an invalid option (the limits are checked first), and
 * when Redis cannot be reached and `onUnavailable` is `failClosed` (the default).
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * ChatClient.layerConfig().pipe(Layer.provide(RateLimit.layerRedis({ url: "redis://127.0.0.1:6379", namespace: "nightly", rpm: 600 })))
 * ```
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<RateLimit, LimiterUnavailableError | ConfigError.ConfigError> =>
  Layer.scoped(
    RateLimit,
    Effect.gen(function* () {
      yield* validateOptions(options)
      const store = yield* RedisStore.make(options)
      return yield* Effect.provideService(make(options), RateLimitStore, store)
    })
  )
