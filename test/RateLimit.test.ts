import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { ChatClient, ChatError, RateLimit } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { SlidingWindow } from "../src/internal/slidingWindow.js"
import { timedStub } from "./helpers.js"

const request: ChatSchema.ChatCompletionRequest = { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 10 }
const ok = (headers: Record<string, string> = {}) => ({
  status: 200,
  headers,
  body: JSON.stringify({
    id: "c", object: "chat.completion", created: 1, model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: "ok", refusal: null }, finish_reason: "stop", logprobs: null }],
    usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 }
  })
})
const stub = timedStub

/** A store whose every limiter uses `window`. */
const storeOf = (window: RateLimit.Window) => Layer.succeed(RateLimit.RateLimitStore, RateLimit.RateLimitStore.of({ open: () => Effect.succeed(window) }))

const clientOn = (s: ReturnType<typeof stub>, options: ChatClient.Overrides = {}) =>
  ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", ...options }).pipe(Layer.provide(s.layer))

describe("SlidingWindow (the memory store's algorithm)", () => {
  const arrivals = FastCheck.array(
    FastCheck.record({ gap: FastCheck.integer({ min: 0, max: 20_000 }), tokens: FastCheck.integer({ min: 1, max: 500 }) }),
    { minLength: 1, maxLength: 300 }
  )

  it("property: over any window, admitted starts never exceed rpm and their tokens never exceed tpm; starts keep arrival order", () => {
    FastCheck.assert(
      FastCheck.property(arrivals, FastCheck.integer({ min: 1, max: 20 }), FastCheck.integer({ min: 500, max: 3000 }), (list, rpm, tpm) => {
        const store = new SlidingWindow({ rpm, tpm })
        let now = 0
        const admitted = list.map(({ gap, tokens }) => {
          now += gap
          const a = store.admit(now, tokens)
          expect(a.at).toBeGreaterThanOrEqual(now)
          return { at: a.at, tokens }
        })
        for (let i = 1; i < admitted.length; i++) expect(admitted[i]!.at).toBeGreaterThanOrEqual(admitted[i - 1]!.at)
        // Every window [t, t + 60 s) that starts at an admission.
        for (const first of admitted) {
          const inside = admitted.filter((a) => a.at >= first.at && a.at < first.at + RateLimit.WINDOW_MILLIS)
          expect(inside.length).toBeLessThanOrEqual(rpm)
          expect(inside.reduce((s, a) => s + a.tokens, 0)).toBeLessThanOrEqual(tpm)
        }
      }),
      { numRuns: 200 }
    )
  })

  it("property: no admission waits longer than it must (it starts at arrival when its window has room)", () => {
    FastCheck.assert(
      FastCheck.property(arrivals, FastCheck.integer({ min: 1, max: 20 }), (list, rpm) => {
        const store = new SlidingWindow({ rpm })
        let now = 0
        const starts: Array<number> = []
        for (const { gap } of list) {
          now += gap
          const at = store.admit(now, 1).at
          const previous = starts.length >= rpm ? starts[starts.length - rpm]! + RateLimit.WINDOW_MILLIS : 0
          expect(at).toBe(Math.max(now, starts[starts.length - 1] ?? 0, previous))
          starts.push(at)
        }
      }),
      { numRuns: 200 }
    )
  })

  it("settle refunds or charges the difference for requests still in the window", () => {
    const store = new SlidingWindow({ tpm: 100 })
    store.admit(0, 80)
    expect(store.admit(0, 30).at).toBe(RateLimit.WINDOW_MILLIS) // 80 + 30 > 100
    const store2 = new SlidingWindow({ tpm: 100 })
    const b = store2.admit(0, 80)
    store2.settle(b.id, b.at, 20)
    expect(store2.admit(0, 30).at).toBe(0) // 20 + 30 <= 100 after the refund
    // A correction for an admission that has left the window changes nothing.
    const store3 = new SlidingWindow({ tpm: 100 })
    const c = store3.admit(0, 50)
    store3.admit(RateLimit.WINDOW_MILLIS, 60)
    store3.settle(c.id, c.at, 100)
    expect(store3.admit(RateLimit.WINDOW_MILLIS, 40).at).toBe(RateLimit.WINDOW_MILLIS)
  })

  it("parseResetDuration reads OpenAI's formats", () => {
    expect(RateLimit.parseResetDuration("1s")).toBe(1000)
    expect(RateLimit.parseResetDuration("6m0s")).toBe(360_000)
    expect(RateLimit.parseResetDuration("20ms")).toBe(20)
    expect(RateLimit.parseResetDuration("1.5s")).toBe(1500)
    expect(RateLimit.parseResetDuration("1h2m3s")).toBe(3_723_000)
    expect(RateLimit.parseResetDuration("soon")).toBeUndefined()
    expect(RateLimit.parseResetDuration(undefined)).toBeUndefined()
  })
})

describe("ChatClient with limits (stub HttpClient, TestClock)", () => {
  it.effect("rpm: requests start at their slots, in arrival order", () =>
    Effect.gen(function* () {
      const s = stub(() => ok())
      const fiber = yield* Effect.fork(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach([0, 1, 2, 3, 4], () => chat.create(request), { concurrency: 5 })),
        clientOn(s, { limits: { rpm: 2 } })
      ))
      yield* TestClock.adjust("1 second")
      expect(s.times).toEqual([0, 0])
      yield* TestClock.adjust("59 seconds")
      expect(s.times).toEqual([0, 0, 60_000, 60_000])
      yield* TestClock.adjust("60 seconds")
      yield* Fiber.join(fiber)
      expect(s.times).toEqual([0, 0, 60_000, 60_000, 120_000])
    }))

  it.effect("test-only window: rpm counts over `window` instead of a minute (the margin still added)", () =>
    Effect.gen(function* () {
      const s = stub(() => ok())
      const fiber = yield* Effect.fork(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach([0, 1, 2, 3, 4], () => chat.create(request), { concurrency: 5 })),
        clientOn(s, { limits: { rpm: 2, window: "5 seconds", windowMargin: "1 second" } })
      ))
      yield* TestClock.adjust("12 seconds")
      yield* Fiber.join(fiber)
      expect(s.times).toEqual([0, 0, 6000, 6000, 12_000])
    }))

  it.effect("tpm: requests wait until their estimated tokens fit", () =>
    Effect.gen(function* () {
      const s = stub(() => ok())
      // each request: about 3 + 4 + 1 prompt tokens + max_tokens 10, so two fit in 40 and three do not
      const fiber = yield* Effect.fork(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach([0, 1, 2], () => chat.create(request), { concurrency: 3 })),
        clientOn(s, { limits: { tpm: 40 } })
      ))
      yield* TestClock.adjust("1 second")
      expect(s.times.length).toBe(2)
      yield* TestClock.adjust("60 seconds")
      yield* Fiber.join(fiber)
      expect(s.times).toEqual([0, 0, 60_000])
    }))

  it.effect("a 429 with a delay pauses every request of the client, not just the one that got it", () =>
    Effect.gen(function* () {
      const tooMany = { status: 429, headers: { "retry-after": "5" }, body: JSON.stringify({ error: { message: "slow", type: "requests", param: null, code: "rate_limit_exceeded" } }) }
      const s = stub((i) => (i === 0 ? tooMany : ok()))
      const fiber = yield* Effect.fork(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) =>
          Effect.forEach([0, 1, 2], (i) => Effect.zipRight(Effect.sleep(i * 100), chat.create(request)), { concurrency: 3 })),
        clientOn(s)
      ))
      yield* TestClock.adjust("4 seconds")
      expect(s.times).toEqual([0]) // the 429 came at 0; the others, due at 100 and 200 ms, wait too
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(s.times).toEqual([0, 5000, 5000, 5000])
    }))

  it.effect("adaptive: when the server's remaining requests run out, the client waits for them to refill", () =>
    Effect.gen(function* () {
      const s = stub(() => ok({ "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s" }))
      const fiber = yield* Effect.fork(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach([0, 1, 2], () => chat.create(request), { concurrency: 1 })),
        clientOn(s)
      ))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      // remaining 0 of 60: the headers' reset (1 s) would refill 60 a second, but a limit of 60 refills
      // at most 60 a minute (13.A.3): the next request waits 1 s
      expect(s.times).toEqual([0, 1000, 2000])
      const off = stub(() => ok({ "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s" }))
      yield* Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach([0, 1, 2], () => chat.create(request), { concurrency: 1 })),
        clientOn(off, { limits: { adaptive: false } })
      )
      expect(off.times).toEqual([10_000, 10_000, 10_000])
    }))

  it.effect("a request waiting for its slot can be interrupted, and is never sent", () =>
    Effect.gen(function* () {
      const s = stub(() => ok())
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        yield* chat.create(request) // takes the only slot of this minute
        const waiting = yield* Effect.fork(chat.create(request))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(waiting) // returns at once: the wait was interruptible
        expect(s.times).toEqual([0])
        yield* TestClock.adjust("2 minutes")
        expect(s.times).toEqual([0]) // its slot passed, and nothing was sent
        // (the slot it had stays counted: the store never hands out a start time twice)
      }).pipe(Effect.provide(clientOn(s, { limits: { rpm: 1 } })))
    }))

  it.effect("a shared store's answers are honoured on the local clock: its wait, then a pause it reports meanwhile; a store that fails sends nothing", () =>
    Effect.gen(function* () {
      const s = stub(() => ok())
      // A store like Redis's: it says "wait 5 s" to the second request, and when that request wakes it
      // reports a pause of 2 s set by another process meanwhile.
      let admissions = 0
      let pauseChecks = 0
      const store: RateLimit.Window = {
        admit: () => Effect.succeed({ id: ++admissions, at: 0, waitMillis: admissions === 2 ? 5000 : 0 }),
        settle: () => Effect.void,
        pause: () => Effect.void,
        pauseRemaining: Effect.sync(() => (++pauseChecks === 1 ? 2000 : 0))
      }
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(
        Layer.provide(s.layer),
        Layer.provide(RateLimit.layer().pipe(Layer.provide(storeOf(store))))
      )
      const fiber = yield* Effect.fork(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach([0, 1], () => chat.create(request), { concurrency: 1 })),
        layer
      ))
      yield* TestClock.adjust("6 seconds")
      expect(s.times).toEqual([0])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(s.times).toEqual([0, 7000])

      const failing: RateLimit.Window = {
        ...store,
        admit: () => Effect.fail(new ChatError.LimiterUnavailableError({ store: "rate-limit", location: "redis://127.0.0.1:6379", detail: "not connected" }))
      }
      const none = stub(() => ok())
      const error = yield* Effect.flip(Effect.provide(
        Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)),
        ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(
          Layer.provide(none.layer),
          Layer.provide(RateLimit.layer().pipe(Layer.provide(storeOf(failing))))
        )
      ))
      expect(error._tag).toBe("LimiterUnavailableError")
      expect(none.times).toEqual([])
    }))

  it.effect("maxInFlight bounds the requests in flight", () =>
    Effect.gen(function* () {
      let inFlight = 0
      let most = 0
      const client = HttpClient.make((req) =>
        Effect.gen(function* () {
          inFlight++
          most = Math.max(most, inFlight)
          yield* Effect.sleep("1 second")
          inFlight--
          const a = ok()
          return HttpClientResponse.fromWeb(req, new Response(a.body, { status: 200 }))
        }))
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", limits: { maxInFlight: 3 } }).pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, client)))
      const fiber = yield* Effect.fork(Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.forEach(Array.from({ length: 10 }), () => chat.create(request), { concurrency: 10 })), layer))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(most).toBe(3)
    }))
})
