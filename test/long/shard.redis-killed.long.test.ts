/**
 * Multi-process scenarios with Redis killed under four sharded `shepherd run` processes (`npm run
 * test:long`, run by .ci/run after `npm test`): each takes 10-20 s of four processes' CPU, which
 * `npm test` on two cores cannot afford.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import { MockServer } from "../../src/testing/index.js"
import { inputLines, KEY, readOut, tmp, waitFor, writeInput } from "../cliHelpers.js"
import { redisAvailable, startRedis } from "../redisServer.js"
import { expectEachOnce, shards } from "../shardHelpers.js"

const available = redisAvailable("sharded run, Redis killed (long)")

describe.runIf(available)("shepherd run --shard i/n --redis URL, Redis killed mid-run", () => {
  it.scopedLive("Redis killed mid-run, failing closed: the shards stop sending and exit 1; after Redis returns, a rerun finishes; no line lost or duplicated", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const mock = yield* MockServer.make({ apiKey: KEY, latency: "150 millis", journalLimit: 1000 })
      const dir = tmp()
      const lines = inputLines(300)
      const input = writeInput(dir, lines)
      const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.url }
      const args = () => ["--redis", redis.url, "--namespace", "kill-test", "--rpm", "6000", "--concurrency", "4"]
      const first = shards(2, input, dir, args, env)
      yield* waitFor(Effect.map(mock.stats, (s) => (s.requests >= 40 ? true : undefined)), "40 requests sent")
      yield* Effect.promise(() => redis.kill())
      const ended = yield* Effect.all(first.map((r) => r.ended), { concurrency: "unbounded" })
      for (const e of ended) {
        expect(e.code, e.stderr).toBe(1)
        expect(e.stderr).toContain("could not be reached")
        expect(e.stderr).toContain("Rerun the same command when Redis is back")
      }
      const partial = [0, 1].flatMap((i) => readOut(Path.join(dir, `out.${i}.jsonl`)))
      expect(partial.length).toBeGreaterThanOrEqual(40)
      expect(partial.length).toBeLessThan(300)
      // Every line written is an answer the server gave; nothing unsent has a line.
      expect(partial.every((l) => l.response?.status_code === 200)).toBe(true)
      expect((yield* mock.stats).requests).toBe(partial.length)

      yield* Effect.promise(() => redis.restart())
      const again = yield* Effect.all(shards(2, input, dir, args, env).map((r) => r.ended), { concurrency: "unbounded" })
      for (const e of again) expect(e.code, e.stderr).toBe(0)
      yield* expectEachOnce(dir, 2, input, lines.length, mock)
    }), 120_000)

  it.scopedLive("Redis killed mid-run with --redis-fallback: the shards warn, go on with local limits and finish; no line lost or duplicated", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const mock = yield* MockServer.make({ apiKey: KEY, latency: "100 millis", journalLimit: 1000 })
      const dir = tmp()
      const lines = inputLines(200)
      const input = writeInput(dir, lines)
      const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.url }
      const runs = shards(2, input, dir, () => ["--redis", redis.url, "--namespace", "fallback-test", "--rpm", "6000", "--concurrency", "4", "--redis-fallback"], env)
      yield* waitFor(Effect.map(mock.stats, (s) => (s.requests >= 30 ? true : undefined)), "30 requests sent")
      yield* Effect.promise(() => redis.kill())
      const ended = yield* Effect.all(runs.map((r) => r.ended), { concurrency: "unbounded" })
      for (const e of ended) {
        expect(e.code, e.stderr).toBe(0)
        expect(e.stderr).toContain("going on with local rate-limit state (1/2 of the limits)")
      }
      yield* expectEachOnce(dir, 2, input, lines.length, mock)
    }), 120_000)
})
