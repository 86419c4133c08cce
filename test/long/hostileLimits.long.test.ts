/**
 * Issue 13, item A.3: a server that enforces a steady limit with no rate headers, only 429s with
 * retry-after-ms. The client's own pace (the adaptive rate) keeps the 429s a small share. The bucket
 * refills in real time and the client paces on real timers, so a loaded machine (the other test files
 * of `npm test`, three workers on two cores) delays the client's timers into bursts and the share
 * grows: 19-27 429s for 400 requests quiet, up to 125 measured in CI under that load. Here, with the
 * long scenarios (one file at a time), it runs without that load.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { ChatClient } from "../../src/index.js"
import * as Modes from "../hostile/modes/limits.js"
import * as Hostile from "../hostile/server.js"

const KEY = "sk-hostile-limits-0123456789"
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hi" }] }
const create = Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request))

describe("hostile servers: rate limits (real time)", () => {
  it.scopedLive("13.A.3 a steady limit enforced with no rate headers, only 429 + retry-after-ms: the client paces itself, 429s stay a small share", () =>
    Effect.gen(function* () {
      const bucket = Modes.bucketWithoutHeaders(50)
      const server = yield* Hostile.serve(bucket.mode)
      const n = 400
      const results = yield* Effect.forEach(Array.from({ length: n }), () => Effect.either(create), { concurrency: 20 }).pipe(
        Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY), retry: { maxRetries: 10 } }))
      )
      assert.strictEqual(results.filter(Either.isRight).length, n)
      // Without pacing, every end of the shared pause lets all 20 waiting calls go at once, and all
      // but one meet a 429 (about half of all requests). With it: the first overshoot, then few (19-27
      // on a quiet machine; up to ~80 measured with the 2 cores loaded, since the bucket refills in
      // real time). bench/ratelimit measures the share over a long run (<= 2%).
      assert.isBelow(bucket.limited(), 0.3 * n, `${bucket.limited()} 429s for ${n} requests`)
    }), 60_000)
})
