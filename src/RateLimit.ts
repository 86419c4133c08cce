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
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { LimiterUnavailableError } from "./ChatError.js"
import * as Shared from "./internal/redis.js"

/** Limits. Leave one out for no limit of that kind. */
export interface Options {
  /** Requests started per minute, at most. @default undefined (none) */
  readonly rpm?: number | undefined
  /** Tokens (prompt plus completion allowance) per minute, at most. @default undefined (none) */
  readonly tpm?: number | undefined
  /** Requests in flight at once, at most. @default undefined (none) */
  readonly maxInFlight?: number | undefined
  /** Slow down from the server's `x-ratelimit-remaining-*` / `-reset-*` headers before it answers 429. @default true */
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

/** One request the store admitted. */
export interface Admission {
  /** The store's number for it (`settle` finds it by this and `at`). */
  readonly id: number
  /** When it may start, on the store's clock (epoch ms). */
  readonly at: number
  /** How long to wait from now before it starts, in ms (0: at once). */
  readonly waitMillis: number
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
   * pause has ended.
   */
  readonly admit: (tokens: number) => Effect.Effect<Admission, LimiterUnavailableError>
  /** Corrects the tokens counted for an admitted request (refund or charge the difference). */
  readonly settle: (admission: Admission, tokens: number) => Effect.Effect<void, LimiterUnavailableError>
  /** Pauses every request for `millis` from now; an earlier pause never shortens a later one. */
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

  private expire(t: number): void {
    const log = this.log
    while (this.head < log.length && log[this.head]!.at + this.window <= t) {
      this.windowTokens -= log[this.head]!.tokens
      this.head++
    }
    if (this.head > 1024 && this.head * 2 > log.length) {
      this.log = log.slice(this.head)
      this.head = 0
    }
  }

  /** Admits a request of `tokens` arriving at `now`; returns its id and start time. */
  admit(now: number, tokens: number): { readonly id: number; readonly at: number } {
    // Nothing to count: only the pause applies, and nothing is remembered per request.
    if (this.rpm === undefined && this.tpm === undefined) return { id: 0, at: Math.max(now, this.pause) }
    let t = Math.max(now, this.lastAt, this.pause)
    this.expire(t)
    // Requests: the one `rpm` places back must have left the window.
    while (this.rpm !== undefined && this.log.length - this.head >= this.rpm) {
      t = Math.max(t, this.log[this.head]!.at + this.window)
      this.expire(t)
    }
    // Tokens: wait for the oldest admissions to leave until this one fits (alone, it always fits).
    while (this.tpm !== undefined && this.head < this.log.length && this.windowTokens + tokens > this.tpm) {
      t = Math.max(t, this.log[this.head]!.at + this.window)
      this.expire(t)
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
    admit: (tokens) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const { at, id } = window.admit(now, tokens)
          return { id, at, waitMillis: at - now }
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
  /** A server-asked delay (a 429's retry-after): every request pauses this long. */
  readonly retryAfterMillis?: number | undefined
}

/** The limiter service. */
export interface Service {
  /**
   * Runs `use` once a request of `tokens` tokens may start (callers are served in arrival order), then
   * reports how it ended with `outcome`: its real tokens, the server's headers, a 429's delay.
   */
  readonly withPermit: <A, E, R>(
    tokens: number,
    use: Effect.Effect<A, E, R>,
    outcome: (exit: Exit.Exit<A, E>) => Outcome
  ) => Effect.Effect<A, E | LimiterUnavailableError, R>
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

const headerNumber = (headers: Readonly<Record<string, string | undefined>>, name: string): number | undefined => {
  const value = headers[name]
  if (value === undefined || value.trim() === "") return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

/**
 * Builds a limiter over `store` (memory by default). With no limits it still pauses everyone after a
 * 429 that carries a delay and, when `adaptive`, before the server's own counters run out.
 */
export const make = (options: Options = {}, store: RateLimitStore = memoryStore(options)): Effect.Effect<Service> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const semaphore = options.maxInFlight === undefined ? undefined : yield* Effect.makeSemaphore(options.maxInFlight)
    const adaptive = options.adaptive ?? true
    /** Admitted and not yet released (waiting or in flight), with their tokens. */
    let outstanding = 0
    let outstandingTokens = 0
    let serverCountsTokens = false
    /**
     * The server's buckets as its headers describe them: `level` units left at `at`, refilled at `rate`
     * per ms. Each admission reserves from them (the level may go below zero: later requests queue
     * behind), so requests are paced before the server has to refuse them.
     */
    interface ServerBucket {
      level: number
      rate: number
      at: number
    }
    let serverRequests: ServerBucket | undefined
    let serverTokens: ServerBucket | undefined

    /** Reserves `cost` from a server bucket; returns when the request may start. */
    const reserve = (bucket: ServerBucket | undefined, cost: number, now: number): number => {
      if (bucket === undefined || cost <= 0) return now
      bucket.level += (now - bucket.at) * bucket.rate
      bucket.at = now
      const at = bucket.level >= cost ? now : now + Math.ceil((cost - bucket.level) / bucket.rate)
      bucket.level -= cost
      return at
    }

    /** Sleeps until `at` (local clock), then again while a pause set meanwhile lasts. */
    const waitUntil = (at: number): Effect.Effect<void, LimiterUnavailableError> =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        return at > now
          ? Effect.zipRight(Clock.sleep(at - now), waitUntil(at))
          : Effect.flatMap(store.pauseRemaining, (left) => left > 0 ? Effect.zipRight(Clock.sleep(left), waitUntil(0)) : Effect.void)
      })

    /** Counts an admitted request as outstanding; returns when it may start on the local clock. */
    const admitted = (admission: Admission, tokens: number): { readonly permit: Permit; readonly at: number } => {
      const now = clock.unsafeCurrentTimeMillis()
      const at = Math.max(now + admission.waitMillis, reserve(serverRequests, 1, now), reserve(serverTokens, tokens, now))
      outstanding++
      outstandingTokens += tokens
      return { permit: { admission, tokens }, at }
    }

    /**
     * Reads the server's counters into its buckets. The level is only ever lowered from a header (the
     * client's own reservations are already in it; the header adds what others spent), and requests
     * still outstanding are taken off what the server says is left: some of them it has not seen yet.
     */
    const observe = (
      current: ServerBucket | undefined,
      headers: Readonly<Record<string, string | undefined>>,
      kind: "requests" | "tokens",
      pending: number,
      now: number
    ): ServerBucket | undefined => {
      const remaining = headerNumber(headers, `x-ratelimit-remaining-${kind}`)
      const limit = headerNumber(headers, `x-ratelimit-limit-${kind}`)
      if (remaining === undefined || limit === undefined || limit <= 0) return current
      const reset = parseResetDuration(headers[`x-ratelimit-reset-${kind}`])
      const rate = reset !== undefined && reset > 0 && limit > remaining ? (limit - remaining) / reset : limit / WINDOW_MILLIS
      const level = remaining - pending
      if (current === undefined) return { level, rate, at: now }
      current.level = Math.min(current.level + (now - current.at) * current.rate, level)
      current.rate = rate
      current.at = now
      return current
    }

    // Telling the store how a request ended is best effort: a store that cannot be reached then
    // must not turn a request that was answered into a failure.
    const release = (permit: Permit, outcome: Outcome): Effect.Effect<void> =>
      Effect.suspend(() => {
        outstanding--
        outstandingTokens -= permit.tokens
        const now = clock.unsafeCurrentTimeMillis()
        if (adaptive && outcome.headers !== undefined) {
          serverRequests = observe(serverRequests, outcome.headers, "requests", outstanding, now)
          serverTokens = observe(serverTokens, outcome.headers, "tokens", outstandingTokens, now)
          if (serverTokens !== undefined) serverCountsTokens = true
        }
        const settle = outcome.usedTokens === undefined || outcome.usedTokens === permit.tokens ? Effect.void : store.settle(permit.admission, outcome.usedTokens)
        const pause = outcome.retryAfterMillis === undefined ? Effect.void : store.pause(outcome.retryAfterMillis)
        return Effect.ignore(Effect.zipRight(settle, pause))
      })

    // The waits (for the store, for a slot) stay interruptible: a caller may give up while it waits.
    // Once admitted, whatever ends the request, interruption included, the permit is released.
    const withPermit: Service["withPermit"] = (tokens, use, outcome) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(store.admit(tokens)), (admission) => {
          const { at, permit } = admitted(admission, tokens)
          const sent = Effect.onExit(restore(use), (exit) => release(permit, outcome(exit)))
          if (at <= clock.unsafeCurrentTimeMillis()) return sent
          return Effect.zipRight(Effect.onError(restore(waitUntil(at)), () => release(permit, {})), sent)
        }))

    return {
      withPermit: semaphore === undefined ? withPermit : (tokens, use, outcome) => semaphore.withPermits(1)(withPermit(tokens, use, outcome)),
      countsTokens: () => options.tpm !== undefined || serverCountsTokens
    }
  })

/** The limiter as a layer; `ChatClient` uses it when it is in the context. */
export const layer = (options: Options = {}): Layer.Layer<RateLimit> => Layer.effect(RateLimit, make(options))

/** Options of the Redis store: the limits, where Redis is, and what to do without it. */
export interface RedisOptions extends Options, Shared.RedisOptions {}

/**
 * The limiter's state in Redis, shared by every process with the same base URL, API key and
 * namespace: each operation is one Lua script, timed by the Redis server's clock. The window margin
 * defaults to 1 second (`windowMargin`). See `RedisOptions` for failures (`onUnavailable`).
 */
export const redisStore = (options: RedisOptions): Effect.Effect<RateLimitStore, LimiterUnavailableError, Scope.Scope> =>
  Effect.gen(function* () {
    for (const [name, value] of [["rpm", options.rpm], ["tpm", options.tpm]] as const) {
      if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
        return yield* Effect.dieMessage(`RateLimit.redisStore: ${name} must be a whole number of at least 1, got ${value}`)
      }
    }
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
    return {
      admit: (tokens) =>
        guard.run(
          Effect.map(
            call((redis) => admitScript(redis, keys, [-1, Math.max(0, Math.round(tokens)), ...limits]) as Promise<[number, number, number]>),
            ([id, at, now]): Admission => ({ id, at, waitMillis: Math.max(0, at - now) })
          ),
          Effect.tap(local.admit(tokens), (admission) => Effect.sync(() => localAdmissions.add(admission)))
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
 * `onUnavailable` is `failClosed` (the default).
 *
 * @example
 * ```ts
 * ChatClient.layerConfig().pipe(Layer.provide(RateLimit.layerRedis({ url: "redis://127.0.0.1:6379", namespace: "nightly", rpm: 600 })))
 * ```
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<RateLimit, LimiterUnavailableError> =>
  Layer.scoped(RateLimit, Effect.flatMap(redisStore(options), (store) => make(options, store)))
