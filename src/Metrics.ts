/**
 * Effect `Metric`s the client updates as it works. Read them with `Metric.value`, or export them with
 * `@effect/opentelemetry`. Counters cover the whole process: every client adds to the same ones.
 *
 * ```ts
 * const rateLimited = yield* Metric.value(Metrics.rateLimited) // { count: 3 }
 * ```
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/** HTTP attempts that ended (answered, failed or timed out), retries included. */
export const attempts: Metric.Metric.Counter<number> = Metric.counter("shepherd_attempts_total", {
  description: "HTTP attempts made, retries included",
  incremental: true
})

/** 429 answers received (each also paused the client's rate limiter for the delay asked). */
export const rateLimited: Metric.Metric.Counter<number> = Metric.counter("shepherd_rate_limited_total", {
  description: "429 (rate limited) answers received",
  incremental: true
})
