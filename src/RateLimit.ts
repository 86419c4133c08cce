/**
 * Client-side rate limits: requests per minute, tokens per minute, requests in flight, a shared pause
 * after a 429, and an adaptive slow-down from the server's `x-ratelimit-*` headers.
 *
 * Limits are sliding windows: over any 60 seconds, the requests started never exceed `rpm` and their
 * tokens never exceed `tpm` (a request's tokens are estimated before it is sent, then corrected from
 * the usage its response reports). Requests wait in arrival order: each `acquire` is given the first
 * start time at which it fits behind everything admitted before it, so no request can overtake another.
 *
 * The state sits behind `RateLimitStore`; this module has the memory store, and a Redis store with
 * the same interface shares limits across processes.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"

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
}

/** The window of `rpm` and `tpm`. */
export const WINDOW_MILLIS = 60_000

/** One admitted request, as the store remembers it. */
export interface Admission {
  /** When it may start (epoch ms). */
  readonly at: number
  /** Tokens counted for it; `settle` corrects them. */
  tokens: number
  /** Still inside the window the store counts (a correction after it left changes nothing). */
  inWindow: boolean
}

/**
 * Where the limiter's state lives. Every method is atomic with respect to the others: the memory
 * store is (JavaScript runs one callback at a time); a shared store uses server-side scripts.
 */
export interface RateLimitStore {
  /**
   * Admits a request of `tokens` tokens that arrives at `now`: the earliest start time, not before any
   * request admitted earlier, at which the request and token windows have room (and the cooldown has passed).
   */
  readonly admit: (now: number, tokens: number) => Admission
  /** Corrects the tokens counted for an admitted request (refund or charge the difference). */
  readonly settle: (admission: Admission, tokens: number) => void
  /** Pauses every request until `until` (epoch ms); an earlier pause never shortens a later one. */
  readonly pauseUntil: (until: number) => void
  /** The end of the current pause (epoch ms), 0 when none. */
  readonly pausedUntil: () => number
}

/** Sliding-window limits in memory, for one process. */
export const memoryStore = (options: Pick<Options, "rpm" | "tpm">): RateLimitStore => {
  const rpm = options.rpm
  const tpm = options.tpm
  // Admissions in start order (start times never decrease); those older than the window are dropped.
  const log: Array<Admission> = []
  let head = 0
  let windowTokens = 0
  let lastAt = 0
  let pause = 0

  const expire = (t: number) => {
    while (head < log.length && log[head]!.at + WINDOW_MILLIS <= t) {
      const old = log[head]!
      windowTokens -= old.tokens
      old.inWindow = false
      head++
    }
    if (head > 1024 && head * 2 > log.length) {
      log.splice(0, head)
      head = 0
    }
  }

  if (rpm === undefined && tpm === undefined) {
    // Nothing to count: only the pause applies, and nothing is remembered per request.
    return {
      admit: (now, tokens) => ({ at: Math.max(now, pause), tokens, inWindow: false }),
      settle: (admission, tokens) => {
        admission.tokens = tokens
      },
      pauseUntil: (until) => {
        if (until > pause) pause = until
      },
      pausedUntil: () => pause
    }
  }

  return {
    admit: (now, tokens) => {
      let t = Math.max(now, lastAt, pause)
      expire(t)
      // Requests: the one `rpm` places back must have left the window.
      while (rpm !== undefined && log.length - head >= rpm) {
        t = Math.max(t, log[head]!.at + WINDOW_MILLIS)
        expire(t)
      }
      // Tokens: wait for the oldest admissions to leave until this one fits (alone, it always fits).
      while (tpm !== undefined && head < log.length && windowTokens + tokens > tpm) {
        t = Math.max(t, log[head]!.at + WINDOW_MILLIS)
        expire(t)
      }
      const admission: Admission = { at: t, tokens, inWindow: true }
      log.push(admission)
      windowTokens += tokens
      lastAt = t
      return admission
    },
    settle: (admission, tokens) => {
      if (admission.inWindow) windowTokens += tokens - admission.tokens
      admission.tokens = tokens
    },
    pauseUntil: (until) => {
      if (until > pause) pause = until
    },
    pausedUntil: () => pause
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
  ) => Effect.Effect<A, E, R>
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

    /** Sleeps until `at`, then again while a pause set meanwhile lasts. */
    const waitUntil = (at: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        const target = Math.max(at, store.pausedUntil())
        const now = clock.unsafeCurrentTimeMillis()
        return target <= now ? Effect.void : Effect.zipRight(Clock.sleep(target - now), waitUntil(at))
      })

    /** Admits a request now (counted as outstanding at once); `at` is when it may start. */
    const admit = (tokens: number): { readonly permit: Permit; readonly at: number } => {
      const now = clock.unsafeCurrentTimeMillis()
      const admission = store.admit(now, tokens)
      const at = Math.max(admission.at, reserve(serverRequests, 1, now), reserve(serverTokens, tokens, now))
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

    const release = (permit: Permit, outcome: Outcome): Effect.Effect<void> =>
      Effect.sync(() => {
        outstanding--
        outstandingTokens -= permit.tokens
        if (outcome.usedTokens !== undefined) store.settle(permit.admission, outcome.usedTokens)
        const now = clock.unsafeCurrentTimeMillis()
        if (outcome.retryAfterMillis !== undefined) store.pauseUntil(now + outcome.retryAfterMillis)
        if (adaptive && outcome.headers !== undefined) {
          serverRequests = observe(serverRequests, outcome.headers, "requests", outstanding, now)
          serverTokens = observe(serverTokens, outcome.headers, "tokens", outstandingTokens, now)
          if (serverTokens !== undefined) serverCountsTokens = true
        }
      })

    // The wait for a slot stays interruptible (a caller may give up while it waits); whatever ends
    // it, interruption included, the permit is released.
    const withPermit: Service["withPermit"] = (tokens, use, outcome) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const { at, permit } = admit(tokens)
          const now = clock.unsafeCurrentTimeMillis()
          const run = at <= now && store.pausedUntil() <= now ? use : Effect.zipRight(waitUntil(at), use)
          return Effect.onExit(restore(run), (exit) => release(permit, outcome(exit)))
        }))

    return {
      withPermit: semaphore === undefined ? withPermit : (tokens, use, outcome) => semaphore.withPermits(1)(withPermit(tokens, use, outcome)),
      countsTokens: () => options.tpm !== undefined || serverCountsTokens
    }
  })

/** The limiter as a layer; `ChatClient` uses it when it is in the context. */
export const layer = (options: Options = {}): Layer.Layer<RateLimit> => Layer.effect(RateLimit, make(options))
