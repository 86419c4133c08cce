/**
 * The response cache across processes: the built CLI (`shepherd run --cache`) and this process write
 * one file cache, and one Redis, at once, against one in-process MockServer whose journal shows every
 * request sent; then a rerun with a new --out sends nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Batch, ChatClient, ResponseCache } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { inputLines, KEY, readOut, runToEnd, tmp, writeInput } from "./cliHelpers.js"
import { redisAvailable, startRedis } from "./redisServer.js"

const withRedis = redisAvailable("response cache on Redis")

/** Once the CLI's first request reached the mock (so that both processes send and write at once). */
const afterFirst = (mock: MockServer.Service) =>
  Effect.repeat(Effect.zipRight(Effect.sleep("10 millis"), mock.journal), { until: (journal) => journal.length > 0 })

/** The input's requests, sent by this process through `cache` with the CLI's base URL and key. */
const sendHere = (lines: ReadonlyArray<string>, url: string, cache: Layer.Layer<ResponseCache.ResponseCache, unknown>) =>
  Batch.runAll(lines.map((line) => JSON.parse(line) as Batch.BatchRequest), { concurrency: 8 }).pipe(
    Effect.provide(ChatClient.layer({ baseUrl: url, apiKey: Redacted.make(KEY) }).pipe(Layer.provide(cache), Layer.orDie))
  )

describe("ResponseCache across processes", () => {
  it.live.skipIf(!withRedis)("the CLI and this process write one Redis cache at once; every entry is whole and answers a third client", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, latency: "200 millis" })
      const redis = (yield* startRedis).url
      const dir = tmp()
      const lines = inputLines(20, 200)
      const input = writeInput(dir, lines)
      const [cli, here] = yield* Effect.all([
        runToEnd([input, "--out", Path.join(dir, "a.jsonl"), "--base-url", mock.url, "--cache", redis, "--no-progress"], { OPENAI_API_KEY: KEY }),
        Effect.zipRight(afterFirst(mock), sendHere(lines, mock.url, ResponseCache.layerRedis({ url: redis })))
      ], { concurrency: "unbounded" })
      expect(cli.code).toBe(0)
      expect(here.every((o) => o._tag === "Success")).toBe(true)
      const sent = (yield* mock.journal).length
      expect(sent).toBeGreaterThanOrEqual(20)
      expect(sent).toBeLessThanOrEqual(40)
      const again = yield* sendHere(lines, mock.url, ResponseCache.layerRedis({ url: redis }))
      expect(again.every((o) => o._tag === "Success" && o.cached !== undefined)).toBe(true)
      expect((yield* mock.journal).length).toBe(sent)
    }).pipe(Effect.scoped), 30_000)

  it.live("shepherd run --cache DIR (written by it and this process at once): a rerun of a finished file with a new --out sends nothing; the summary shows hits and dollars saved", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, latency: "200 millis" })
      const dir = tmp()
      const lines = inputLines(20, 200)
      const input = writeInput(dir, lines)
      const cache = Path.join(dir, "cache")
      const env = { OPENAI_API_KEY: KEY }
      // The first run and this process write the same entries into one directory at once.
      const [first] = yield* Effect.all([
        runToEnd([input, "--out", Path.join(dir, "a.jsonl"), "--base-url", mock.url, "--cache", cache, "--no-progress"], env),
        Effect.zipRight(afterFirst(mock), sendHere(lines, mock.url, ResponseCache.layerFile(cache)))
      ], { concurrency: "unbounded" })
      expect(first.code).toBe(0)
      const sent = (yield* mock.journal).length
      expect(sent).toBeGreaterThanOrEqual(20)
      expect(sent).toBeLessThanOrEqual(40)
      expect(Fs.readdirSync(cache, { recursive: true, encoding: "utf8" }).filter((n) => n.endsWith(".tmp"))).toEqual([])
      const summaryPath = Path.join(dir, "summary.json")
      const second = yield* runToEnd([input, "--out", Path.join(dir, "b.jsonl"), "--base-url", mock.url, "--cache", cache, "--no-progress", "--summary", summaryPath], env)
      expect(second.code).toBe(0)
      expect((yield* mock.journal).length).toBe(sent)
      const summary = JSON.parse(Fs.readFileSync(summaryPath, "utf8"))
      expect(summary).toMatchObject({ written: 20, succeeded: 20, costMicroUsd: 0, cache: { hits: 20 } })
      expect(summary.cache.savedMicroUsd).toBeGreaterThan(0)
      expect(second.stderr).toContain("20 answered from the cache (nothing sent)")
      // the same answers (the entry of either process: the last whole write wins; ids differ, content does not)
      const bodies = (file: string) => readOut(Path.join(dir, file)).map((l) => [l.custom_id, l.response?.body["choices"] ?? l.response?.body["data"]]).sort()
      expect(bodies("b.jsonl")).toEqual(bodies("a.jsonl"))
      // no key material anywhere in the cache
      for (const name of Fs.readdirSync(cache, { recursive: true, encoding: "utf8" })) {
        const path = Path.join(cache, name)
        if (Fs.statSync(path).isFile()) expect(Fs.readFileSync(path, "latin1")).not.toContain(KEY)
      }
    }).pipe(Effect.scoped), 30_000)
})
