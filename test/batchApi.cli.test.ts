/**
 * `shepherd run --via batch-api` and `shepherd batches status|cancel`: the built CLI in child
 * processes against a MockServer in this process (its Batch API journal shows every upload and
 * batch), on a time scale of milliseconds.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { env, expectComplete, fast, flags, okCount, readState } from "./batchApiCliHelpers.js"
import { inputLines, KEY, questionOf, readOut, runToEnd, startCommand, tmp, waitFor, writeInput } from "./cliHelpers.js"

describe("shepherd run --via batch-api", { concurrent: true }, () => {
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

  it.scopedLive("requests a batch failed are written as failures in OpenAI's format (a 400 is final: exit 0)", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({
        apiKey: KEY,
        batchApi: { ...fast, failRequest: (line) => (line.custom_id === "r3" ? { status: 400, code: "invalid_value", message: "bad value (mock)" } : undefined) }
      })
      const dir = tmp()
      const input = writeInput(dir, inputLines(6))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd(flags(input, out, mock.url, ["--no-progress"]), env)
      expect(ended.code, ended.stderr).toBe(0)
      expectComplete(out, 6)
      const failed = readOut(out).find((l) => l.custom_id === "r3")!
      expect(failed.response?.status_code).toBe(400)
      expect(ended.stderr).toContain("http_400 1")
    }))

  it.scopedLive("against `shepherd mock` in its own process: its --batch-* flags set the time scale and the file endpoints' faults, which the run retries", () =>
    Effect.gen(function* () {
      const server = startCommand("mock", ["--batch-validating", "50ms", "--batch-per-request", "5ms", "--batch-finalizing", "50ms", "--batch-file-faults", "server_error,rate_limit", "--retry-after", "0"])
      let printed = ""
      server.child.stdout.on("data", (chunk: string) => { printed += chunk })
      const base = yield* waitFor(Effect.sync(() => /^(http:\S+)$/m.exec(printed)?.[1]), "the mock's URL")
      yield* Effect.addFinalizer(() => Effect.sync(() => server.child.kill("SIGTERM")))
      const dir = tmp()
      const input = writeInput(dir, inputLines(4))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd(flags(input, out, base, ["--no-progress"]), env)
      expect(ended.code, ended.stderr).toBe(0)
      expectComplete(out, 4)
      const remote = yield* Effect.promise(() => fetch(base.replace(/\/v1$/, "/_mock/batch-api")).then((r) => r.json() as Promise<{ journal: Array<MockServer.BatchApiJournalEntry> }>))
      expect(remote.journal.filter((e) => e.action === "fault").length).toBe(2)
      expect(okCount(remote.journal, "upload")).toBe(okCount(remote.journal, "create"))
    }))

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

  it.scopedLive("usage errors: no key, --shard; exit 2 and nothing sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ batchApi: fast })
      const dir = tmp()
      const input = writeInput(dir, inputLines(3))
      const out = (name: string) => Path.join(dir, `${name}.jsonl`)
      // At once, each with its own OUT (a refusal must not be another run's lock on it).
      const [noKey, sharded, via] = yield* Effect.all([
        runToEnd(flags(input, out("no-key"), mock.url)),
        runToEnd(flags(input, out("sharded"), mock.url, ["--shard", "0/2"]), env),
        runToEnd([input, "--out", out("via"), "--via", "post"], env)
      ], { concurrency: "unbounded" })
      expect(noKey.code, noKey.stderr).toBe(2)
      expect(noKey.stderr).toContain("OPENAI_API_KEY")
      expect(sharded.code).toBe(2)
      expect(via.code).toBe(2)
      expect(yield* mock.batchApi.journal).toEqual([])
    }))

})

describe("shepherd run --via auto", { concurrent: true }, () => {
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

  it.scopedLive("above it with --deadline: at the deadline no batch is created, the running ones are cancelled and their answers collected, the rest sent live; every id answered exactly once", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "400 millis", finalizing: "50 millis" } })
      const dir = tmp()
      const input = writeInput(dir, inputLines(12))
      const out = Path.join(dir, "out.jsonl")
      // Five files (an embeddings line splits them): four run at once, the fifth starts as one ends.
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--via", "auto", "--auto-threshold", "10", "--deadline", "1500ms",
        "--poll-interval", "100ms", "--max-requests-per-file", "3", "--no-progress"], env)
      expect(ended.code, ended.stderr).toBe(0)
      expect(ended.stderr).toContain("deadline reached")
      expectComplete(out, 12)
      const journal = yield* mock.batchApi.journal
      expect(okCount(journal, "cancel")).toBeGreaterThanOrEqual(1)
      const batches = yield* mock.batchApi.batches
      expect(batches.some((b) => b.status === "cancelled")).toBe(true)
      // No batch is left running: nothing can be answered after the live phase.
      expect(batches.every((b) => ["completed", "cancelled", "expired", "failed"].includes(b.status))).toBe(true)
      const content = (id: string) => fetch(`${mock.url}/files/${id}/content`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.text())
      const byBatch = yield* Effect.promise(() => Promise.all(batches.flatMap((b) => (b.output_file_id ? [content(b.output_file_id)] : []))))
      const answered = byBatch.flatMap((text) => text.trim().split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { custom_id: string }).custom_id))
      const live = (yield* mock.journal).filter((e) => e.path === "/v1/chat/completions" || e.path === "/v1/embeddings").map((e) => `r${questionOf(e.body)}`)
      expect(live.length).toBeGreaterThan(0)
      // Each id once: by a batch or live, never both, never twice.
      expect([...answered, ...live].sort()).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`).sort())
    }))

  it.scopedLive("--budget-usd holds each batch file's worst case before its create: the files it cannot hold get no batch and no line, exit 1, the summary says why", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: fast })
      const dir = tmp()
      const input = writeInput(dir, inputLines(9, 2000))
      const out = Path.join(dir, "out.jsonl")
      // gpt-4.1-mini at the batch price: 2,000 completion tokens are $0.0016 a line, $0.0048 a file of 3;
      // $0.01 holds two files at once, not three.
      const ended = yield* runToEnd(flags(input, out, mock.url, ["--max-requests-per-file", "3", "--budget-usd", "0.01", "--no-progress"]), env)
      expect(ended.code, ended.stderr).toBe(1)
      expect(ended.stderr).toContain("not submitted")
      expect(ended.stderr).toMatch(/3 not sent: .*budget/)
      expect(readOut(out).length).toBe(6)
      const journal = yield* mock.batchApi.journal
      expect([okCount(journal, "upload"), okCount(journal, "create")]).toEqual([2, 2])
    }))
})
