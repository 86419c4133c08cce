/** Metrics and spans, against MockServer. */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { Budget, ChatClient, Metrics } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { recordingTracer } from "./helpers.js"

const KEY = "sk-metrics-1f2e3d4c5b6a7980"
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hello" }] }


const count = (entries: ReadonlyArray<Metrics.SnapshotEntry>, name: string, labels: Record<string, string>) =>
  entries.filter((e) => e.name === name && Object.entries(labels).every(([k, v]) => e.labels[k] === v))
    .reduce((sum, e) => sum + (e.value.type === "counter" ? e.value.count : e.value.count), 0)

describe("Metrics and spans", () => {
  it.scopedLive("calls update the request, retry, 429, token, cost, latency and first-token metrics", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, script: [{ type: "rate_limit", retryAfterMillis: 1 }, "ok", { type: "bad_request" }] })
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY), retry: { initialDelay: "1 millis" } })), ChatClient.ChatClient)
      const model = `metrics-test-model-${Date.now()}` // a label of its own in the process-wide metrics
      const before = yield* Metrics.snapshot
      const ok = yield* chat.createWithMetadata({ ...request, model })
      yield* Effect.flip(chat.create({ ...request, model }))
      yield* Stream.runDrain(chat.stream({ ...request, model, stream_options: { include_usage: true } }))
      const after = yield* Metrics.snapshot
      const delta = (name: string, labels: Record<string, string> = {}) => count(after, name, labels) - count(before, name, labels)
      expect(delta("shepherd_requests_total", { model, outcome: "success", endpoint: "chat" })).toBe(1)
      expect(delta("shepherd_requests_total", { model, outcome: "ApiError" })).toBe(1)
      expect(delta("shepherd_requests_total", { model, outcome: "success", endpoint: "stream" })).toBe(1)
      expect(delta("shepherd_retries_total")).toBeGreaterThanOrEqual(1)
      expect(delta("shepherd_rate_limited_total")).toBeGreaterThanOrEqual(1)
      expect(delta("shepherd_tokens_total", { model, kind: "prompt" })).toBe(2 * ok.completion.usage!.prompt_tokens)
      expect(delta("shepherd_request_duration_ms", { endpoint: "chat" })).toBeGreaterThanOrEqual(2)
      expect(delta("shepherd_time_to_first_token_ms")).toBeGreaterThanOrEqual(1)
      // an unknown model has no price: no cost counted for it
      expect(delta("shepherd_cost_micro_usd_total", { model })).toBe(0)
      yield* chat.create(request)
      const priced = yield* Metrics.snapshot
      expect(count(priced, "shepherd_cost_micro_usd_total", { model: "gpt-4.1-mini" })).toBeGreaterThan(count(after, "shepherd_cost_micro_usd_total", { model: "gpt-4.1-mini" }))
      expect(JSON.stringify(priced)).not.toContain(KEY)
    }))

  it.scopedLive("a span per call with the model, attempts, status and request id, never the key; none with tracing off", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, script: [{ type: "server_error", status: 503 }] })
      const { spans, tracer } = recordingTracer()
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY), retry: { initialDelay: "1 millis" } })), ChatClient.ChatClient)
      yield* chat.create(request).pipe(Effect.withTracer(tracer))
      yield* Stream.runDrain(chat.stream(request)).pipe(Effect.withTracer(tracer))
      const [call, stream] = spans.filter((s) => s.name.startsWith("shepherd."))
      expect(call!.name).toBe("shepherd.chat")
      expect(Object.fromEntries(call!.attributes)).toMatchObject({ "shepherd.model": "gpt-4.1-mini", "shepherd.attempts": 2, "http.response.status_code": 200, "shepherd.request_id": "req_mock_2" })
      expect(call!.status._tag).toBe("Ended")
      expect(stream!.name).toBe("shepherd.stream")
      expect(stream!.attributes.get("shepherd.request_id")).toBe("req_mock_3")
      expect(stream!.status._tag).toBe("Ended")
      expect(JSON.stringify(spans.map((s) => [...s.attributes]))).not.toContain(KEY)

      const quiet = recordingTracer()
      const untraced = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY), tracing: false })), ChatClient.ChatClient)
      yield* untraced.create(request).pipe(Effect.withTracer(quiet.tracer))
      expect(quiet.spans.filter((s) => s.name.startsWith("shepherd."))).toEqual([])
    }))

  it.scopedLive("a call or a stream the budget refuses is counted, by its outcome, and never sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provideMerge(Budget.layer({ maxUsd: 0.000001 }))))
      const chat = Context.get(context, ChatClient.ChatClient)
      const model = "gpt-4.1"
      const before = yield* Metrics.snapshot
      expect((yield* Effect.flip(chat.create({ ...request, model })))._tag).toBe("BudgetExceededError")
      expect((yield* Effect.flip(Stream.runDrain(chat.stream({ ...request, model }))))._tag).toBe("BudgetExceededError")
      const after = yield* Metrics.snapshot
      const delta = (labels: Record<string, string>) => count(after, "shepherd_requests_total", labels) - count(before, "shepherd_requests_total", labels)
      expect(delta({ model, endpoint: "chat", outcome: "BudgetExceededError" })).toBe(1)
      expect(delta({ model, endpoint: "stream", outcome: "BudgetExceededError" })).toBe(1)
      expect(yield* mock.journal).toHaveLength(0)
    }))

  it.scopedLive("a stream ended by its consumer's failure is counted under that failure's tag, or `other` when it has none (null, a string); its span ends with it", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({})
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
      const model = `metrics-consumer-model-${Date.now()}`
      const { spans, tracer } = recordingTracer()
      const before = yield* Metrics.snapshot
      const failures: ReadonlyArray<unknown> = [null, "stop", { _tag: "Stop" }]
      for (const failure of failures) {
        let n = 0
        const exit = yield* Effect.exit(chat.streamForEach({ ...request, model }, () => (++n === 2 ? Effect.fail(failure) : Effect.void)).pipe(Effect.withTracer(tracer)))
        // The consumer's own failure, and nothing else (no defect from reading a tag it lacks).
        expect(exit).toEqual(Exit.fail(failure))
      }
      const viaStream = yield* Effect.exit(Stream.runForEach(chat.stream({ ...request, model }), () => Effect.fail(null)).pipe(Effect.withTracer(tracer)))
      expect(viaStream).toEqual(Exit.fail(null))
      const after = yield* Metrics.snapshot
      const delta = (labels: Record<string, string>) => count(after, "shepherd_requests_total", { model, endpoint: "stream", ...labels }) - count(before, "shepherd_requests_total", { model, endpoint: "stream", ...labels })
      expect(delta({ outcome: "other" })).toBe(3)
      expect(delta({ outcome: "Stop" })).toBe(1)
      const streamSpans = spans.filter((s) => s.name === "shepherd.stream")
      expect(streamSpans).toHaveLength(4)
      // Each ends with the stream's failure (the error attribute is set only by a failure to open).
      expect(streamSpans.map((s) => s.status._tag === "Ended" && Exit.isFailure(s.status.exit))).toEqual([true, true, true, true])
    }))
})
