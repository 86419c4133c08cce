/**
 * When a failed chat call is tried again, and after how long.
 *
 * - Retried: 408, 409, 429, every 5xx, transport failures (reset, refused, closed early, a temporary
 *   DNS failure such as EAI_AGAIN; not ENOTFOUND), connect and attempt timeouts. Never: other 4xx, a 2xx body that does not decode, budget errors, the total
 *   deadline, an answer past `maxResponseBytes` or a stream event past `maxEventBytes`. A response header `x-should-retry: true|false` overrides the status rule, as the
 *   official SDK does.
 * - Delay: a server-given delay wins (`retry-after-ms`, else `retry-after` in seconds or as an HTTP
 *   date); otherwise exponential backoff with full jitter, each delay capped. A server ask longer than
 *   `maxRetryAfter` fails at once with the `RateLimitError` that carries it, instead of sleeping for it.
 * - An overall deadline (`totalTimeout`) bounds attempts and waits together.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import type * as ChatError from "./ChatError.js"
import * as Retryable from "./internal/retryable.js"
import * as Validate from "./internal/validate.js"

/**
 * Retry behaviour. Defaults follow the official OpenAI SDK where it has one.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Attempts after the first; 0 disables retries. @default 4 Env `SHEPHERD_MAX_RETRIES`. */
  readonly maxRetries: number
  /** First backoff delay; it grows by `factor` each attempt, with full jitter. @default "500 millis" */
  readonly initialDelay: Duration.DurationInput
  /** Growth of the backoff per attempt. @default 2 */
  readonly factor: number
  /** Largest backoff delay (before jitter). @default "8 seconds" */
  readonly maxDelay: Duration.DurationInput
  /** Largest server-asked delay honoured; a longer ask fails at once with `RateLimitError`. @default "60 seconds" */
  readonly maxRetryAfter: Duration.DurationInput
  /** Deadline for all attempts and waits of one call: `TimeoutError{phase: "total"}`. @default "10 minutes" Env `SHEPHERD_TOTAL_TIMEOUT`. */
  readonly totalTimeout: Duration.DurationInput
}

/**
 * The defaults of every option.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults: Options = {
  maxRetries: 4,
  initialDelay: "500 millis",
  factor: 2,
  maxDelay: "8 seconds",
  maxRetryAfter: "60 seconds",
  totalTimeout: "10 minutes"
}

/**
 * Options in milliseconds, as the retry loop uses them.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly maxRetries: number
  readonly initialDelayMillis: number
  readonly factor: number
  readonly maxDelayMillis: number
  readonly maxRetryAfterMillis: number
  readonly totalTimeoutMillis: number
}

/**
 * Checks options and fills in defaults: `maxRetries` a whole number of at least 0, `factor` a finite
 * number of at least 1, the durations positive and finite. The error names the option under `path`
 * (`ChatClient` passes `["retry"]`: `["retry", "factor"]`). An `Either`, usable where no Effect runs.
 *
 * @since 0.2.0
 * @category validation
 */
export const check = (options: Partial<Options> = {}, path: ReadonlyArray<string> = []): Either.Either<Resolved, ConfigError.ConfigError> =>
  Either.gen(function* () {
    if (typeof options !== "object" || options === null) return yield* Either.left(Validate.invalid(path.length === 0 ? ["retry"] : path, "must be an object"))
    const o = { ...defaults, ...withoutUndefined(options) }
    return {
      maxRetries: yield* Validate.nonNegativeInt([...path, "maxRetries"], o.maxRetries),
      initialDelayMillis: Duration.toMillis(yield* Validate.positiveDuration([...path, "initialDelay"], o.initialDelay)),
      factor: yield* Validate.atLeast([...path, "factor"], o.factor, 1),
      maxDelayMillis: Duration.toMillis(yield* Validate.positiveDuration([...path, "maxDelay"], o.maxDelay)),
      maxRetryAfterMillis: Duration.toMillis(yield* Validate.positiveDuration([...path, "maxRetryAfter"], o.maxRetryAfter)),
      totalTimeoutMillis: Duration.toMillis(yield* Validate.positiveDuration([...path, "totalTimeout"], o.totalTimeout))
    }
  })

/**
 * {@link check} as an Effect: fails with the `ConfigError` naming the invalid option.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Partial<Options> = {}, path: ReadonlyArray<string> = []): Effect.Effect<Resolved, ConfigError.ConfigError> =>
  Effect.suspend(() => check(options, path))

const withoutUndefined = (options: Partial<Options>): Partial<Options> =>
  Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<Options>

/**
 * Fills in defaults and converts to milliseconds, without checking (see {@link check}).
 *
 * @since 0.1.0
 * @category validation
 */
export const resolve = (options: Partial<Options> = {}): Resolved => {
  const o = { ...defaults, ...options }
  return {
    maxRetries: o.maxRetries,
    initialDelayMillis: Duration.toMillis(o.initialDelay),
    factor: o.factor,
    maxDelayMillis: Duration.toMillis(o.maxDelay),
    maxRetryAfterMillis: Duration.toMillis(o.maxRetryAfter),
    totalTimeoutMillis: Duration.toMillis(o.totalTimeout)
  }
}

/** The message of an `InvalidData` error (they are the only ones `check` gives). */
const configMessage = (error: ConfigError.ConfigError): string => ("message" in error && typeof error.message === "string" ? error.message : String(error))

/**
 * Whether an answer's status is worth another attempt: 408, 409, 429 and every 5xx (a response
 * header `x-should-retry` overrides it, see {@link isRetryable}). The one rule, also used by
 * `shepherd run` to decide which output lines are final.
 *
 * @since 0.2.0
 * @category decisions
 */
export const isRetryableStatus: (status: number) => boolean = Retryable.isRetryableStatus

/**
 * Whether an error is worth another attempt (before counting attempts or time).
 *
 * @since 0.1.0
 * @category decisions
 */
export const isRetryable = (error: ChatError.ChatError): boolean => {
  switch (error._tag) {
    case "RateLimitError":
      return error.shouldRetry ?? true
    case "ApiError":
      return error.shouldRetry ?? isRetryableStatus(error.status)
    case "TransportError":
      // A host that does not resolve at all, or a URL that cannot be sent, will not get better; an
      // answer past the size limits would be downloaded (and billed) again just to fail the same way.
      return error.code !== "ENOTFOUND" && error.code !== "INVALID_URL" && error.code !== "RESPONSE_TOO_LARGE" && error.code !== "EVENT_TOO_LARGE"
    case "TimeoutError":
      return error.phase === "connect" || error.phase === "attempt"
    case "ResponseDecodeError":
    case "BudgetExceededError":
    case "LimiterUnavailableError":
      return false
  }
}

/**
 * The delay a server asked for, when the error carries one.
 *
 * @since 0.1.0
 * @category decisions
 */
export const serverDelay = (error: ChatError.ChatError): number | undefined =>
  error._tag === "RateLimitError" || error._tag === "ApiError" ? error.retryAfterMillis : undefined

/**
 * The backoff before attempt `retry + 1` (retry 1 is the first retry), in whole milliseconds: uniform
 * in [0, min(maxDelay, initialDelay x factor^(retry-1))]. `random` is uniform in [0, 1).
 *
 * @since 0.1.0
 * @category decisions
 */
export const backoffMillis = (policy: Resolved, retry: number, random: number): number =>
  Math.floor(random * Math.min(policy.maxDelayMillis, policy.initialDelayMillis * Math.pow(policy.factor, retry - 1)))

/**
 * What to do after a failed attempt: try again after `delayMillis`; stop with the error; or stop
 * because the call's total deadline would pass first (the client's loop then fails with
 * `TimeoutError{phase: "total"}`).
 *
 * @since 0.1.0
 * @category models
 */
export type Decision =
  | { readonly _tag: "Retry"; readonly delayMillis: number }
  | { readonly _tag: "Stop" }
  | { readonly _tag: "Deadline" }

/**
 * Where a call stands in time, for {@link decide}: now and its total deadline, epoch ms on one clock.
 *
 * @since 0.2.0
 * @category models
 */
export interface Timing {
  readonly nowMillis: number
  readonly deadlineMillis: number
}

/**
 * The one decision after `retry - 1` retries failed with `error`, used by the client's own loop and
 * by {@link schedule}: retry after the server's delay when it gave one (unless it exceeds
 * `maxRetryAfter`), else after the jittered backoff; stop when the error is final or the retries are
 * used up. With `timing` (the client's loop): `Deadline` when an attempt cut to the time left timed
 * out at the deadline, or when the wait would end at or past it.
 *
 * @since 0.1.0
 * @category decisions
 */
export const decide = (policy: Resolved, error: ChatError.ChatError, retry: number, random: number, timing?: Timing): Decision => {
  if (timing !== undefined && error._tag === "TimeoutError" && error.phase === "attempt" && timing.nowMillis >= timing.deadlineMillis) return deadline
  if (retry > policy.maxRetries || !isRetryable(error)) return stop
  const asked = serverDelay(error)
  if (asked !== undefined && asked > policy.maxRetryAfterMillis) return stop
  const delayMillis = asked ?? backoffMillis(policy, retry, random)
  if (timing !== undefined && timing.nowMillis + delayMillis >= timing.deadlineMillis) return deadline
  return { _tag: "Retry", delayMillis }
}

const stop: Decision = { _tag: "Stop" }
const deadline: Decision = { _tag: "Deadline" }

/**
 * The same decisions as a `Schedule` over `ChatError`s, for your own `Effect.retry` around several
 * calls (its output is the number of retries so far). The client's own loop also applies
 * `totalTimeout`; with this schedule, add `Effect.timeout` yourself.
 *
 * A schedule has no error channel: invalid options (see {@link check}) throw an `Error` here, when
 * the schedule is made, naming the option, as `Duration.decode` throws on an invalid input. Call
 * {@link validateOptions} first to get a typed `ConfigError` instead.
 *
 * ```ts
 * Effect.retry(chat.create(request), RetryPolicy.schedule({ maxRetries: 2 }))
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const schedule = (options: Partial<Options> = {}): Schedule.Schedule<number, ChatError.ChatError> => {
  const checked = check(options)
  if (Either.isLeft(checked)) throw new Error(`RetryPolicy.schedule: ${configMessage(checked.left)}`)
  const policy = checked.right
  return Schedule.makeWithState<number, ChatError.ChatError, number>(0, (now, error, retries) =>
    Effect.map(Random.next, (random) => {
      const decision = decide(policy, error, retries + 1, random)
      return decision._tag === "Retry"
        ? [retries + 1, retries + 1, ScheduleDecision.continueWith(ScheduleInterval.after(now + decision.delayMillis))] as const
        : [retries, retries, ScheduleDecision.done] as const
    }))
}

/**
 * Per-call retry options, set by {@link withRetry}: they win over the client's.
 *
 * @since 0.2.0
 * @category overrides
 */
export const currentRetry: FiberRef.FiberRef<Partial<Options> | undefined> = FiberRef.unsafeMake<Partial<Options> | undefined>(undefined)

/**
 * Runs `effect` with other retry options for the chat calls it makes (they win over the client's,
 * and over an outer `withRetry`'s), data-first or data-last:
 * `RetryPolicy.withRetry(chat.create(request), { maxRetries: 0 })` or
 * `chat.create(request).pipe(RetryPolicy.withRetry({ maxRetries: 0 }))` (`ChatClient.withRetry` is
 * the same function). Options written in code, so an invalid one is a programming error: `effect`
 * does not run, and the fiber dies with an `Error` naming the option (`retry.maxRetries ...`); check
 * them with {@link validateOptions} first for a typed `ConfigError`.
 *
 * @since 0.2.0
 * @category overrides
 */
export const withRetry: {
  (options: Partial<Options>): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, options: Partial<Options>): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, options: Partial<Options>): Effect.Effect<A, E, R> =>
  Effect.zipRight(
    Effect.orDieWith(validateOptions(options, ["retry"]), (error) => new Error(`ChatClient.withRetry: ${error.message}`)),
    Effect.flatMap(FiberRef.get(currentRetry), (outer) => Effect.locally(effect, currentRetry, { ...outer, ...options }))
  ))
