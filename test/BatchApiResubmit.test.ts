/**
 * What a submission leaves unfinished and sends again, what its budget lets through, and how it
 * winds down at a deadline: in-process against the mock Batch API on a TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type * as Batch from "../src/Batch.js"
import * as BatchApi from "../src/BatchApi.js"
import * as BudgetLedger from "../src/internal/batchApi/budget.js"
import * as Plan from "../src/internal/batchApi/plan.js"
import * as Pricing from "../src/Pricing.js"
import type * as MockBatchApi from "../src/testing/internal/batchApi.js"
import { drive, httpLayer, jsonLines, jsonlText, mockOnClock, okEntries, options, requests, rewrite, serve } from "./batchApiHelpers.js"

type Outcomes = ReadonlyArray<Batch.BatchOutcome>
const ids = (outcomes: Outcomes | undefined) => (outcomes ?? []).map((o) => o.custom_id).sort()
const collect = (stream: Stream.Stream<Batch.BatchOutcome, unknown, BatchApi.BatchApiStore | import("@effect/platform/HttpClient").HttpClient>) =>
  Effect.map(Stream.runCollect(stream), Chunk.toArray)

const uploadedIds = (api: MockBatchApi.BatchApi, n: number) =>
  api.content(api.files().filter((f) => f.purpose === "batch")[n]!.id)!.trim().split("\n").map((l) => (JSON.parse(l) as { custom_id: string }).custom_id).sort()

/** A provider's refusal of a whole batch (`errors.data[]`), for the code given. */
const refusal = (code: string, line: number | null = null) => ({ code, message: `refused: ${code} (test)`, param: line === null ? null : "body", line })

/** The mock, with every batch `refuses(id)` picks answered as `failed` with `error` when it is asked about. */
const serveRefusing = (api: MockBatchApi.BatchApi, error: ReturnType<typeof refusal>, refuses: (batchId: string) => boolean) =>
  serve(api, rewrite(api, (request, answer) => {
    if (request.method !== "GET" || !/^\/v1\/batches\/[^/?]+$/.test(request.url) || answer.status !== 200) return undefined
    const batch = JSON.parse(typeof answer.body === "string" ? answer.body : Buffer.from(answer.body).toString("utf8")) as Record<string, unknown>
    if (!refuses(String(batch["id"]))) return undefined
    return { ...answer, body: JSON.stringify({ ...batch, status: "failed", failed_at: batch["created_at"], errors: { object: "list", data: [error] } }) }
  }))

/** Submits `input` to `url` with its state in a file of its own, the same file on every call (a rerun). */
const submitOnFile = (url: string, input: ReadonlyArray<Batch.BatchRequest>) => {
  const statePath = join(mkdtempSync(join(tmpdir(), "shepherd-batch-")), "out.batches.json")
  return (extra: Partial<BatchApi.Options> = {}) =>
    BatchApi.submit(input, options(url, extra)).pipe(Stream.runCollect, Effect.map(Chunk.toArray), Effect.provide(BatchApi.layerFile(statePath)))
}

describe("BatchApi: what is left unfinished is sent again", () => {
  it.scoped("429 and 5xx answers, server_error / rate_limit_exceeded codes and ids in neither file get no outcome; the rerun sends exactly those in a new range, once even across a crash", () =>
    Effect.gen(function* () {
      let flaky = true
      const failures: Record<string, MockBatchApi.RequestFailure> = {
        "r-1": { status: 500, code: "server_error", message: "The server had an error." },
        "r-2": { status: 429, code: "rate_limit_exceeded", message: "Slow down." },
        "r-3": { status: 400, code: "invalid_value", message: "Bad value." },
        "r-4": { status: 503, code: "service_unavailable", message: "Overloaded." }
      }
      const api = yield* mockOnClock({ failRequest: (line) => (flaky ? failures[line.custom_id] : undefined) })
      // The first batch's files also lose r-5 and answer r-6 and r-7 with a bare error code.
      const { url } = yield* serve(api, rewrite(api, (request, answer) => {
        if (!flaky || !request.url.endsWith("/content")) return undefined
        const lines = jsonLines(answer.body).filter((l) => l["custom_id"] !== "r-5").map((l) =>
          l["custom_id"] === "r-6" ? { ...l, response: null, error: { code: "server_error", message: "The server had an error." } }
          : l["custom_id"] === "r-7" ? { ...l, response: null, error: { code: "rate_limit_exceeded", message: "Too many." } }
          : l)
        return { ...answer, body: jsonlText(lines) }
      }))
      const statePath = join(mkdtempSync(join(tmpdir(), "shepherd-batch-")), "out.batches.json")
      const input = requests(9)
      const ended: Array<ReadonlyArray<string>> = []
      const first = yield* drive(collect(BatchApi.submit(input, options(url, {
        onEvent: (e) => Effect.sync(() => { if (e._tag === "Ended") ended.push(e.unfinished) })
      }))).pipe(Effect.provide(BatchApi.layerFile(statePath))))
      assert.deepStrictEqual(ids(first), ["r-0", "r-3", "r-8"])
      assert.strictEqual(first!.find((o) => o.custom_id === "r-3")?._tag, "Failure")
      const unfinished = ["r-1", "r-2", "r-4", "r-5", "r-6", "r-7"]
      assert.deepStrictEqual([...ended[0]!].sort(), unfinished)
      flaky = false
      // The rerun is killed after its upload, before recording it; the next one finds it.
      let crashed = false
      yield* drive(Stream.runDrain(BatchApi.submit(input, options(url, {
        onEvent: (e) => e._tag === "Uploaded" && !crashed ? Effect.zipRight(Effect.sync(() => { crashed = true }), Effect.never) : Effect.void
      }))), { until: () => crashed }).pipe(Effect.provide(BatchApi.layerFile(statePath)))
      assert.isTrue(crashed)
      const rest = yield* drive(collect(BatchApi.submit(input, options(url)))).pipe(Effect.provide(BatchApi.layerFile(statePath)))
      assert.deepStrictEqual(ids(rest), unfinished)
      assert.isTrue(rest!.every((o) => o._tag === "Success"))
      assert.deepStrictEqual(uploadedIds(api, 1), unfinished)
      const again = yield* drive(collect(BatchApi.submit(input, options(url)))).pipe(Effect.provide(BatchApi.layerFile(statePath)))
      assert.deepStrictEqual(again, [])
      assert.strictEqual(okEntries(api, "upload").length, 2)
      assert.strictEqual(okEntries(api, "create").length, 2)
      const state = (yield* Effect.provide(BatchApi.state, BatchApi.layerFile(statePath)))!
      const ranges = Object.values(state.ranges)
      assert.deepStrictEqual(ranges.map((r) => r.step), ["delivered", "delivered"])
      assert.strictEqual(ranges[1]!.retryOf, ranges[0]!.key)
    }).pipe(Effect.provide(httpLayer)))

  it.scoped("a range left wholly unfinished twice: each rerun makes a new range under a new key (no loop), then a patient provider completes it", () =>
    Effect.gen(function* () {
      // Expires (at 1 s) while still validating (2 s): nothing done.
      const hasty = yield* mockOnClock({ validating: "2 seconds", completionWindow: "1 second" })
      const { url } = yield* serve(hasty)
      const input = requests(3)
      for (let i = 0; i < 3; i++) assert.deepStrictEqual(yield* drive(collect(BatchApi.submit(input, options(url)))), [])
      assert.deepStrictEqual(hasty.batches().map((b) => b.status), ["expired", "expired", "expired"])
      const keys = Object.keys((yield* BatchApi.state)!.ranges)
      assert.strictEqual(new Set(keys).size, 3)
      const patient = yield* serve(yield* mockOnClock())
      assert.deepStrictEqual(ids(yield* drive(collect(BatchApi.submit(input, options(patient.url))))), ["r-0", "r-1", "r-2"])
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  it.scoped("requests answered elsewhere (answered) are not submitted again; a batch that exists is still collected", () =>
    Effect.gen(function* () {
      const hasty = yield* mockOnClock({ validating: "2 seconds", completionWindow: "1 second" })
      const { url } = yield* serve(hasty)
      const input = requests(4)
      yield* drive(collect(BatchApi.submit(input, options(url, { maxRequestsPerFile: 2 }))))
      // Sent live meanwhile: r-0, r-1 (the whole first range) and r-2.
      const live = new Set(["r-0", "r-1", "r-2"])
      const patient = yield* mockOnClock()
      const second = yield* serve(patient)
      const rest = yield* drive(collect(BatchApi.submit(input, options(second.url, { maxRequestsPerFile: 2, answered: (id) => live.has(id) }))))
      assert.deepStrictEqual(ids(rest), ["r-2", "r-3"])
      assert.deepStrictEqual(patient.batches().map((b) => b.request_counts?.total), [2])
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

  for (const [code, tag] of [["insufficient_quota", "QuotaError"], ["token_limit_exceeded", "QuotaError"]] as const) {
    it.scoped(`a batch refused for ${code} is sent again, whole, by the next run; a third run sends nothing`, () =>
      Effect.gen(function* () {
        const api = yield* mockOnClock()
        let refusing = true
        // While refusing, every batch the provider is asked about has failed with this code.
        const { url } = yield* serveRefusing(api, refusal(code), () => refusing)
        const submit = submitOnFile(url, requests(3))
        assert.strictEqual((yield* drive(Effect.flip(submit())))?._tag, tag)
        refusing = false // the quota is raised
        const second = yield* drive(submit())
        assert.deepStrictEqual(ids(second), ["r-0", "r-1", "r-2"])
        assert.isTrue(second!.every((o) => o._tag === "Success"))
        assert.strictEqual(okEntries(api, "create").length, 2)
        assert.deepStrictEqual(uploadedIds(api, 1), ["r-0", "r-1", "r-2"])
        assert.deepStrictEqual(yield* drive(submit()), [])
        assert.strictEqual(okEntries(api, "create").length, 2)
      }).pipe(Effect.provide(httpLayer)))
  }

  for (const [what, code, tag] of [
    ["its lines", "invalid_request", "InvalidLinesError"],
    ["its size (too many requests for one batch)", "too_many_requests", "TooManyRequestsError"]
  ] as const) {
    it.scoped(`a batch refused for ${what} is not sent again by the next run: the same refusal, no second batch`, () =>
      Effect.gen(function* () {
        const api = yield* mockOnClock()
        const { url } = yield* serveRefusing(api, refusal(code, code === "invalid_request" ? 2 : null), () => true)
        const submit = submitOnFile(url, requests(3))
        assert.strictEqual((yield* drive(Effect.flip(submit())))?._tag, tag)
        assert.strictEqual((yield* drive(Effect.flip(submit())))?._tag, tag)
        assert.strictEqual(okEntries(api, "create").length, 1)
      }).pipe(Effect.provide(httpLayer)))
  }

  it.scoped("collecting only makes no retry of a batch refused for quota, but follows one a rerun made: it collects the retry's answers", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      let refusing = true
      const { url } = yield* serveRefusing(api, refusal("insufficient_quota"), () => refusing)
      const submit = submitOnFile(url, requests(3))
      assert.strictEqual((yield* drive(Effect.flip(submit())))?._tag, "QuotaError")
      // Collecting only: no retry is made; the refusal is reported again.
      assert.strictEqual((yield* drive(Effect.flip(submit({ collectOnly: true }))))?._tag, "QuotaError")
      assert.strictEqual(okEntries(api, "create").length, 1)
      refusing = false
      // A rerun makes the retry and is stopped once its batch exists; collecting only then follows it.
      yield* drive(submit(), { until: () => okEntries(api, "create").length === 2 })
      const collected = yield* drive(submit({ collectOnly: true }))
      assert.deepStrictEqual(ids(collected), ["r-0", "r-1", "r-2"])
      assert.strictEqual(okEntries(api, "create").length, 2)
    }).pipe(Effect.provide(httpLayer)))
})

describe("BatchApi: the budget per batch file", () => {
  const input = requests(12)
  const files = Plan.split(input.map((r, i) => Plan.item(r, i)), { maxRequests: 3, maxBytes: 1e9 })
  const worst = (files._tag === "Right" ? files.right : []).map((f) => Option.getOrThrow(BudgetLedger.worstCase(f, Pricing.defaultTable)))

  it.scoped("each file's worst case is held just before its create and settled to the actual cost: two at a time, all four run; four at a time, two", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      const { url } = yield* serve(api)
      // Room for two files' worst cases, not three: only settling the first makes room for the third.
      const maxUsd = (2.5 * Math.max(...worst)) / 1e6
      const outcomes = yield* drive(collect(BatchApi.submit(input, options(url, { maxRequestsPerFile: 3, concurrency: 2, maxUsd }))).pipe(Effect.provide(BatchApi.layerMemory)))
      assert.strictEqual(outcomes!.filter((o) => o._tag === "Success").length, 12)
      assert.strictEqual(okEntries(api, "create").length, 4)
      // Four at a time, the same budget holds two files' worst cases at once: the other two are refused.
      const all = yield* drive(collect(BatchApi.submit(input, options(url, { maxRequestsPerFile: 3, concurrency: 4, maxUsd }))).pipe(Effect.provide(BatchApi.layerMemory)))
      assert.strictEqual(okEntries(api, "create").length, 6)
      assert.strictEqual(all!.filter((o) => o._tag === "Failure").length, 6)
    }).pipe(Effect.provide(httpLayer)))

  it.scoped("a batch the provider refuses gives its hold back: the next file, which fits only then, is created", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      // The first batch asked about is refused for its lines; the others run.
      const refused = new Set<string>()
      const { url } = yield* serveRefusing(api, refusal("invalid_request", 1), (id) => {
        if (refused.size === 0) refused.add(id)
        return refused.has(id)
      })
      // Room for one file's worst case at a time, one file at a time.
      const maxUsd = (1.5 * Math.max(...worst)) / 1e6
      const exit = yield* drive(Effect.exit(collect(BatchApi.submit(input.slice(0, 6), options(url, { maxRequestsPerFile: 3, concurrency: 1, maxUsd }))).pipe(Effect.provide(BatchApi.layerMemory))))
      assert.strictEqual(refused.size, 1)
      assert.strictEqual(okEntries(api, "create").length, 2)
      // The refusal still fails the submission, after the second file's outcomes.
      assert.isTrue(exit !== undefined && exit._tag === "Failure")
    }).pipe(Effect.provide(httpLayer)))

  it.scoped("a file the budget cannot hold is not uploaded nor created: its requests get BudgetExceededError, a NotSubmitted event says why; the others run", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      const { url } = yield* serve(api)
      const maxUsd = (2.5 * Math.max(...worst)) / 1e6
      const refused: Array<BatchApi.Event> = []
      const outcomes = yield* drive(collect(BatchApi.submit(input.slice(0, 9), options(url, {
        maxRequestsPerFile: 3,
        concurrency: 4,
        maxUsd,
        onEvent: (e) => Effect.sync(() => { if (e._tag === "NotSubmitted") refused.push(e) })
      }))))
      assert.strictEqual(okEntries(api, "upload").length, 2)
      assert.strictEqual(okEntries(api, "create").length, 2)
      const failures = outcomes!.filter((o) => o._tag === "Failure")
      assert.strictEqual(failures.length, 3)
      for (const f of failures) {
        assert.strictEqual(f._tag === "Failure" ? f.error._tag : "", "BudgetExceededError")
        assert.strictEqual(f.attempts, 0)
      }
      assert.strictEqual(outcomes!.filter((o) => o._tag === "Success").length, 6)
      assert.strictEqual(refused.length, 1)
      assert.deepInclude(refused[0]!, { reason: "budget", requests: 3 })
      // Not delivered: the next submit (with a larger budget) sends them.
      const rest = yield* drive(collect(BatchApi.submit(input.slice(0, 9), options(url, { maxRequestsPerFile: 3 }))))
      assert.deepStrictEqual(ids(rest), ids(failures))
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))

})

describe("BatchApi: winding down (cancelWhen)", () => {
  it.scoped("a create in flight at the close: it completes and its batch is cancelled; no create after the close; every id answered by at most one batch, and no batch left running", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock({ validating: "1 second", perRequest: "3 seconds", finalizing: "1 second" })
      const close = yield* Deferred.make<void>()
      const held: Array<() => void> = []
      let creates = 0
      let uploads = 0
      // The second create and the third upload wait until after the close.
      const { url } = yield* serve(api, (request, res) => {
        const create = request.method === "POST" && request.url === "/v1/batches"
        const upload = request.method === "POST" && request.url === "/v1/files"
        if (!(create && ++creates === 2) && !(upload && ++uploads === 3)) return false
        held.push(() => {
          const answer = api.handle(request)
          res.writeHead(answer.status, answer.headers)
          res.end(answer.body)
        })
        return true
      })
      const events: Array<BatchApi.Event> = []
      const controller = Effect.gen(function* () {
        while (held.length < 2 || okEntries(api, "create").length < 1) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
        yield* Deferred.succeed(close, undefined)
        // The close is seen before the held calls return.
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
        for (const release of held) release()
      })
      const [outcomes] = (yield* drive(Effect.zip(
        collect(BatchApi.submit(requests(9), options(url, {
          maxRequestsPerFile: 3,
          cancelWhen: Deferred.await(close),
          onEvent: (e) => Effect.sync(() => { events.push(e) })
        }))),
        controller,
        { concurrent: true }
      )))!
      const batches = api.batches()
      assert.strictEqual(batches.length, 2, "the range whose upload returned after the close got no batch")
      assert.deepStrictEqual(okEntries(api, "cancel").length, 2)
      for (const b of batches) assert.include(["cancelled", "completed"], b.status)
      // What the batches answered is exactly what was emitted: the rest can go live safely.
      const answered = batches.flatMap((b) => (b.output_file_id ? jsonLines(api.content(b.output_file_id)!) : []).map((l) => String(l["custom_id"])))
      assert.deepStrictEqual(ids(outcomes), answered.sort())
      const notSubmitted = events.filter((e) => e._tag === "NotSubmitted")
      assert.strictEqual(notSubmitted.length, 1)
      assert.deepInclude(notSubmitted[0]!, { reason: "closed", requests: 3 })
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))
})
