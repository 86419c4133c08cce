/** Retries against the real MockServer: random faults, and nothing answered twice. */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ChatClient } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

/** Enough requests that every fault kind is met dozens of times (about 75 faults in all). */
const N = 300

for (const transport of ["undici", "platform"] as const) describe(`retries against MockServer (transport: ${transport})`, () => {
  it.scopedLive(`20% random faults (429, 500, 502, 503, resets) over ${N} requests: every request succeeds, none is answered twice`, () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({
        seed: 42,
        faultRate: 0.2,
        faults: [
          { type: "rate_limit", retryAfterMillis: 20 },
          { type: "server_error", status: 500 },
          { type: "server_error", status: 502 },
          { type: "server_error", status: 503 },
          { type: "reset" }
        ],
        journalLimit: 5_000
      })
      const context = yield* Layer.build(ChatClient.layer({
        baseUrl: mock.url,
        transport,
        // 10 retries: the chance that one request meets 11 faults in a row is 0.2^11 per request.
        retry: { maxRetries: 10, initialDelay: "20 millis", maxDelay: "200 millis" }
      }))
      const chat = Context.get(context, ChatClient.ChatClient)
      const results = yield* Effect.forEach(
        Array.from({ length: N }, (_, i) => i),
        (i) => chat.createWithMetadata({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `request ${i}` }] }),
        { concurrency: 50 }
      )
      expect(results).toHaveLength(N)
      results.forEach((r, i) => expect(r.completion.choices[0]!.message.content).toContain(`request ${i}`))
      const journal = yield* mock.journal
      const answered = new Map<string, number>()
      for (const entry of journal) {
        if (entry.status === 200 && entry.fault === undefined) {
          const key = JSON.stringify(entry.body)
          answered.set(key, (answered.get(key) ?? 0) + 1)
        }
      }
      expect(answered.size).toBe(N)
      expect([...answered.values()].every((n) => n === 1)).toBe(true)
      const stats = yield* mock.stats
      expect(stats.requests).toBeGreaterThan(1.1 * N) // the faults were met, and retried
      // Every fault kind was met, and retried past.
      const met = new Set(journal.filter((e) => e.fault !== undefined).map((e) => (e.fault === "reset" ? "reset" : String(e.status))))
      expect([...met].sort()).toEqual(["429", "500", "502", "503", "reset"])
      expect(results.some((r) => r.attempts > 1)).toBe(true)
      expect(stats.requests).toBe(results.reduce((sum, r) => sum + r.attempts, 0))
    }), 120_000)
})
