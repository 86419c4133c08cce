/**
 * Several `shepherd run --shard i/n --redis URL` processes sharing one budget through a real
 * redis-server, against a MockServer in this process; and the usage errors of --shard and --redis.
 * (The shared rate limit and `shepherd merge`: test/shard.cli.test.ts.)
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Path from "node:path"
import * as Pricing from "../src/Pricing.js"
import { MockServer } from "../src/testing/index.js"
import { inputLines, KEY, readOut, startCommand, tmp, writeInput } from "./cliHelpers.js"
import { admin, redisAvailable, startRedis } from "./redisServer.js"
import { shards } from "./shardHelpers.js"

const available = redisAvailable("sharded run with a shared budget")

describe.runIf(available)("shepherd run --shard i/n --redis URL --budget-usd", () => {
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

