/**
 * Issue 13, item A.2: no rate-limit header or 429 freezes the client. Item A.3 (429s despite pacing
 * stay a small share) runs in real time against a bucket that refills in real time, so it runs in
 * test/long/hostileLimits.long.test.ts, away from the load of the other test files.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { ChatClient } from "../../src/index.js"
import * as Modes from "./modes/limits.js"
import * as Hostile from "./server.js"

const KEY = "sk-hostile-limits-0123456789"
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hi" }] }
const create = Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request))
/** A bound on waits that would otherwise be hours: the test fails instead of hanging. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, { duration: "15 seconds", onTimeout: () => new Error("frozen: still waiting after 15 s") })

describe("hostile servers: rate limits", () => {
  it.scopedLive("13.A.2 a 429 asking retry-after 99999 s fails its own call, and the calls after it are answered within maxRetryAfter", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve(Modes.retryAfterHugeOnce)
      const results = yield* within(
        Effect.forEach([0, 1, 2], () => Effect.either(create), { concurrency: 1 }).pipe(
          Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY), retry: { maxRetryAfter: "1 second" } }))
        )
      )
      const [first, ...rest] = results
      assert.isTrue(Either.isLeft(first!) && first.left._tag === "RateLimitError" && first.left.retryAfterMillis === 99_999_000)
      for (const r of rest) assert.isTrue(Either.isRight(r))
      assert.strictEqual(server.requests.length, 3)
    }))

  it.scopedLive("13.A.2 x-ratelimit-reset-requests: 9999h does not freeze the client: a call that would wait fails at once with the wait, the next is sent", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve(Modes.resetInTenThousandHours)
      const results = yield* within(
        Effect.forEach([0, 1, 2], () => Effect.either(create), { concurrency: 1 }).pipe(
          Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY) }))
        )
      )
      assert.isTrue(Either.isRight(results[0]!))
      const second = results[1]!
      assert.isTrue(Either.isLeft(second) && second.left._tag === "RateLimitError" && second.left.attempts === 0)
      if (Either.isLeft(second) && second.left._tag === "RateLimitError") assert.isAbove(second.left.retryAfterMillis!, 60_000)
      assert.isTrue(Either.isRight(results[2]!))
      assert.strictEqual(server.requests.length, 2) // the refused call was never sent
    }))

  it.scopedLive("13.A.2 a call whose start would come after its total deadline fails at once, unsent, with TimeoutError{phase: total}", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve((received, res) => Hostile.json(res, 200, Hostile.completion(`answer ${received.index}`)))
      const results = yield* within(
        Effect.forEach([0, 1], () => Effect.either(create), { concurrency: 1 }).pipe(
          Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY), limits: { rpm: 1 }, retry: { totalTimeout: "5 seconds" } }))
        )
      )
      assert.isTrue(Either.isRight(results[0]!))
      const second = results[1]!
      assert.isTrue(Either.isLeft(second) && second.left._tag === "TimeoutError" && second.left.phase === "total" && second.left.attempts === 0)
      assert.strictEqual(server.requests.length, 1)
    }))

})
