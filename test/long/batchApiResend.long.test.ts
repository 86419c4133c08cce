/**
 * `npm run test:long`: kill -9 of a rerun that resends what a batch left unfinished (lines answered
 * 500 or 429 in the error file), at its upload, its create and its polling; then a rerun to the end.
 * The mock's journal shows one upload and one batch per range of the state (the retry ranges
 * included), and OUT holds every id once. test/BatchApiResubmit.test.ts plays the same in process.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import { MockServer } from "../../src/testing/index.js"
import { env, expectComplete, fast, flags, okCount, readState } from "../batchApiCliHelpers.js"
import { inputLines, KEY, readOut, runToEnd, start, tmp, waitFor, writeInput } from "../cliHelpers.js"

describe("shepherd run --via batch-api: resending unfinished lines across kill -9", () => {
  it.scopedLive("kill -9 of the rerun at the retry range's upload, create and polling: one upload and one batch per range, every id once", () =>
    Effect.gen(function* () {
      for (const action of ["upload", "create", "retrieve"] as const) {
        let flaky = true
        const mock = yield* MockServer.make({
          apiKey: KEY,
          batchApi: {
            ...fast,
            validating: "300 millis",
            failRequest: (line) => {
              if (!flaky) return undefined
              const n = Number(line.custom_id.slice(1))
              return n % 3 === 0 ? { status: 500, code: "server_error", message: "boom" } : n % 3 === 1 ? { status: 429, code: "rate_limit_exceeded", message: "slow" } : undefined
            }
          }
        })
        const dir = tmp()
        const input = writeInput(dir, inputLines(12))
        const out = Path.join(dir, "out.jsonl")
        const first = yield* runToEnd(flags(input, out, mock.url, ["--no-progress"]), env)
        expect(first.code, first.stderr).toBe(1)
        expect(readOut(out).every((l) => Number(l.custom_id.slice(1)) % 3 === 2)).toBe(true)
        flaky = false
        const before = (yield* mock.batchApi.journal).filter((e) => e.action === action).length
        const rerun = start(flags(input, out, mock.url, ["--no-progress"]), env)
        yield* waitFor(Effect.map(mock.batchApi.journal, (j) => (j.filter((e) => e.action === action).length > before ? true : undefined)), `the rerun's ${action}`)
        rerun.child.kill("SIGKILL")
        yield* rerun.ended
        const last = yield* runToEnd(flags(input, out, mock.url, ["--no-progress"]), env)
        expect(last.code, `${action}: ${last.stderr}`).toBe(0)
        expectComplete(out, 12)
        const ranges = Object.values(readState(out).ranges)
        expect(ranges.some((r) => r.retryOf !== undefined), action).toBe(true)
        const journal = yield* mock.batchApi.journal
        expect(okCount(journal, "upload"), action).toBe(ranges.length)
        expect(okCount(journal, "create"), action).toBe(ranges.length)
      }
    }), 300_000)
})
