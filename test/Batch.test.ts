import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Batch, Budget, ChatClient, ChatError, RateLimit } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

const requests = (n: number): Array<Batch.ChatRequest> =>
  Array.from({ length: n }, (_, i) => ({ custom_id: `req-${i}`, body: { model: "gpt-4.1-mini", messages: [{ role: "user", content: `question ${i}` }], max_tokens: 30 } }))

describe("Batch against MockServer", () => {
  it.scopedLive("one outcome per input, successes and typed failures, runAll in input order", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ seed: 3, faultRate: 0.1, faults: [{ type: "bad_request" }, { type: "server_error" }] })
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url, retry: { initialDelay: "5 millis" } })), ChatClient.ChatClient)
      const outcomes = yield* Batch.runAll(requests(300), { concurrency: 20 }).pipe(Effect.provideService(ChatClient.ChatClient, chat))
      expect(outcomes.map((o) => o.custom_id)).toEqual(requests(300).map((r) => r.custom_id))
      const failures = outcomes.filter((o) => o._tag === "Failure")
      expect(failures.length).toBeGreaterThan(0) // the 400s are final
      for (const f of failures) if (f._tag === "Failure") expect(f.error).toMatchObject({ _tag: "ApiError", status: 400 })
      for (const o of outcomes) {
        if (o._tag === "Success") {
          expect(o.completion.choices[0]!.message.content).toContain(`question ${o.index}`)
          expect(Option.isSome(o.costMicroUsd)).toBe(true)
        }
      }
    }))

  it.scopedLive("run streams outcomes as they complete; interrupting it aborts the requests in flight", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "20 millis", script: [...Array.from({ length: 5 }, () => "ok" as const), { type: "hang" }, { type: "hang" }] })
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(
        Batch.run(requests(50), { concurrency: 2 }).pipe(Stream.runForEach((o) => Effect.sync(() => { seen.push(o.custom_id) })), Effect.provideService(ChatClient.ChatClient, chat))
      )
      // wait until both slots hang
      yield* Effect.retry(Effect.flatMap(mock.journal, (j) => (j.length >= 7 ? Effect.void : Effect.fail("not yet"))), Schedule.spaced("10 millis").pipe(Schedule.upTo("10 seconds")))
      yield* Fiber.interrupt(fiber)
      expect(seen.length).toBe(5)
      const hung = yield* Effect.retry(
        Effect.flatMap(mock.journal, (j) => (j.filter((e) => e.hungUp).length === 2 ? Effect.succeed(j) : Effect.fail("not yet"))),
        Schedule.spaced("10 millis").pipe(Schedule.upTo("5 seconds"))
      )
      expect(hung.length).toBe(7) // nothing was sent after the interruption
    }))

  it.scopedLive("a budget stops the batch cleanly: nothing sent after the first refusal, every input has its outcome, spend within the budget", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "2 millis" })
      const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provideMerge(Budget.layer({ maxUsd: 0.002 }))))
      const outcomes = yield* Batch.runAll(requests(200), { concurrency: 8 }).pipe(Effect.provide(context))
      expect(outcomes).toHaveLength(200)
      const ok = outcomes.filter((o) => o._tag === "Success")
      const refused = outcomes.filter((o) => o._tag === "Failure")
      expect(ok.length).toBeGreaterThan(10)
      expect(refused.length).toBeGreaterThan(100)
      for (const o of refused) if (o._tag === "Failure") expect(o.error._tag).toBe("BudgetExceededError")
      const spent = ok.reduce((sum, o) => sum + Option.getOrElse(o.costMicroUsd, () => 0), 0)
      expect(spent).toBeLessThanOrEqual(2000)
      expect((yield* Context.get(context, Budget.Budget).snapshot).spentMicroUsd).toBe(spent)
      // exactly the answered requests reached the server: the refused ones were never sent
      expect((yield* mock.journal).length).toBe(ok.length)
    }))

  it.scopedLive("shared limits that cannot be reached (failing closed) stop the batch like a budget: every later input fails unsent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "2 millis" })
      // A store that answers 30 admissions, then finds its Redis gone.
      let admitted = 0
      const memory = yield* Effect.flatMap(RateLimit.RateLimitStore, (store) => store.open({})).pipe(Effect.provide(RateLimit.layerStoreMemory))
      const store: RateLimit.Window = {
        ...memory,
        admit: (tokens) =>
          Effect.suspend(() =>
            ++admitted > 30
              ? Effect.fail(new ChatError.LimiterUnavailableError({ store: "rate-limit", location: "redis://127.0.0.1:1", detail: "not connected" }))
              : memory.admit(tokens)
          )
      }
      const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provide(RateLimit.layer().pipe(Layer.provide(Layer.succeed(RateLimit.RateLimitStore, { open: () => Effect.succeed(store) }))))))
      const outcomes = yield* Batch.runAll(requests(100), { concurrency: 4 }).pipe(Effect.provide(context))
      expect(outcomes).toHaveLength(100)
      const ok = outcomes.filter((o) => o._tag === "Success")
      expect(ok).toHaveLength(30)
      for (const o of outcomes) if (o._tag === "Failure") expect(o.error._tag).toBe("LimiterUnavailableError")
      expect((yield* mock.journal).length).toBe(30)
      // Asked no more than once after the first refusal per worker: the batch stopped asking.
      expect(admitted).toBeLessThanOrEqual(30 + 4)
    }))

  it.scopedLive("chat and embeddings requests in one batch, each outcome typed by its url", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
      const mixed: Array<Batch.BatchRequest> = [
        { custom_id: "c", body: { model: "gpt-4.1-mini", messages: [{ role: "user", content: "hello" }] } },
        { custom_id: "e", url: "/v1/embeddings", body: { model: "text-embedding-3-small", input: "hello" } }
      ]
      const [c, e] = yield* Batch.runAll(mixed).pipe(Effect.provideService(ChatClient.ChatClient, chat))
      expect(c).toMatchObject({ _tag: "Success", url: "/v1/chat/completions", custom_id: "c" })
      expect(e).toMatchObject({ _tag: "Success", url: "/v1/embeddings", custom_id: "e", usage: { completionTokens: 0 } })
      if (e?._tag === "Success" && e.url === "/v1/embeddings") expect(e.embeddings.data).toHaveLength(1)
      expect(Option.isSome((e as Batch.EmbeddingSuccess).costMicroUsd)).toBe(true)
      expect((yield* mock.journal).map((j) => j.path).sort()).toEqual(["/v1/chat/completions", "/v1/embeddings"])
    }))
})
