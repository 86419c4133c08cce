/**
 * Many keys, endpoints and models behind one `ChatClient`: the options of `ChatClient.layerRouter`,
 * what a routed answer records, and the metrics labelled by deployment.
 *
 * Each request goes to a deployment that serves its model and would start it soonest (by its
 * limiter's window, the server's pace and its cooldown); ties go by `priority`, then to the
 * deployment with the fewest requests in flight. A deployment whose attempts fail in a row (a
 * connection failure, a 5xx, an attempt timeout) cools down for a growing period, after which one
 * probe decides whether it comes back; one whose key is refused (401, or a 403 about the key) is out
 * for the run. When the retries on one deployment end in a failure of a kind `fallbackOn` names, the
 * request goes on to the next deployment, then to the next model of `fallbacks`. See docs/routing.md.
 *
 * @since 0.2.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Redacted from "effect/Redacted"
import type * as ChatClient from "./ChatClient.js"
import * as Metrics from "./Metrics.js"
import type * as RateLimit from "./RateLimit.js"
import type * as RetryPolicy from "./RetryPolicy.js"

/**
 * Why a request may go on to another deployment or model:
 * - `context_length`: the model refused the prompt as too long (400 `context_length_exceeded`): the
 *   next model of `fallbacks` with a larger context (by `contextWindows`; the next one when unknown);
 * - `rate_limited_long`: a 429 (or the shared pause) asked for a wait longer than `maxRetryAfter`, or
 *   the 429s outlasted the retries: the next deployment, then the next model;
 * - `unavailable`: the retries ended on connection failures, timeouts or 5xx, the deployment is
 *   cooling down, or its key was refused: the next deployment, then the next model;
 * - `content_filter`: the provider's content filter refused the request (400 `content_filter`, or
 *   an answer whose every choice ended with `finish_reason: "content_filter"`): the next model.
 *
 * @since 0.2.0
 * @category options
 */
export type FallbackCause = "context_length" | "rate_limited_long" | "unavailable" | "content_filter"

/**
 * Every fallback cause, in the order they are documented.
 *
 * @since 0.2.0
 * @category constants
 */
export const FALLBACK_CAUSES: ReadonlyArray<FallbackCause> = ["context_length", "rate_limited_long", "unavailable", "content_filter"]

/**
 * One deployment: an endpoint with its key, the models it serves, and its own limits.
 *
 * @since 0.2.0
 * @category options
 */
export interface Deployment {
  /** Its name in metrics, spans, outcomes and messages: unique, not blank. */
  readonly name: string
  /** Base URL, usually ending in `/v1`. */
  readonly baseUrl: string
  /** Bearer token. @default undefined (none; required for api.openai.com) */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /**
   * The models it serves: names as requests give them, or a record from that name to the name this
   * provider knows the model by (`{ "gpt-4.1-mini": "openai/gpt-4.1-mini" }` for a relay).
   */
  readonly models: ReadonlyArray<string> | Readonly<Record<string, string>>
  /** Its own limits (rpm, tpm, maxInFlight, adaptive); see `RateLimit.Options`. @default {} (adaptive only) */
  readonly limits?: RateLimit.Options | undefined
  /** Lower goes first among deployments that would start a request at the same time. @default 0 */
  readonly priority?: number | undefined
  /** Its retry options, over the client's `retry`. @default {} */
  readonly retry?: Partial<RetryPolicy.Options> | undefined
  /** Extra headers for this deployment (e.g. `api-key` for Azure), over the client's. @default {} */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Most TCP connections of its own pool. @default the client's `connections` */
  readonly connections?: number | undefined
}

/**
 * The circuit breaker of each deployment.
 *
 * @since 0.2.0
 * @category options
 */
export interface CooldownOptions {
  /** Failed attempts in a row (connection failure, attempt timeout, 5xx) that take a deployment out. @default 3 */
  readonly failures: number
  /** The first cooldown; each one after a failed probe doubles, up to `max`. @default "5 seconds" */
  readonly initial: Duration.DurationInput
  /** The longest cooldown. @default "5 minutes" */
  readonly max: Duration.DurationInput
}

/**
 * The defaults of the breaker.
 *
 * @since 0.2.0
 * @category options
 */
export const cooldownDefaults: CooldownOptions = { failures: 3, initial: "5 seconds", max: "5 minutes" }

/**
 * The causes a request falls back on unless `fallbackOn` says otherwise (`content_filter` only when
 * asked for).
 *
 * @since 0.2.0
 * @category options
 */
export const defaultFallbackOn: ReadonlyArray<FallbackCause> = ["context_length", "rate_limited_long", "unavailable"]

/**
 * Options of `ChatClient.layerRouter`.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** The deployments, at least one. */
  readonly deployments: ReadonlyArray<Deployment>
  /** For a model, the models to try next, in order (`{ "gpt-4.1": ["gpt-4.1-mini"] }`); each must be served by a deployment. @default {} */
  readonly fallbacks?: Readonly<Record<string, ReadonlyArray<string>>> | undefined
  /** The causes that move a request on. @default defaultFallbackOn */
  readonly fallbackOn?: ReadonlyArray<FallbackCause> | undefined
  /** Context windows in tokens by model, for `context_length` fallbacks. @default {} */
  readonly contextWindows?: Readonly<Record<string, number>> | undefined
  /** The breaker of each deployment. @default cooldownDefaults */
  readonly cooldown?: Partial<CooldownOptions> | undefined
  /**
   * The client options every deployment shares (timeout, retry, tracing, connections, ...); each
   * deployment's `baseUrl`, `apiKey`, `limits`, `headers`, `connections` and `retry` win.
   * `retry.totalTimeout` bounds a request across all its deployments and models. @default {}
   */
  readonly client?: Omit<ChatClient.Overrides, "baseUrl" | "apiKey" | "limits"> | undefined
  /**
   * Keep each deployment's limits in Redis (keyed by its base URL and key, as `RateLimit.layerStoreRedis`
   * does), shared with every process routing over the same deployments. @default undefined (memory)
   */
  readonly redis?: Omit<RateLimit.StoreRedisOptions, "baseUrl" | "apiKey"> | undefined
}

/**
 * One try of a routed request: a deployment and model, and how it ended.
 *
 * @since 0.2.0
 * @category models
 */
export interface Try {
  readonly deployment: string
  /** The model as the request named it (not the provider's alias). */
  readonly model: string
  /** Attempts sent to it (0: refused before sending). */
  readonly attempts: number
  /** The error's tag (`"ContentFilter"` for an answer the filter cut), or undefined for the answer. */
  readonly error?: string | undefined
}

/**
 * Which deployment and model answered a routed request, and every try on the way (the answering one
 * last). Found on `ChatClient.Metadata.route`; the cost is at the answering model's price.
 *
 * @since 0.2.0
 * @category models
 */
export interface Route {
  readonly deployment: string
  readonly model: string
  readonly tries: ReadonlyArray<Try>
}

/**
 * Calls ended on a deployment (one per try), by `deployment`, `model` and `outcome` (`success` or the error's tag).
 *
 * @since 0.2.0
 * @category metrics
 */
export const deploymentRequests: Metric.Metric.Counter<number> = Metric.counter("shepherd_deployment_requests_total", {
  description: "tries ended on a deployment, by deployment, model and outcome",
  incremental: true
})

/**
 * Attempts sent to a deployment, by `deployment`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const deploymentAttempts: Metric.Metric.Counter<number> = Metric.counter("shepherd_deployment_attempts_total", {
  description: "attempts sent to a deployment, by deployment",
  incremental: true
})

/**
 * 429s a deployment answered, by `deployment`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const deploymentRateLimited: Metric.Metric.Counter<number> = Metric.counter("shepherd_deployment_rate_limited_total", {
  description: "429 answers, by deployment",
  incremental: true
})

/**
 * Times a deployment was taken out (a cooldown started, or its key was refused), by `deployment`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const deploymentCooldowns: Metric.Metric.Counter<number> = Metric.counter("shepherd_deployment_cooldowns_total", {
  description: "cooldowns started (or keys refused), by deployment",
  incremental: true
})

/**
 * Cost of the answers a deployment gave, in micro-dollars at the answering model's price, by `deployment`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const deploymentCostMicroUsd: Metric.Metric.Counter<number> = Metric.counter("shepherd_deployment_cost_micro_usd_total", {
  description: "cost of answers in micro-dollars, by deployment",
  incremental: true
})

/**
 * What one deployment did in this process, read from the metrics above.
 *
 * @since 0.2.0
 * @category models
 */
export interface DeploymentStats {
  readonly deployment: string
  /** Tries ended on it, answered or not. */
  readonly requests: number
  readonly succeeded: number
  readonly rateLimited: number
  readonly cooldowns: number
  readonly costUsd: number
}

/**
 * Every deployment's stats in this process (all routers together), by name, sorted.
 *
 * @since 0.2.0
 * @category metrics
 */
export const stats: Effect.Effect<ReadonlyArray<DeploymentStats>> = Effect.map(Metrics.snapshot, (entries) => {
  const by = new Map<string, { requests: number; succeeded: number; rateLimited: number; cooldowns: number; costUsd: number }>()
  const of = (name: string) => {
    let found = by.get(name)
    if (found === undefined) by.set(name, found = { requests: 0, succeeded: 0, rateLimited: 0, cooldowns: 0, costUsd: 0 })
    return found
  }
  for (const entry of entries) {
    const name = entry.labels["deployment"]
    if (name === undefined || entry.value.type !== "counter") continue
    const count = entry.value.count
    const s = of(name)
    if (entry.name === "shepherd_deployment_requests_total") {
      s.requests += count
      if (entry.labels["outcome"] === "success") s.succeeded += count
    } else if (entry.name === "shepherd_deployment_rate_limited_total") s.rateLimited += count
    else if (entry.name === "shepherd_deployment_cooldowns_total") s.cooldowns += count
    else if (entry.name === "shepherd_deployment_cost_micro_usd_total") s.costUsd += count / 1e6
  }
  return [...by.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([deployment, s]) => ({ deployment, ...s }))
})
