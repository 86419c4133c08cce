/**
 * The observe stage: metrics and a span per call, and the count of attempts. Metrics are updated
 * with `unsafeUpdate` on labelled metrics made once per label combination (`tagged`); a span is made
 * only when `tracing` is on, without a stack trace.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Budget from "../Budget.js"
import type { ChatError } from "../ChatError.js"
import * as Metrics from "../Metrics.js"
import * as Pricing from "../Pricing.js"
import type * as Pipeline from "./pipeline.js"

const taggedCache = new WeakMap<object, Map<string, unknown>>()

/**
 * `metric` with the labels `key1, value1, key2, value2, ...`, made once per combination and kept: an
 * update with labels given at each call rebuilds and hashes the metric's key every time (about 10 us,
 * bench/throughput); a tagged metric caches its hook.
 */
export const tagged = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, ...labels: ReadonlyArray<string>): Metric.Metric<Type, In, Out> => {
  let byLabels = taggedCache.get(metric)
  if (byLabels === undefined) {
    byLabels = new Map()
    taggedCache.set(metric, byLabels)
  }
  const key = labels.join("\u0000")
  let found = byLabels.get(key) as Metric.Metric<Type, In, Out> | undefined
  if (found === undefined) {
    const pairs: Array<MetricLabel.MetricLabel> = []
    for (let i = 0; i + 1 < labels.length; i += 2) pairs.push(MetricLabel.make(labels[i]!, labels[i + 1]!))
    found = Metric.taggedWithLabels(metric, pairs)
    byLabels.set(key, found)
  }
  return found
}

/** Counts an attempt that ended (answered, failed, timed out or interrupted), and a 429 among them. */
const attemptEnded = (exit: Exit.Exit<unknown, ChatError>): Effect.Effect<void> => {
  Metrics.attempts.unsafeUpdate(1, [])
  if (Exit.isFailure(exit)) {
    const error = Cause.failureOption(exit.cause)
    if (error._tag === "Some" && error.value._tag === "RateLimitError") Metrics.rateLimited.unsafeUpdate(1, [])
  }
  return Effect.void
}

/** The attempt stage that counts attempts: placed under the limiter, it sees only attempts that were sent. */
export const countAttempt: Pipeline.AttemptStage = (next) => (call, attempt) => Effect.onExit(next(call, attempt), attemptEnded)

/** The attempts a failure reports (0 when it was refused before sending). */
const attemptsOf = (exit: Exit.Exit<unknown, ChatError>): number =>
  Option.match(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none(), {
    onNone: () => 0,
    onSome: (error) => ("attempts" in error ? error.attempts : 0)
  })

/** Updates the metrics for a call that ended. */
const record = <A, R>(call: Pipeline.Call<A, R>, startMillis: number, end: Pipeline.End<A>): void => {
  const { model, endpoint } = call
  const exit = end.exit
  const outcome = Exit.isSuccess(exit)
    ? "success"
    : Option.match(Cause.failureOption(exit.cause), { onNone: () => "interrupted", onSome: (error) => error._tag })
  tagged(Metrics.requests, "model", model, "endpoint", endpoint.name, "outcome", outcome).unsafeUpdate(1, [])
  tagged(Metrics.latency, "endpoint", endpoint.name).unsafeUpdate(call.clock.unsafeCurrentTimeMillis() - startMillis, [])
  const attempts = end.received === undefined ? attemptsOf(exit) : end.received.attempts
  if (attempts > 1) Metrics.retries.unsafeUpdate(attempts - 1, [])
  const usage = end.received === undefined ? undefined : endpoint.usage(end.received.value)
  if (usage !== undefined) {
    tagged(Metrics.tokens, "model", model, "kind", "prompt").unsafeUpdate(usage.prompt_tokens, [])
    tagged(Metrics.tokens, "model", model, "kind", "completion").unsafeUpdate(usage.completion_tokens, [])
    const cost = Budget.costOf(model, usage, call.budget?.prices ?? Pricing.defaultTable)
    if (Option.isSome(cost)) tagged(Metrics.costMicroUsd, "model", model).unsafeUpdate(cost.value, [])
  }
}

/** What the end of a call tells its span. */
const annotateSuccess = <A>(received: Pipeline.Received<A>) =>
  Effect.annotateCurrentSpan({
    "shepherd.attempts": received.attempts,
    "http.response.status_code": received.status,
    ...(received.requestId === undefined ? {} : { "shepherd.request_id": received.requestId })
  })

const annotateError = (error: ChatError) =>
  Effect.annotateCurrentSpan({
    "shepherd.error": error._tag,
    ...("attempts" in error ? { "shepherd.attempts": error.attempts } : {}),
    ...("status" in error && error.status !== undefined ? { "http.response.status_code": error.status } : {}),
    ...("requestId" in error && error.requestId !== undefined ? { "shepherd.request_id": error.requestId } : {})
  })

/** A span's options: no stack capture, which cost more than the span itself (bench/throughput). */
const spanOptions = (model: string) => ({ kind: "client" as const, attributes: { "shepherd.model": model }, captureStackTrace: false })

/**
 * The observe stage: the call's metrics when it ends (a stream's when its scope closes; its time to
 * the first chunk when it opens) and, with `tracing`, a span `shepherd.<endpoint>` annotated with the
 * attempts, the status and the request id, or the error. A stream's span covers the whole stream:
 * it is made by {@link streamSpan}, and this stage only annotates it.
 */
export const observe = (options: { readonly tracing: boolean }): Pipeline.Stage => (next) => (call) =>
  Effect.suspend(() => {
    const startMillis = call.clock.unsafeCurrentTimeMillis()
    const stream = call.endpoint.name === "stream"
    let result = call.endpoint.onEnd(next(call), (end) => {
      record(call, startMillis, end)
      return Effect.void
    })
    if (stream) {
      result = Effect.tap(result, () => {
        Metrics.timeToFirstToken.unsafeUpdate(call.clock.unsafeCurrentTimeMillis() - startMillis, [])
      })
    }
    if (!options.tracing) return result
    result = Effect.tapError(Effect.tap(result, annotateSuccess), annotateError)
    return stream ? result : Effect.withSpan(result, `shepherd.${call.endpoint.name}`, spanOptions(call.model))
  })

/** A stream in its span `shepherd.stream` when `tracing` is on. */
export const streamSpan = <A, E, R>(stream: Stream.Stream<A, E, R>, model: string, tracing: boolean): Stream.Stream<A, E, R> =>
  tracing ? Stream.withSpan(stream, "shepherd.stream", spanOptions(model)) : stream
