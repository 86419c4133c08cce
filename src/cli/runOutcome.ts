/**
 * How a `shepherd run` ends, in words: the failures that stop a run (the shared limits, the key,
 * an unreachable server), and the exit status and message of each way a run stops.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ChatError from "../ChatError.js"
import * as Pricing from "../Pricing.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import type { RunConfig } from "./runConfig.js"
import type * as RunStats from "./runStats.js"

/** The CLI's advice when the shared limits cannot be reached (it names its own flag). */
export const LIMITER_ADVICE = "Rerun the same command when Redis is back to send them (or add --redis-fallback to go on with local limits divided by the shard count)."

/** The shared limits' failure, in words, without the library's advice (the CLI names its own flag). */
export const limiterProblem = (error: ChatError.LimiterUnavailableError): string =>
  `the shared ${error.store === "budget" ? "budget" : "rate limits"} at ${error.location} could not be reached (${error.detail.replace(/\.+$/, "")})`

/** The provider's refusal of the key, in words. */
export const keyProblem = (error: ChatError.ApiError, url: string): string =>
  `${url} refused the API key (${error.status}${error.code === undefined ? "" : ` ${error.code}`}: ${error.detail.trim().replace(/\.+$/, "")})`

/** A server that could not be reached, in words. */
export const unreachableProblem = (error: ChatError.TransportError | ChatError.TimeoutError, url: string): string =>
  error._tag === "TimeoutError"
    ? `${url} could not be reached (no connection within ${error.timeoutMillis} ms)`
    : `${url} could not be reached (${error.code === undefined ? "" : `${error.code}: `}${error.detail.trim().replace(/\.+$/, "")})`

/** The first failure of each kind that stops a run, kept for the final message. */
export interface Failures {
  limiter: ChatError.LimiterUnavailableError | undefined
  key: ChatError.ApiError | undefined
  unreachable: ChatError.TransportError | ChatError.TimeoutError | undefined
}

/** A run's end: the summary written, and the failures that stopped it. */
export interface Outcome {
  readonly summary: RunStats.Summary
  readonly failures: Failures
}

/** Why the shared limits stopped the run, and what to do. */
const limiterStop = (config: RunConfig, failure: ChatError.LimiterUnavailableError | undefined, remaining: number): string => {
  if (failure?.reason === "lost") {
    return `stopped: the shared budget at ${failure.location} was lost (${failure.detail}): ${remaining} requests were not sent. ` +
      `What the other processes spent is unknown: make Redis keep its data (persistence, maxmemory-policy noeviction), then rerun ` +
      `with a new --namespace and a --budget-usd for what is left (or add --redis-fallback to go on with each process's own record).`
  }
  if (failure?.reason === "password") {
    return `stopped: Redis at ${failure.location} refused the password (${failure.detail}): ${remaining} requests were not sent. ` +
      `Check the password in the Redis URL (${config.redisSource}), then rerun the same command to send them.`
  }
  return `stopped: ${failure === undefined ? "the shared limits in Redis could not be reached" : limiterProblem(failure)}: ` +
    `${remaining} requests were not sent. ${LIMITER_ADVICE}`
}

/**
 * The exit of a run that ended: success, an interruption (exit 130), or a `CliError` saying why it
 * stopped and what to do (exit 1: a rerun sends what is left).
 */
export const exit = (config: RunConfig, outcome: Outcome): Effect.Effect<void, CliError> =>
  Effect.suspend(() => {
    const { failures, summary: result } = outcome
    const notSent = `${result.remaining} request${result.remaining === 1 ? " has" : "s have"} no final outcome`
    if (result.stoppedBy === "budget") {
      return new CliError({
        detail: `stopped by the budget of ${Pricing.format(Math.round(Option.getOrThrow(config.budgetUsd) * 1e6))}: ` +
          `${result.remaining} requests were not sent. Rerun with a larger --budget-usd to send them.`
      })
    }
    if (result.stoppedBy === "limiter") return new CliError({ detail: limiterStop(config, failures.limiter, result.remaining) })
    if (result.stoppedBy === "key" && failures.key !== undefined) {
      return new CliError({
        detail: `stopped: ${keyProblem(failures.key, config.apiUrl)}: ${notSent} (no line was written for them). ` +
          `${failures.key.status === 401 ? `Check ${config.keyVariable} (or --api-key-env) and that it belongs to ${config.apiUrl}` : "Check the key's permissions"}, then rerun the same command.`
      })
    }
    if (result.stoppedBy === "unreachable" && failures.unreachable !== undefined) {
      return new CliError({
        detail: `stopped: ${unreachableProblem(failures.unreachable, config.apiUrl)}: ${notSent} (no line was written for them). ` +
          `Check --base-url${config.baseUrlFromEnv ? " (here from OPENAI_BASE_URL)" : ""} and the network, then rerun the same command.`
      })
    }
    if (result.stoppedBy === "interrupted" || result.stoppedBy === "aborted") return Effect.interrupt
    // Requests left without a final outcome: the summary's last line says why; exit 1 so that scripts know.
    if (result.remaining > 0) return new CliError({ detail: "", exitCode: ExitStatus.UNFINISHED })
    return Effect.void
  })
