/**
 * Issue 13, item A.2, on TestClock: no pause or pace outlasts maxRetryAfter, and no start comes
 * after the call's deadline (test/limitsPace.test.ts: the adaptive pace itself, A.3).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { ChatClient, RateLimit } from "../src/index.js"
import { memoryWindow } from "../src/internal/slidingWindow.js"
import { type TimedAnswer, timedStub } from "./helpers.js"
import type { ChatSchema } from "../src/index.js"

const request: ChatSchema.ChatCompletionRequest = { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 10 }
const okBody = JSON.stringify({
  id: "c", object: "chat.completion", created: 1, model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "ok", refusal: null }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 }
})
const tooManyBody = JSON.stringify({ error: { message: "slow down", type: "requests", param: null, code: "rate_limit_exceeded" } })
/** `timedStub` with the body given by the status: a completion for 200, a rate-limit error otherwise. */
const stub = (answer: (i: number) => Omit<TimedAnswer, "body">) =>
  timedStub((i) => {
    const a = answer(i)
    return { ...a, body: a.status === 200 ? okBody : tooManyBody }
  })
const clientOn = (s: ReturnType<typeof stub>, options: ChatClient.Overrides = {}) =>
  ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", ...options }).pipe(Layer.provide(s.layer))
const create = Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.either(chat.create(request)))

describe("13.A.2 no wait outlasts maxRetryAfter or the call's deadline (TestClock)", () => {
  it.effect("13.A.2 a 429 asking 99999 s fails its own call; the shared pause it sets is cut to maxRetryAfter", () =>
    Effect.gen(function* () {
      const s = stub((i) => (i === 0 ? { status: 429, headers: { "retry-after": "99999" } } : { status: 200 }))
      const fiber = yield* Effect.fork(Effect.provide(Effect.forEach([0, 1], () => create, { concurrency: 1 }), clientOn(s)))
      yield* TestClock.adjust("61 seconds")
      const [first, second] = yield* Fiber.join(fiber)
      expect(first!._tag === "Left" && first.left._tag === "RateLimitError" && first.left.retryAfterMillis).toBe(99_999_000)
      expect(second!._tag).toBe("Right")
      expect(s.times).toEqual([0, 60_000]) // maxRetryAfter's default, not 27.7 hours
    }))

  it.effect("13.A.2 a request whose start would come after its total deadline fails at once, unsent, with TimeoutError{phase: total}", () =>
    Effect.gen(function* () {
      const s = stub(() => ({ status: 200 }))
      const [first, second] = yield* Effect.provide(
        Effect.forEach([0, 1], () => create, { concurrency: 1 }),
        clientOn(s, { limits: { rpm: 1 }, retry: { totalTimeout: "10 seconds" } })
      )
      expect(first!._tag).toBe("Right")
      expect(second!._tag === "Left" && second.left).toMatchObject({ _tag: "TimeoutError", phase: "total", timeoutMillis: 10_000, attempts: 0 })
      expect(s.times).toEqual([0])
      // The refused request took no slot: the next one after the window is sent at once.
      yield* TestClock.adjust("60 seconds")
      const third = yield* Effect.provide(create, clientOn(s, { limits: { rpm: 1 } }))
      expect(third._tag).toBe("Right")
    }))

  it.effect("13.A.2 a shared pause longer than a call's maxRetryAfter fails that call at once with the pause in the error", () =>
    Effect.gen(function* () {
      const s = stub((i) => (i === 0 ? { status: 429, headers: { "retry-after": "100" } } : { status: 200 }))
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        // This call accepts waits of up to 5 minutes: its 429 pauses everyone 100 s (and it waits them out).
        const patient = yield* Effect.fork(ChatClient.withRetry({ maxRetryAfter: "5 minutes" })(chat.create(request)))
        yield* TestClock.adjust("1 second")
        // This one accepts 10 s: it fails at once instead of waiting 99 s.
        const hasty = yield* Effect.either(ChatClient.withRetry({ maxRetryAfter: "10 seconds" })(chat.create(request)))
        expect(hasty._tag === "Left" && hasty.left).toMatchObject({ _tag: "RateLimitError", retryAfterMillis: 99_000, attempts: 0 })
        yield* TestClock.adjust("100 seconds")
        yield* Fiber.join(patient)
      }).pipe(Effect.provide(clientOn(s)))
      expect(s.times).toEqual([0, 100_000])
    }))

  it.effect("13.A.2 x-ratelimit-reset-requests: 9999h: the call that would wait fails at once with the wait, and the pace is forgotten", () =>
    Effect.gen(function* () {
      const s = stub(() => ({ status: 200, headers: { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "9999h" } }))
      const results = yield* Effect.provide(Effect.forEach([0, 1, 2], () => create, { concurrency: 1 }), clientOn(s))
      expect(results.map((r) => r._tag)).toEqual(["Right", "Left", "Right"])
      const refused = results[1]!
      expect(refused._tag === "Left" && refused.left._tag === "RateLimitError" && refused.left.retryAfterMillis! > 60_000).toBe(true)
      expect(s.times).toEqual([0, 0])
    }))
})

describe("13.A.2 properties", () => {
  it.effect.prop(
    "13.A.2 whatever 429s ask, the shared pause never exceeds the maxRetryAfter of the call that met them",
    { asks: FastCheck.array(FastCheck.record({ ask: FastCheck.integer({ min: 0, max: 1e10 }), cap: FastCheck.integer({ min: 1, max: 600_000 }) }), { minLength: 1, maxLength: 10 }) },
    ({ asks }) =>
      Effect.gen(function* () {
        const store = memoryWindow({})
        const limiter = yield* RateLimit.make({}).pipe(Effect.provideService(RateLimit.RateLimitStore, { open: () => Effect.succeed(store) }))
        for (const { ask, cap } of asks) {
          yield* limiter.withPermit(0, Effect.void, () => ({ retryAfterMillis: ask, rateLimited: true }), { maxWaitMillis: cap })
          expect(yield* store.pauseRemaining).toBe(Math.min(ask, cap))
          yield* TestClock.adjust(cap) // the pause is over: the next call starts at once
        }
      })
  )
})

