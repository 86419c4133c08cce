/**
 * `shepherd run`'s files under hostile conditions (issue 13, D.12-D.17): an --out that names another
 * file, two runs on one --out, kill -9, ids that differ only in a lone surrogate, a BOM. A full disk
 * and a line too long to read: test/hostile/disk.test.ts.
 * The built CLI runs in child processes against a MockServer in this process (its journal counts
 * what was sent).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { MockServer } from "../../src/testing/index.js"
import { inputLines, questionOf, readOut, runToEnd, start, tmp, waitFor, writeInput } from "../cliHelpers.js"
import { sharedRun } from "../helpers.js"
import { args, noStackTrace, wholeLines } from "./files.js"

// Each test starts several CLI processes (a few seconds each on a loaded 2-core machine).
describe("shepherd run: its files", { timeout: 180_000, concurrent: true }, () => {
  it.scopedLive("13.12 --out naming the input (directly or through a symlink) is refused with exit 2; the input is unchanged and nothing is sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const input = writeInput(dir, inputLines(20))
      const before = Fs.readFileSync(input, "utf8")
      const link = Path.join(dir, "link.jsonl")
      Fs.symlinkSync(input, link)
      // At once: each refusal is its own process.
      const outs = [input, link]
      const results = yield* Effect.all(outs.map((out) => runToEnd(args(input, out, mock.url))), { concurrency: "unbounded" })
      results.forEach((ended, i) => {
        expect(ended.code).toBe(2)
        expect(ended.stderr).toContain(`the input ${input} and --out ${outs[i]} are the same file`)
        noStackTrace(ended.stderr)
      })
      expect(Fs.readFileSync(input, "utf8")).toBe(before)
      expect(yield* mock.journal).toHaveLength(0)
      expect(Fs.readdirSync(dir).sort()).toEqual(["in.jsonl", "link.jsonl"])
    }))

  it.scopedLive("13.12 --out holding lines that are not batch output lines (another input file) is refused, naming its first line; it is unchanged", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const input = writeInput(dir, inputLines(20))
      const other = Path.join(dir, "other.jsonl")
      const otherText = inputLines(2000).join("\n") + "\n"
      Fs.writeFileSync(other, otherText)
      const ended = yield* runToEnd(args(input, other, mock.url))
      expect(ended.code).toBe(2)
      expect(ended.stderr).toContain(`--out ${other} holds lines that are not batch output lines (line 1: "{\\"custom_id\\":\\"r0\\"`)
      noStackTrace(ended.stderr)
      expect(Fs.readFileSync(other, "utf8")).toBe(otherText)
      expect(yield* mock.journal).toHaveLength(0)
      expect(Fs.existsSync(`${other}.lock`)).toBe(false)
    }))

  it.scopedLive("13.12 --summary or --metrics naming --out (or a hard link to it) is refused before anything is sent; the outcomes are kept", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const input = writeInput(dir, inputLines(20))
      const out = Path.join(dir, "out.jsonl")
      expect((yield* runToEnd(args(input, out, mock.url))).code).toBe(0)
      const outcomes = Fs.readFileSync(out, "utf8")
      const hard = Path.join(dir, "hard.json")
      Fs.linkSync(out, hard)
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--summary", out], `--out ${out} and --summary ${out} are the same file`],
        [["--metrics", hard], `--out ${out} and --metrics ${hard} are the same file`],
        [["--summary", Path.join(dir, "s.json"), "--metrics", Path.join(dir, "s.json")], "are the same file"],
        [["--summary", input], `the input ${input} and --summary ${input} are the same file`]
      ]
      // At once: each refusal is its own process, refused before it reads or writes anything.
      const results = yield* Effect.all(cases.map(([more]) => runToEnd(args(input, out, mock.url, ...more))), { concurrency: "unbounded" })
      results.forEach((ended, i) => {
        expect(ended.code).toBe(2)
        expect(ended.stderr).toContain(cases[i]![1])
      })
      expect(Fs.readFileSync(out, "utf8")).toBe(outcomes)
      expect(yield* mock.journal).toHaveLength(20)
    }))

  it.scopedLive("13.13 a second run on the same --out exits 2 naming the first (pid, host); the first completes and no request is sent twice", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "20 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(300))
      const out = Path.join(dir, "out.jsonl")
      const first = start(args(input, out, mock.url, "--concurrency", "4"))
      yield* waitFor(Effect.sync(() => (readOut(out).length >= 10 ? true : undefined)), "10 lines written")
      // The first run is paused (alive, holding its lock) while the second starts, however slow the machine.
      first.child.kill("SIGSTOP")
      const lock = JSON.parse(Fs.readFileSync(`${out}.lock`, "utf8"))
      expect(lock).toMatchObject({ pid: first.child.pid, host: Os.hostname() })
      const second = yield* runToEnd(args(input, out, mock.url, "--concurrency", "4"))
      first.child.kill("SIGCONT")
      expect(second.code).toBe(2)
      expect(second.stderr).toContain(`${out} is in use by another shepherd run (pid ${first.child.pid} on host ${Os.hostname()}`)
      noStackTrace(second.stderr)
      const ended = yield* first.ended
      expect(ended.code).toBe(0)
      expect(ended.stderr).toContain("300 outcomes written")
      const written = readOut(out)
      expect(written).toHaveLength(300)
      expect(new Set(written.map((l) => l.custom_id)).size).toBe(300)
      expect(yield* mock.journal).toHaveLength(300)
      expect(Fs.existsSync(`${out}.lock`)).toBe(false)
    }))

  it.scopedLive("13.13 after kill -9 mid-run OUT holds whole lines only; the rerun takes the stale lock over with a note and ends with one line per id", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "20 millis", journalLimit: 100_000 })
      const dir = tmp()
      const input = writeInput(dir, inputLines(400))
      const out = Path.join(dir, "out.jsonl")
      const first = start(args(input, out, mock.url, "--concurrency", "8"))
      yield* waitFor(Effect.sync(() => (readOut(out).length >= 50 ? true : undefined)), "50 lines written")
      first.child.kill("SIGKILL")
      expect((yield* first.ended).signal).toBe("SIGKILL")
      expect(JSON.parse(Fs.readFileSync(`${out}.lock`, "utf8")).pid).toBe(first.child.pid) // left behind
      const before = wholeLines(out)
      const answered = new Set(before.map((l) => Number((JSON.parse(l) as { custom_id: string }).custom_id.slice(1))))
      const sentBefore = (yield* mock.journal).length

      const rerun = yield* runToEnd(args(input, out, mock.url, "--concurrency", "8"))
      expect(rerun.code).toBe(0)
      expect(rerun.stderr).toContain(`${out}.lock was left by pid ${first.child.pid} on host ${Os.hostname()}`)
      expect(rerun.stderr).toContain("which is no longer running: taking it over")
      const after = wholeLines(out)
      expect(after).toHaveLength(400)
      expect(new Set(after.map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)).size).toBe(400)
      const resent = (yield* mock.journal).slice(sentBefore).map((e) => questionOf(e.body)).filter((i) => answered.has(i))
      expect(resent).toEqual([])
      expect(Fs.existsSync(`${out}.lock`)).toBe(false)
    }))

  describe("13.13 the lock is held during the run and removed on every exit", () => {
    const server = sharedRun(MockServer.make({ latency: "30 millis" }))
    const lockOf = (out: string) => `${out}.lock`
    // The pid in the lock once it is written (it is created empty, then written).
    const holder = (out: string) =>
      Effect.sync(() => {
        try {
          return (JSON.parse(Fs.readFileSync(lockOf(out), "utf8")) as { pid: number }).pid
        } catch {
          return undefined
        }
      })
    /** Nothing left behind in `dir`: no lock, no temporary file. */
    const clean = (dir: string) => expect(Fs.readdirSync(dir).filter((name) => name.endsWith(".lock") || name.endsWith(".tmp"))).toEqual([])

    it.scopedLive("success (exit 0)", () =>
      Effect.gen(function* () {
        const dir = tmp()
        const out = Path.join(dir, "ok.jsonl")
        const ok = start(args(writeInput(dir, inputLines(40)), out, server().url, "--concurrency", "2"))
        expect(yield* waitFor(holder(out), "the lock")).toBe(ok.child.pid)
        expect((yield* ok.ended).code).toBe(0)
        expect(Fs.existsSync(lockOf(out))).toBe(false)
        clean(dir)
      }))

    it.scopedLive("a refusal after the lock was taken: an invalid input line (exit 2)", () =>
      Effect.gen(function* () {
        const dir = tmp()
        const bad = writeInput(dir, [...inputLines(3), "{not json"])
        const refused = yield* runToEnd(args(bad, Path.join(dir, "out.jsonl"), server().url))
        expect(refused.code).toBe(2)
        expect(Fs.readdirSync(dir).sort()).toEqual(["in.jsonl"])
      }))

    it.scopedLive("stopped by the budget (exit 1)", () =>
      Effect.gen(function* () {
        const dir = tmp()
        const out = Path.join(dir, "budget.jsonl")
        const budget = start(args(writeInput(dir, inputLines(200)), out, server().url, "--concurrency", "2", "--budget-usd", "0.002"))
        expect(yield* waitFor(holder(out), "the lock")).toBe(budget.child.pid)
        expect((yield* budget.ended).code).toBe(1)
        expect(Fs.existsSync(lockOf(out))).toBe(false)
        clean(dir)
      }))

    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      it.scopedLive(`${signal} (exit 130)`, () =>
        Effect.gen(function* () {
          const dir = tmp()
          const out = Path.join(dir, `${signal}.jsonl`)
          const run = start(args(writeInput(dir, inputLines(200)), out, server().url, "--concurrency", "2"))
          expect(yield* waitFor(holder(out), "the lock")).toBe(run.child.pid)
          yield* waitFor(Effect.sync(() => (readOut(out).length >= 4 ? true : undefined)), "4 lines")
          run.child.kill(signal)
          expect((yield* run.ended).code).toBe(130)
          expect(Fs.existsSync(lockOf(out))).toBe(false)
          clean(dir)
        }))
    }
  })

  it.scopedLive("13.15 ids differing only in a lone surrogate are two ids: both are sent; resuming with one answered sends the other", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const [a, b] = inputLines(2).map((line) => JSON.parse(line) as Record<string, unknown>)
      const ids = ["row-\ud800", "row-\udfff"]
      const input = writeInput(dir, [JSON.stringify({ ...a, custom_id: ids[0] }), JSON.stringify({ ...b, custom_id: ids[1] })])
      const out = Path.join(dir, "out.jsonl")
      const first = yield* runToEnd(args(input, out, mock.url))
      expect(first.code).toBe(0)
      expect(readOut(out).map((l) => l.custom_id).sort()).toEqual([...ids].sort())

      // Keep only the first id's answer: the rerun must send the second.
      Fs.writeFileSync(out, readOut(out).filter((l) => l.custom_id === ids[0]).map((l) => JSON.stringify(l) + "\n").join(""))
      const rerun = yield* runToEnd(args(input, out, mock.url))
      expect(rerun.code).toBe(0)
      expect(rerun.stderr).toContain("resuming: 1 of 2 requests already have a final outcome")
      expect((yield* mock.journal).slice(2).map((e) => questionOf(e.body))).toEqual([1])
      expect(readOut(out).map((l) => l.custom_id).sort()).toEqual([...ids].sort())
    }))

  it.scopedLive("13.17 a UTF-8 byte order mark at the start of the input file is skipped", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const input = Path.join(dir, "in.jsonl")
      Fs.writeFileSync(input, "\ufeff" + inputLines(5).join("\r\n") + "\r\n")
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd(args(input, out, mock.url))
      expect(ended.stderr).not.toContain("not JSON")
      expect(ended.code).toBe(0)
      expect(readOut(out).map((l) => l.custom_id).sort()).toEqual(["r0", "r1", "r2", "r3", "r4"])
    }))
})
