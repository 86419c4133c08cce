/**
 * The errors of `BatchApi`: one `Schema.TaggedError` per way a provider refuses a submission, plus
 * the store's. Plain data (strings and numbers, text from the server scrubbed of the key), so they
 * survive `JSON.stringify`, logs and the state file. None ever holds the API key.
 *
 * @since 0.2.0
 */
import * as Schema from "effect/Schema"

const optionalString = Schema.optional(Schema.String)

/** A server's message as a clause: without its final period, so that ours can follow. */
const clause = (text: string): string => text.trim().replace(/\.+$/, "")

/**
 * One refused line of a batch input: `line` in the uploaded file (from 1), and where it came from.
 * @since 0.2.0
 * @category errors
 */
export const LineError = Schema.Struct({
  /** The line of the uploaded file, from 1 (none for a reason about the whole file). */
  line: Schema.optional(Schema.Number),
  /** The request's position in the input given to `submit`, from 0. */
  index: Schema.optional(Schema.Number),
  custom_id: optionalString,
  code: optionalString,
  message: Schema.String,
  param: optionalString
})
/**
 * The type of {@link LineError}.
 *
 * @since 0.2.0
 * @category models
 */
export type LineError = typeof LineError.Type

/**
 * A batch file is larger than the provider takes (413, or `file_too_large`), or one request alone is
 * larger than `maxBytesPerFile`.
 * @since 0.2.0
 * @category errors
 */
export class FileTooLargeError extends Schema.TaggedError<FileTooLargeError>()("FileTooLargeError", {
  bytes: Schema.Number,
  /** The limit the file met: Shepherd's `maxBytesPerFile`, or the one the provider stated. */
  limitBytes: Schema.optional(Schema.Number),
  detail: Schema.String
}) {
  override get message(): string {
    return `a batch file of ${this.bytes} bytes was refused as too large (${clause(this.detail)}). ` +
      `Lower maxBytesPerFile (shepherd run --max-bytes-per-file) below the provider's limit.`
  }
}

/**
 * A batch holds more requests than the provider takes in one batch.
 * @since 0.2.0
 * @category errors
 */
export class TooManyRequestsError extends Schema.TaggedError<TooManyRequestsError>()("TooManyRequestsError", {
  requests: Schema.Number,
  batchId: optionalString,
  detail: Schema.String
}) {
  override get message(): string {
    return `a batch of ${this.requests} requests was refused: ${clause(this.detail)}. ` +
      `Lower maxRequestsPerFile (shepherd run --max-requests-per-file) below the provider's limit.`
  }
}

/**
 * The provider refused lines of a batch file (the batch ended `failed`), or the input holds lines no
 * provider would take (a `custom_id` used twice): each with its line number and request.
 * @since 0.2.0
 * @category errors
 */
export class InvalidLinesError extends Schema.TaggedError<InvalidLinesError>()("InvalidLinesError", {
  batchId: optionalString,
  errors: Schema.Array(LineError)
}) {
  override get message(): string {
    const shown = this.errors.slice(0, 5).map((e) =>
      `${e.line === undefined ? "" : `line ${e.line}`}${e.custom_id === undefined ? "" : ` (${e.custom_id})`}: ${e.message}`.trim())
    const more = this.errors.length > 5 ? `; and ${this.errors.length - 5} more` : ""
    return `the provider refused ${this.errors.length} line(s) of a batch${this.batchId === undefined ? "" : ` ${this.batchId}`}: ` +
      `${shown.join("; ")}${more}. Fix these requests and submit again.`
  }
}

/**
 * The account cannot take the batch: no credit (`insufficient_quota`, billing), or the model's
 * enqueued-token limit is reached (`token_limit_exceeded`). Waiting for running batches to finish,
 * or adding credit, is the cure; retrying at once is not.
 * @since 0.2.0
 * @category errors
 */
export class QuotaError extends Schema.TaggedError<QuotaError>()("QuotaError", {
  code: optionalString,
  batchId: optionalString,
  detail: Schema.String
}) {
  override get message(): string {
    return `the provider refused the batch for quota (${this.code ?? "no code"}): ${clause(this.detail)}. ` +
      `Wait for running batches to finish or raise the account's limits, then submit again (nothing is sent twice).`
  }
}

/**
 * Any other refusal or failure of a Batch API call, after its retries: a status with the server's
 * `code` and message (scrubbed of the key), or no status when the server could not be reached or
 * answered something undecodable.
 * @since 0.2.0
 * @category errors
 */
export class ProviderError extends Schema.TaggedError<ProviderError>()("ProviderError", {
  /** What was being done: `upload`, `create batch`, `retrieve batch`, `download`, `list files`, ... */
  operation: Schema.String,
  status: Schema.optional(Schema.Number),
  code: optionalString,
  detail: Schema.String,
  requestId: optionalString,
  attempts: Schema.Number
}) {
  override get message(): string {
    const status = this.status === undefined ? "" : ` (${this.status})`
    return `the Batch API call "${this.operation}" failed${status} after ${this.attempts} attempt(s): ${clause(this.detail)}. ` +
      `Submit again with the same store to continue where it stopped.`
  }
}

/**
 * The submission state could not be read or written.
 * @since 0.2.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  path: optionalString,
  detail: Schema.String
}) {
  override get message(): string {
    return `the batch state ${this.path ?? "store"} could not be used: ${clause(this.detail)}. ` +
      `Check the file's permissions and that it was written by this version of Shepherd.`
  }
}

/**
 * Any error of `BatchApi.submit`.
 * @since 0.2.0
 * @category errors
 */
export type BatchApiError = FileTooLargeError | TooManyRequestsError | InvalidLinesError | QuotaError | ProviderError | StoreError
