/**
 * Several `shepherd run --shard i/n --redis URL` processes sharing one key's limits and budget
 * through a real redis-server, against a MockServer in this process that enforces the limits (its
 * journal and counters show what all of them sent); then `shepherd merge`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Pricing from "../src/Pricing.js"
import { MockServer } from "../src/testing/index.js"
import { inputLines, KEY, readOut, startCommand, tmp, writeInput } from "./cliHelpers.js"
import { admin, redisAvailable, startRedis } from "./redisServer.js"
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

  it.scopedLive("a shared budget: together the processes never spend more than --budget-usd plus one request each in flight", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const mock = yield* MockServer.make({ apiKey: KEY, latency: "5 millis" })
      const dir = tmp()
      const lines = inputLines(400, 200).filter((line) => line.includes("chat/completions"))
      const input = writeInput(dir, lines)
      const budget = 0.003
      const runs = shards(4, input, dir, () => ["--redis", redis.url, "--namespace", "budget-test", "--budget-usd", String(budget), "--concurrency", "8"], {
        OPENAI_API_KEY: KEY,
        OPENAI_BASE_URL: mock.url
      })
      const ended = yield* Effect.all(runs.map((r) => r.ended), { concurrency: "unbounded" })
      // Each stops on the budget: exit 1, and says so.
      for (const e of ended) {
        expect(e.code, e.stderr).toBe(1)
        expect(e.stderr).toContain("stopped by the budget")
      }
      let spent = 0
      let largest = 0
      const ids = new Set<string>()
      for (let i = 0; i < 4; i++) {
        for (const line of readOut(Path.join(dir, `out.${i}.jsonl`))) {
          expect(ids.has(line.custom_id)).toBe(false)
          ids.add(line.custom_id)
          const body = line.response?.body as { model: string; usage: { prompt_tokens: number; completion_tokens: number } }
          const cost = Option.getOrThrow(Pricing.cost("gpt-4.1-mini", body.usage))
          spent += cost
          largest = Math.max(largest, cost)
        }
      }
      expect(ids.size).toBeGreaterThan(10)
      expect(ids.size).toBeLessThan(lines.length) // it did stop
      expect(spent).toBeLessThanOrEqual(budget * 1e6 + 4 * largest)
      // Nothing was sent without an output line.
      expect((yield* mock.stats).requests).toBe(ids.size)
      // Redis holds the same total, and nothing is left reserved.
      const totals = yield* admin(redis.url, async (client) => {
        const [key] = await client.keys("*budget-test*budget:totals")
        return client.hgetall(key!)
      })
      expect(Number(totals["spent"])).toBe(spent)
      expect(Number(totals["reserved"])).toBe(0)
    }), 120_000)
  // Redis killed mid-run (failing closed, and with --redis-fallback): test/long/shard.redis-killed.long.test.ts.
})

describe("shepherd run --shard / --redis usage", () => {
  it.scopedLive("a bad --shard, --namespace or a lone --redis-fallback is refused before anything is sent (exit 2)", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY })
      const dir = tmp()
      const input = writeInput(dir, inputLines(4))
      const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.url }
      const out = Path.join(dir, "out.jsonl")
      const cases = [
        [["--shard", "4/4"], "--shard takes i/n with 0 <= i < n"],
        [["--shard", "one/two"], "--shard takes i/n"],
        [["--redis", "redis://127.0.0.1:1", "--namespace", "a b"], "--namespace: the namespace"],
        [["--redis-fallback"], "--redis-fallback needs --redis"]
      ] as const
      // At once: each is its own process with its own output file.
      const ended = yield* Effect.all(cases.map(([args], i) => startCommand("run", [input, "--out", Path.join(dir, `out.${i}.jsonl`), ...args], env).ended), { concurrency: "unbounded" })
      cases.forEach(([, message], i) => {
        expect(ended[i]!.code, ended[i]!.stderr).toBe(2)
        expect(ended[i]!.stderr).toContain(message)
      })
      expect((yield* mock.stats).requests).toBe(0)
      // A shard with no lines of its own says so.
      const one = writeInput(dir, inputLines(1))
      const empty = yield* startCommand("run", [one, "--out", out, "--shard", "1/2"], env).ended
      expect(empty.code).toBe(2)
      expect(empty.stderr).toContain("no valid requests for this shard")
    }), 60_000)
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
