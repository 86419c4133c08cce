/**
 * The services a call runs with (internal/callContext.ts): a Budget or RateLimit merged beside the
 * client is enforced, not silently ignored; one given to the client's layer wins.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { Budget, ChatClient, RateLimit } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { stubClient } from "./helpers.js"

const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1", messages: [{ role: "user", content: "hi" }], max_tokens: 1000 }
const completion = JSON.stringify({
  id: "c", object: "chat.completion", created: 1, model: "gpt-4.1",
  choices: [{ index: 0, message: { role: "assistant", content: "ok", refusal: null }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 }
})
const client = (stub: ReturnType<typeof stubClient>) =>
  ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", retry: { maxRetries: 0 } }).pipe(Layer.provide(stub.layer))
const create = Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request))

describe("services picked up by a call", () => {
  it.effect("Layer.merge(ChatClient.layer..., Budget.layer(...)): the budget is enforced", () =>
    Effect.gen(function* () {
      const stub = stubClient([{ status: 200, body: completion }])
      const error = yield* Effect.flip(Effect.provide(create, Layer.merge(client(stub), Budget.layer({ maxUsd: 0.000001 }))))
      expect(error._tag).toBe("BudgetExceededError")
      expect(stub.sent).toHaveLength(0)
    }))

  it.effect("a merged budget is charged what the call cost", () =>
    Effect.gen(function* () {
      const stub = stubClient([{ status: 200, body: completion }])
      const snapshot = yield* Effect.provide(Effect.zipRight(create, Effect.flatMap(Budget.Budget, (b) => b.snapshot)), Layer.merge(client(stub), Budget.layer({ maxUsd: 1 })))
      expect(snapshot.spentMicroUsd).toBeGreaterThan(0)
      expect(snapshot.reservedMicroUsd).toBe(0)
    }))

  it.effect("a budget given to the client's layer wins over one in the call's context", () =>
    Effect.gen(function* () {
      const stub = stubClient([{ status: 200, body: completion }])
      const built = client(stub).pipe(Layer.provide(Budget.layer({ maxUsd: 1 })))
      yield* Effect.provide(create, Layer.merge(built, Budget.layer({ maxUsd: 0.000001 })))
      expect(stub.sent).toHaveLength(1)
    }))

  it.effect("Layer.merge(ChatClient.layer..., RateLimit.layer({ rpm: 1 })): the second call waits for the window", () =>
    Effect.gen(function* () {
      const stub = stubClient([{ status: 200, body: completion }])
      const fiber = yield* Effect.fork(Effect.provide(Effect.zipRight(create, create), Layer.merge(client(stub), RateLimit.layer({ rpm: 1, adaptive: false }))))
      yield* TestClock.adjust("30 seconds")
      expect(stub.sent).toHaveLength(1)
      yield* TestClock.adjust("31 seconds")
      yield* Fiber.join(fiber)
      expect(stub.sent).toHaveLength(2)
    }))
})
