/**
 * The limiter (`RateLimit.make`) over one store window: waits for the window's start, the shared
 * pause and the adaptive pace (internal/serverPace.ts) in arrival order, bounds the wait by the
 * call's deadline and `maxRetryAfter`, and reports how each request ended back to the store and
 * the pace.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { type LimiterUnavailableError, RateLimitError, TimeoutError } from "../ChatError.js"
import type { Admission, AdmitBounds, Bounds, Options, Outcome, Service, Window } from "../RateLimit.js"
import { ServerPace } from "./serverPace.js"
import { admitNowOf } from "./slidingWindow.js"

/**
 * A request the limiter let through.
 *
 * @since 0.1.0
 * @category models
 */
export interface Permit {
  readonly admission: Admission
  readonly tokens: number
}

/** One limiter's state. */
interface State {
  readonly clock: Clock.Clock
  readonly store: Window
  readonly adaptive: boolean
  readonly pace: ServerPace
  /** Whether the options set a `tpm` limit (the store's window then counts tokens). */
  readonly tpm: boolean
  /** The store's `admit` decided at once, for a memory window (`SlidingWindow.admitNowOf`). */
  readonly admitNow: ReturnType<typeof admitNowOf>
  /** Admitted and not yet released (waiting or in flight), with their tokens. */
  outstanding: number
  outstandingTokens: number
}

const noBounds: Bounds = {}

const late = (bounds: Bounds) => new TimeoutError({ phase: "total", timeoutMillis: bounds.timeoutMillis ?? 0, attempts: bounds.attempts ?? 0 })

const tooLong = (bounds: Bounds, millis: number, what: string) =>
  new RateLimitError({
    retryAfterMillis: Math.ceil(millis),
    detail: `${what} calls for a wait of ${Math.ceil(millis)} ms, longer than maxRetryAfter (${bounds.maxWaitMillis} ms); the request was not sent`,
    attempts: bounds.attempts ?? 0
  })

/** Sleeps until `at` (local clock), then again while a pause set meanwhile lasts, within `bounds`. */
const waitUntil = (s: State, at: number, bounds: Bounds): Effect.Effect<void, LimiterUnavailableError | RateLimitError | TimeoutError> =>
  Effect.suspend(() => {
    const now = s.clock.unsafeCurrentTimeMillis()
    if (at > now) return Effect.zipRight(Clock.sleep(at - now), waitUntil(s, at, bounds))
    return Effect.flatMap(s.store.pauseRemaining, (left) => {
      if (left <= 0) return Effect.void
      if (bounds.maxWaitMillis !== undefined && left > bounds.maxWaitMillis) return Effect.fail(tooLong(bounds, left, "the shared pause after a 429"))
      if (bounds.deadline !== undefined && s.clock.unsafeCurrentTimeMillis() + left >= bounds.deadline) return Effect.fail(late(bounds))
      return Effect.zipRight(Clock.sleep(left), waitUntil(s, 0, bounds))
    })
  })

// Telling the store how a request ended is best effort: a store that cannot be reached then
// must not turn a request that was answered into a failure. `releaseNow` does the bookkeeping at
// once and returns what is left to tell the store (`Effect.void` when nothing is, the common case).
const release = (s: State, permit: Permit, startedAt: number, outcome: Outcome, succeeded: boolean, bounds: Bounds): Effect.Effect<void> =>
  Effect.suspend(() => releaseNow(s, permit, startedAt, outcome, succeeded, bounds))

const releaseNow = (s: State, permit: Permit, startedAt: number, outcome: Outcome, succeeded: boolean, bounds: Bounds): Effect.Effect<void> => {
  s.outstanding--
  s.outstandingTokens -= permit.tokens
  const now = s.clock.unsafeCurrentTimeMillis()
  if (s.adaptive) {
    if (outcome.headers !== undefined) s.pace.observe(outcome.headers, s.outstanding, s.outstandingTokens, now)
    if (succeeded) s.pace.succeeded(startedAt, now)
    else if (outcome.rateLimited === true) s.pace.rateLimited(startedAt, now)
  }
  // A count the server made up (NaN, negative, fractional) keeps the estimate: NaN in the window would switch tpm off.
  // A request admitted at 0 tokens by a limiter without `tpm` has nothing in the window to correct.
  const used = outcome.usedTokens
  const settle = used === undefined || used === permit.tokens || (permit.tokens === 0 && !s.tpm) || !Number.isSafeInteger(used) || used < 0
    ? Effect.void
    : s.store.settle(permit.admission, used)
  const asked = outcome.retryAfterMillis
  if (asked === undefined) return settle === Effect.void ? Effect.void : Effect.ignore(settle)
  return Effect.ignore(Effect.zipRight(settle, s.store.pause(Math.min(asked, bounds.maxWaitMillis ?? asked))))
}

/** What the store's bounds are for a request: its latest start and the longest pause it waits out. */
const admitBoundsOf = (bounds: Bounds, now: number): AdmitBounds | undefined =>
  bounds.deadline === undefined && bounds.maxWaitMillis === undefined
    ? undefined
    : { maxWaitMillis: bounds.deadline === undefined ? undefined : bounds.deadline - now - 1, maxPauseMillis: bounds.maxWaitMillis }

/** Runs `use` for a request the store admitted, once the pace and the window allow it to start. */
const runAdmitted = <A, E, R>(
  s: State,
  restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
  admission: Admission,
  tokens: number,
  use: Effect.Effect<A, E, R>,
  outcome: (exit: Exit.Exit<A, E>) => Outcome,
  bounds: Bounds
): Effect.Effect<A, E | LimiterUnavailableError | RateLimitError | TimeoutError, R> => {
  if (admission.refused === "paused") return Effect.fail(tooLong(bounds, admission.waitMillis, "the shared pause after a 429"))
  if (admission.refused === "late") return Effect.fail(late(bounds))
  const now = s.clock.unsafeCurrentTimeMillis()
  let at = now + admission.waitMillis
  if (s.adaptive) {
    at = Math.max(at, s.pace.plan(tokens, now).at)
    s.pace.reserve(tokens, now, at)
  }
  s.outstanding++
  s.outstandingTokens += tokens
  const permit: Permit = { admission, tokens }
  // Already uninterruptible (withPermitOn's mask): a match on the exit is `onExit` without its own mask.
  const sent = Effect.matchCauseEffect(restore(use), {
    onFailure: (cause) => {
      const told = releaseNow(s, permit, at, outcome(Exit.failCause(cause)), false, bounds)
      return told === Effect.void ? Effect.failCause(cause) : Effect.zipRight(told, Effect.failCause(cause))
    },
    onSuccess: (value) => {
      const told = releaseNow(s, permit, at, outcome(Exit.succeed(value)), true, bounds)
      return told === Effect.void ? Effect.succeed(value) : Effect.as(told, value)
    }
  })
  if (at <= now) return sent
  // Another fiber's reservation may have moved the start since the plan: rare, and then
  // the start it keeps is given up like an interrupted wait's.
  if (bounds.deadline !== undefined && at >= bounds.deadline) return Effect.zipRight(release(s, permit, at, {}, false, noBounds), Effect.fail(late(bounds)))
  return Effect.zipRight(Effect.onError(restore(waitUntil(s, at, bounds)), () => release(s, permit, at, {}, false, noBounds)), sent)
}

// The waits (for the store, for a slot) stay interruptible: a caller may give up while it waits.
// Once admitted, whatever ends the request, interruption included, the permit is released.
// The mask's body runs when the effect runs, so it reads the clock then, without a `suspend`. A
// store that decides in memory (`admitNow`) admits at once: no effect, no restored region.
const withPermitOn = (s: State): Service["withPermit"] => (tokens, use, outcome, bounds = noBounds) =>
  Effect.uninterruptibleMask((restore) => {
    const now = s.clock.unsafeCurrentTimeMillis()
    const deadline = bounds.deadline
    if (deadline !== undefined && now >= deadline) return Effect.fail(late(bounds))
    if (s.adaptive) {
      // The pace first: a request it cannot start in time is refused before the store records it.
      const plan = s.pace.plan(tokens, now, bounds.maxWaitMillis)
      if (plan.tooSlowMillis !== undefined) return Effect.fail(tooLong(bounds, plan.tooSlowMillis, "the server's pace"))
      if (deadline !== undefined && plan.at >= deadline) return Effect.fail(late(bounds))
    }
    const admitBounds = admitBoundsOf(bounds, now)
    const admitNow = s.admitNow
    if (admitNow !== undefined) return runAdmitted(s, restore, admitNow(tokens, now, admitBounds), tokens, use, outcome, bounds)
    return Effect.flatMap(restore(s.store.admit(tokens, admitBounds)), (admission) => runAdmitted(s, restore, admission, tokens, use, outcome, bounds))
  })

/**
 * Builds a limiter over `store` with these (already checked) options: see `RateLimit.make`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options, store: Window): Effect.Effect<Service> =>
  Effect.gen(function* () {
    const state: State = { clock: yield* Effect.clock, store, adaptive: options.adaptive ?? true, pace: new ServerPace(), tpm: options.tpm !== undefined, admitNow: admitNowOf(store), outstanding: 0, outstandingTokens: 0 }
    const withPermit = withPermitOn(state)
    const semaphore = options.maxInFlight === undefined ? undefined : yield* Effect.makeSemaphore(options.maxInFlight)
    const earliest = store.earliest
    const nextStart = (tokens: number) =>
      Effect.map(earliest === undefined ? Effect.succeed(0) : earliest(tokens), (wait) => {
        if (!state.adaptive) return wait
        const now = state.clock.unsafeCurrentTimeMillis()
        return Math.max(wait, state.pace.plan(tokens, now).at - now)
      })
    return {
      nextStart,
      withPermit: semaphore === undefined ? withPermit : (tokens, use, outcome, bounds) => semaphore.withPermits(1)(withPermit(tokens, use, outcome, bounds)),
      countsTokens: () => options.tpm !== undefined || state.pace.countsTokens
    }
  })
