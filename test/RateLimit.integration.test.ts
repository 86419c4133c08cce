/** Rate limits against the real MockServer enforcing OpenAI-style limits. */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ChatClient } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

describe("rate limits against MockServer", () => {
  it.scopedLive("with no limits configured, the server's headers and the shared pause keep 429s at or under 2%, and every request succeeds", () =>
    Effect.gen(function* () {
      // 1,200 RPM: a full bucket of 1,200, then 20 a second; 1,300 requests need about 5 s.
      const mock = yield* MockServer.make({ rpm: 1200, latency: "5 millis", journalLimit: 10 })
      const context = yield* Layer.build(ChatClient.layer({ baseUrl: mock.url }))
      const chat = Context.get(context, ChatClient.ChatClient)
      const results = yield* Effect.forEach(
        Array.from({ length: 1300 }, (_, i) => i),
        (i) => chat.createWithMetadata({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `question ${i}` }], max_tokens: 20 }),
        { concurrency: 20 }
      )
      expect(results).toHaveLength(1300)
      const stats = yield* mock.stats
      expect(stats.rateLimited).toBeLessThanOrEqual(26)
      expect(stats.byStatus[200]).toBe(1300)
    }), 60_000)
})
