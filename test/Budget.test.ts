import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { Budget, ChatClient, Pricing } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { completion, errorBody, stubClient } from "./helpers.js"

const request = (model = "gpt-4.1"): ChatSchema.ChatCompletionRequest => ({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 1000 })
const body = JSON.stringify(completion({ model: "gpt-4.1", usage: { prompt_tokens: 8, completion_tokens: 2 } }))

/** A stub answering after `delay` (TestClock), or with `status`. */
const stub = (status = 200, delay: Duration.DurationInput = "1 second") =>
  stubClient([{ status, body: status === 200 ? body : errorBody("no", "t") }], { delay })

/** A client that finds the budget in its context (and the budget, for the test to read). */
const withBudget = (maxUsd: number, s: ReturnType<typeof stub>) =>
  ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", retry: { maxRetries: 0 } }).pipe(
    Layer.provide(s.layer),
    Layer.provideMerge(Budget.layer({ maxUsd }))
  )

describe("Budget with ChatClient", () => {
  // worst case of one request: ~8 prompt tokens x $2 + 1,000 x $8 per 1M = about $0.008
  it.effect("holds the worst case while a call is in flight, so a second that cannot fit is refused unsent", () =>
    Effect.gen(function* () {
      const s = stub()
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        const budget = yield* Budget.Budget
        const first = yield* Effect.fork(chat.create(request()))
        yield* TestClock.adjust("10 millis")
        const refused = yield* Effect.flip(chat.create(request()))
        expect(refused._tag).toBe("BudgetExceededError")
        expect(refused.message).toContain("Raise the budget")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(first)
        const after = yield* budget.snapshot
        // the actual cost replaced the hold: 8 x $2 + 2 x $8 per 1M tokens
        expect(after).toEqual({ limitMicroUsd: 10_000, spentMicroUsd: 16 + 16, reservedMicroUsd: 0 })
        // and now there is room again
        const again = yield* Effect.fork(chat.create(request()))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(again)
        expect(s.count()).toBe(2)
      }).pipe(Effect.provide(withBudget(0.01, s)))
    }))

  it.effect("a call the server refused costs nothing; a model without a price cannot be budgeted", () =>
    Effect.gen(function* () {
      const s = stub(400, "1 millis")
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        const budget = yield* Budget.Budget
        const fiber = yield* Effect.fork(Effect.flip(chat.create(request())))
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(fiber))._tag).toBe("ApiError")
        expect(yield* budget.snapshot).toEqual({ limitMicroUsd: 1_000_000, spentMicroUsd: 0, reservedMicroUsd: 0 })
        const unpriced = yield* Effect.flip(chat.create(request("my-local-llama")))
        expect(unpriced._tag).toBe("BudgetExceededError")
        expect(unpriced.message).toContain("no price is known")
        expect(s.count()).toBe(1)
      }).pipe(Effect.provide(withBudget(1, s)))
    }))

  it("formats micro-dollars for people", () => {
    expect(Pricing.format(8_016)).toBe("$0.008016")
  })
})
