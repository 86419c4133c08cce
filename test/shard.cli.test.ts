/**
 * Several `shepherd run --shard i/n --redis URL` processes sharing one key's limits through a real
 * redis-server, against a MockServer in this process that enforces the limits (its journal and
 * counters show what all of them sent); then `shepherd merge`. The shared budget and the usage
 * errors: test/shard.budget.cli.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { inputLines, KEY, readOut, startCommand, tmp, writeInput } from "./cliHelpers.js"
import { redisAvailable, startRedis } from "./redisServer.js"
import { chatLines, expectEachOnce, merge, shards } from "./shardHelpers.js"

const available = redisAvailable("sharded run")

describe.runIf(available)("shepherd run --shard i/n --redis URL", () => {
  // The same scenario over real one-minute windows, with the server enforcing exactly the shards'
  // limit and the shards required to reach 90% of it (600 RPM, 2,000 requests, about three minutes),
  // is test/long/shard.long.test.ts (`npm run test:long`). Here the window is the test-only one
  // (SHEPHERD_TEST_WINDOW): the shards may start 40 requests per 6 s (plus the Redis store's 1 s
  // margin), and the server's bucket holds 40 and refills in 2 s. Shards that did not share the
  // limit would send 80 at once and meet 429s; the 5 s between the windows absorbs the late sends of
  // freshly started processes on a loaded machine (seconds, measured), which a 1 s margin does not.
  it.scopedLive("4 processes x 20 requests share 40 requests a window (test-only 6 s window) against a server holding 40: no 429, held back by the window, one merged line per id", () =>
    Effect.gen(function* () {
      const limit = 40
      const redis = yield* startRedis
      const mock = yield* MockServer.make({ apiKey: KEY, rpm: limit, window: "2 seconds", latency: "20 millis" })
      const dir = tmp()
      const input = writeInput(dir, chatLines(80))
      const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.url, SHEPHERD_TEST_WINDOW: "6s" }
      const runs = shards(4, input, dir, () => ["--redis", redis.url, "--namespace", "rpm-test", "--rpm", String(limit), "--concurrency", "16"], env)
      const ended = yield* Effect.all(runs.map((r) => r.ended), { concurrency: "unbounded" })
      for (const e of ended) expect(e.code, e.stderr).toBe(0)
      const stats = yield* mock.stats
      expect(stats.rateLimited).toBe(0)
      expect(stats.byStatus[200]).toBe(80)
      // 80 requests at 40 a window: 40 at once, then 40 after 7 s (the window and the margin), so the
      // last starts at least 7 s after the first. Timed on the server, from the first to the last
      // arrival (the first may have been sent late: "held back past one window" is what is certain).
      const arrivals = (yield* mock.journal).map((e) => e.receivedAtMillis)
      expect((Math.max(...arrivals) - Math.min(...arrivals)) / 1000).toBeGreaterThan(7)
      for (let i = 0; i < 4; i++) {
        const summary = JSON.parse(Fs.readFileSync(Path.join(dir, `summary.${i}.json`), "utf8")) as { total: number; shard: string; rateLimited: number }
        expect(summary).toMatchObject({ total: 20, shard: `${i}/4`, rateLimited: 0 })
      }
      // Each shard took its own lines only.
      yield* expectEachOnce(dir, 4, input, 80, mock)
    }), 120_000)

  // Redis killed mid-run (failing closed, and with --redis-fallback): test/long/shard.redis-killed.long.test.ts.
})

describe("shepherd merge", () => {
  it.scopedLive("keeps one line per custom_id, a final outcome over one worth sending again; with --input it reports ids without a final outcome (exit 1)", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const input = writeInput(dir, inputLines(4))
      const ok = (id: string) => JSON.stringify({ id: `b_${id}`, custom_id: id, response: { status_code: 200, request_id: null, body: {} }, error: null })
      const retry = (id: string) => JSON.stringify({ id: `b_${id}`, custom_id: id, response: { status_code: 503, request_id: null, body: {} }, error: null })
      Fs.writeFileSync(Path.join(dir, "out.0.jsonl"), [retry("r0"), ok("r1"), ok("r0")].join("\n") + "\n" + '{"id":"partial')
      Fs.writeFileSync(Path.join(dir, "out.1.jsonl"), [ok("r1"), retry("r2")].join("\n") + "\n")
      const merged = yield* merge(dir, 2, input)
      expect(merged.code).toBe(1)
      expect(merged.stderr).toContain("2 of 4 requests have a final outcome")
      expect(merged.stderr).toContain("2 requests of")
      const out = readOut(Path.join(dir, "merged.jsonl"))
      expect(out.map((l) => [l.custom_id, l.response?.status_code])).toEqual([["r1", 200], ["r0", 200], ["r2", 503]])
      expect(merged.stderr).toContain("2 duplicate lines dropped, 1 unreadable lines")
      // The output may not be one of the inputs.
      const self = yield* startCommand("merge", ["--out", Path.join(dir, "out.0.jsonl"), Path.join(dir, "out.0.jsonl")]).ended
      expect(self.code).toBe(2)
    }), 60_000)
})
