/** The budget stage (Budget.guard): hold the worst case, settle what the call cost, by how it ended. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Budget from "../src/Budget.js"
import * as ChatError from "../src/ChatError.js"
import * as Pipeline from "../src/internal/pipeline.js"
import { retry } from "../src/internal/retryPolicy.js"
import * as Pricing from "../src/Pricing.js"
import type * as RateLimit from "../src/RateLimit.js"
import { callFor, scriptedEndpoint, type Step } from "./pipelineHelpers.js"

const dispatch = Budget.guard(retry(Pipeline.exchange))
const model = "gpt-4.1"
const hold = Option.getOrThrow(Pricing.worstCase(model, 10, 100))

/** Runs one call of `steps` (no retries) under a fresh budget; the budget's snapshot after it. */
const spentAfter = (steps: ReadonlyArray<Step>, limiter?: RateLimit.Service) =>
  Effect.gen(function* () {
    const budget = yield* Budget.make({ maxUsd: 1 })
    const { endpoint } = scriptedEndpoint(steps)
    const call = yield* callFor(endpoint, { budget, retry: { maxRetries: 0 }, ...(limiter === undefined ? {} : { limiter }) })
    yield* Effect.exit(dispatch(call))
    return yield* budget.snapshot
  })

describe("budget stage", () => {
  it.effect("an answer with usage settles its price", () =>
    Effect.gen(function* () {
      const usage = { prompt_tokens: 10, completion_tokens: 20 }
      const snapshot = yield* spentAfter([{ answer: { usage } }])
      expect(snapshot).toMatchObject({ spentMicroUsd: Option.getOrThrow(Pricing.cost(model, usage)), reservedMicroUsd: 0 })
    }))

  it.effect("an answer without usage keeps its hold", () =>
    Effect.gen(function* () {
      expect((yield* spentAfter([{ answer: {} }])).spentMicroUsd).toBe(hold)
    }))

  it.effect("a server refusal (a final 400) costs nothing", () =>
    Effect.gen(function* () {
      expect((yield* spentAfter([{ fail: new ChatError.ApiError({ status: 400, detail: "bad", attempts: 1 }) }])).spentMicroUsd).toBe(0)
    }))

  it.effect("a failure in transit keeps the hold: it may have been billed", () =>
    Effect.gen(function* () {
      expect((yield* spentAfter([{ fail: new ChatError.TransportError({ code: "ECONNRESET", detail: "reset", attempts: 1 }) }])).spentMicroUsd).toBe(hold)
    }))

  it.effect("a call the limiter refused before sending costs nothing", () =>
    Effect.gen(function* () {
      const refusing: RateLimit.Service = {
        withPermit: () => Effect.fail(new ChatError.RateLimitError({ retryAfterMillis: 120_000, attempts: 0 })),
        countsTokens: () => false
      }
      const budget = yield* Budget.make({ maxUsd: 1 })
      const { endpoint, started } = scriptedEndpoint([{ answer: {} }])
      const call = yield* callFor(endpoint, { budget, limiter: refusing })
      const limited = Budget.guard(retry((c, attempt) => c.limiter.withPermit(0, Pipeline.exchange(c, attempt), () => ({}), attempt.bounds)))
      yield* Effect.flip(limited(call))
      expect(started).toEqual([])
      expect((yield* budget.snapshot).spentMicroUsd).toBe(0)
    }))

  it.effect("a call interrupted in flight keeps its hold; the hold is released from the reservations", () =>
    Effect.gen(function* () {
      const budget = yield* Budget.make({ maxUsd: 1 })
      const { endpoint } = scriptedEndpoint(["hang"])
      const fiber = yield* Effect.fork(dispatch(yield* callFor(endpoint, { budget })))
      yield* TestClock.adjust("1 second")
      expect((yield* budget.snapshot).reservedMicroUsd).toBe(hold)
      yield* Fiber.interrupt(fiber)
      expect(yield* budget.snapshot).toMatchObject({ spentMicroUsd: hold, reservedMicroUsd: 0 })
    }))

  it.effect("a call that cannot fit fails unsent with BudgetExceededError", () =>
    Effect.gen(function* () {
      const budget = yield* Budget.make({ maxUsd: 0.000001 })
      const { endpoint, started } = scriptedEndpoint([{ answer: {} }])
      const error = yield* Effect.flip(dispatch(yield* callFor(endpoint, { budget })))
      expect(error._tag).toBe("BudgetExceededError")
      expect(started).toEqual([])
    }))

  it.effect("without a budget the call passes through", () =>
    Effect.gen(function* () {
      const { endpoint, started } = scriptedEndpoint([{ answer: {} }])
      yield* dispatch(yield* callFor(endpoint))
      expect(started).toEqual([0])
    }))

  it("costOf: one rule for chat and embeddings usage; none without usage or price", () => {
    expect(Budget.costOf(model, { prompt_tokens: 1_000_000, completion_tokens: 0 }, Pricing.defaultTable)).toEqual(Pricing.cost(model, { prompt_tokens: 1_000_000, completion_tokens: 0 }))
    expect(Budget.costOf(model, undefined, Pricing.defaultTable)).toEqual(Option.none())
    expect(Budget.costOf(model, null, Pricing.defaultTable)).toEqual(Option.none())
    expect(Budget.costOf("no-such-model", { prompt_tokens: 1, completion_tokens: 1 }, Pricing.defaultTable)).toEqual(Option.none())
  })
})
