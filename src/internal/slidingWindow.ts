/**
 * The limiter's sliding windows on explicit times: `rpm` starts and `tpm` tokens over any window,
 * first come first served, and the shared pause; and the memory store built on them. The Redis
 * store's Lua (internal/rateLimitLua.ts) is this algorithm written for Redis.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Admission, AdmitBounds, StoreLimits, Window } from "../RateLimit.js"

/**
 * The window of `rpm` and `tpm`, in ms: a minute.
 *
 * @since 0.1.0
 * @category constants
 */
export const WINDOW_MILLIS = 60_000

/**
 * The limits a window counts.
 *
 * @since 0.1.0
 * @category models
 */
export interface WindowLimits {
  readonly rpm?: number | undefined
  readonly tpm?: number | undefined
  /** The window's length in ms. @default WINDOW_MILLIS */
  readonly windowMillis?: number | undefined
}

/**
 * What `SlidingWindow.admit` decides: the admission's id (0 when refused, or when nothing is counted)
 * and start, and why it was refused, if it was.
 *
 * @since 0.2.0
 * @category models
 */
export interface Decision {
  readonly id: number
  readonly at: number
  readonly refused?: "late" | "paused"
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
 *
 * @since 0.1.0
 * @category models
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
  admit(now: number, tokens: number, bounds?: AdmitBounds): Decision {
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

/**
 * The window's length for these limits, in ms: `window` (a minute unless a test shortens it) plus
 * `windowMargin` (`defaultMargin` when unset).
 *
 * @since 0.2.0
 * @category constructors
 */
export const windowMillisOf = (limits: Pick<StoreLimits, "windowMargin" | "window">, defaultMargin: Duration.DurationInput = 0): number =>
  Math.max(1, Math.round(Duration.toMillis(limits.window ?? WINDOW_MILLIS))) +
  Math.max(0, Math.round(Duration.toMillis(limits.windowMargin ?? defaultMargin)))

/** Bounds under which `admit` records nothing and only says when (`Window.earliest`). */
const PEEK: AdmitBounds = { maxWaitMillis: -1 }

/** The windows `memoryWindow` opened, with their `admit` decided at once (no effect). */
const immediate = new WeakMap<Window, (tokens: number, nowMillis: number, bounds?: AdmitBounds) => Admission>()

/**
 * `admit` decided at once, for a window `memoryWindow` opened (not for a copy or a wrapper of one,
 * whose `admit` may differ): the limiter calls it with the time of its own `Clock` and saves an
 * effect per request.
 *
 * @since 0.2.0
 * @category utils
 */
export const admitNowOf = (window: Window): ((tokens: number, nowMillis: number, bounds?: AdmitBounds) => Admission) | undefined =>
  immediate.get(window)

/**
 * One limiter's windows in memory, for one process, on the Effect `Clock`: what the memory store
 * opens (`RateLimit.layerStoreMemory`, and the default when no store is in the context).
 *
 * @since 0.2.0
 * @category constructors
 */
export const memoryWindow = (limits: StoreLimits): Window => {
  const window = new SlidingWindow({ rpm: limits.rpm, tpm: limits.tpm, windowMillis: windowMillisOf(limits) })
  const admitNow = (tokens: number, now: number, bounds?: AdmitBounds): Admission => {
    const { at, id, refused } = window.admit(now, tokens, bounds)
    return refused === undefined ? { id, at, waitMillis: at - now } : { id, at, waitMillis: at - now, refused }
  }
  const opened: Window = {
    admit: (tokens, bounds) => Effect.clockWith((clock) => Effect.sync(() => admitNow(tokens, clock.unsafeCurrentTimeMillis(), bounds))),
    // A bound below zero refuses every start, so nothing is recorded: the answer is only the time.
    earliest: (tokens) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          return Math.max(0, window.admit(now, tokens, PEEK).at - now)
        })
      ),
    settle: (admission, tokens) => Effect.sync(() => window.settle(admission.id, admission.at, tokens)),
    pause: (millis) => Effect.clockWith((clock) => Effect.sync(() => window.pauseUntil(clock.unsafeCurrentTimeMillis() + millis))),
    pauseRemaining: Effect.clockWith((clock) => Effect.sync(() => Math.max(0, window.pausedUntil() - clock.unsafeCurrentTimeMillis())))
  }
  immediate.set(opened, admitNow)
  return opened
}
