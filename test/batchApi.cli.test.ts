/**
 * `shepherd run --via batch-api` and `shepherd batches status|cancel`: the built CLI in child
 * processes against a MockServer in this process (its Batch API journal shows every upload and
 * batch), on a time scale of milliseconds.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { inputLines, KEY, readOut, runToEnd, start, startCommand, tmp, waitFor, writeInput } from "./cliHelpers.js"
import { batchValidatorFor } from "./helpers.js"

const validOutput = batchValidatorFor("BatchRequestOutput")

const fast = { validating: "150 millis", perRequest: "10 millis", finalizing: "100 millis" } as const

const flags = (input: string, out: string, url: string, extra: ReadonlyArray<string> = []) =>
  [input, "--out", out, "--base-url", url, "--via", "batch-api", "--poll-interval", "100ms", ...(extra.includes("--max-requests-per-file") ? [] : ["--max-requests-per-file", "5"]), ...extra]

const env = { OPENAI_API_KEY: KEY }

interface StateFile {
  readonly runId: string
  readonly ranges: Record<string, { readonly step: string; readonly retryOf?: string; readonly unfinished?: ReadonlyArray<string> }>
}
const readState = (out: string) => JSON.parse(Fs.readFileSync(`${out}.batches.json`, "utf8")) as StateFile

const okCount = (journal: ReadonlyArray<MockServer.BatchApiJournalEntry>, action: string) => journal.filter((e) => e.action === action && e.status === 200).length

/** Every input id exactly once in OUT, each line in OpenAI's batch output format. */
const expectComplete = (out: string, n: number) => {
  const lines = readOut(out)
  expect(lines.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: n }, (_, i) => `r${i}`).sort())
  for (const line of lines) expect(validOutput(line)).toBeUndefined()
}

describe("shepherd run --via batch-api", () => {
  it.scopedLive("a whole run: split per endpoint and size, one upload and one batch per range, every id once in OUT; a rerun sends nothing", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: fast })
      const dir = tmp()
      const input = writeInput(dir, inputLines(23))
      const out = Path.join(dir, "out.jsonl")
      const summaryPath = Path.join(dir, "summary.json")
      const ended = yield* runToEnd(flags(input, out, mock.url, ["--summary", summaryPath]), env)
      expect(ended.stderr).toContain("at the Batch API price")
      expect(ended.code).toBe(0)
      expectComplete(out, 23)
      const state = readState(out)
      const ranges = Object.keys(state.ranges).length
      // Chat and embeddings lines alternate: r0-r8 chat (two files of 5), r9 embeddings, ...
      expect(ranges).toBe(7)
      const journal = yield* mock.batchApi.journal
      expect(okCount(journal, "upload")).toBe(ranges)
      expect(okCount(journal, "create")).toBe(ranges)
      expect(Object.values(state.ranges).every((r) => r.step === "delivered")).toBe(true)
      expect(JSON.parse(Fs.readFileSync(summaryPath, "utf8"))).toMatchObject({ via: "batch-api", remaining: 0 })
      const again = yield* runToEnd(flags(input, out, mock.url), env)
      expect(again.code).toBe(0)
      expect((yield* mock.batchApi.journal).length).toBe(journal.length)
      expectComplete(out, 23)
    }))

  it.scopedLive("kill -9 after an upload, after a create, while polling: the rerun uploads and creates nothing twice, every id once", () =>
    Effect.gen(function* () {
      const moments = [
        ["upload", 1 + Math.floor(Math.random() * 6)],
        ["create", 1 + Math.floor(Math.random() * 6)],
        ["retrieve", 1 + Math.floor(Math.random() * 10)]
      ] as const
      for (const [action, count] of moments) {
        const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { ...fast, validating: "300 millis" } })
        const dir = tmp()
        const input = writeInput(dir, inputLines(23))
        const out = Path.join(dir, "out.jsonl")
        const first = start(flags(input, out, mock.url, ["--no-progress"]), env)
        yield* waitFor(Effect.map(mock.batchApi.journal, (j) => (j.filter((e) => e.action === action).length >= count ? true : undefined)), `${count} ${action}`)
        first.child.kill("SIGKILL")
        yield* first.ended
        const rerun = yield* runToEnd(flags(input, out, mock.url, ["--no-progress"]), env)
        expect(rerun.code, `${action} ${count}: ${rerun.stderr}`).toBe(0)
        expectComplete(out, 23)
        const ranges = Object.keys(readState(out).ranges).length
        const journal = yield* mock.batchApi.journal
        expect(okCount(journal, "upload"), `${action} ${count}`).toBe(ranges)
        expect(okCount(journal, "create"), `${action} ${count}`).toBe(ranges)
      }
    }), 60_000)

  it.scopedLive("an expired batch leaves its unfinished ids without a line (exit 1); the rerun submits only those", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const input = writeInput(dir, inputLines(8).slice(0, 8))
      const out = Path.join(dir, "out.jsonl")
      // 8 chat requests at 100 ms each in a 500 ms window: some expire.
      const short = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "100 millis", finalizing: "50 millis", completionWindow: "500 millis" } })
      const first = yield* runToEnd(flags(input, out, short.url, ["--max-requests-per-file", "100"]), env)
      expect(first.code, first.stderr).toBe(1)
      expect(first.stderr).toContain("expired")
      const written = readOut(out).map((l) => l.custom_id)
      expect(written.length).toBeGreaterThan(0)
      expect(written.length).toBeLessThan(8)
      const state = readState(out)
      const unfinished = Object.values(state.ranges).flatMap((r) => r.unfinished ?? [])
      expect([...written, ...unfinished].sort()).toEqual(Array.from({ length: 8 }, (_, i) => `r${i}`).sort())
      const normal = yield* MockServer.make({ apiKey: KEY, batchApi: fast })
      const rerun = yield* runToEnd(flags(input, out, normal.url, ["--max-requests-per-file", "100"]), env)
      expect(rerun.code, rerun.stderr).toBe(0)
      expectComplete(out, 8)
      const journal = yield* normal.batchApi.journal
      expect(okCount(journal, "upload")).toBe(1)
      // The rerun's file held the unfinished ids only.
      expect((yield* normal.batchApi.batches)[0]!.request_counts?.total).toBe(unfinished.length)
    }))

  it.scopedLive("batches status shows each batch; batches cancel stops them; the run collects what they answered and the rerun completes the rest", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "600 millis", finalizing: "50 millis" } })
      const dir = tmp()
      const input = writeInput(dir, inputLines(8))
      const out = Path.join(dir, "out.jsonl")
      const missing = yield* startCommand("batches", ["status", out], env).ended
      expect(missing.code).toBe(2)
      const first = start(flags(input, out, mock.url, ["--max-requests-per-file", "100", "--no-progress"]), env)
      // Listening from now on: the run may end before it is awaited.
      const firstEnded = yield* Effect.fork(first.ended)
      yield* waitFor(Effect.map(mock.batchApi.batches, (b) => ((b[0]?.request_counts?.completed ?? 0) >= 1 ? true : undefined)), "a request done")
      const status = yield* startCommand("batches", ["status", out, "--base-url", mock.url], env).ended
      expect(status.code).toBe(0)
      expect(status.stdout).toMatch(/batch_mock\d+ in_progress/)
      const cancel = yield* startCommand("batches", ["cancel", out, "--base-url", mock.url], env).ended
      expect(cancel.code, cancel.stderr).toBe(0)
      expect(cancel.stdout).toContain("cancelling")
      const ended = yield* Fiber.join(firstEnded)
      expect(ended.code).toBe(1)
      expect(ended.stderr).toContain("cancelled")
      const done = readOut(out).length
      expect(done).toBeGreaterThan(0)
      expect(done).toBeLessThan(8)
      const rerun = yield* runToEnd(flags(input, out, mock.url, ["--max-requests-per-file", "100"]), env)
      expect(rerun.code, rerun.stderr).toBe(0)
      expectComplete(out, 8)
      expect(okCount(yield* mock.batchApi.journal, "create")).toBe(2)
    }), 60_000)

  it.scopedLive("usage errors: no key, --shard; exit 2 and nothing sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ batchApi: fast })
      const dir = tmp()
      const input = writeInput(dir, inputLines(3))
      const out = Path.join(dir, "out.jsonl")
      const noKey = yield* runToEnd(flags(input, out, mock.url))
      expect(noKey.code, noKey.stderr).toBe(2)
      expect(noKey.stderr).toContain("OPENAI_API_KEY")
      const sharded = yield* runToEnd(flags(input, out, mock.url, ["--shard", "0/2"]), env)
      expect(sharded.code).toBe(2)
      const via = yield* runToEnd([input, "--out", out, "--via", "post"], env)
      expect(via.code).toBe(2)
      expect(yield* mock.batchApi.journal).toEqual([])
    }))

  it.scopedLive("Ctrl-C while polling stops (exit 130) and leaves the batch running; the summary says how to resume or cancel; the rerun collects it", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "300 millis", finalizing: "50 millis" } })
      const dir = tmp()
      const input = writeInput(dir, inputLines(8))
      const out = Path.join(dir, "out.jsonl")
      const first = start(flags(input, out, mock.url, ["--max-requests-per-file", "100", "--no-progress"]), env)
      const firstEnded = yield* Effect.fork(first.ended)
      yield* waitFor(Effect.map(mock.batchApi.journal, (j) => (j.some((e) => e.action === "retrieve") ? true : undefined)), "a poll")
      first.child.kill("SIGINT")
      const ended = yield* Fiber.join(firstEnded)
      expect(ended.code, ended.stderr).toBe(130)
      expect(ended.stderr).toContain(`shepherd batches cancel ${out}`)
      expect((yield* mock.batchApi.batches).map((b) => b.status)).not.toContain("cancelling")
      const rerun = yield* runToEnd(flags(input, out, mock.url, ["--max-requests-per-file", "100"]), env)
      expect(rerun.code, rerun.stderr).toBe(0)
      expectComplete(out, 8)
      const journal = yield* mock.batchApi.journal
      expect([okCount(journal, "upload"), okCount(journal, "create")]).toEqual([1, 1])
    }))
})

describe("shepherd run --via auto", () => {
  it.scopedLive("below --auto-threshold: live, no batch", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: fast })
      const dir = tmp()
      const input = writeInput(dir, inputLines(5))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--via", "auto", "--auto-threshold", "6", "--no-progress"], env)
      expect(ended.code, ended.stderr).toBe(0)
      expectComplete(out, 5)
      expect(yield* mock.batchApi.journal).toEqual([])
      expect((yield* mock.journal).length).toBe(5)
    }))

  it.scopedLive("above it with --deadline: at the deadline the batch is cancelled, its answers collected, the rest sent live; every id once", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "400 millis", finalizing: "50 millis" } })
      const dir = tmp()
      const input = writeInput(dir, inputLines(12))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--via", "auto", "--auto-threshold", "10", "--deadline", "1500ms",
        "--poll-interval", "100ms", "--max-requests-per-file", "100", "--no-progress"], env)
      expect(ended.code, ended.stderr).toBe(0)
      expect(ended.stderr).toContain("deadline reached")
      expectComplete(out, 12)
      const journal = yield* mock.batchApi.journal
      expect(okCount(journal, "cancel")).toBeGreaterThanOrEqual(1)
      const batches = yield* mock.batchApi.batches
      expect(batches.some((b) => b.status === "cancelled")).toBe(true)
      const answered = batches.reduce((n, b) => n + b.request_counts!.completed + b.request_counts!.failed, 0)
      const live = (yield* mock.journal).filter((e) => e.path === "/v1/chat/completions" || e.path === "/v1/embeddings")
      // What the batches answered was not sent again: the live requests are the rest.
      expect(live.length).toBe(12 - answered)
      expect(live.length).toBeGreaterThan(0)
    }))
})
