/**
 * The mock server's Batch API: `/v1/files` and `/v1/batches` with OpenAI's object shapes, state in
 * memory. A plain request handler (method, URL, headers, body bytes in; status, headers, body out),
 * so that any HTTP server can route to it: {@link handles} says which paths are its own.
 *
 * Time comes from `now` (epoch milliseconds): a batch is `validating` for `validating`, then
 * `in_progress` (each request takes `perRequest`, one after another), `finalizing` for `finalizing`,
 * then `completed`; past `completionWindow` it is `expired`, and a cancel makes it `cancelling` for
 * `finalizing`, then `cancelled`. Requests not done by then get `batch_expired` / `batch_cancelled`
 * lines in the error file. Answers come from the chat mock's generator (`content.ts`).
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as BatchApiSchema from "../../BatchApiSchema.js"
import type * as ChatSchema from "../../ChatSchema.js"
import type * as Lines from "./batchApiLines.js"
import { makeRoutes, refusal, type Result, type StoredBatch, type StoredFile } from "./batchApiRoutes.js"
import * as Content from "./content.js"

/** A request as an HTTP server received it. */
export interface Request {
  readonly method: string
  /** Path and query, e.g. `/v1/files?purpose=batch`. */
  readonly url: string
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly body: Uint8Array
}

/** The answer to send. */
export interface Response {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | Uint8Array
}

/** A fault the file or batch endpoints answer with instead of their work. */
export type Fault =
  /** 500, 502 or 503 with an HTML body, as a proxy sends. @default status 502 */
  | { readonly type: "server_error"; readonly status?: 500 | 502 | 503 }
  /** 429 `rate_limit_exceeded` with `retry-after` (seconds). @default 1 */
  | { readonly type: "rate_limit"; readonly retryAfterSeconds?: number }
  /** 429 `insufficient_quota`, which waiting does not cure. */
  | { readonly type: "quota" }

/** How a request of a batch fails, when `failRequest` says it does. */
export interface RequestFailure {
  readonly status: number
  readonly code: string
  readonly message: string
}

/** Options. Every default is in {@link defaults}. */
export interface Options {
  /** The clock, epoch milliseconds (pass a `TestClock`'s `unsafeCurrentTimeMillis`). @default Date.now */
  readonly now: () => number
  /** Time a batch stays `validating`. @default "1 second" */
  readonly validating: Duration.DurationInput
  /** Time each request takes once `in_progress` (one after another). @default "10 millis" */
  readonly perRequest: Duration.DurationInput
  /** Time `finalizing` (and `cancelling`) lasts. @default "1 second" */
  readonly finalizing: Duration.DurationInput
  /** Past this, a batch's unfinished requests expire. @default "24 hours" */
  readonly completionWindow: Duration.DurationInput
  /** Requests in one input file at most. @default 50000 */
  readonly maxRequestsPerFile: number
  /** Bytes of one uploaded file at most. @default 200 MB */
  readonly maxFileBytes: number
  /** Check each line's body against the request schema (a refused line fails the batch). @default true */
  readonly validate: boolean
  /** Requests that fail (written to the error file). @default none */
  readonly failRequest: (line: Lines.InputLine) => RequestFailure | undefined
  /** Answers of the next requests to `/v1/files...`, in order ("ok": the normal answer). @default [] */
  readonly fileFaults: ReadonlyArray<Fault | "ok">
  /** Answers of the next requests to `/v1/batches...`, in order. @default [] */
  readonly batchFaults: ReadonlyArray<Fault | "ok">
}

/** The defaults of {@link Options}. */
export const defaults: Options = {
  now: () => Date.now(),
  validating: "1 second",
  perRequest: "10 millis",
  finalizing: "1 second",
  completionWindow: "24 hours",
  maxRequestsPerFile: 50_000,
  maxFileBytes: 200 * 1024 * 1024,
  validate: true,
  failRequest: () => undefined,
  fileFaults: [],
  batchFaults: []
}

/** What the Batch API received, one entry per request. */
export interface JournalEntry {
  readonly seq: number
  readonly method: string
  readonly path: string
  readonly status: number
  /** `upload`, `create`, `retrieve`, `list`, `content`, `delete`, `cancel`; `fault` when a fault answered. */
  readonly action: string
  readonly fileId?: string | undefined
  readonly batchId?: string | undefined
  readonly filename?: string | undefined
  readonly metadata?: BatchApiSchema.Metadata | undefined
}

/** The Batch API's state and handler. */
export interface BatchApi {
  readonly handle: (request: Request) => Response
  readonly journal: () => ReadonlyArray<JournalEntry>
  readonly files: () => ReadonlyArray<BatchApiSchema.FileObject>
  readonly batches: () => ReadonlyArray<BatchApiSchema.Batch>
  /** The content of a stored file, as text. */
  readonly content: (fileId: string) => string | undefined
  /** Replace the fault scripts. */
  readonly setFaults: (faults: { readonly files?: ReadonlyArray<Fault | "ok">; readonly batches?: ReadonlyArray<Fault | "ok"> }) => void
  /** Forget every file, batch and journal entry. */
  readonly reset: () => void
}

/** Whether `path` (without its query) is served by the Batch API. */
export const handles = (path: string): boolean =>
  path === "/v1/files" || path.startsWith("/v1/files/") || path === "/v1/batches" || path.startsWith("/v1/batches/")

const faultResponse = (fault: Fault): Response => {
  switch (fault.type) {
    case "server_error": {
      const status = fault.status ?? 502
      return { status, headers: { "content-type": "text/html" }, body: `<html><body><h1>${status}</h1><hr>mock-proxy</body></html>` }
    }
    case "rate_limit":
      return { ...refusal(429, "Rate limit reached for requests (mock).", "rate_limit_exceeded", null, "requests"), headers: { "content-type": "application/json", "retry-after": String(fault.retryAfterSeconds ?? 1) } }
    case "quota":
      return refusal(429, "You exceeded your current quota, please check your plan and billing details (mock).", "insufficient_quota", null, "insufficient_quota")
  }
}

/** The object without its null fields (`metadata` kept: the spec allows it null). */
const withoutNulls = (batch: BatchApiSchema.Batch): BatchApiSchema.Batch =>
  Object.fromEntries(Object.entries(batch).filter(([key, value]) => value !== null || key === "metadata")) as BatchApiSchema.Batch

const seconds = (millis: number) => Math.floor(millis / 1000)

/** The durations of a batch's phases, in milliseconds. */
interface Phases {
  readonly validating: number
  readonly perRequest: number
  readonly finalizing: number
  readonly windowMillis: number
}

type StoreFile = (filename: string, purpose: string, data: Buffer, at: number) => BatchApiSchema.FileObject

/** Where a batch stands at `now`, with the times of its steps and how many requests are done. */
const timeline = (b: StoredBatch, now: number, p: Phases) => {
  const { validating, perRequest, finalizing, windowMillis } = p
  const inProgressAt = b.createdAt + validating
  const expiresAt = b.createdAt + windowMillis
  const allDone = inProgressAt + b.lines.length * perRequest
  const cancelAt = b.cancelAt
  const doneBy = (t: number) => Math.max(0, Math.min(b.lines.length, Math.floor((t - inProgressAt) / perRequest)))
  if (b.invalid !== undefined && (cancelAt === undefined || cancelAt >= inProgressAt)) {
    return now < inProgressAt ? { status: "validating" as const, done: 0 } : { status: "failed" as const, done: 0, at: inProgressAt }
  }
  if (cancelAt !== undefined && cancelAt < Math.min(allDone, expiresAt)) {
    const done = doneBy(cancelAt)
    if (now < cancelAt) return { status: now < inProgressAt ? "validating" as const : "in_progress" as const, done: doneBy(now) }
    return now < cancelAt + finalizing
      ? { status: "cancelling" as const, done, cancellingAt: cancelAt }
      : { status: "cancelled" as const, done, cancellingAt: cancelAt, at: cancelAt + finalizing }
  }
  if (now < inProgressAt) return { status: "validating" as const, done: 0 }
  if (expiresAt < allDone) {
    return now < expiresAt ? { status: "in_progress" as const, done: doneBy(now) } : { status: "expired" as const, done: doneBy(expiresAt), at: expiresAt }
  }
  if (now < allDone) return { status: "in_progress" as const, done: doneBy(now) }
  if (now < allDone + finalizing) return { status: "finalizing" as const, done: b.lines.length, finalizingAt: allDone }
  return { status: "completed" as const, done: b.lines.length, finalizingAt: allDone, at: allDone + finalizing }
}

/** Writes a finished batch's output and error files, once. */
const materialize = (b: StoredBatch, done: number, unfinishedCode: string | undefined, at: number, storeFile: StoreFile) => {
  if (b.materialized) return
  b.materialized = true
  const output: Array<string> = []
  const errors: Array<string> = []
  b.lines.forEach((line, i) => {
    const id = `batch_req_${b.id.slice(6)}_${i}`
    const result = b.results[i]!
    if (i >= done) {
      if (unfinishedCode === undefined) return
      const message = unfinishedCode === "batch_expired"
        ? "This request could not be executed before the completion window expired."
        : "This request was not executed because the batch was cancelled."
      errors.push(JSON.stringify({ id, custom_id: line.custom_id, response: null, error: { code: unfinishedCode, message } }))
    } else if (result.ok) {
      output.push(JSON.stringify({ id, custom_id: line.custom_id, response: { status_code: 200, request_id: `req_${id}`, body: result.body }, error: null }))
    } else {
      const f = result.failure
      const body = { error: { message: f.message, type: f.status === 429 ? "requests" : "invalid_request_error", param: null, code: f.code } }
      errors.push(JSON.stringify({ id, custom_id: line.custom_id, response: { status_code: f.status, request_id: `req_${id}`, body }, error: null }))
    }
  })
  const write = (lines: Array<string>, kind: string) =>
    lines.length === 0 ? null : storeFile(`${b.id}_${kind}.jsonl`, "batch_output", Buffer.from(lines.map((l) => `${l}\n`).join("")), at).id
  b.outputFileId = write(output, "output")
  b.errorFileId = write(errors, "error")
}

/** The `Batch` object at `now` (finished batches get their files on the first look). */
const view = (b: StoredBatch, now: number, p: Phases, storeFile: StoreFile): BatchApiSchema.Batch => {
  const { validating, windowMillis } = p
  const t = timeline(b, now, p)
  const counted = b.results.slice(0, t.done)
  const failed = counted.filter((r) => !r.ok).length
  if (t.status === "completed" || t.status === "expired" || t.status === "cancelled") {
    materialize(b, t.done, t.status === "expired" ? "batch_expired" : t.status === "cancelled" ? "batch_cancelled" : undefined, t.at, storeFile)
  }
  const at = (millis: number | undefined) => (millis === undefined ? null : seconds(millis))
  const inProgressAt = b.createdAt + validating
  // Fields with no value are left out, as the OpenAPI description has them (it allows no nulls there).
  return withoutNulls({
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    model: (b.lines[0]?.body as { model?: string } | undefined)?.model,
    errors: b.invalid === undefined ? null : { object: "list", data: b.invalid },
    input_file_id: b.inputFileId,
    completion_window: "24h",
    status: t.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: seconds(b.createdAt),
    in_progress_at: b.invalid === undefined && now >= inProgressAt && (b.cancelAt === undefined || b.cancelAt >= inProgressAt) ? seconds(inProgressAt) : null,
    expires_at: seconds(b.createdAt + windowMillis),
    finalizing_at: at("finalizingAt" in t ? t.finalizingAt : undefined),
    completed_at: t.status === "completed" ? seconds(t.at) : null,
    failed_at: t.status === "failed" ? seconds(t.at) : null,
    expired_at: t.status === "expired" ? seconds(t.at) : null,
    cancelling_at: at("cancellingAt" in t ? t.cancellingAt : undefined),
    cancelled_at: t.status === "cancelled" ? seconds(t.at) : null,
    request_counts: { total: b.invalid === undefined ? b.lines.length : 0, completed: t.done - failed, failed },
    metadata: b.metadata
  })
}

/** A request's result: `failRequest`'s failure, else the chat mock's answer (the same request, the same content). */
const resultOf = (failRequest: Options["failRequest"]) => (line: Lines.InputLine, seq: number): Result => {
  const failure = failRequest(line)
  if (failure !== undefined) return { ok: false, failure }
  return line.url === "/v1/embeddings"
    ? { ok: true, body: Content.embeddings(line.body as ChatSchema.EmbeddingRequest) }
    : { ok: true, body: Content.completion(line.body as ChatSchema.ChatCompletionRequest, undefined, seq) }
}

/** A new Batch API with empty state. */
export const make = (options: Partial<Options> = {}): BatchApi => {
  const o: Options = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) }
  const phases: Phases = {
    validating: Duration.toMillis(o.validating),
    perRequest: Duration.toMillis(o.perRequest),
    finalizing: Duration.toMillis(o.finalizing),
    windowMillis: Duration.toMillis(o.completionWindow)
  }
  let files = new Map<string, StoredFile>()
  let batches = new Map<string, StoredBatch>()
  let journal: Array<JournalEntry> = []
  let fileFaults = [...o.fileFaults]
  let batchFaults = [...o.batchFaults]
  let counter = 0

  const storeFile = (filename: string, purpose: string, data: Buffer, at: number): BatchApiSchema.FileObject => {
    const n = ++counter
    const object: BatchApiSchema.FileObject = {
      id: `file-mock${n}`,
      object: "file",
      bytes: data.length,
      created_at: seconds(at),
      expires_at: seconds(at) + 30 * 24 * 3600,
      filename,
      purpose,
      status: "processed"
    }
    files.set(object.id, { object, data, order: n })
    return object
  }

  const routes = makeRoutes({
    options: o,
    now: o.now,
    files: () => files,
    batches: () => batches,
    storeFile,
    view: (b, now) => view(b, now, phases, storeFile),
    nextOrder: () => ++counter,
    resultOf: resultOf(o.failRequest)
  })

  const handle = (request: Request): Response => {
    const [path = "/", query = ""] = request.url.split("?", 2)
    const isFiles = path.startsWith("/v1/files")
    const script = isFiles ? fileFaults : batchFaults
    const step = script.shift()
    const record = (response: Response, details: Omit<JournalEntry, "seq" | "method" | "path" | "status">) => {
      journal.push({ seq: journal.length + 1, method: request.method, path, status: response.status, ...details })
      return response
    }
    if (step !== undefined && step !== "ok") return record(faultResponse(step), { action: "fault" })
    const routed = routes(request.method, path, new URLSearchParams(query), request)
    return record(routed.response, routed.details)
  }

  return {
    handle,
    journal: () => journal.slice(),
    files: () => [...files.values()].sort((a, b) => a.order - b.order).map((f) => f.object),
    batches: () => [...batches.values()].sort((a, b) => a.order - b.order).map((b) => view(b, o.now(), phases, storeFile)),
    content: (fileId) => files.get(fileId)?.data.toString("utf8"),
    setFaults: (faults) => {
      if (faults.files !== undefined) fileFaults = [...faults.files]
      if (faults.batches !== undefined) batchFaults = [...faults.batches]
    },
    reset: () => {
      files = new Map()
      batches = new Map()
      journal = []
    }
  }
}
