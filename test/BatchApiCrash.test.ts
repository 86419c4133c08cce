/**
 * A crash at each step of a submission (the fiber interrupted after upload, after create, while
 * polling, while downloading, after downloading), then a rerun with the same state file: one upload
 * and one batch per input range in the mock's journal, and every id exactly one outcome in all.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type * as Batch from "../src/Batch.js"
import * as BatchApi from "../src/BatchApi.js"
import type * as MockBatchApi from "../src/testing/internal/batchApi.js"
import { API_KEY, drive, httpLayer, mockOnClock, okEntries, options, requests, serve } from "./batchApiHelpers.js"

type CrashPoint = (event: BatchApi.Event) => boolean

const points: ReadonlyArray<readonly [string, CrashPoint | "download"]> = [
  ["after an upload, before it is recorded", (e) => e._tag === "Uploaded"],
  ["after a batch is created, before it is recorded", (e) => e._tag === "Created"],
  ["while polling", (e) => e._tag === "Progress" && e.status === "in_progress"],
  ["while downloading", "download"],
  ["after downloading, before the outcomes are emitted", (e) => e._tag === "Ended"]
]

const INPUT = requests(7)

describe("BatchApi: crash and rerun", () => {
  for (const [name, point] of points) {
    it.scoped(`crash ${name}: one upload and one batch per range, every id exactly once`, () =>
      Effect.gen(function* () {
        const api = yield* mockOnClock({ validating: "1 second", perRequest: "5 seconds", finalizing: "1 second" })
        let crashed = false
        let hung = false
        // The download crash: the first content request is never answered, and the run is killed meanwhile.
        const { url } = yield* serve(api, point === "download"
          ? (request: MockBatchApi.Request) => {
            if (hung || !request.url.endsWith("/content")) return false
            hung = true
            crashed = true
            return true
          }
          : undefined)
        const statePath = join(mkdtempSync(join(tmpdir(), "shepherd-batch-")), "out.batches.json")
        const seen: Array<Batch.BatchOutcome> = []
        const crashAt: CrashPoint = point === "download" ? () => false : point
        const first = BatchApi.submit(INPUT, options(url, {
          maxRequestsPerFile: 3,
          onEvent: (event) =>
            crashed || !crashAt(event) ? Effect.void : Effect.zipRight(Effect.sync(() => { crashed = true }), Effect.never)
        }))
        yield* drive(Stream.runForEach(first, (o) => Effect.sync(() => { seen.push(o) })), { until: () => crashed }).pipe(
          Effect.provide(BatchApi.layerFile(statePath))
        )
        assert.isTrue(crashed)
        // The rerun: a new process would load the same state file.
        yield* drive(Stream.runForEach(BatchApi.submit(INPUT, options(url, { maxRequestsPerFile: 3 })), (o) => Effect.sync(() => { seen.push(o) }))).pipe(
          Effect.provide(BatchApi.layerFile(statePath))
        )
        const uploads = okEntries(api, "upload")
        assert.strictEqual(uploads.length, 3, "one upload per range")
        assert.strictEqual(new Set(uploads.map((u) => u.filename)).size, 3)
        const creates = okEntries(api, "create")
        assert.strictEqual(creates.length, 3, "one batch per range")
        assert.strictEqual(new Set(creates.map((c) => c.metadata?.["shepherd_range"])).size, 3)
        assert.deepStrictEqual(seen.map((o) => o.custom_id).sort(), INPUT.map((r) => r.custom_id).sort())
        const state = readFileSync(statePath, "utf8")
        assert.notInclude(state, API_KEY)
        const ranges = Object.values((JSON.parse(state) as BatchApi.SubmissionState).ranges)
        assert.deepStrictEqual(ranges.map((r) => r.step), ["delivered", "delivered", "delivered"])
      }).pipe(Effect.provide(httpLayer)))
  }
})
