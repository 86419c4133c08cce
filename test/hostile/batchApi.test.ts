/**
 * 16.H Batch API providers that misbehave: list pages without metadata or with odd pagination, file
 * endpoints answering 5xx/429 with Retry-After, output files with ids never sent or sent twice and
 * 5xx lines, a server echoing the key into a batch's `errors`. The mock Batch API behind an
 * intercepting loopback server (test/batchApiHelpers.ts), the library in process on a TestClock;
 * one run of the built CLI for what reaches stderr.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as BatchApi from "../../src/BatchApi.js"
import * as MockBatchApi from "../../src/testing/internal/batchApi.js"
import { API_KEY, drive, httpLayer, jsonLines, jsonlText, mockOnClock, okEntries, options, requests, rewrite, serve } from "../batchApiHelpers.js"
import { inputLines, readOut, runToEnd, tmp, writeInput } from "../cliHelpers.js"

const collect = <E, R>(stream: Stream.Stream<import("../../src/Batch.js").BatchOutcome, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

type ListShape = (page: Record<string, unknown>) => Record<string, unknown>

/** List pages without metadata on the batches nor `has_more`/`first_id`/`last_id`. */
const bare: ListShape = (page) => ({
  object: "list",
  data: (page["data"] as Array<Record<string, unknown>>).map(({ metadata: _, ...rest }) => rest)
})
/** `has_more: true` forever, `last_id` null, and the same page whatever `after` says. */
const endless: ListShape = (page) => ({ ...page, has_more: true, last_id: null, first_id: null })

describe("16.H the Batch API's list pages", () => {
  for (const [name, shape] of [["without metadata or pagination fields", bare], ["claiming more pages forever, ignoring `after`", endless]] as const) {
    it.scoped(`16.H a crash after the upload and after the create, then a rerun whose look-ups read lists ${name}: one upload, one batch, every id once`, () =>
      Effect.gen(function* () {
        for (const crashOn of ["Uploaded", "Created"] as const) {
          const api = yield* mockOnClock({ validating: "1 second", perRequest: "1 second" })
          const list = (request: MockBatchApi.Request) => request.method === "GET" && /^\/v1\/(files|batches)(\?|$)/.test(request.url)
          const served = rewrite(api, (request, answer) =>
            list(request) ? { ...answer, body: JSON.stringify(shape(JSON.parse(String(answer.body)) as Record<string, unknown>)) } : undefined)
          // The endless server answers every page as the first: `after` is dropped before the mock sees it.
          const { url } = yield* serve(api, (request, res) =>
            served(shape === endless && list(request) ? { ...request, url: request.url.replace(/([?&])after=[^&]*&?/, "$1") } : request, res))
          let crashed = false
          const seen: Array<string> = []
          const run = (crash: boolean) =>
            Stream.runForEach(
              BatchApi.submit(requests(4), options(url, {
                onEvent: (e) => crash && !crashed && e._tag === crashOn ? Effect.zipRight(Effect.sync(() => { crashed = true }), Effect.never) : Effect.void
              })),
              (o) => Effect.sync(() => { seen.push(o.custom_id) })
            )
          yield* Effect.provide(Effect.gen(function* () {
            yield* drive(run(true), { until: () => crashed })
            yield* drive(run(false))
          }), BatchApi.layerMemory)
          assert.isTrue(crashed)
          assert.strictEqual(okEntries(api, "upload").length, 1, crashOn)
          assert.strictEqual(okEntries(api, "create").length, 1, crashOn)
          assert.deepStrictEqual(seen.sort(), ["r-0", "r-1", "r-2", "r-3"])
        }
      }).pipe(Effect.provide(httpLayer)))
  }
})

describe("16.H the file endpoints", () => {
  it.scoped("16.H 503 on the upload and 429 on the download, each with Retry-After: the retry waits as long on the clock, nothing is uploaded twice", () =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      const api = yield* mockOnClock()
      const seen: Array<readonly [string, number]> = []
      let faults = 0
      const { url } = yield* serve(api, (request, res) => {
        const at = clock.unsafeCurrentTimeMillis()
        const upload = request.method === "POST" && request.url === "/v1/files"
        const download = request.url.endsWith("/content")
        if (upload || download) seen.push([upload ? "upload" : "download", at])
        if (!((upload && faults === 0) || (download && faults === 1))) return false
        faults++
        res.writeHead(upload ? 503 : 429, { "content-type": upload ? "text/html" : "application/json", "retry-after": upload ? "7" : "3" })
        res.end(upload ? "<html>503 Service Unavailable</html>" : JSON.stringify({ error: { message: "Slow down.", type: "requests", param: null, code: "rate_limit_exceeded" } }))
        return true
      })
      const outcomes = yield* drive(collect(BatchApi.submit(requests(2), options(url))))
      assert.strictEqual(outcomes!.length, 2)
      const uploads = seen.filter(([what]) => what === "upload").map(([, at]) => at)
      const downloads = seen.filter(([what]) => what === "download").map(([, at]) => at)
      assert.isAtLeast(uploads[1]! - uploads[0]!, 7000)
      assert.isAtLeast(downloads[1]! - downloads[0]!, 3000)
      assert.strictEqual(api.files().filter((f) => f.purpose === "batch").length, 1)
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))
})

describe("16.H a batch's output and error files", () => {
  it.scoped("16.H an id never sent, an id twice (a final answer wins over a 5xx one, the first of two finals counts), 5xx lines with HTML bodies: one outcome per id sent, the 5xx-only ids sent again", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      let hostile = true
      const { url } = yield* serve(api, rewrite(api, (request, answer) => {
        if (!hostile || !request.url.endsWith("/content")) return undefined
        const lines = jsonLines(answer.body)
        const line = (id: string) => lines.find((l) => l["custom_id"] === id)!
        const html = (id: string, status: number) => ({ id: `x-${id}`, custom_id: id, response: { status_code: status, request_id: null, body: `<html>${status}</html>` }, error: null })
        const refused = { id: "x-r-1b", custom_id: "r-1", response: { status_code: 400, request_id: null, body: { error: { message: "no", type: "invalid_request_error", param: null, code: null } } }, error: null }
        return {
          ...answer,
          body: jsonlText([
            { ...line("r-0"), custom_id: "never-sent" },
            line("r-0"),
            line("r-1"),
            refused,
            html("r-2", 502),
            line("r-2"),
            html("r-3", 500),
            html("r-3", 503)
          ])
        }
      }))
      const first = yield* drive(collect(BatchApi.submit(requests(4), options(url))))
      assert.deepStrictEqual(first!.map((o) => `${o.custom_id} ${o._tag}`).sort(), ["r-0 Success", "r-1 Success", "r-2 Success"])
      hostile = false
      const rest = yield* drive(collect(BatchApi.submit(requests(4), options(url))))
      assert.deepStrictEqual(rest!.map((o) => o.custom_id), ["r-3"])
    }).pipe(Effect.provide([BatchApi.layerMemory, httpLayer])))
})

describe("16.H a server echoing the key", () => {
  it.scopedLive("16.H into a failed batch's `errors` and into the answers: shepherd run --via batch-api keeps it out of OUT, the state file and stderr", () =>
    Effect.gen(function* () {
      const api = MockBatchApi.make({ validating: "30 millis", perRequest: "5 millis", finalizing: "30 millis" })
      const echo = (text: string, auth: string) => text.replaceAll(`"content":"`, `"content":"${auth} ${encodeURIComponent(auth)} `)
      const { url } = yield* serve(api, rewrite(api, (request, answer) => {
        const auth = String(request.headers["authorization"])
        if (request.url.endsWith("/content")) return { ...answer, body: echo(String(Buffer.from(answer.body)), auth) }
        const retrieved = request.method === "GET" && /^\/v1\/batches\/[^/?]+$/.test(request.url)
        const batch = retrieved ? JSON.parse(String(answer.body)) as Record<string, unknown> : undefined
        // The second range's batch fails, its errors quoting the request's headers.
        if (batch === undefined || (batch["metadata"] as Record<string, string>)["shepherd_range"]?.startsWith("3-") !== true) return undefined
        const errors = { object: "list", data: [{ code: "invalid_request", line: 1, message: `Authorization ${auth} is not allowed (${JSON.stringify(auth)}).`, param: null }] }
        return { ...answer, body: JSON.stringify({ ...batch, status: "failed", errors, output_file_id: null, error_file_id: null }) }
      }))
      const dir = tmp()
      const input = writeInput(dir, inputLines(6).slice(0, 6))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", url, "--via", "batch-api", "--poll-interval", "50ms", "--max-requests-per-file", "3"], { OPENAI_API_KEY: API_KEY })
      assert.strictEqual(ended.code, 1, ended.stderr)
      assert.include(ended.stderr, "refused 1 line")
      assert.include(ended.stderr, "[REDACTED]")
      assert.strictEqual(readOut(out).length, 3)
      for (const text of [ended.stderr, ended.stdout, Fs.readFileSync(out, "utf8"), Fs.readFileSync(`${out}.batches.json`, "utf8")]) {
        assert.notInclude(text, API_KEY)
      }
    }))
})
