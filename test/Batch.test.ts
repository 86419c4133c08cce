import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Batch, ChatClient } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

const requests = (n: number): Array<Batch.BatchRequest> =>
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
})
