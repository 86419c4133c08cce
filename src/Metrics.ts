/**
 * Effect `Metric`s the client updates as it works, and a snapshot of them. Read them with
 * `Metric.value` (or `Metrics.snapshot`), or export them with `@effect/opentelemetry` (see
 * docs/observability.md). They cover the whole process: every client adds to the same ones. Labels:
 * `model` on requests, tokens and cost; `outcome` (`success` or the error's tag) on requests;
 * `endpoint` (`chat`, `embeddings`, `stream`) on requests and latency.
 *
 * ```ts
 * const state = yield* Metric.value(Metrics.rateLimited) // { count: 3 }
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import * as MetricState from "effect/MetricState"

/**
 * Calls ended (after their retries), by `model`, `endpoint` and `outcome`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const requests: Metric.Metric.Counter<number> = Metric.counter("shepherd_requests_total", {
  description: "calls ended, after their retries, by model, endpoint and outcome",
  incremental: true
})

/**
 * HTTP attempts that ended (answered, failed or timed out), retries included.
 *
 * @since 0.1.0
 * @category metrics
 */
export const attempts: Metric.Metric.Counter<number> = Metric.counter("shepherd_attempts_total", {
  description: "HTTP attempts made, retries included",
  incremental: true
})

/**
 * Attempts after the first, over all calls.
 *
 * @since 0.1.0
 * @category metrics
 */
export const retries: Metric.Metric.Counter<number> = Metric.counter("shepherd_retries_total", {
  description: "attempts after the first",
  incremental: true
})

/**
 * 429 answers received (each also paused the client's rate limiter for the delay asked).
 *
 * @since 0.1.0
 * @category metrics
 */
export const rateLimited: Metric.Metric.Counter<number> = Metric.counter("shepherd_rate_limited_total", {
  description: "429 (rate limited) answers received",
  incremental: true
})

/**
 * A histogram of milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export type Histogram = Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, MetricState.MetricState.Histogram>

const millis = MetricBoundaries.exponential({ start: 5, factor: 1.6, count: 24 })

/**
 * Duration of a call, from its first attempt to its end (waits and retries included), in ms, by `endpoint`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const latency: Histogram = Metric.histogram("shepherd_request_duration_ms", millis, "call duration, retries and waits included, in milliseconds")

/**
 * Time from a stream's first attempt to its first chunk, in ms.
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeToFirstToken: Histogram = Metric.histogram("shepherd_time_to_first_token_ms", millis, "time to a stream's first chunk, in milliseconds")

/**
 * Tokens reported by the provider, by `model` and `kind` (`prompt` or `completion`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const tokens: Metric.Metric.Counter<number> = Metric.counter("shepherd_tokens_total", {
  description: "tokens reported in usage, by model and kind",
  incremental: true
})

/**
 * Cost of answered calls in micro-dollars, by `model` (models without a known price are not counted).
 *
 * @since 0.1.0
 * @category metrics
 */
export const costMicroUsd: Metric.Metric.Counter<number> = Metric.counter("shepherd_cost_micro_usd_total", {
  description: "cost of answered calls in micro-dollars, by model",
  incremental: true
})

/**
 * Calls answered by the `ResponseCache` (a stored entry, or an identical request in flight), by `endpoint`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const cacheHits: Metric.Metric.Counter<number> = Metric.counter("shepherd_cache_hits_total", {
  description: "calls answered by the response cache (an entry, or an identical request in flight), by endpoint",
  incremental: true
})

/**
 * Cacheable calls the `ResponseCache` could not answer (sent, then stored if they may be replayed), by `endpoint`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const cacheMisses: Metric.Metric.Counter<number> = Metric.counter("shepherd_cache_misses_total", {
  description: "cacheable calls the response cache could not answer, by endpoint",
  incremental: true
})

/**
 * What the answers of cache hits cost when they were paid for, in micro-dollars, by `model` (saved: nothing was sent).
 *
 * @since 0.2.0
 * @category metrics
 */
export const cacheSavedMicroUsd: Metric.Metric.Counter<number> = Metric.counter("shepherd_cache_saved_micro_usd_total", {
  description: "cost of the answers served by the response cache, in micro-dollars, by model",
  incremental: true
})

/**
 * One metric's value in a snapshot.
 *
 * @since 0.1.0
 * @category models
 */
export interface SnapshotEntry {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  /** A counter's count, or for a histogram: its count, sum, min, max and cumulative buckets. */
  readonly value:
    | { readonly type: "counter"; readonly count: number }
    | {
      readonly type: "histogram"
      readonly count: number
      readonly sum: number
      readonly min: number
      readonly max: number
      readonly buckets: ReadonlyArray<readonly [number, number]>
    }
}

/**
 * Every `shepherd_*` metric of the process with its labels and value, sorted by name (for `shepherd run --metrics FILE`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const snapshot: Effect.Effect<Array<SnapshotEntry>> = Effect.map(Metric.snapshot, (pairs) => {
  const out: Array<SnapshotEntry> = []
  for (const pair of pairs) {
    const name = pair.metricKey.name
    if (!name.startsWith("shepherd_")) continue
    const labels = Object.fromEntries([...pair.metricKey.tags].map((tag: MetricLabel.MetricLabel) => [tag.key, tag.value]))
    const state = pair.metricState
    if (MetricState.isCounterState(state)) out.push({ name, labels, value: { type: "counter", count: Number(state.count) } })
    else if (MetricState.isHistogramState(state)) {
      out.push({
        name,
        labels,
        value: { type: "histogram", count: state.count, sum: state.sum, min: state.min, max: state.max, buckets: [...state.buckets] }
      })
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)))
})
