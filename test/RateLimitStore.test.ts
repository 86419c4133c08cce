/**
 * The `RateLimitStore` Tag: a limiter opens its window on the store in the context (memory when
 * there is none), with its own limits; `layerStoreMemory` decides as the default does.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { ChatClient, RateLimit } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import { memoryWindow } from "../src/internal/slidingWindow.js"
import { timedStub } from "./helpers.js"

const completion = JSON.stringify({
  id: "c", object: "chat.completion", created: 1, model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "ok", refusal: null }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 }
})

/** Five requests of 40 tokens through a limiter of 2 rpm and 100 tpm: their start times, from the program's start. */
const program = Effect.gen(function* () {
  const start = yield* Clock.currentTimeMillis
  const limiter = yield* RateLimit.make({ rpm: 2, tpm: 100, adaptive: false })
  const starts: Array<number> = []
  const fiber = yield* Effect.fork(
    Effect.forEach([0, 1, 2, 3, 4], () => limiter.withPermit(40, Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => starts.push(t - start))), () => ({})), {
      concurrency: "unbounded"
    })
  )
  yield* TestClock.adjust("5 minutes")
  yield* Fiber.join(fiber)
  return starts
})

/** A store that records the limits each limiter opens it with and counts the admissions. */
const recordingStore = () => {
  const opened: Array<RateLimit.StoreLimits> = []
  const admits = { count: 0, settles: 0 }
  const layer = Layer.succeed(
    RateLimit.RateLimitStore,
    RateLimit.RateLimitStore.of({
      open: (limits) =>
        Effect.sync(() => {
          opened.push(limits)
          const window = memoryWindow(limits)
          return {
            ...window,
            admit: (tokens, bounds) => Effect.zipRight(Effect.sync(() => admits.count++), window.admit(tokens, bounds)),
            settle: (admission, tokens) => Effect.zipRight(Effect.sync(() => admits.settles++), window.settle(admission, tokens))
          }
        })
    })
  )
  return { opened, admits, layer }
}

describe("RateLimitStore", () => {
  it.effect("a program on layerStoreMemory starts its requests exactly when it does with no store in the context", () =>
    Effect.gen(function* () {
      const byDefault = yield* program
      const onMemory = yield* Effect.provide(program, RateLimit.layerStoreMemory)
      expect(byDefault).toEqual([0, 0, 60_000, 60_000, 120_000])
      expect(onMemory).toEqual(byDefault)
    }))

  it.effect("make opens the store in the context with the limiter's limits, and admits every request through it", () =>
    Effect.gen(function* () {
      const store = recordingStore()
      const starts = yield* Effect.provide(program, store.layer)
      expect(starts).toEqual([0, 0, 60_000, 60_000, 120_000])
      expect(store.opened).toHaveLength(1)
      expect(store.opened[0]).toMatchObject({ rpm: 2, tpm: 100 })
      expect(store.admits.count).toBe(5)
    }))

  it.effect("layerStoreMemory gives each limiter its own window", () =>
    Effect.gen(function* () {
      const [a, b] = yield* Effect.provide(Effect.all([RateLimit.make({ rpm: 2, adaptive: false }), RateLimit.make({ rpm: 2, adaptive: false })]), RateLimit.layerStoreMemory)
      const starts: Array<number> = []
      const record = Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => starts.push(t)))
      const fiber = yield* Effect.fork(Effect.all([a, a, b, b].map((limiter) => limiter.withPermit(1, record, () => ({}))), { concurrency: "unbounded" }))
      yield* TestClock.adjust("2 minutes")
      yield* Fiber.join(fiber)
      // One shared window of 2 rpm would start the last two a minute later.
      expect(starts).toEqual([0, 0, 0, 0])
    }))

  it.effect("RateLimit.layer and a client's own limits use the store provided to them; an invalid option fails before the store is opened", () =>
    Effect.gen(function* () {
      const store = recordingStore()
      yield* Effect.provide(Effect.flatMap(RateLimit.RateLimit, (limiter) => limiter.withPermit(1, Effect.void, () => ({}))), RateLimit.layer({ rpm: 7 }).pipe(Layer.provide(store.layer)))
      expect(store.opened.map((l) => l.rpm)).toEqual([7])

      const s = timedStub(() => ({ status: 200, body: completion }))
      const request: ChatSchema.ChatCompletionRequest = { model: "m", messages: [{ role: "user", content: "hi" }] }
      const client = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", limits: { rpm: 9 } }).pipe(Layer.provide(s.layer), Layer.provide(store.layer))
      yield* Effect.provide(Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)), client)
      expect(store.opened.map((l) => l.rpm)).toEqual([7, 9])
      expect(store.admits.count).toBe(2)

      const invalid = yield* Effect.flip(Effect.provide(RateLimit.make({ rpm: 0 }), store.layer))
      expect(invalid._tag).toBe("ConfigError")
      expect(store.opened).toHaveLength(2)
    }))

  it.effect("the store is told a request's tokens only when its window counts them: with tpm, not without", () =>
    Effect.gen(function* () {
      const used = () => ({ usedTokens: 37 })
      const withoutTpm = recordingStore()
      yield* Effect.provide(Effect.flatMap(RateLimit.make({ rpm: 5, adaptive: false }), (limiter) => limiter.withPermit(0, Effect.void, used)), withoutTpm.layer)
      expect(withoutTpm.admits).toEqual({ count: 1, settles: 0 })
      const withTpm = recordingStore()
      yield* Effect.provide(Effect.flatMap(RateLimit.make({ rpm: 5, tpm: 1000, adaptive: false }), (limiter) => limiter.withPermit(10, Effect.void, used)), withTpm.layer)
      expect(withTpm.admits).toEqual({ count: 1, settles: 1 })
    }))
})
