/** The retry stage (internal/retryPolicy.ts) and RetryPolicy's one decision path, withRetry as a dual. */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as TestClock from "effect/TestClock"
import * as ChatError from "../src/ChatError.js"
import * as Pipeline from "../src/internal/pipeline.js"
import { retry } from "../src/internal/retryPolicy.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { callFor, scriptedEndpoint } from "./pipelineHelpers.js"

const unavailable = (retryAfterMillis?: number) => new ChatError.ApiError({ status: 503, detail: "down", attempts: 1, retryAfterMillis })
const badRequest = new ChatError.ApiError({ status: 400, detail: "bad", attempts: 1 })
const dispatch = retry(Pipeline.exchange)

describe("retry stage", () => {
  it.effect("retries after the server's delay until an answer; each attempt is numbered and bounded", () =>
    Effect.gen(function* () {
      const { endpoint, started } = scriptedEndpoint([{ fail: unavailable(2000) }, { fail: unavailable(3000) }, { answer: {} }])
      const call = yield* callFor(endpoint)
      const fiber = yield* Effect.fork(dispatch(call))
      yield* TestClock.adjust("10 seconds")
      const received = yield* Fiber.join(fiber)
      expect(started).toEqual([0, 2000, 5000])
      expect(received).toMatchObject({ attempts: 3, latencyMillis: 5000 })
    }))

  it.effect("a final error stops at once with that error", () =>
    Effect.gen(function* () {
      const { endpoint, started } = scriptedEndpoint([{ fail: badRequest }])
      const error = yield* Effect.flip(dispatch(yield* callFor(endpoint)))
      expect(error).toBe(badRequest)
      expect(started).toEqual([0])
    }))

  it.effect("a wait that would end past the total deadline is not started: TimeoutError{total}", () =>
    Effect.gen(function* () {
      const { endpoint, started } = scriptedEndpoint([{ fail: unavailable(4000) }])
      const call = yield* callFor(endpoint, { retry: { totalTimeout: "5 seconds", maxRetries: 10 } })
      const fiber = yield* Effect.fork(dispatch(call))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(started).toEqual([0, 4000])
      expect(error).toMatchObject({ _tag: "TimeoutError", phase: "total", timeoutMillis: 5000, attempts: 2 })
    }))

  it.effect("the limiter is given the deadline, maxRetryAfter and the attempts already sent", () =>
    Effect.gen(function* () {
      const seen: Array<Pipeline.Attempt> = []
      const { endpoint } = scriptedEndpoint([{ fail: unavailable(1000) }, { answer: {} }])
      const call = yield* callFor(endpoint, { retry: { totalTimeout: "1 minute", maxRetryAfter: "30 seconds" } })
      const recording: Pipeline.Send = (c, attempt) => {
        seen.push(attempt)
        return Pipeline.exchange(c, attempt)
      }
      const fiber = yield* Effect.fork(retry(recording)(call))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(seen.map((a) => a.bounds)).toEqual([
        { deadline: 60_000, timeoutMillis: 60_000, maxWaitMillis: 30_000, attempts: 0 },
        { deadline: 60_000, timeoutMillis: 60_000, maxWaitMillis: 30_000, attempts: 1 }
      ])
    }))
})

describe("RetryPolicy.decide: one decision path for the loop and for schedule", () => {
  const policy = RetryPolicy.resolve({ maxRetries: 3, maxRetryAfter: "10 seconds" })
  const errors = FastCheck.oneof(
    FastCheck.constantFrom<ChatError.ChatError>(badRequest, unavailable(), new ChatError.TimeoutError({ phase: "attempt", timeoutMillis: 1, attempts: 1 })),
    FastCheck.integer({ min: 0, max: 20_000 }).map(unavailable)
  )

  it.prop("without a deadline in reach, the loop's decision is the schedule's", [errors, FastCheck.integer({ min: 1, max: 5 }), FastCheck.double({ min: 0, max: 0.999, noNaN: true })], ([error, retry, random]) => {
    expect(RetryPolicy.decide(policy, error, retry, random, { nowMillis: 0, deadlineMillis: Number.MAX_SAFE_INTEGER })).toEqual(
      RetryPolicy.decide(policy, error, retry, random)
    )
  })

  it.prop("with a deadline, a retry is never planned to end at or past it", [errors, FastCheck.integer({ min: 1, max: 5 }), FastCheck.double({ min: 0, max: 0.999, noNaN: true }), FastCheck.integer({ min: 0, max: 30_000 })], ([error, retry, random, left]) => {
    const decision = RetryPolicy.decide(policy, error, retry, random, { nowMillis: 1000, deadlineMillis: 1000 + left })
    if (decision._tag === "Retry") expect(1000 + decision.delayMillis).toBeLessThan(1000 + left)
  })

  it("an attempt that timed out at the deadline ran into it", () => {
    const timedOut = new ChatError.TimeoutError({ phase: "attempt", timeoutMillis: 5, attempts: 1 })
    expect(RetryPolicy.decide(policy, timedOut, 1, 0.5, { nowMillis: 100, deadlineMillis: 100 })).toEqual({ _tag: "Deadline" })
    expect(RetryPolicy.decide(policy, timedOut, 1, 0.5)._tag).toBe("Retry")
  })

  it("isRetryableStatus: 408, 409, 429 and 5xx", () => {
    expect([400, 401, 404, 408, 409, 429, 500, 503].filter(RetryPolicy.isRetryableStatus)).toEqual([408, 409, 429, 500, 503])
  })
})

describe("RetryPolicy.withRetry", () => {
  const read = FiberRef.get(RetryPolicy.currentRetry)

  it.effect("data-last and data-first set the same per-fiber options; an inner one wins field by field", () =>
    Effect.gen(function* () {
      expect(yield* read.pipe(RetryPolicy.withRetry({ maxRetries: 1 }))).toEqual({ maxRetries: 1 })
      expect(yield* RetryPolicy.withRetry(read, { maxRetries: 2 })).toEqual({ maxRetries: 2 })
      const nested = RetryPolicy.withRetry(RetryPolicy.withRetry(read, { maxRetries: 0 }), { maxRetries: 5, totalTimeout: "1 second" })
      expect(yield* nested).toEqual({ maxRetries: 0, totalTimeout: "1 second" })
      expect(yield* read).toBeUndefined()
    }))

  it.effect("an invalid option stops the effect before it runs, naming the option", () =>
    Effect.gen(function* () {
      let ran = false
      const exit = yield* Effect.exit(RetryPolicy.withRetry(Effect.sync(() => { ran = true }), { factor: 0.5 }))
      expect(ran).toBe(false)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause) ? String(Cause.squash(exit.cause)) : "").toContain("retry.factor")
    }))
})
