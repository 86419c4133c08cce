/**
 * `shepherd run` on a full disk and with a line too long to read (issue 13, D.14): /dev/full, a
 * tmpfs of 200 KB, 600 MiB of zeros with no newline. The built CLI runs in child processes against
 * a MockServer in this process (its journal counts what was sent).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../../src/testing/index.js"
import { inputLines, questionOf, runToEnd, tmp, writeInput } from "../cliHelpers.js"
import { args, canMount, noStackTrace, wholeLines } from "./files.js"

if (!canMount) console.warn("disk.test.ts: cannot mount a tmpfs here (needs root): the 200 KB full-disk test is skipped")

describe("shepherd run: a full disk, a line too long to read", { timeout: 180_000 }, () => {
  it.scopedLive("13.14 --out /dev/full (ENOSPC on every write): sending stops at once; the summary and exit status name ENOSPC; no stack trace", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "10 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(300))
      const summaryPath = Path.join(dir, "summary.json")
      const ended = yield* runToEnd(args(input, "/dev/full", mock.url, "--concurrency", "4", "--summary", summaryPath))
      expect(ended.code).toBe(1)
      expect(ended.stderr).toContain("shepherd: /dev/full: could not write (ENOSPC: no space left on device")
      expect(ended.stderr).toContain("sending stopped at once")
      expect(ended.stderr).toMatch(/300 requests have no final outcome: .*\/dev\/full could not be written \(ENOSPC/)
      noStackTrace(ended.stderr)
      const summary = JSON.parse(Fs.readFileSync(summaryPath, "utf8"))
      expect(summary).toMatchObject({ stoppedBy: "output", written: 0, remaining: 300 })
      expect(summary.outputError).toContain("ENOSPC")
      expect(summary.unwritten).toBeGreaterThan(0)
      // Stopped at the first failed write: the requests in flight then, and not the other ~290.
      expect((yield* mock.journal).length).toBeLessThan(40)
      expect(Fs.readdirSync(dir).sort()).toEqual(["in.jsonl", "summary.json"])
    }))

  // A sparse file of 600 MiB of zeros (as /dev/full reads): one line beyond V8's longest string (~512 MB).
  it.scopedLive("13.14 a line too long to read (600 MiB of zeros, no newline) is a typed error naming the line, not a RangeError: in the input and in OUT", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const zeros = Path.join(dir, "zeros.jsonl")
      Fs.writeFileSync(zeros, "")
      Fs.truncateSync(zeros, 600 * 1024 * 1024)
      const out = Path.join(dir, "out.jsonl")
      const input = writeInput(dir, inputLines(3))
      // At once: each reads 256 MiB before it gives up.
      const [asInput, asOut] = yield* Effect.all([runToEnd(args(zeros, out, mock.url)), runToEnd(args(input, zeros, mock.url))], { concurrency: "unbounded" })
      expect(asInput.code).toBe(1)
      expect(asInput.stderr).toContain(`shepherd: ${zeros}: line 1 is longer than 268435456 bytes`)
      noStackTrace(asInput.stderr)
      expect(asOut.code).toBe(1)
      expect(asOut.stderr).toContain(`shepherd: ${zeros}: line 1 is longer than 268435456 bytes`)
      noStackTrace(asOut.stderr)
      expect(yield* mock.journal).toHaveLength(0)
      expect(Fs.readdirSync(dir).sort()).toEqual(["in.jsonl", "zeros.jsonl"])
    }), 120_000)

  it.scopedLive.skipIf(!canMount)(
    "13.14 on a full 200 KB tmpfs: whole lines only, the summary counts them, no temporary file; the rerun on the still-full disk fails cleanly; with room a rerun completes",
    () =>
      Effect.gen(function* () {
        // 10% 503s (no retries) leave lines that a rerun must remove, so that it rewrites OUT.
        const mock = yield* MockServer.make({ latency: "2 millis", seed: 3, faultRate: 0.1, faults: [{ type: "server_error", status: 503 }], journalLimit: 100_000 })
        const dir = tmp()
        // 500 lines of about 725 bytes: 360 KB, so the 200 KB disk fills after about 280 of them.
        const input = writeInput(dir, inputLines(500))
        const disk = Path.join(dir, "disk")
        Fs.mkdirSync(disk)
        yield* Effect.acquireRelease(
          Effect.sync(() => execFileSync("mount", ["-t", "tmpfs", "-o", "size=200k", "tmpfs", disk])),
          () => Effect.sync(() => execFileSync("umount", ["-l", disk]))
        )
        const out = Path.join(disk, "out.jsonl")
        const summaryPath = Path.join(dir, "summary.json")
        const run = (...more: Array<string>) => runToEnd(args(input, out, mock.url, "--concurrency", "8", "--max-retries", "0", "--summary", summaryPath, ...more))

        const first = yield* run()
        expect(first.code).toBe(1)
        expect(first.stderr).toContain(`shepherd: ${out}: could not write (ENOSPC`)
        noStackTrace(first.stderr)
        const lines = wholeLines(out)
        expect(lines.length).toBeGreaterThan(50)
        expect(lines.length).toBeLessThan(500)
        const summary = JSON.parse(Fs.readFileSync(summaryPath, "utf8"))
        expect(summary).toMatchObject({ stoppedBy: "output", written: lines.length })
        expect(Fs.readdirSync(disk)).toEqual(["out.jsonl"])

        // Still full: the rewrite (dropping the 503 lines) cannot be written; OUT is left as it was.
        const full = yield* run()
        expect(full.code).toBe(1)
        expect(full.stderr).toContain("ENOSPC")
        noStackTrace(full.stderr)
        expect(wholeLines(out)).toEqual(lines)
        expect(Fs.readdirSync(disk)).toEqual(["out.jsonl"])

        execFileSync("mount", ["-o", "remount,size=8m", disk])
        const sentBefore = (yield* mock.journal).length
        const done = yield* run()
        // Every id has its line; the 503s of this run are not final (exit 1: a rerun sends them).
        expect(done.code).toBe(1)
        expect(done.stderr).toContain("failed in a way worth retrying (http_503")
        const after = wholeLines(out).map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number } | null })
        expect(after).toHaveLength(500)
        expect(new Set(after.map((l) => l.custom_id)).size).toBe(500)
        // Answers written whole before the disk filled were not sent again.
        const kept = new Set(lines.map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number } | null })
          .filter((l) => l.response?.status_code === 200).map((l) => Number(l.custom_id.slice(1))))
        expect((yield* mock.journal).slice(sentBefore).map((e) => questionOf(e.body)).filter((i) => kept.has(i))).toEqual([])
        expect(Fs.readdirSync(disk)).toEqual(["out.jsonl"])
      }),
    180_000
  )

})
