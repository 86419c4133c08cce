/**
 * The Batch API's objects against OpenAI's OpenAPI excerpt: what the mock serves validates against
 * the spec and decodes with `BatchApiSchema` (unknown fields kept); the mock's endpoints called
 * directly; batch prices.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as BatchApiSchema from "../src/BatchApiSchema.js"
import * as Pricing from "../src/Pricing.js"
import * as MockBatchApi from "../src/testing/internal/batchApi.js"
import { batchApiValidatorFor, requests } from "./batchApiHelpers.js"

const multipart = (filename: string, content: string, purpose = "batch") => {
  const boundary = "----shepherd-test"
  const body = [
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n`,
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/jsonl\r\n\r\n${content}\r\n`,
    `--${boundary}--\r\n`
  ].join("")
  return { method: "POST", url: "/v1/files", headers: { "content-type": `multipart/form-data; boundary=${boundary}` }, body: Buffer.from(body) }
}

const jsonRequest = (method: string, url: string, body?: unknown): MockBatchApi.Request => ({
  method,
  url,
  headers: { "content-type": "application/json" },
  body: Buffer.from(body === undefined ? "" : JSON.stringify(body))
})

const lines = (n: number) =>
  requests(n).map((r) => JSON.stringify({ custom_id: r.custom_id, method: "POST", url: "/v1/chat/completions", body: r.body })).join("\n") + "\n"

const bodyOf = (response: MockBatchApi.Response): unknown => JSON.parse(String(response.body))

/** A mock on a clock the test sets. */
const mockAt = (options: Partial<MockBatchApi.Options> = {}) => {
  let now = 1_700_000_000_000
  const api = MockBatchApi.make({ now: () => now, validating: "1 second", perRequest: "1 second", finalizing: "1 second", ...options })
  return { api, advance: (millis: number) => { now += millis } }
}

const check = (schema: string, value: unknown) => assert.strictEqual(batchApiValidatorFor(schema)(value), undefined, `${schema}: ${JSON.stringify(value)}`)

describe("BatchApiSchema against the OpenAPI excerpt", () => {
  it("every object the mock serves through a batch's life validates against the spec and decodes", () => {
    const { api, advance } = mockAt()
    const file = bodyOf(api.handle(multipart("in.jsonl", lines(3)))) as BatchApiSchema.FileObject
    check("OpenAIFile", file)
    const created = bodyOf(api.handle(jsonRequest("POST", "/v1/batches", { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { run: "x" } })))
    check("Batch", created)
    const decode = Schema.decodeUnknownEither(BatchApiSchema.Batch, BatchApiSchema.decodeOptions)
    const seen: Array<string> = []
    for (let t = 0; t < 8; t++) {
      const batch = bodyOf(api.handle(jsonRequest("GET", `/v1/batches/${(created as { id: string }).id}`)))
      check("Batch", batch)
      const decoded = decode(batch)
      assert.isTrue(Either.isRight(decoded))
      if (Either.isRight(decoded)) seen.push(decoded.right.status)
      advance(1000)
    }
    assert.deepStrictEqual([...new Set(seen)], ["validating", "in_progress", "finalizing", "completed"])
    check("ListBatchesResponse", bodyOf(api.handle(jsonRequest("GET", "/v1/batches?limit=1"))))
    check("ListFilesResponse", bodyOf(api.handle(jsonRequest("GET", "/v1/files?purpose=batch_output"))))
    check("DeleteFileResponse", bodyOf(api.handle(jsonRequest("DELETE", `/v1/files/${file.id}`))))
  })

  it("the spec's own example of a Batch (nulls where nothing happened yet) decodes", () => {
    const spec = JSON.parse(readFileSync(fileURLToPath(new URL("./fixtures/openai-batch-api-schemas.json", import.meta.url)), "utf8"))
    // The example text ends its metadata with a trailing comma, which JSON does not allow.
    const example = JSON.parse(spec.components.schemas.Batch["x-oaiMeta"].example.replace(/,(\s*})/g, "$1"))
    const decoded = Schema.decodeUnknownEither(BatchApiSchema.Batch, BatchApiSchema.decodeOptions)(example)
    assert.isTrue(Either.isRight(decoded))
    if (Either.isRight(decoded)) assert.deepStrictEqual(decoded.right.request_counts, { total: 100, completed: 95, failed: 5 })
  })

  it("unknown fields of a provider's objects are kept", () => {
    const decoded = Schema.decodeUnknownSync(BatchApiSchema.FileObject, BatchApiSchema.decodeOptions)({
      id: "file-1", object: "file", bytes: 1, created_at: 1, filename: "a", purpose: "batch", provider_extra: { x: 1 }
    })
    assert.deepStrictEqual((decoded as unknown as Record<string, unknown>)["provider_extra"], { x: 1 })
  })

  it("the create-batch request Shepherd sends validates against CreateBatchRequest", () => {
    check("CreateBatchRequest", { input_file_id: "file-1", endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { shepherd_run: "r", shepherd_range: "0-2-3-abc" } })
  })
})

describe("the mock Batch API", () => {
  it("refuses lines with their numbers: the batch fails with errors.data[].line", () => {
    const { api, advance } = mockAt()
    const content = lines(2) + JSON.stringify({ custom_id: "bad", method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: "no" } }) + "\n"
    const file = bodyOf(api.handle(multipart("in.jsonl", content))) as BatchApiSchema.FileObject
    const created = bodyOf(api.handle(jsonRequest("POST", "/v1/batches", { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }))) as BatchApiSchema.Batch
    advance(2000)
    const batch = bodyOf(api.handle(jsonRequest("GET", `/v1/batches/${created.id}`))) as BatchApiSchema.Batch
    assert.strictEqual(batch.status, "failed")
    assert.strictEqual(batch.errors?.data?.[0]?.line, 3)
  })

  it("lists pages with has_more and after; refuses bad metadata, a bad purpose, and cancelling a finished batch", () => {
    const { api, advance } = mockAt()
    const ids = [1, 2, 3].map((i) => (bodyOf(api.handle(multipart(`f${i}.jsonl`, lines(1)))) as BatchApiSchema.FileObject).id)
    const page1 = bodyOf(api.handle(jsonRequest("GET", "/v1/files?purpose=batch&limit=2&order=asc"))) as BatchApiSchema.FileList
    assert.deepStrictEqual(page1.data.map((f) => f.id), ids.slice(0, 2))
    assert.isTrue(page1.has_more)
    const page2 = bodyOf(api.handle(jsonRequest("GET", `/v1/files?purpose=batch&limit=2&order=asc&after=${page1.last_id}`))) as BatchApiSchema.FileList
    assert.deepStrictEqual(page2.data.map((f) => f.id), ids.slice(2))
    assert.strictEqual(api.handle(multipart("x.jsonl", lines(1), "fine-tune")).status, 400)
    const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"]))
    assert.strictEqual(api.handle(jsonRequest("POST", "/v1/batches", { input_file_id: ids[0], endpoint: "/v1/chat/completions", completion_window: "24h", metadata })).status, 400)
    const created = bodyOf(api.handle(jsonRequest("POST", "/v1/batches", { input_file_id: ids[0], endpoint: "/v1/chat/completions", completion_window: "24h" }))) as BatchApiSchema.Batch
    advance(10_000)
    assert.strictEqual(api.handle(jsonRequest("POST", `/v1/batches/${created.id}/cancel`)).status, 409)
    assert.strictEqual(api.handle(jsonRequest("GET", "/v1/batches/batch_nope")).status, 404)
    assert.isTrue(MockBatchApi.handles("/v1/files/file-1/content"))
    assert.isFalse(MockBatchApi.handles("/v1/chat/completions"))
  })
})

describe("Pricing: batch prices", () => {
  it("half the live price by default; the table's batch prices when given", () => {
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 1_000_000 }
    assert.deepStrictEqual(Pricing.batchCost("gpt-4.1", usage), Option.some(5_000_000)) // (2 + 8) / 2 USD
    const table = Pricing.withPrices({ "gpt-4.1": { ...Pricing.defaultTable["gpt-4.1"]!, batchInput: 1.5, batchOutput: 3 } })
    assert.deepStrictEqual(Pricing.batchCost("gpt-4.1", usage, table), Option.some(4_500_000))
    assert.deepStrictEqual(Pricing.batchCost("no-such-model", usage), Option.none())
    assert.deepStrictEqual(Pricing.batchWorstCase("gpt-4.1", 1_000_000, 0), Option.some(1_000_000))
  })
})
