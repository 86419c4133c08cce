/**
 * `shepherd run --via batch-api` stopped and resumed: kill -9 at each step, Ctrl-C, and
 * `shepherd batches status|cancel`, each followed by a rerun; the built CLI in child processes
 * against a MockServer in this process.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { env, expectComplete, fast, flags, okCount, readState } from "./batchApiCliHelpers.js"
import { inputLines, KEY, readOut, runToEnd, start, startCommand, tmp, waitFor, writeInput } from "./cliHelpers.js"

describe("shepherd run --via batch-api, stopped and resumed", () => {
  it.scopedLive("kill -9 after an upload, after a create, while polling: the rerun uploads and creates nothing twice, every id once", () =>
    Effect.gen(function* () {
      const moments = [
        ["upload", 1 + Math.floor(Math.random() * 6)],
        ["create", 1 + Math.floor(Math.random() * 6)],
        ["retrieve", 1 + Math.floor(Math.random() * 10)],
        ["content", 1 + Math.floor(Math.random() * 4)]
      ] as const
      // The four moments at once, each with its own server and files: each run mostly waits on its batches.
      yield* Effect.forEach(moments, ([action, count]) => Effect.gen(function* () {
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
      }), { concurrency: "unbounded" })
    }), 60_000)


  it.scopedLive("batches status shows each batch; batches cancel stops them; the run collects what they answered and the rerun completes the rest", () =>
    Effect.gen(function* () {
      // Slow enough that the batch is still running while the two commands start, on a loaded machine
      // too (measured: over 10 s for both there); the cancel ends it, so its length costs nothing.
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "2000 millis", finalizing: "50 millis" } })
      const dir = tmp()
      const input = writeInput(dir, inputLines(9))
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
      expect(done).toBeLessThan(9)
      // The cancelled batch was delivered: the rerun needs only a server for the new batch of the rest.
      const fresh = yield* MockServer.make({ apiKey: KEY, batchApi: fast })
      const rerun = yield* runToEnd(flags(input, out, fresh.url, ["--max-requests-per-file", "100"]), env)
      expect(rerun.code, rerun.stderr).toBe(0)
      expectComplete(out, 9)
      expect(okCount(yield* mock.batchApi.journal, "create")).toBe(1)
      expect((yield* fresh.batchApi.batches).map((b) => b.request_counts?.total)).toEqual([9 - done])
    }), 60_000)


  it.scopedLive("Ctrl-C while polling stops (exit 130) and leaves the batch running; the summary says how to resume or cancel; the rerun (--via auto, below its threshold) collects it, sending nothing live", () =>
    Effect.gen(function* () {
      // The batch runs for 4 s: the Ctrl-C, sent at the first poll, comes long before its end; the rerun waits for that end.
      const mock = yield* MockServer.make({ apiKey: KEY, batchApi: { validating: "50 millis", perRequest: "1000 millis", finalizing: "50 millis" } })
      const dir = tmp()
      const input = writeInput(dir, inputLines(4))
      const out = Path.join(dir, "out.jsonl")
      const first = start(flags(input, out, mock.url, ["--max-requests-per-file", "100", "--no-progress"]), env)
      const firstEnded = yield* Effect.fork(first.ended)
      yield* waitFor(Effect.map(mock.batchApi.journal, (j) => (j.some((e) => e.action === "retrieve") ? true : undefined)), "a poll")
      first.child.kill("SIGINT")
      const ended = yield* Fiber.join(firstEnded)
      expect(ended.code, ended.stderr).toBe(130)
      expect(ended.stderr).toContain(`shepherd batches cancel ${out}`)
      expect((yield* mock.batchApi.batches).map((b) => b.status)).not.toContain("cancelling")
      // Rerun with --via auto below its threshold: OUT has a batch running, so it is collected, not sent live.
      const rerun = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--via", "auto", "--auto-threshold", "1000", "--poll-interval", "100ms"], env)
      expect(rerun.code, rerun.stderr).toBe(0)
      expectComplete(out, 4)
      const journal = yield* mock.batchApi.journal
      expect([okCount(journal, "upload"), okCount(journal, "create")]).toEqual([1, 1])
      expect((yield* mock.journal).filter((e) => e.path === "/v1/chat/completions" || e.path === "/v1/embeddings")).toEqual([])
    }), 60_000)
})
