/** The limit stage (internal/limit.ts): what each attempt asks of the limiter and tells it, and no metrics. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as ChatError from "../src/ChatError.js"
import { limit } from "../src/internal/limit.js"
import * as Pipeline from "../src/internal/pipeline.js"
import { retry } from "../src/internal/retryPolicy.js"
import * as Metrics from "../src/Metrics.js"
import { callFor, recordingLimiter, scriptedEndpoint } from "./pipelineHelpers.js"

const dispatch = retry(limit(Pipeline.exchange))
const counts = Effect.all([Metric.value(Metrics.attempts), Metric.value(Metrics.rateLimited)])

describe("limit stage", () => {
  it.effect("asks for the prompt plus the allowance when the limiter counts tokens, and tells it the tokens used", () =>
    Effect.gen(function* () {
      const { limiter, seen } = recordingLimiter(true)
      const { endpoint } = scriptedEndpoint([{ answer: { usage: { prompt_tokens: 12, completion_tokens: 30 } } }])
      yield* dispatch(yield* callFor(endpoint, { limiter, promptTokens: 12, allowance: 100 }))
      expect(seen).toHaveLength(1)
      expect(seen[0]!.tokens).toBe(112)
      expect(seen[0]!.outcome).toEqual({ usedTokens: 42, headers: { "x-request-id": "req-1" } })
    }))

  it.effect("asks for no tokens (and counts none) when the limiter needs no counts", () =>
    Effect.gen(function* () {
      const { limiter, seen } = recordingLimiter(false)
      let counted = 0
      const { endpoint } = scriptedEndpoint([{ answer: {} }])
      const call = yield* callFor(endpoint, { limiter })
      yield* dispatch({ ...call, tokens: Pipeline.Tokens.of(100, null, () => ++counted) })
      expect(seen[0]!.tokens).toBe(0)
      expect(counted).toBe(0)
    }))

  it.effect("a 429 tells the limiter its delay and that it was rate limited; other failures tell nothing; no metric moves", () =>
    Effect.gen(function* () {
      const { limiter, seen } = recordingLimiter()
      const { endpoint } = scriptedEndpoint([
        { fail: new ChatError.RateLimitError({ retryAfterMillis: 0, attempts: 1 }) },
        { fail: new ChatError.ApiError({ status: 400, detail: "bad", attempts: 2 }) }
      ])
      const before = yield* counts
      yield* Effect.flip(dispatch(yield* callFor(endpoint, { limiter })))
      expect(seen.map((s) => s.outcome)).toEqual([{ retryAfterMillis: 0, rateLimited: true }, {}])
      expect(yield* counts).toEqual(before)
    }))
})
