/**
 * The mock Batch API's routes: what each endpoint does with the state `batchApi.ts` keeps.
 * @internal
 */
import * as Either from "effect/Either"
import type * as BatchApiSchema from "../../BatchApiSchema.js"
import type * as ChatSchema from "../../ChatSchema.js"
import type { JournalEntry, Options, Request, RequestFailure, Response } from "./batchApi.js"
import * as Lines from "./batchApiLines.js"

const SUPPORTED_ENDPOINTS = new Set(["/v1/chat/completions", "/v1/embeddings"])

/** A JSON answer with `status`. */
export const json = (status: number, value: unknown, headers: Record<string, string> = {}): Response => ({
  status,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(value)
})

/** An OpenAI error body with `status`, as the Batch API refuses. */
export const refusal = (status: number, message: string, code: string | null, param: string | null = null, type = "invalid_request_error") =>
  json(status, { error: { message, type, param, code } })

/** An uploaded file, as the mock keeps it. */
export interface StoredFile {
  readonly object: BatchApiSchema.FileObject
  readonly data: Buffer
  readonly order: number
}

/** One request's result, decided when the batch is created. */
export type Result =
  | { readonly ok: true; readonly body: ChatSchema.ChatCompletion | ChatSchema.EmbeddingResponseEncoded }
  | { readonly ok: false; readonly failure: RequestFailure }

/** A batch, as the mock keeps it: its input lines, the results decided at creation, its files once materialized. */
export interface StoredBatch {
  readonly id: string
  readonly order: number
  readonly endpoint: string
  readonly inputFileId: string
  readonly metadata: BatchApiSchema.Metadata | null
  readonly createdAt: number
  readonly lines: ReadonlyArray<Lines.InputLine>
  readonly results: ReadonlyArray<Result>
  readonly invalid: ReadonlyArray<BatchApiSchema.BatchError> | undefined
  cancelAt: number | undefined
  outputFileId: string | null
  errorFileId: string | null
  materialized: boolean
}

/** What the routes read and change of the mock's state. */
export interface RouteContext {
  readonly options: Options
  readonly now: () => number
  readonly files: () => Map<string, StoredFile>
  readonly batches: () => Map<string, StoredBatch>
  readonly storeFile: (filename: string, purpose: string, data: Buffer, at: number) => BatchApiSchema.FileObject
  readonly view: (b: StoredBatch, now: number) => BatchApiSchema.Batch
  readonly nextOrder: () => number
  readonly resultOf: (line: Lines.InputLine, seq: number) => Result
}

/** A route's answer and what the journal records of it. */
export interface Routed {
  readonly response: Response
  readonly details: Omit<JournalEntry, "seq" | "method" | "path" | "status">
}

/** A page of a list, newest first unless `order=asc`, from after the `after` id. */
const page = <A extends { readonly id: string }>(items: ReadonlyArray<A>, query: URLSearchParams, maxLimit: number, defaultLimit: number) => {
  const limit = Math.min(maxLimit, Math.max(1, Number(query.get("limit") ?? defaultLimit) || defaultLimit))
  const after = query.get("after")
  const start = after === null ? 0 : items.findIndex((item) => item.id === after) + 1
  const data = items.slice(start, start + limit)
  return { object: "list", data, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null, has_more: start + limit < items.length }
}

/** The `/v1/files` and `/v1/batches` routes over `c`: a method and path to an answer. */
export const makeRoutes = (c: RouteContext) => (method: string, path: string, query: URLSearchParams, request: Request): Routed => {
  const now = c.now()
  const parts = path.split("/").slice(2) // ["files", id?, "content"?] or ["batches", id?, "cancel"?]
  const [collection, id, sub] = parts
  const notFound = (what: string): Routed => ({ response: refusal(404, `No such ${what}: ${id}.`, null, "id"), details: { action: "not_found" } })
  if (collection === "files") {
    const files = c.files()
    if (id === undefined && method === "POST") return upload(c, request, now)
    if (id === undefined && method === "GET") {
      const purpose = query.get("purpose")
      const sorted = [...files.values()].filter((f) => purpose === null || f.object.purpose === purpose)
        .sort((a, b) => (query.get("order") === "asc" ? a.order - b.order : b.order - a.order)).map((f) => f.object)
      return { response: json(200, page(sorted, query, 10_000, 10_000)), details: { action: "list" } }
    }
    const file = id === undefined ? undefined : files.get(id)
    if (file === undefined) return notFound("file")
    if (sub === "content" && method === "GET") {
      return { response: { status: 200, headers: { "content-type": "application/octet-stream" }, body: file.data }, details: { action: "content", fileId: id } }
    }
    if (sub === undefined && method === "GET") return { response: json(200, file.object), details: { action: "retrieve", fileId: id } }
    if (sub === undefined && method === "DELETE") {
      files.delete(file.object.id)
      return { response: json(200, { id: file.object.id, object: "file", deleted: true }), details: { action: "delete", fileId: id } }
    }
  }
  if (collection === "batches") {
    const batches = c.batches()
    if (id === undefined && method === "POST") return create(c, request, now)
    if (id === undefined && method === "GET") {
      const sorted = [...batches.values()].sort((a, b) => b.order - a.order).map((b) => c.view(b, now))
      return { response: json(200, page(sorted, query, 100, 20)), details: { action: "list" } }
    }
    const batch = id === undefined ? undefined : batches.get(id)
    if (batch === undefined) return notFound("batch")
    if (sub === undefined && method === "GET") return { response: json(200, c.view(batch, now)), details: { action: "retrieve", batchId: id } }
    if (sub === "cancel" && method === "POST") {
      const status = c.view(batch, now).status
      if (status === "completed" || status === "failed" || status === "expired") {
        return { response: refusal(409, `Cannot cancel a batch with status ${status}.`, null), details: { action: "cancel", batchId: id } }
      }
      if (batch.cancelAt === undefined) batch.cancelAt = now
      return { response: json(200, c.view(batch, now)), details: { action: "cancel", batchId: id } }
    }
  }
  return { response: refusal(404, `Unknown request URL: ${method} ${path}.`, "unknown_url"), details: { action: "unknown" } }
}

const headerText = (value: string | ReadonlyArray<string> | undefined) => (Array.isArray(value) ? value.join(", ") : value as string | undefined)

const upload = (c: RouteContext, request: Request, now: number): Routed => {
  const parts = Lines.parseMultipart(headerText(request.headers["content-type"]), Buffer.from(request.body))
  if (Either.isLeft(parts)) return { response: refusal(400, parts.left, null), details: { action: "upload" } }
  const purpose = parts.right.find((p) => p.name === "purpose")?.data.toString("utf8")
  const file = parts.right.find((p) => p.name === "file")
  if (file === undefined) return { response: refusal(400, "'file' is a required property.", "missing_required_parameter", "file"), details: { action: "upload" } }
  if (purpose !== "batch") return { response: refusal(400, `'${purpose ?? ""}' is not one of the purposes this mock accepts ('batch').`, "invalid_value", "purpose"), details: { action: "upload" } }
  const filename = file.filename ?? "upload.jsonl"
  if (file.data.length > c.options.maxFileBytes) {
    return {
      response: refusal(413, `File is too large: ${file.data.length} bytes; the limit is ${c.options.maxFileBytes} bytes.`, "file_too_large", "file"),
      details: { action: "upload", filename }
    }
  }
  const object = c.storeFile(filename, purpose, Buffer.from(file.data), now)
  return { response: json(200, object), details: { action: "upload", fileId: object.id, filename } }
}

const checkMetadata = (metadata: unknown): string | undefined => {
  if (metadata === undefined || metadata === null) return undefined
  if (typeof metadata !== "object" || Array.isArray(metadata)) return "metadata must be an object of strings."
  const entries = Object.entries(metadata)
  if (entries.length > 16) return "metadata holds at most 16 keys."
  for (const [key, value] of entries) {
    if (key.length > 64) return `metadata key ${key.slice(0, 20)}... is longer than 64 characters.`
    if (typeof value !== "string" || value.length > 512) return `metadata.${key} must be a string of at most 512 characters.`
  }
  return undefined
}

const create = (c: RouteContext, request: Request, now: number): Routed => {
  let body: Record<string, unknown>
  try {
    body = JSON.parse(Buffer.from(request.body).toString("utf8")) as Record<string, unknown>
  } catch {
    return { response: refusal(400, "We could not parse the JSON body of your request.", null), details: { action: "create" } }
  }
  const refuse = (message: string, param: string, code = "invalid_value"): Routed => ({ response: refusal(400, message, code, param), details: { action: "create" } })
  const endpoint = body["endpoint"]
  if (typeof endpoint !== "string" || !SUPPORTED_ENDPOINTS.has(endpoint)) return refuse(`endpoint must be one of ${[...SUPPORTED_ENDPOINTS].join(", ")}.`, "endpoint")
  if (body["completion_window"] !== "24h") return refuse("completion_window must be '24h'.", "completion_window")
  const metadataProblem = checkMetadata(body["metadata"])
  if (metadataProblem !== undefined) return refuse(metadataProblem, "metadata")
  const file = typeof body["input_file_id"] === "string" ? c.files().get(body["input_file_id"]) : undefined
  if (file === undefined) return { response: refusal(404, `No such File object: ${String(body["input_file_id"])}.`, null, "input_file_id"), details: { action: "create" } }
  if (file.object.purpose !== "batch") return refuse("The input file's purpose must be 'batch'.", "input_file_id")
  const checked = Lines.checkLines(file.data.toString("utf8"), endpoint, c.options.validate, c.options.maxRequestsPerFile)
  const order = c.nextOrder()
  const lines = Either.isRight(checked) ? checked.right : []
  const batch: StoredBatch = {
    id: `batch_mock${order}`,
    order,
    endpoint,
    inputFileId: file.object.id,
    metadata: (body["metadata"] as BatchApiSchema.Metadata | undefined) ?? null,
    createdAt: now,
    lines,
    results: lines.map((line, i) => c.resultOf(line, order * 100_000 + i)),
    invalid: Either.isLeft(checked) ? checked.left : undefined,
    cancelAt: undefined,
    outputFileId: null,
    errorFileId: null,
    materialized: false
  }
  c.batches().set(batch.id, batch)
  return { response: json(200, c.view(batch, now)), details: { action: "create", batchId: batch.id, fileId: file.object.id, metadata: batch.metadata ?? undefined } }
}
