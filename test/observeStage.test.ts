/** The observe stage (internal/observe.ts): the attempt count, the call's metrics and span. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as ChatError from "../src/ChatError.js"
import * as Observe from "../src/internal/observe.js"
import * as Pipeline from "../src/internal/pipeline.js"
import { retry } from "../src/internal/retryPolicy.js"
import * as Metrics from "../src/Metrics.js"
import { callFor, scriptedEndpoint } from "./pipelineHelpers.js"
import { recordingTracer } from "./helpers.js"

const dispatch = (tracing: boolean) => Observe.observe({ tracing })(retry(Observe.countAttempt(Pipeline.exchange)))
const requests = (model: string, outcome: string) => Metric.value(Observe.tagged(Metrics.requests, "model", model, "endpoint", "chat", "outcome", outcome))

describe("observe stage", () => {
  it.effect("counts every attempt and each 429, then the call once with its outcome, retries and tokens", () =>
    Effect.gen(function* () {
      const model = "observe-model-1"
      const { endpoint } = scriptedEndpoint([
        { fail: new ChatError.RateLimitError({ retryAfterMillis: 0, attempts: 1 }) },
        { answer: { usage: { prompt_tokens: 7, completion_tokens: 3 } } }
      ])
      const [attempts, limited, retries] = yield* Effect.all([Metric.value(Metrics.attempts), Metric.value(Metrics.rateLimited), Metric.value(Metrics.retries)])
      yield* dispatch(false)(yield* callFor(endpoint, { model }))
      expect((yield* Metric.value(Metrics.attempts)).count - attempts.count).toBe(2)
      expect((yield* Metric.value(Metrics.rateLimited)).count - limited.count).toBe(1)
      expect((yield* Metric.value(Metrics.retries)).count - retries.count).toBe(1)
      expect((yield* requests(model, "success")).count).toBe(1)
      expect((yield* Metric.value(Observe.tagged(Metrics.tokens, "model", model, "kind", "completion"))).count).toBe(3)
    }))

  it.effect("a failed call is counted under its error's tag", () =>
    Effect.gen(function* () {
      const model = "observe-model-2"
      const { endpoint } = scriptedEndpoint([{ fail: new ChatError.ApiError({ status: 400, detail: "bad", attempts: 1 }) }])
      yield* Effect.flip(dispatch(false)(yield* callFor(endpoint, { model })))
      expect((yield* requests(model, "ApiError")).count).toBe(1)
    }))

  it.effect("with tracing, one span shepherd.chat with the attempts, status and request id", () =>
    Effect.gen(function* () {
      const { tracer, spans } = recordingTracer()
      const { endpoint } = scriptedEndpoint([{ answer: {} }])
      yield* dispatch(true)(yield* callFor(endpoint)).pipe(Effect.withTracer(tracer))
      expect(spans.map((s) => s.name)).toEqual(["shepherd.chat"])
      expect(Object.fromEntries(spans[0]!.attributes)).toMatchObject({ "shepherd.attempts": 1, "http.response.status_code": 200, "shepherd.request_id": "req-1" })
    }))

  it("tagged makes one metric per label combination", () => {
    expect(Observe.tagged(Metrics.tokens, "model", "m", "kind", "prompt")).toBe(Observe.tagged(Metrics.tokens, "model", "m", "kind", "prompt"))
    expect(Observe.tagged(Metrics.tokens, "model", "m", "kind", "prompt")).not.toBe(Observe.tagged(Metrics.tokens, "model", "m", "kind", "completion"))
  })
})
