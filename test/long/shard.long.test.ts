/**
 * The long multi-process scenario (`npm run test:long`, run by .ci/run after `npm test`): four
 * `shepherd run --shard i/4 --redis URL` processes sharing 600 RPM over real one-minute windows for
 * about three minutes. test/shard.cli.test.ts runs the same scenario on a test-only 5-second window.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../../src/testing/index.js"
import { KEY, tmp, writeInput } from "../cliHelpers.js"
import { redisAvailable, startRedis } from "../redisServer.js"
import { chatLines, expectEachOnce, shards } from "../shardHelpers.js"

const available = redisAvailable("sharded run (long)")

describe.runIf(available)("shepherd run --shard i/n --redis URL, over real minutes", () => {
  it.scopedLive("4 processes x 500 requests share 600 RPM against a server enforcing 600 RPM: no 429, at least 90% of the limit, one merged line per id", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const mock = yield* MockServer.make({ apiKey: KEY, rpm: 600, latency: "20 millis", journalLimit: 3000 })
      const dir = tmp()
      const input = writeInput(dir, chatLines(2000))
      const began = Date.now()
      const runs = shards(4, input, dir, () => ["--redis", redis.url, "--namespace", "rpm-test", "--rpm", "600", "--concurrency", "64"], { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.url })
      const ended = yield* Effect.all(runs.map((r) => r.ended), { concurrency: "unbounded" })
      const minutes = (Date.now() - began) / 60_000
      for (const e of ended) expect(e.code, e.stderr).toBe(0)
      const stats = yield* mock.stats
      expect(stats.rateLimited).toBe(0)
      expect(stats.byStatus[200]).toBe(2000)
      // 2,000 requests at 600 a minute: 600 at once (the server's bucket starts full), then 600 a window.
      const perMinute = 2000 / minutes
      expect(perMinute).toBeGreaterThanOrEqual(0.9 * 600)
      for (let i = 0; i < 4; i++) {
        const summary = JSON.parse(Fs.readFileSync(Path.join(dir, `summary.${i}.json`), "utf8")) as { total: number; shard: string; rateLimited: number }
        expect(summary).toMatchObject({ total: 500, shard: `${i}/4`, rateLimited: 0 })
      }
      // Each shard took its own lines only.
      yield* expectEachOnce(dir, 4, input, 2000, mock)
      console.info(`sharded run: 4 x 500 requests at 600 RPM in ${(minutes * 60).toFixed(1)} s = ${perMinute.toFixed(0)} requests a minute, 0 429s`)
    }), 400_000)
})
