/**
 * Client-side rate limits: requests per minute, tokens per minute, requests in flight, a shared pause
 * after a 429, and an adaptive slow-down from the server's `x-ratelimit-*` headers.
 *
 * Limits are sliding windows: over any 60 seconds, the requests started never exceed `rpm` and their
 * tokens never exceed `tpm` (a request's tokens are estimated before it is sent, then corrected from
 * the usage its response reports). Requests wait in arrival order: each `acquire` is given the first
 * start time at which it fits behind everything admitted before it, so no request can overtake another.
 *
 * The state sits behind `RateLimitStore`: the memory store (one process), or the Redis store
 * (`layerRedis`), which shares the windows and the pause among every process that uses the same
 * Redis, API key and namespace.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { type LimiterUnavailableError, RateLimitError, TimeoutError } from "./ChatError.js"
import * as Shared from "./internal/redis.js"
import * as Validate from "./internal/validate.js"
import { ServerPace } from "./internal/serverPace.js"

/** Limits. Leave one out for no limit of that kind. */
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

/** The window of `rpm` and `tpm`. */
export const WINDOW_MILLIS = 60_000

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

/** One request the store admitted. */
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
 * @category models
 */
export interface AdmitBounds {
  /** The latest start, in ms from now. @default unbounded */
  readonly maxWaitMillis?: number | undefined
  /** The longest shared pause it waits out, in ms. @default unbounded */
  readonly maxPauseMillis?: number | undefined
}

/**
 * Where the limiter's state lives: every method is atomic with respect to the others. The memory
 * store is (JavaScript runs one callback at a time); the Redis store runs each as a Lua script, on
 * the Redis server's clock, so that processes on different machines share one timeline.
 */
export interface RateLimitStore {
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
}

/** The limits a window counts. */
export interface WindowLimits {
  readonly rpm?: number | undefined
  readonly tpm?: number | undefined
  /** The window's length in ms. @default WINDOW_MILLIS */
  readonly windowMillis?: number | undefined
}

interface Entry {
  readonly id: number
  readonly at: number
  tokens: number
}

/**
 * The limiter's algorithm on explicit times, in memory: sliding windows of `rpm` starts and `tpm`
 * tokens, first come first served, and the shared pause. The Redis store's Lua script is this
 * algorithm written for Redis; a property test checks that both decide alike.
 */
export class SlidingWindow {
  private readonly rpm: number | undefined
  private readonly tpm: number | undefined
  private readonly window: number
  /** Admissions in start order (start times never decrease); ids are consecutive. */
  private log: Array<Entry> = []
  private head = 0
  private windowTokens = 0
  private lastAt = 0
  private pause = 0
  private nextId = 1

  constructor(limits: WindowLimits) {
    this.rpm = limits.rpm
    this.tpm = limits.tpm
    this.window = limits.windowMillis ?? WINDOW_MILLIS
  }

  /**
   * Admits a request of `tokens` arriving at `now`; returns its id and start time. With `bounds`, a
   * request that would start later than `now + maxWaitMillis`, or behind a pause longer than
   * `maxPauseMillis`, is refused (`refused` set, id 0) and changes nothing.
   */
  admit(now: number, tokens: number, bounds?: AdmitBounds): { readonly id: number; readonly at: number; readonly refused?: "late" | "paused" } {
    if (bounds?.maxPauseMillis !== undefined && this.pause - now > bounds.maxPauseMillis) return { id: 0, at: this.pause, refused: "paused" }
    const late = (t: number) => bounds?.maxWaitMillis !== undefined && t - now > bounds.maxWaitMillis
    // Nothing to count: only the pause applies, and nothing is remembered per request.
    if (this.rpm === undefined && this.tpm === undefined) {
      const at = Math.max(now, this.pause)
      return late(at) ? { id: 0, at, refused: "late" } : { id: 0, at }
    }
    const log = this.log
    let head = this.head
    let windowTokens = this.windowTokens
    // The admissions that have left the window by `t` (counted here, dropped only once admitted).
    const expire = (t: number) => {
      while (head < log.length && log[head]!.at + this.window <= t) {
        windowTokens -= log[head]!.tokens
        head++
      }
    }
    let t = Math.max(now, this.lastAt, this.pause)
    expire(t)
    // Requests: the one `rpm` places back must have left the window.
    while (this.rpm !== undefined && log.length - head >= this.rpm) {
      t = Math.max(t, log[head]!.at + this.window)
      expire(t)
    }
    // Tokens: wait for the oldest admissions to leave until this one fits (alone, it always fits).
    while (this.tpm !== undefined && head < log.length && windowTokens + tokens > this.tpm) {
      t = Math.max(t, log[head]!.at + this.window)
      expire(t)
    }
    if (late(t)) return { id: 0, at: t, refused: "late" }
    this.head = head
    this.windowTokens = windowTokens
    if (this.head > 1024 && this.head * 2 > log.length) {
      this.log = log.slice(this.head)
      this.head = 0
    }
    const id = this.nextId++
    this.log.push({ id, at: t, tokens })
    this.windowTokens += tokens
    this.lastAt = t
    return { id, at: t }
  }

  /** Sets the tokens of admission `id` (started at `at`) if it is still in the window. */
  settle(id: number, at: number, tokens: number): void {
    const log = this.log
    if (log.length === 0) return
    const index = id - log[0]!.id
    if (index < this.head || index >= log.length) return
    const entry = log[index]!
    if (entry.at !== at) return
    this.windowTokens += tokens - entry.tokens
    entry.tokens = tokens
  }

  /** Pauses every start until `until`; an earlier pause never shortens a later one. */
  pauseUntil(until: number): void {
    if (until > this.pause) this.pause = until
  }

  /** The end of the pause (epoch ms), 0 when none was set. */
  pausedUntil(): number {
    return this.pause
  }
}

/** The window's length for these options, in ms. */
const windowMillisOf = (options: Pick<Options, "windowMargin" | "window">, defaultMargin: Duration.DurationInput = 0): number =>
  Math.max(1, Math.round(Duration.toMillis(options.window ?? WINDOW_MILLIS))) +
  Math.max(0, Math.round(Duration.toMillis(options.windowMargin ?? defaultMargin)))

/** Sliding-window limits in memory, for one process, on the Effect `Clock`. */
export const memoryStore = (options: Pick<Options, "rpm" | "tpm" | "windowMargin" | "window">): RateLimitStore => {
  const window = new SlidingWindow({ rpm: options.rpm, tpm: options.tpm, windowMillis: windowMillisOf(options) })
  return {
    admit: (tokens, bounds) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const { at, id, refused } = window.admit(now, tokens, bounds)
          return refused === undefined ? { id, at, waitMillis: at - now } : { id, at, waitMillis: at - now, refused }
        })
      ),
    settle: (admission, tokens) => Effect.sync(() => window.settle(admission.id, admission.at, tokens)),
    pause: (millis) => Effect.clockWith((clock) => Effect.sync(() => window.pauseUntil(clock.unsafeCurrentTimeMillis() + millis))),
    pauseRemaining: Effect.clockWith((clock) => Effect.sync(() => Math.max(0, window.pausedUntil() - clock.unsafeCurrentTimeMillis())))
  }
}

/** A request the limiter let through. */
export interface Permit {
  readonly admission: Admission
  readonly tokens: number
}

/** What the response said, for the limiter. */
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

/** The limiter service. */
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
}

export class RateLimit extends Context.Tag("effect-shepherd/RateLimit")<RateLimit, Service>() {}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Reads OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1.5s`, `1h2m3s`. Undefined when unreadable. */
export const parseResetDuration = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  let total = 0
  let rest = trimmed
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest)
    if (match === null) return undefined
    total += Number(match[1]) * UNITS[match[2]!]!
    rest = rest.slice(match[0].length)
  }
  return total
}

/**
 * Builds a limiter over `store` (memory by default). With no limits it still pauses everyone after a
 * 429 that carries a delay and, when `adaptive`, paces requests from the server's headers and from
 * the 429s that arrive despite them (see docs/resilience.md). Fails with a `ConfigError` naming an
 * invalid option (see {@link validateOptions}).
 */
export const make = (options: Options = {}, given?: RateLimitStore): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    const store = given ?? memoryStore(options)
    const clock = yield* Effect.clock
    const semaphore = options.maxInFlight === undefined ? undefined : yield* Effect.makeSemaphore(options.maxInFlight)
    const adaptive = options.adaptive ?? true
    /** Admitted and not yet released (waiting or in flight), with their tokens. */
    let outstanding = 0
    let outstandingTokens = 0
    const pace = new ServerPace(parseResetDuration)

    const late = (bounds: Bounds) =>
      new TimeoutError({ phase: "total", timeoutMillis: bounds.timeoutMillis ?? 0, attempts: bounds.attempts ?? 0 })
    const tooLong = (bounds: Bounds, millis: number, what: string) =>
      new RateLimitError({
        retryAfterMillis: Math.ceil(millis),
        detail: `${what} calls for a wait of ${Math.ceil(millis)} ms, longer than maxRetryAfter (${bounds.maxWaitMillis} ms); the request was not sent`,
        attempts: bounds.attempts ?? 0
      })

    /** Sleeps until `at` (local clock), then again while a pause set meanwhile lasts, within `bounds`. */
    const waitUntil = (at: number, bounds: Bounds): Effect.Effect<void, LimiterUnavailableError | RateLimitError | TimeoutError> =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        if (at > now) return Effect.zipRight(Clock.sleep(at - now), waitUntil(at, bounds))
        return Effect.flatMap(store.pauseRemaining, (left) => {
          if (left <= 0) return Effect.void
          if (bounds.maxWaitMillis !== undefined && left > bounds.maxWaitMillis) return Effect.fail(tooLong(bounds, left, "the shared pause after a 429"))
          if (bounds.deadline !== undefined && clock.unsafeCurrentTimeMillis() + left >= bounds.deadline) return Effect.fail(late(bounds))
          return Effect.zipRight(Clock.sleep(left), waitUntil(0, bounds))
        })
      })

    // Telling the store how a request ended is best effort: a store that cannot be reached then
    // must not turn a request that was answered into a failure.
    const release = (permit: Permit, startedAt: number, outcome: Outcome, succeeded: boolean, bounds: Bounds): Effect.Effect<void> =>
      Effect.suspend(() => {
        outstanding--
        outstandingTokens -= permit.tokens
        const now = clock.unsafeCurrentTimeMillis()
        if (adaptive) {
          if (outcome.headers !== undefined) pace.observe(outcome.headers, outstanding, outstandingTokens, now)
          if (succeeded) pace.succeeded(startedAt, now)
          else if (outcome.rateLimited === true) pace.rateLimited(startedAt, now)
        }
        // A count the server made up (NaN, negative, fractional) keeps the estimate: NaN in the window would switch tpm off.
        const used = outcome.usedTokens
        const settle = used === undefined || used === permit.tokens || !Number.isSafeInteger(used) || used < 0
          ? Effect.void
          : store.settle(permit.admission, used)
        const asked = outcome.retryAfterMillis
        const pause = asked === undefined ? Effect.void : store.pause(Math.min(asked, bounds.maxWaitMillis ?? asked))
        return Effect.ignore(Effect.zipRight(settle, pause))
      })

    const noBounds: Bounds = {}

    // The waits (for the store, for a slot) stay interruptible: a caller may give up while it waits.
    // Once admitted, whatever ends the request, interruption included, the permit is released.
    const withPermit: Service["withPermit"] = (tokens, use, outcome, bounds = noBounds) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const deadline = bounds.deadline
          if (deadline !== undefined && now >= deadline) return Effect.fail(late(bounds))
          if (adaptive) {
            // The pace first: a request it cannot start in time is refused before the store records it.
            const plan = pace.plan(tokens, now, bounds.maxWaitMillis)
            if (plan.tooSlowMillis !== undefined) return Effect.fail(tooLong(bounds, plan.tooSlowMillis, "the server's pace"))
            if (deadline !== undefined && plan.at >= deadline) return Effect.fail(late(bounds))
          }
          const admitBounds: AdmitBounds | undefined = deadline === undefined && bounds.maxWaitMillis === undefined
            ? undefined
            : { maxWaitMillis: deadline === undefined ? undefined : deadline - now - 1, maxPauseMillis: bounds.maxWaitMillis }
          return Effect.flatMap(restore(store.admit(tokens, admitBounds)), (admission) => {
            if (admission.refused === "paused") return Effect.fail(tooLong(bounds, admission.waitMillis, "the shared pause after a 429"))
            if (admission.refused === "late") return Effect.fail(late(bounds))
            const now = clock.unsafeCurrentTimeMillis()
            let at = now + admission.waitMillis
            if (adaptive) {
              at = Math.max(at, pace.plan(tokens, now).at)
              pace.reserve(tokens, now, at)
            }
            outstanding++
            outstandingTokens += tokens
            const permit: Permit = { admission, tokens }
            const sent = Effect.onExit(restore(use), (exit) => release(permit, at, outcome(exit), exit._tag === "Success", bounds))
            if (at <= now) return sent
            // Another fiber's reservation may have moved the start since the plan: rare, and then
            // the start it keeps is given up like an interrupted wait's.
            if (deadline !== undefined && at >= deadline) return Effect.zipRight(release(permit, at, {}, false, noBounds), Effect.fail(late(bounds)))
            return Effect.zipRight(Effect.onError(restore(waitUntil(at, bounds)), () => release(permit, at, {}, false, noBounds)), sent)
          })
        })
      )

    return {
      withPermit: semaphore === undefined ? withPermit : (tokens, use, outcome, bounds) => semaphore.withPermits(1)(withPermit(tokens, use, outcome, bounds)),
      countsTokens: () => options.tpm !== undefined || pace.countsTokens
    }
  })

/** The limiter as a layer; `ChatClient` uses it when it is in the context. Fails to build with a `ConfigError` naming an invalid option. */
export const layer = (options: Options = {}): Layer.Layer<RateLimit, ConfigError.ConfigError> => Layer.effect(RateLimit, make(options))

/** Options of the Redis store: the limits, where Redis is, and what to do without it. */
export interface RedisOptions extends Options, Shared.RedisOptions {}

/**
 * The limiter's state in Redis, shared by every process with the same base URL, API key and
 * namespace: each operation is one Lua script, timed by the Redis server's clock. The window margin
 * defaults to 1 second (`windowMargin`). See `RedisOptions` for failures (`onUnavailable`).
 */
export const redisStore = (options: RedisOptions): Effect.Effect<RateLimitStore, LimiterUnavailableError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    const { prefix, workers } = yield* Shared.resolve(options)
    const keys = [`${prefix}rl:log`, `${prefix}rl:entries`, `${prefix}rl:state`]
    const windowMillis = windowMillisOf(options, "1 second")
    const connection = yield* Shared.connect(options, "rate-limit")
    const guard = yield* Shared.makeGuard(connection, options, "rate-limit")
    const share = (limit: number | undefined) => (limit === undefined ? undefined : Math.max(1, Math.floor(limit / workers)))
    const local = memoryStore({ rpm: share(options.rpm), tpm: share(options.tpm), window: windowMillis, windowMargin: 0 })
    const localAdmissions = new WeakSet<Admission>()
    const admitScript = Shared.script(Shared.ADMIT)
    const settleScript = Shared.script(Shared.SETTLE)
    const pauseScript = Shared.script(Shared.PAUSE)
    const pauseLeftScript = Shared.script(Shared.PAUSE_LEFT)
    const limits = [options.rpm ?? -1, options.tpm ?? -1, windowMillis] as const
    const call = <A>(run: (redis: Shared.Connection["redis"]) => Promise<A>) => connection.call("rate-limit", run)
    /** A bound for the script: whole ms, -1 for none. */
    const bound = (millis: number | undefined) => (millis === undefined ? -1 : Math.max(0, Math.floor(millis)))
    return {
      admit: (tokens, bounds) =>
        guard.run(
          Effect.map(
            call((redis) =>
              admitScript(redis, keys, [-1, Math.max(0, Math.round(tokens)), ...limits, bound(bounds?.maxWaitMillis), bound(bounds?.maxPauseMillis)]) as Promise<
                [number, number, number, number]
              >
            ),
            ([id, at, now, refused]): Admission =>
              refused === 0 ? { id, at, waitMillis: Math.max(0, at - now) } : { id, at, waitMillis: Math.max(0, at - now), refused: refused === 1 ? "late" : "paused" }
          ),
          Effect.tap(local.admit(tokens, bounds), (admission) => Effect.sync(() => localAdmissions.add(admission)))
        ),
      // Without a tpm limit the window counts no tokens: nothing to correct, no round trip.
      settle: (admission, tokens) =>
        localAdmissions.has(admission)
          ? local.settle(admission, tokens)
          : admission.id === 0 || options.tpm === undefined
          ? Effect.void
          : Effect.asVoid(call((redis) => settleScript(redis, keys, [admission.id, admission.at, Math.max(0, Math.round(tokens))]))),
      pause: (millis) =>
        guard.run(Effect.asVoid(call((redis) => pauseScript(redis, keys, [-1, Math.max(0, Math.round(millis)), windowMillis]))), local.pause(millis)),
      pauseRemaining: guard.run(call((redis) => pauseLeftScript(redis, keys, [-1]) as Promise<number>), local.pauseRemaining)
    }
  })

/**
 * A limiter shared through Redis by every process with the same base URL, API key and namespace;
 * `ChatClient` uses it when it is in the context. Fails to build when Redis cannot be reached and
 * `onUnavailable` is `failClosed` (the default), and with a `ConfigError` naming an invalid option.
 *
 * @example
 * ```ts
 * ChatClient.layerConfig().pipe(Layer.provide(RateLimit.layerRedis({ url: "redis://127.0.0.1:6379", namespace: "nightly", rpm: 600 })))
 * ```
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<RateLimit, LimiterUnavailableError | ConfigError.ConfigError> =>
  Layer.scoped(RateLimit, Effect.flatMap(redisStore(options), (store) => make(options, store)))
