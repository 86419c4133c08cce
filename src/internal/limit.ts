/**
 * The limit stage: each attempt is admitted by the call's `RateLimit` service (rpm, tpm, in flight,
 * the shared pause, the adaptive pace) within the attempt's bounds, and tells it how it ended: the
 * tokens used when known, the server's headers, a 429's delay. It counts nothing in the metrics
 * (the observe stage does).
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import type { ChatError } from "../ChatError.js"
import type * as RateLimit from "../RateLimit.js"
import type * as Pipeline from "./pipeline.js"

const nothing: RateLimit.Outcome = {}

/** What an attempt's end tells the limiter, for an endpoint whose answers used `usedTokens(value)` tokens. */
export const outcome = <A>(usedTokens: (value: A) => number | undefined) => (exit: Exit.Exit<Pipeline.Received<A>, ChatError>): RateLimit.Outcome => {
  if (Exit.isSuccess(exit)) return { usedTokens: usedTokens(exit.value.value), headers: exit.value.headers }
  const error = Cause.failureOption(exit.cause)
  return error._tag === "Some" && error.value._tag === "RateLimitError" ? { retryAfterMillis: error.value.retryAfterMillis, rateLimited: true } : nothing
}

/** One `outcome` function per endpoint, made on its first attempt (not one closure per attempt). */
const outcomes = new WeakMap<object, (exit: Exit.Exit<Pipeline.Received<never>, ChatError>) => RateLimit.Outcome>()
const outcomeOf = <A, R>(endpoint: Pipeline.Endpoint<A, R>): (exit: Exit.Exit<Pipeline.Received<A>, ChatError>) => RateLimit.Outcome => {
  let found = outcomes.get(endpoint)
  if (found === undefined) {
    found = outcome(endpoint.usedTokens) as (exit: Exit.Exit<Pipeline.Received<never>, ChatError>) => RateLimit.Outcome
    outcomes.set(endpoint, found)
  }
  return found as unknown as (exit: Exit.Exit<Pipeline.Received<A>, ChatError>) => RateLimit.Outcome
}

/**
 * The tokens the limiter counts for a call: its prompt plus its completion allowance when the
 * limiter needs token counts (a `tpm` limit, or a server that reports token limits), else 0.
 */
export const tokensFor = <A, R>(call: Pipeline.Call<A, R>): number => (call.limiter.countsTokens() ? call.tokens.prompt + call.tokens.allowance : 0)

/** Admits each attempt through the call's limiter. */
export const limit: Pipeline.AttemptStage = (next) => (call, attempt) =>
  call.limiter.withPermit(tokensFor(call), next(call, attempt), outcomeOf(call.endpoint), attempt.bounds)
