import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as BatchApi from "../src/BatchApi.js"
import type * as Batch from "../src/Batch.js"
import * as BatchFile from "../src/cli/batchFile.js"
import * as Pricing from "../src/Pricing.js"
import { batchValidatorFor } from "./helpers.js"
import { drive, httpLayer, mockOnClock, okEntries, options, requests, serve } from "./batchApiHelpers.js"

const collect = (stream: Stream.Stream<Batch.BatchOutcome, unknown, BatchApi.BatchApiStore | import("@effect/platform/HttpClient").HttpClient>) =>
  Effect.map(Stream.runCollect(stream), Chunk.toArray)

const ids = (outcomes: ReadonlyArray<Batch.BatchOutcome>) => outcomes.map((o) => o.custom_id).sort()

const failureOf = <A, E>(exit: Exit.Exit<A, E> | undefined): E | undefined =>
  exit !== undefined && Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const validateOutput = batchValidatorFor("BatchRequestOutput")

describe("BatchApi.submit", () => {
  it.scoped("a whole submission: split into files, uploaded, created, polled to completed, every id one outcome at the batch price", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock({ validating: "1 second", perRequest: "2 seconds", finalizing: "1 second" })
      const { url } = yield* serve(api)
      const events: Array<BatchApi.Event> = []
      const input = requests(12)
      const outcomes = yield* drive(collect(BatchApi.submit(input, options(url, {
        maxRequestsPerFile: 5,
        onEvent: (event) => Effect.sync(() => { events.push(event) })
      }))))
      assert.deepStrictEqual(ids(outcomes!), ids(input.map((r) => ({ custom_id: r.custom_id }) as Batch.BatchOutcome)))
      // 12 requests at 5 per file: three files, three batches, each once.
      assert.strictEqual(okEntries(api, "upload").length, 3)
      assert.strictEqual(okEntries(api, "create").length, 3)
      for (const outcome of outcomes!) {
        assert.strictEqual(outcome._tag, "Success")
        if (outcome._tag !== "Success" || outcome.url !== "/v1/chat/completions") continue
        assert.strictEqual(outcome.index, Number(outcome.custom_id.slice(2)))
        const live = Pricing.cost("gpt-4o-mini", outcome.completion.usage!)
        assert.deepStrictEqual(outcome.costMicroUsd, Pricing.batchCost("gpt-4o-mini", outcome.completion.usage!))
        assert.isTrue(Option.getOrThrow(outcome.costMicroUsd) <= Option.getOrThrow(live))
        // What shepherd run would write for it is a valid batch output line.
        assert.strictEqual(validateOutput(BatchFile.outputLine(outcome, "batch_req_x")), undefined)
      }
      const statuses = events.filter((e) => e._tag === "Progress").map((e) => e._tag === "Progress" ? e.status : "")
      assert.includeMembers(statuses, ["validating", "in_progress", "completed"])
      const ended = events.filter((e) => e._tag === "Ended")
      assert.strictEqual(ended.length, 3)
      // The metadata names the run and the range.
      for (const entry of okEntries(api, "create")) assert.strictEqual(entry.metadata?.["shepherd_run"], "test-run")
      // Every line of the provider's files is a valid batch output line.
      for (const batch of api.batches()) {
        const text = api.content(batch.output_file_id!)!
        for (const line of text.trim().split("\n")) assert.strictEqual(validateOutput(JSON.parse(line)), undefined)
      }
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  it.scoped("a rerun with the same store emits nothing again and sends nothing", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      const { url } = yield* serve(api)
      const first = yield* drive(collect(BatchApi.submit(requests(4), options(url))))
      const second = yield* drive(collect(BatchApi.submit(requests(4), options(url))))
      assert.strictEqual(first!.length, 4)
      assert.strictEqual(second!.length, 0)
      assert.strictEqual(okEntries(api, "upload").length, 1)
      assert.strictEqual(okEntries(api, "create").length, 1)
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  it.scoped("lines the provider refuses: InvalidLinesError with line numbers, custom_ids and input positions; the other files' outcomes first", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      const { url } = yield* serve(api)
      const input = requests(6)
      // Input 4 (second file, line 2) has a message role the API does not know.
      const bad = { ...input[4]!, body: { model: "gpt-4o-mini", messages: [{ role: "robot", content: "x" }] } } as unknown as Batch.BatchRequest
      input[4] = bad
      const seen: Array<Batch.BatchOutcome> = []
      const exit = yield* drive(Effect.exit(Stream.runForEach(
        BatchApi.submit(input, options(url, { maxRequestsPerFile: 3 })),
        (o) => Effect.sync(() => { seen.push(o) })
      )))
      const error = failureOf(exit)
      assert.strictEqual(error?._tag, "InvalidLinesError")
      if (error?._tag !== "InvalidLinesError") return
      assert.strictEqual(error.errors.length, 1)
      assert.deepInclude(error.errors[0]!, { line: 2, index: 4, custom_id: "r-4" })
      assert.include(error.message, "line 2 (r-4)")
      assert.deepStrictEqual(ids(seen), ["r-0", "r-1", "r-2"])
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  it.scoped("partial failures: the error file's final requests are Failures with the provider's status and code; a 5xx is unfinished", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock({
        failRequest: (line) => line.custom_id === "r-1" ? { status: 400, code: "invalid_prompt", message: "Invalid prompt (mock)." } : line.custom_id === "r-2" ? { status: 500, code: "server_error", message: "boom" } : undefined
      })
      const { url } = yield* serve(api)
      const unfinished: Array<string> = []
      const outcomes = yield* drive(collect(BatchApi.submit(requests(4), options(url, {
        onEvent: (e) => Effect.sync(() => { if (e._tag === "Ended") unfinished.push(...e.unfinished) })
      }))))
      assert.deepStrictEqual(ids(outcomes!), ["r-0", "r-1", "r-3"])
      assert.deepStrictEqual(unfinished, ["r-2"])
      const byId = new Map(outcomes!.map((o) => [o.custom_id, o]))
      const failed = byId.get("r-1")!
      assert.strictEqual(failed._tag, "Failure")
      if (failed._tag === "Failure" && failed.error._tag === "ApiError") {
        assert.strictEqual(failed.error.status, 400)
        assert.strictEqual(failed.error.code, "invalid_prompt")
        assert.strictEqual(validateOutput(BatchFile.outputLine(failed, "batch_req_x")), undefined)
      } else assert.fail("r-1 should be an ApiError")
      assert.strictEqual(byId.get("r-0")!._tag, "Success")
      const batch = api.batches()[0]!
      assert.deepStrictEqual(batch.request_counts, { total: 4, completed: 2, failed: 2 })
      for (const line of api.content(batch.error_file_id!)!.trim().split("\n")) assert.strictEqual(validateOutput(JSON.parse(line)), undefined)
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  it.scoped("an expired batch leaves its unfinished ids without an outcome; the next submit sends exactly those again", () =>
    Effect.gen(function* () {
      // 1 s validating, then 1 s per request, expiring at 3 s: two of five are done.
      const api = yield* mockOnClock({ validating: "1 second", perRequest: "1 second", completionWindow: "3 seconds" })
      const { url } = yield* serve(api)
      const ended: Array<BatchApi.Event> = []
      const first = yield* drive(collect(BatchApi.submit(requests(5), options(url, { onEvent: (e) => Effect.sync(() => { if (e._tag === "Ended") ended.push(e) }) }))))
      assert.deepStrictEqual(ids(first!), ["r-0", "r-1"])
      assert.deepInclude(ended[0]!, { status: "expired", unfinished: ["r-2", "r-3", "r-4"] })
      const errorLines = api.content(api.batches()[0]!.error_file_id!)!.trim().split("\n").map((l) => JSON.parse(l))
      assert.deepStrictEqual(errorLines.map((l) => l.error.code), ["batch_expired", "batch_expired", "batch_expired"])
      // A provider with time enough: the rerun submits the three, and only them.
      const patient = yield* mockOnClock({ validating: "1 second", perRequest: "1 second" })
      const second = yield* serve(patient)
      const rest = yield* drive(collect(BatchApi.submit(requests(5), options(second.url))))
      assert.deepStrictEqual(ids(rest!), ["r-2", "r-3", "r-4"])
      const uploaded = patient.content(patient.files()[0]!.id)!.trim().split("\n").map((l) => JSON.parse(l).custom_id)
      assert.deepStrictEqual(uploaded, ["r-2", "r-3", "r-4"])
      assert.deepStrictEqual(ids((yield* drive(collect(BatchApi.submit(requests(5), options(second.url)))))!), [])
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  it.scoped("a cancelled batch: cancelling then cancelled, its done requests delivered, the rest unfinished and sent by the next submit", () =>
    Effect.gen(function* () {
      // Cancelling lasts longer than the longest poll interval, so that a poll sees it.
      const api = yield* mockOnClock({ validating: "1 second", perRequest: "1 second", finalizing: "10 seconds" })
      const { url } = yield* serve(api)
      const statuses: Array<string> = []
      let cancelled = false
      const submission = BatchApi.submit(requests(6), options(url, {
        onEvent: (e) => Effect.gen(function* () {
          if (e._tag !== "Progress") return
          statuses.push(e.status)
          // Once some requests are done, cancel every running batch of the store.
          if ((e.requestCounts?.completed ?? 0) > 0 && !cancelled) {
            cancelled = true
            yield* Effect.orDie(BatchApi.cancel(options(url)))
          }
        }).pipe(Effect.provide([httpLayer]), Effect.orDie) as Effect.Effect<void>
      }))
      const first = yield* drive(collect(submission))
      assert.include(statuses, "cancelling")
      assert.strictEqual(statuses[statuses.length - 1], "cancelled")
      const done = api.batches()[0]!.request_counts!.completed
      assert.isAbove(done, 0)
      assert.isBelow(done, 6)
      assert.strictEqual(first!.length, done)
      const errorLines = api.content(api.batches()[0]!.error_file_id!)!.trim().split("\n").map((l) => JSON.parse(l))
      assert.isTrue(errorLines.every((l) => l.error.code === "batch_cancelled"))
      assert.strictEqual(errorLines.length, 6 - done)
      const rest = yield* drive(collect(BatchApi.submit(requests(6), options(url))))
      assert.deepStrictEqual([...ids(first!), ...ids(rest!)].sort(), ids(requests(6) as never))
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))
})
