/** The batch line formats, resume rules and run statistics, as pure functions and small files. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { LatencyHistogram } from "../src/cli/runStats.js"
import type { Batch } from "../src/index.js"
import { ChatError } from "../src/index.js"
import * as BatchFile from "../src/cli/batchFile.js"
import { IdTable } from "../src/cli/idTable.js"
import { batchValidatorFor } from "./helpers.js"

const validOutput = batchValidatorFor("BatchRequestOutput")

const failure = (error: ChatError.ChatError): Batch.BatchOutcome => ({ _tag: "Failure", custom_id: "x", index: 0, attempts: 3, latencyMillis: 10, error })

describe("batch input lines", () => {
  it("keeps body fields the schema does not know, and refuses stream: true", () => {
    const parsed = BatchFile.parseInput(JSON.stringify({
      custom_id: "a",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: "hi" }], some_new_parameter: { x: 1 } }
    }))
    expect(parsed !== undefined && Either.isRight(parsed) && (parsed.right.body as Record<string, unknown>)["some_new_parameter"]).toEqual({ x: 1 })
    const streaming = BatchFile.parseInput(JSON.stringify({
      custom_id: "a",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: "hi" }], stream: true }
    }))
    expect(streaming).toEqual(Either.left("body.stream must not be true: batch outputs are whole responses"))
  })

  it("the official example line is valid", () => {
    const example = JSON.parse(Fs.readFileSync(new URL("./fixtures/openai-batch-format.json", import.meta.url), "utf8")).examples.input
    const parsed = BatchFile.parseInput(JSON.stringify(example))
    expect(parsed !== undefined && Either.isRight(parsed)).toBe(true)
  })

  it.prop("any text gives a request, a reason, or nothing (blank); never a throw", [FastCheck.string()], ([text]) => {
    const parsed = BatchFile.parseInput(text)
    expect(parsed === undefined ? text.trim() === "" : Either.isEither(parsed)).toBe(true)
  })
})

describe("batch output lines", () => {
  it("an HTTP error answer is a response with its status; other failures are an error with a code; all spec-valid", () => {
    const cases: ReadonlyArray<readonly [ChatError.ChatError, boolean, string]> = [
      [new ChatError.ApiError({ status: 400, type: "invalid_request_error", code: "invalid_value", param: "messages", detail: "bad", requestId: "req_1", attempts: 1 }), true, "http_400"],
      [new ChatError.ApiError({ status: 404, detail: "no such model", attempts: 1 }), true, "http_404"],
      [new ChatError.ApiError({ status: 503, detail: "down", attempts: 5 }), false, "http_503"],
      [new ChatError.ApiError({ status: 408, detail: "slow", attempts: 5 }), false, "http_408"],
      [new ChatError.RateLimitError({ retryAfterMillis: 1000, attempts: 5 }), false, "http_429"],
      [new ChatError.TimeoutError({ phase: "attempt", timeoutMillis: 1000, attempts: 5 }), false, "timeout_attempt"],
      [new ChatError.TransportError({ code: "ECONNRESET", detail: "reset", attempts: 5 }), false, "transport_error"],
      [new ChatError.ResponseDecodeError({ status: 200, detail: "not JSON", bodyExcerpt: "{", attempts: 1 }), true, "response_decode_error"],
      // Not sent at all: a rerun sends it.
      [new ChatError.LimiterUnavailableError({ store: "rate-limit", location: "redis://127.0.0.1:6379", detail: "not connected" }), false, "limiter_unavailable"]
    ]
    for (const [error, final, kind] of cases) {
      const line = BatchFile.outputLine(failure(error), "batch_req_1")
      expect(validOutput(JSON.parse(JSON.stringify(line)))).toBeUndefined()
      expect(BatchFile.isFinal(JSON.parse(JSON.stringify(line)))).toBe(final)
      expect(line.error !== null ? line.error.code : `http_${line.response!.status_code}`).toBe(kind)
    }
  })

  it("a success is final; lines that are not outputs are not", () => {
    const success: Batch.BatchOutcome = {
      _tag: "Success",
      url: "/v1/embeddings",
      custom_id: "e",
      index: 0,
      attempts: 1,
      latencyMillis: 5,
      requestId: "req_2",
      status: 200,
      usage: { promptTokens: 1, completionTokens: 0 },
      costMicroUsd: Option.some(1),
      embeddings: { object: "list", model: "m", data: [], usage: { prompt_tokens: 1, total_tokens: 1 } }
    }
    const line = JSON.parse(JSON.stringify(BatchFile.outputLine(success, "batch_req_2")))
    expect(validOutput(line)).toBeUndefined()
    expect(BatchFile.isFinal(line)).toBe(true)
    for (const other of [null, 1, "x", {}, { custom_id: 1, response: { status_code: 200 } }, { custom_id: "a", response: null, error: null }]) {
      expect(BatchFile.isFinal(other)).toBe(false)
    }
  })
})

describe("resuming from an output file", () => {
  const dir = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-out-"))
  const ok = (id: string) => JSON.stringify({ id: `b_${id}`, custom_id: id, response: { status_code: 200, body: {} }, error: null })
  const retry = (id: string) => JSON.stringify({ id: `b_${id}`, custom_id: id, response: null, error: { code: "timeout_attempt", message: "slow" } })

  it.effect("keeps final lines, drops retryable ones and a partial last line, and rewrites the file whole", () =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "out.jsonl")
      Fs.writeFileSync(path, [ok("a"), retry("b"), ok("c"), ok("a"), ok("d").slice(0, 25)].join("\n"))
      const done = yield* BatchFile.scanOutput(path)
      expect(["a", "b", "c", "d"].filter((id) => done.ids.has(id))).toEqual(["a", "c"])
      expect(done.ids.size).toBe(2)
      expect(done.dropped).toBe(3) // b (retryable), the second a, the cut line
      expect(done.needsRewrite).toBe(true)
      yield* BatchFile.rewriteOutput(path, done.keep)
      expect(Fs.readFileSync(path, "utf8")).toBe(`${ok("a")}\n${ok("c")}\n`)
      const again = yield* BatchFile.scanOutput(path)
      expect(again.needsRewrite).toBe(false)
      expect(Fs.readdirSync(Path.dirname(path))).toEqual(["out.jsonl"]) // no temporary file left
    }))

  it.effect("a whole last line without its newline is kept, and the newline added", () =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "out.jsonl")
      Fs.writeFileSync(path, `${ok("a")}\n${ok("b")}`)
      const done = yield* BatchFile.scanOutput(path)
      expect(done).toMatchObject({ dropped: 0, needsRewrite: true })
      yield* BatchFile.rewriteOutput(path, done.keep)
      expect(Fs.readFileSync(path, "utf8")).toBe(`${ok("a")}\n${ok("b")}\n`)
    }))

  it.effect("no file yet: nothing done, nothing to rewrite", () =>
    Effect.map(BatchFile.scanOutput(Path.join(dir(), "missing.jsonl")), (done) => {
      expect(done).toMatchObject({ dropped: 0, needsRewrite: false })
      expect(done.ids.size).toBe(0)
    }))
})

describe("latency histogram", () => {
  it.prop("quantiles are within 2% of the exact ones (rank by rank)", [
    FastCheck.array(FastCheck.double({ min: 1, max: 3_600_000, noNaN: true }), { minLength: 1, maxLength: 500 }),
    FastCheck.double({ min: 0, max: 1, noNaN: true })
  ], ([values, q]) => {
    const histogram = new LatencyHistogram()
    for (const v of values) histogram.add(v)
    const sorted = [...values].sort((a, b) => a - b)
    const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
    const estimate = histogram.quantile(q)
    expect(estimate).toBeGreaterThanOrEqual(exact * 0.98)
    expect(estimate).toBeLessThanOrEqual(exact * 1.02 + 1e-9)
    expect(histogram.count).toBe(values.length)
  })
})

describe("IdTable", () => {
  it.prop("behaves as a Map<string, number> that keeps the first value of each id", [
    FastCheck.array(FastCheck.tuple(FastCheck.string({ maxLength: 12 }), FastCheck.nat({ max: 1_000_000 })), { maxLength: 3000 })
  ], ([entries]) => {
    const table = new IdTable(4)
    const model = new Map<string, number>()
    for (const [id, value] of entries) {
      expect(table.add(id, value)).toBe(model.get(id))
      if (!model.has(id)) model.set(id, value)
    }
    expect(table.size).toBe(model.size)
    for (const [id, value] of model) expect(table.get(id)).toBe(value)
    expect(table.has("\u0000never-added")).toBe(model.has("\u0000never-added"))
  })
})

describe("IdTable and lone surrogates", () => {
  // Strings of UTF-16 code units drawn mostly from surrogates, U+FFFD and a few letters: lone surrogates everywhere.
  const unit = FastCheck.oneof(
    FastCheck.integer({ min: 0xd800, max: 0xdfff }),
    FastCheck.constantFrom(0xfffd, 0x61, 0x2d),
    FastCheck.integer({ min: 0, max: 0xffff })
  )
  const id = FastCheck.array(unit, { maxLength: 6 }).map((units) => String.fromCharCode(...units))

  it.prop("13.15 distinct JS strings never share an entry, lone surrogates included", [FastCheck.uniqueArray(id, { maxLength: 300 })], ([ids]) => {
    const table = new IdTable(4)
    ids.forEach((s, i) => expect(table.add(s, i)).toBeUndefined())
    expect(table.size).toBe(ids.length)
    ids.forEach((s, i) => expect(table.get(s)).toBe(i))
  })

  it("13.15 row-\\ud800 and row-\\udfff (both U+FFFD in UTF-8) are two ids; a valid pair is one id, apart from its halves", () => {
    const table = new IdTable()
    expect(table.add("row-\ud800", 1)).toBeUndefined()
    expect(table.add("row-\udfff", 2)).toBeUndefined()
    expect(table.add("row-\ufffd", 3)).toBeUndefined()
    expect(table.add("row-\ud83d\ude00", 4)).toBeUndefined()
    expect(table.add("row-😀", 5)).toBe(4)
    expect([table.get("row-\ud800"), table.get("row-\udfff"), table.get("row-\ufffd"), table.get("row-\ud83d")]).toEqual([1, 2, 3, undefined])
  })
})
