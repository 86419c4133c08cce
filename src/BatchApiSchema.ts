/**
 * Wire formats of OpenAI's Batch API (`/v1/files` and `/v1/batches`), as `Schema`s: the `File` and
 * `Batch` objects, the create-batch request and the list pages.
 *
 * As in `ChatSchema`, every schema's `Type` and `Encoded` side are the same plain JSON, and fields a
 * provider adds that are not listed here are kept: decode with {@link decodeOptions}
 * (`onExcessProperty: "preserve"`). Timestamps are Unix seconds. Checked against the OpenAI OpenAPI
 * excerpt in test/fixtures/openai-batch-api-schemas.json by test/BatchApiSchema.test.ts.
 *
 * @since 0.2.0
 */
import * as Schema from "effect/Schema"

const Int = Schema.Number.pipe(Schema.int())
const nullable = <S extends Schema.Schema.Any>(schema: S) => Schema.optional(Schema.NullOr(schema))

/**
 * Options for decoding a provider's objects: unknown fields are kept, not dropped.
 * @since 0.2.0
 * @category decoding
 */
export const decodeOptions = { onExcessProperty: "preserve", errors: "first" } as const

/**
 * Up to 16 string pairs attached to a batch (keys up to 64 characters, values up to 512).
 * @since 0.2.0
 * @category schemas
 */
export const Metadata = Schema.Record({ key: Schema.String, value: Schema.String })
/**
 * The type of {@link Metadata}.
 *
 * @since 0.2.0
 * @category models
 */
export type Metadata = typeof Metadata.Type

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/**
 * A file's purpose. Batch inputs are `batch`; the files a batch writes are `batch_output`. Open: a
 * provider may name others.
 * @since 0.2.0
 * @category schemas
 */
export const FilePurpose = Schema.String
/**
 * The type of {@link FilePurpose}.
 *
 * @since 0.2.0
 * @category models
 */
export type FilePurpose = typeof FilePurpose.Type

/**
 * The `File` object (OpenAPI `OpenAIFile`).
 * @since 0.2.0
 * @category schemas
 */
export const FileObject = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("file"),
  /** Size in bytes. */
  bytes: Int,
  created_at: Int,
  expires_at: nullable(Int),
  filename: Schema.String,
  purpose: FilePurpose,
  /** Deprecated by OpenAI (`uploaded`, `processed`, `error`); some providers still send it, others leave it out. */
  status: Schema.optional(Schema.String),
  status_details: nullable(Schema.String)
})
/**
 * The type of {@link FileObject}.
 *
 * @since 0.2.0
 * @category models
 */
export type FileObject = typeof FileObject.Type

/**
 * A page of `GET /v1/files` (query: `purpose`, `limit`, `order`, `after`).
 * @since 0.2.0
 * @category schemas
 */
export const FileList = Schema.Struct({
  object: Schema.String,
  data: Schema.Array(FileObject),
  first_id: nullable(Schema.String),
  last_id: nullable(Schema.String),
  has_more: Schema.optional(Schema.Boolean)
})
/**
 * The type of {@link FileList}.
 *
 * @since 0.2.0
 * @category models
 */
export type FileList = typeof FileList.Type

/**
 * The answer of `DELETE /v1/files/{file_id}`.
 * @since 0.2.0
 * @category schemas
 */
export const FileDeleted = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("file"),
  deleted: Schema.Boolean
})
/**
 * The type of {@link FileDeleted}.
 *
 * @since 0.2.0
 * @category models
 */
export type FileDeleted = typeof FileDeleted.Type

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

/**
 * Where a batch stands. `validating`, `in_progress`, `finalizing` and `cancelling` are on the way;
 * `completed`, `failed` (its input was refused: see `errors`), `expired` (the completion window
 * ended first) and `cancelled` are final.
 * @since 0.2.0
 * @category schemas
 */
export const BatchStatus = Schema.Literal(
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled"
)
/**
 * The type of {@link BatchStatus}.
 *
 * @since 0.2.0
 * @category models
 */
export type BatchStatus = typeof BatchStatus.Type

/**
 * The statuses after which a batch changes no more.
 * @since 0.2.0
 * @category schemas
 */
export const FINAL_STATUSES: ReadonlySet<BatchStatus> = new Set(["completed", "failed", "expired", "cancelled"])

/**
 * One reason a batch was refused: `line` is the line of the input file (from 1) when the reason is a line.
 * @since 0.2.0
 * @category schemas
 */
export const BatchError = Schema.Struct({
  code: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String),
  param: nullable(Schema.String),
  line: nullable(Int)
})
/**
 * The type of {@link BatchError}.
 *
 * @since 0.2.0
 * @category models
 */
export type BatchError = typeof BatchError.Type

/**
 * Requests of a batch: all, done, and failed so far.
 * @since 0.2.0
 * @category schemas
 */
export const RequestCounts = Schema.Struct({
  total: Int,
  completed: Int,
  failed: Int
})
/**
 * The type of {@link RequestCounts}.
 *
 * @since 0.2.0
 * @category models
 */
export type RequestCounts = typeof RequestCounts.Type

/**
 * The `Batch` object.
 * @since 0.2.0
 * @category schemas
 */
export const Batch = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("batch"),
  endpoint: Schema.String,
  model: Schema.optional(Schema.String),
  errors: nullable(Schema.Struct({
    object: Schema.optional(Schema.String),
    data: Schema.optional(Schema.Array(BatchError))
  })),
  input_file_id: Schema.String,
  completion_window: Schema.String,
  status: BatchStatus,
  output_file_id: nullable(Schema.String),
  error_file_id: nullable(Schema.String),
  created_at: Int,
  in_progress_at: nullable(Int),
  expires_at: nullable(Int),
  finalizing_at: nullable(Int),
  completed_at: nullable(Int),
  failed_at: nullable(Int),
  expired_at: nullable(Int),
  cancelling_at: nullable(Int),
  cancelled_at: nullable(Int),
  request_counts: Schema.optional(RequestCounts),
  usage: Schema.optional(Schema.Struct({
    input_tokens: Int,
    input_tokens_details: Schema.optional(Schema.Struct({ cached_tokens: Int })),
    output_tokens: Int,
    output_tokens_details: Schema.optional(Schema.Struct({ reasoning_tokens: Int })),
    total_tokens: Int
  })),
  metadata: nullable(Metadata)
})
/**
 * The type of {@link Batch}.
 *
 * @since 0.2.0
 * @category models
 */
export type Batch = typeof Batch.Type

/**
 * The body of `POST /v1/batches`.
 * @since 0.2.0
 * @category schemas
 */
export const CreateBatchRequest = Schema.Struct({
  input_file_id: Schema.String,
  endpoint: Schema.String,
  /** Only `24h` today. */
  completion_window: Schema.String,
  metadata: nullable(Metadata),
  output_expires_after: Schema.optional(Schema.Struct({ anchor: Schema.Literal("created_at"), seconds: Int }))
})
/**
 * The type of {@link CreateBatchRequest}.
 *
 * @since 0.2.0
 * @category models
 */
export type CreateBatchRequest = typeof CreateBatchRequest.Type

/**
 * A page of `GET /v1/batches` (query: `after`, `limit`), newest first.
 * @since 0.2.0
 * @category schemas
 */
export const BatchList = Schema.Struct({
  object: Schema.String,
  data: Schema.Array(Batch),
  first_id: nullable(Schema.String),
  last_id: nullable(Schema.String),
  has_more: Schema.Boolean
})
/**
 * The type of {@link BatchList}.
 *
 * @since 0.2.0
 * @category models
 */
export type BatchList = typeof BatchList.Type
