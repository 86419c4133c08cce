import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { ChatClient, ChatError, RetryPolicy } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { completion as fixture, errorBody, stubClient } from "./helpers.js"

const request: ChatSchema.ChatCompletionRequest = { model: "m", messages: [{ role: "user", content: "hi" }] }
const completion = JSON.stringify(fixture({ model: "m", usage: null }))

/** One scripted answer. */
interface Reply {
  readonly status: number | "reset"
  readonly retryAfter?: { readonly form: "seconds" | "ms" | "date" | "both"; readonly n: number }
  readonly shouldRetry?: boolean
}

/** A stub that answers `replies` in order (the last repeats) and records the clock time of each attempt. */
const scripted = (replies: ReadonlyArray<Reply>) => {
  const stub = stubClient((i, now) => {
    const reply = replies[Math.min(i, replies.length - 1)]!
    if (reply.status === "reset") return { transport: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) }
    const headers: Record<string, string> = { "content-type": "application/json" }
    const ra = reply.retryAfter
    if (ra !== undefined) {
      if (ra.form === "seconds") headers["retry-after"] = String(ra.n)
      if (ra.form === "ms" || ra.form === "both") headers["retry-after-ms"] = String(ra.n)
      if (ra.form === "both") headers["retry-after"] = "999"
      if (ra.form === "date") headers["retry-after"] = new Date(now + ra.n * 1000).toUTCString()
    }
    if (reply.shouldRetry !== undefined) headers["x-should-retry"] = String(reply.shouldRetry)
    return { status: reply.status, body: reply.status < 300 ? completion : errorBody("no", "t"), headers }
  })
  return { times: stub.times, layer: stub.layer }
}

/** Runs the call under TestClock, jumping to each next scheduled wake-up until it ends. */
const drive = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < 10_000; i++) {
      yield* Effect.yieldNow()
      const done = yield* Fiber.poll(fiber)
      if (done._tag === "Some") return done.value
      const sleeps = yield* TestClock.sleeps()
      const now = yield* Clock.currentTimeMillis
      const next = Chunk.reduce(sleeps, Number.POSITIVE_INFINITY, (a, b) => Math.min(a, b))
      if (Number.isFinite(next)) yield* TestClock.setTime(Math.max(next, now))
    }
    throw new Error("the call did not end")
  })

const retryable = (r: Reply): boolean =>
  r.shouldRetry ?? (r.status === "reset" || r.status === 408 || r.status === 409 || r.status === 429 || r.status >= 500)

const serverDelay = (r: Reply, at: number): number | undefined => {
  const ra = r.retryAfter
  if (ra === undefined) return undefined
  if (ra.form === "date") return Math.max(0, Math.floor((at + ra.n * 1000) / 1000) * 1000 - at)
  return ra.form === "seconds" ? ra.n * 1000 : ra.n
}

const arbitraryReply: FastCheck.Arbitrary<Reply> = FastCheck.record(
  {
    status: FastCheck.constantFrom<Array<number | "reset">>(200, 400, 401, 404, 408, 409, 422, 429, 500, 502, 503, "reset"),
    retryAfter: FastCheck.option(
      FastCheck.record({ form: FastCheck.constantFrom<Array<"seconds" | "ms" | "date" | "both">>("seconds", "ms", "date", "both"), n: FastCheck.integer({ min: 0, max: 90 }) }),
      { nil: undefined }
    ),
    shouldRetry: FastCheck.option(FastCheck.boolean(), { nil: undefined })
  },
  { requiredKeys: ["status"] }
).map((r) => (r.status === "reset" ? { status: r.status } : r.retryAfter === undefined ? { status: r.status, ...(r.shouldRetry === undefined ? {} : { shouldRetry: r.shouldRetry }) } : r) as Reply)

describe("retries (stub HttpClient, TestClock)", () => {
  it("property: attempts happen at the server's times or within the backoff; never more than maxRetries + 1; final answers stop; the total deadline holds", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.array(arbitraryReply, { minLength: 1, maxLength: 8 }),
        FastCheck.integer({ min: 0, max: 6 }),
        FastCheck.constantFrom(30, 600),
        async (replies, maxRetries, totalSeconds) => {
          const policy = { maxRetries, initialDelay: "500 millis", maxDelay: "8 seconds", maxRetryAfter: "60 seconds", totalTimeout: `${totalSeconds} seconds` } as const
          const stub = scripted(replies)
          const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", retry: policy }).pipe(Layer.provide(stub.layer))
          const exit = await Effect.runPromise(
            drive(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.createWithMetadata(request)), layer)).pipe(Effect.provide(TestContext.TestContext))
          )
          const times = stub.times
          expect(times.length).toBeGreaterThanOrEqual(1)
          expect(times.length).toBeLessThanOrEqual(maxRetries + 1)
          expect(times[times.length - 1]! - times[0]!).toBeLessThanOrEqual(totalSeconds * 1000)
          // Walk the model: each answer either ends the call or says how long until the next attempt.
          for (let i = 0; i < times.length; i++) {
            const reply = replies[Math.min(i, replies.length - 1)]!
            const isLast = i === times.length - 1
            const success = reply.status !== "reset" && reply.status < 300
            if (success || !retryable(reply)) {
              expect(isLast).toBe(true)
              break
            }
            if (isLast) break // retries used up, a server ask too long, or the deadline: checked below
            const gap = times[i + 1]! - times[i]!
            const asked = serverDelay(reply, times[i]!)
            if (asked !== undefined) expect(gap).toBe(asked)
            else {
              expect(gap).toBeGreaterThanOrEqual(0)
              expect(gap).toBeLessThanOrEqual(Math.min(8000, 500 * 2 ** i))
            }
          }
          const lastReply = replies[Math.min(times.length - 1, replies.length - 1)]!
          if (Exit.isSuccess(exit)) {
            expect(lastReply.status !== "reset" && lastReply.status < 300).toBe(true)
            expect(exit.value.attempts).toBe(times.length)
          } else if (exit.cause._tag === "Fail") {
            const error = exit.cause.error
            if (error._tag === "TimeoutError") expect(error.phase).toBe("total")
            else if ("attempts" in error) expect(error.attempts).toBe(times.length)
            if (error._tag === "ApiError") expect(error.status).toBe(lastReply.status)
          }
          return true
        }
      ),
      { numRuns: 200 }
    )
  }, 60_000)

  it.effect("honours Retry-After before the next attempt, and succeeds", () =>
    Effect.gen(function* () {
      const stub = scripted([{ status: 429, retryAfter: { form: "seconds", n: 7 } }, { status: 200 }])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(Layer.provide(stub.layer))
      const fiber = yield* Effect.fork(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.createWithMetadata(request)), layer))
      yield* TestClock.adjust("6999 millis")
      expect(stub.times).toEqual([0])
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(fiber)
      expect(stub.times).toEqual([0, 7000])
      expect(result.attempts).toBe(2)
      expect(result.latencyMillis).toBe(7000)
    }))

  it.effect("a server ask above maxRetryAfter fails at once with the RateLimitError that carries it", () =>
    Effect.gen(function* () {
      const stub = scripted([{ status: 429, retryAfter: { form: "seconds", n: 3600 } }, { status: 200 }])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(Layer.provide(stub.layer))
      const error = yield* Effect.flip(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)), layer))
      expect(error).toMatchObject({ _tag: "RateLimitError", retryAfterMillis: 3_600_000, attempts: 1 })
      expect(stub.times).toEqual([0])
    }))

  it.effect("interrupting during a backoff sleep makes no further attempt", () =>
    Effect.gen(function* () {
      const stub = scripted([{ status: 503, retryAfter: { form: "seconds", n: 10 } }, { status: 200 }])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(Layer.provide(stub.layer))
      const fiber = yield* Effect.fork(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)), layer))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 minute")
      expect(stub.times).toEqual([0])
    }))

  it.effect("withRetry overrides the client's policy for one call", () =>
    Effect.gen(function* () {
      const stub = scripted([{ status: 500 }])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(Layer.provide(stub.layer))
      const error = yield* Effect.flip(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => ChatClient.withRetry({ maxRetries: 0 })(chat.create(request))), layer))
      expect(error).toMatchObject({ _tag: "ApiError", status: 500, attempts: 1 })
      expect(stub.times).toEqual([0])
    }))

  it.effect("the total deadline ends a hanging sequence with TimeoutError{total}", () =>
    Effect.gen(function* () {
      const stub = scripted([{ status: 502 }])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", retry: { maxRetries: 100, totalTimeout: "5 seconds", initialDelay: "1 second", maxDelay: "1 second" } }).pipe(Layer.provide(stub.layer))
      const exit = yield* drive(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)), layer))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") expect(exit.cause.error).toMatchObject({ _tag: "TimeoutError", phase: "total", timeoutMillis: 5000 })
      expect(stub.times[stub.times.length - 1]!).toBeLessThanOrEqual(5000)
      expect(stub.times.length).toBeGreaterThan(1)
    }))

  it.effect("RetryPolicy.schedule makes the same decisions for your own Effect.retry", () =>
    Effect.gen(function* () {
      const errors = [
        new ChatError.RateLimitError({ retryAfterMillis: 3000, attempts: 1 }),
        new ChatError.ApiError({ status: 503, detail: "down", retryAfterMillis: 1000, attempts: 1 }),
        new ChatError.ApiError({ status: 400, detail: "bad", attempts: 1 })
      ]
      const times: Array<number> = []
      const failing = Effect.flatMap(Clock.currentTimeMillis, (now) => {
        times.push(now)
        return Effect.fail(errors[Math.min(times.length - 1, errors.length - 1)]!)
      })
      const fiber = yield* Effect.fork(Effect.retry(failing, RetryPolicy.schedule({ maxRetries: 5 })))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(times).toEqual([0, 3000, 4000]) // server delays honoured; the 400 is final
      expect(error).toMatchObject({ _tag: "ApiError", status: 400 })
    }))

  it("transport failures are retried, except a host that does not exist", () => {
    const transport = (code: string) => new ChatError.TransportError({ code, detail: "x", attempts: 1 })
    expect(RetryPolicy.isRetryable(transport("ECONNRESET"))).toBe(true)
    expect(RetryPolicy.isRetryable(transport("EAI_AGAIN"))).toBe(true)
    expect(RetryPolicy.isRetryable(transport("ENOTFOUND"))).toBe(false)
    expect(RetryPolicy.isRetryable(new ChatError.ResponseDecodeError({ status: 200, detail: "x", bodyExcerpt: "", attempts: 1 }))).toBe(false)
    expect(RetryPolicy.isRetryable(new ChatError.TimeoutError({ phase: "total", timeoutMillis: 1, attempts: 1 }))).toBe(false)
  })

  it("decide: final errors stop, retryable ones back off within the cap", () => {
    const policy = RetryPolicy.resolve({})
    expect(RetryPolicy.backoffMillis(policy, 1, 0.999)).toBeLessThan(500)
    expect(RetryPolicy.backoffMillis(policy, 10, 0.999)).toBeLessThan(8000)
    expect(RetryPolicy.backoffMillis(policy, 10, 0.999)).toBeGreaterThan(7900)
  })
})
