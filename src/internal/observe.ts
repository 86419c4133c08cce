/**
 * The observe stage: metrics and a span per call, and the count of attempts. Metrics are updated
 * with `unsafeUpdate` on labelled metrics made once per label combination (`tagged`); a span is made
 * only when `tracing` is on and a tracer that keeps spans is installed, without a stack trace.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Budget from "../Budget.js"
import type { ChatError } from "../ChatError.js"
import * as Metrics from "../Metrics.js"
import * as Pricing from "../Pricing.js"
import * as Pipeline from "./pipeline.js"

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

/** No extra labels: one array for every update. */
const NO_LABELS: ReadonlyArray<MetricLabel.MetricLabel> = []

/** Counts a 429 among the attempts' failures. */
const countRateLimited = (error: ChatError): Effect.Effect<void> => {
  if (error._tag === "RateLimitError") Metrics.rateLimited.unsafeUpdate(1, NO_LABELS)
  return Effect.void
}

/**
 * The attempt stage that counts attempts: placed under the limiter, it sees only attempts that are
 * sent. Each is counted as it starts (whatever ends it: an answer, a failure, a timeout or an
 * interruption), and a 429 when one fails with it: no `onExit` per attempt.
 */
export const countAttempt: Pipeline.AttemptStage = (next) => (call, attempt) =>
  Effect.suspend(() => {
    Metrics.attempts.unsafeUpdate(1, NO_LABELS)
    return Effect.tapError(next(call, attempt), countRateLimited)
  })

/** The attempts a failure reports (0 when it was refused before sending, or is not a `ChatError`: a stream consumer's own). */
const attemptsOf = (exit: Exit.Exit<unknown, unknown>): number =>
  Option.match(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none(), {
    onNone: () => 0,
    onSome: (error) => (typeof error === "object" && error !== null && "attempts" in error && typeof error.attempts === "number" ? error.attempts : 0)
  })

/** The metrics one call of a model and endpoint updates, tagged once. */
interface Handles {
  readonly success: Metric.Metric.Counter<number>
  readonly latency: Metrics.Histogram
  readonly promptTokens: Metric.Metric.Counter<number>
  readonly completionTokens: Metric.Metric.Counter<number>
  readonly cost: Metric.Metric.Counter<number>
}

const handles = new Map<string, Map<string, Handles>>()

/** A call's metric handles: two Map lookups, not five label joins and lookups (`tagged`). */
const handlesFor = (model: string, endpoint: string): Handles => {
  let byEndpoint = handles.get(model)
  if (byEndpoint === undefined) handles.set(model, byEndpoint = new Map())
  let found = byEndpoint.get(endpoint)
  if (found === undefined) {
    found = {
      success: tagged(Metrics.requests, "model", model, "endpoint", endpoint, "outcome", "success"),
      latency: tagged(Metrics.latency, "endpoint", endpoint),
      promptTokens: tagged(Metrics.tokens, "model", model, "kind", "prompt"),
      completionTokens: tagged(Metrics.tokens, "model", model, "kind", "completion"),
      cost: tagged(Metrics.costMicroUsd, "model", model)
    }
    byEndpoint.set(endpoint, found)
  }
  return found
}

/** Updates the metrics for a call that ended. */
const record = <A, R>(call: Pipeline.Call<A, R>, startMillis: number, end: Pipeline.End<A>): void => {
  const { model, endpoint } = call
  const exit = end.exit
  const metrics = handlesFor(model, endpoint.name)
  if (Exit.isSuccess(exit)) metrics.success.unsafeUpdate(1, NO_LABELS)
  else tagged(Metrics.requests, "model", model, "endpoint", endpoint.name, "outcome", Pipeline.outcomeOf(exit)).unsafeUpdate(1, NO_LABELS)
  metrics.latency.unsafeUpdate(call.clock.unsafeCurrentTimeMillis() - startMillis, NO_LABELS)
  const attempts = end.received === undefined ? attemptsOf(exit) : end.received.attempts
  if (attempts > 1) Metrics.retries.unsafeUpdate(attempts - 1, NO_LABELS)
  // A cache hit spent no tokens and no money (the cache stage counts what it saved).
  const usage = end.received === undefined || end.received.cached === true ? undefined : endpoint.usage(end.received.value)
  if (usage !== undefined) {
    metrics.promptTokens.unsafeUpdate(usage.prompt_tokens, NO_LABELS)
    metrics.completionTokens.unsafeUpdate(usage.completion_tokens, NO_LABELS)
    // Through a router, the answer's price is the answering model's (a fallback's), under its name.
    const answered = end.received?.route?.model ?? model
    const cost = Budget.costOf(answered, usage, call.budget?.prices ?? Pricing.defaultTable)
    if (Option.isSome(cost)) (answered === model ? metrics.cost : tagged(Metrics.costMicroUsd, "model", answered)).unsafeUpdate(cost.value, NO_LABELS)
  }
}

/** Sets what the end of a call tells its span: the attempts, the status and the request id, or the error. */
const annotateEnd = (span: Tracer.Span, exit: Exit.Exit<Pipeline.Received<unknown>, ChatError>): void => {
  if (Exit.isSuccess(exit)) {
    const received = exit.value
    span.attribute("shepherd.attempts", received.attempts)
    span.attribute("http.response.status_code", received.status)
    if (received.requestId !== undefined) span.attribute("shepherd.request_id", received.requestId)
    return
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return
  const error = failure.value
  span.attribute("shepherd.error", error._tag)
  if ("attempts" in error) span.attribute("shepherd.attempts", error.attempts)
  if ("status" in error && error.status !== undefined) span.attribute("http.response.status_code", error.status)
  if ("requestId" in error && error.requestId !== undefined) span.attribute("shepherd.request_id", error.requestId)
}

/** A span's options: no stack capture, which cost more than the span itself (bench/throughput). */
const spanOptions = (model: string) => ({ kind: "client" as const, attributes: { "shepherd.model": model }, captureStackTrace: false })

/** Effect's built-in tracer, in force unless another is installed: its spans are kept nowhere. */
const nativeTracer: Tracer.Tracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/**
 * Whether a span made where the call runs would reach anyone: a tracer other than Effect's
 * built-in one is installed (`@effect/opentelemetry`'s, `Layer.setTracer`, `Effect.withTracer`).
 */
const tracedWith = <A, E, R>(f: (traced: boolean) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) => f(tracer !== nativeTracer))

/**
 * The observe stage: the call's metrics when it ends (a stream's when its scope closes; its time to
 * the first chunk when it opens) and, with `tracing` and a tracer installed that keeps spans (not
 * Effect's built-in one), a span `shepherd.<endpoint>` with the attempts, the status and the request
 * id, or the error. A stream's span covers the whole stream: it is made by {@link streamSpan}, and
 * this stage only sets its end attributes.
 */
export const observe = (options: { readonly tracing: boolean }): Pipeline.Stage => {
  const measured = <A, R>(next: Pipeline.Dispatch, call: Pipeline.Call<A, R>) => {
    const startMillis = call.clock.unsafeCurrentTimeMillis()
    const result = call.endpoint.onEnd(next(call), (end) => {
      record(call, startMillis, end)
      return Effect.void
    })
    if (call.endpoint.name !== "stream") return result
    return Effect.tap(result, () => {
      Metrics.timeToFirstToken.unsafeUpdate(call.clock.unsafeCurrentTimeMillis() - startMillis, NO_LABELS)
    })
  }
  if (!options.tracing) return (next) => (call) => Effect.suspend(() => measured(next, call))
  // One read of the tracer per call, which also defers the start as `Effect.suspend` would.
  return (next) => (call) =>
    Effect.tracerWith((tracer) => {
      const result = measured(next, call)
      if (tracer === nativeTracer) return result
      if (call.endpoint.name === "stream") {
        return Effect.flatMap(Effect.option(Effect.currentSpan), (span) =>
          Option.isNone(span) ? result : Effect.onExit(result, (exit) => Effect.sync(() => annotateEnd(span.value, exit))))
      }
      return Effect.useSpan(`shepherd.${call.endpoint.name}`, spanOptions(call.model), (span) =>
        Effect.withParentSpan(Effect.onExit(result, (exit) => Effect.sync(() => annotateEnd(span, exit))), span))
    })
}

/**
 * A stream's opening in the span `shepherd.stream` when `tracing` is on and a tracer that keeps
 * spans is installed. The span lives in the stream's scope (internal/chatStream.ts `stream` runs
 * the opening there): it ends, with the stream's exit, when the stream ends. This is what
 * `Stream.withSpan` gives, without the two stream flattens (`unwrap`, `unwrapScoped`) that would
 * carry every chunk through two more channel executors (bench/streaming).
 */
export const streamSpan = <A, E, R>(open: Effect.Effect<A, E, R>, model: string, tracing: boolean): Effect.Effect<A, E, R | Scope.Scope> =>
  tracing
    ? tracedWith((traced): Effect.Effect<A, E, R | Scope.Scope> =>
      traced ? Effect.flatMap(Effect.makeSpanScoped("shepherd.stream", spanOptions(model)), (span) => Effect.provideService(open, Tracer.ParentSpan, span)) : open
    )
    : open
