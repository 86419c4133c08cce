/**
 * The submission state of `BatchApi`: what was uploaded and created for which input range, as a
 * Schema (the state file's format), and the two stores: memory, and a JSON file written atomically.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as BatchApiSchema from "../../BatchApiSchema.js"
import { StoreError } from "../../BatchApiError.js"

/**
 * Where a range stands. Each step is written before it starts (`uploading`, `creating`: an intent,
 * so that a rerun looks for what a crashed run may have made) and after it ends (`uploaded`,
 * `created`, `ended`: the provider's ids); `delivered` once every outcome of the range was emitted.
 */
export const Step = Schema.Literal("uploading", "uploaded", "creating", "created", "ended", "delivered")
/** The type of {@link Step}. */
export type Step = typeof Step.Type

/** One input range: the requests of one batch file. */
export const RangeState = Schema.Struct({
  /** `<first index>-<last index>-<count>-<hash>`: the same requests give the same key. */
  key: Schema.String,
  /** The input positions (from 0) of its requests, first and last. */
  first: Schema.Number,
  last: Schema.Number,
  requests: Schema.Number,
  bytes: Schema.Number,
  /** SHA-256 of the file's content, hex. */
  sha256: Schema.String,
  endpoint: Schema.String,
  /** The name it is uploaded under (how a rerun finds an upload it did not record). */
  filename: Schema.String,
  /** The key of the range whose unfinished requests this one sends again. */
  retryOf: Schema.optional(Schema.String),
  step: Step,
  fileId: Schema.optional(Schema.String),
  batchId: Schema.optional(Schema.String),
  status: Schema.optional(BatchApiSchema.BatchStatus),
  requestCounts: Schema.optional(BatchApiSchema.RequestCounts),
  outputFileId: Schema.optional(Schema.NullOr(Schema.String)),
  errorFileId: Schema.optional(Schema.NullOr(Schema.String)),
  /** The provider's `errors.data` of a failed batch. */
  errors: Schema.optional(Schema.Array(BatchApiSchema.BatchError)),
  /** The `custom_id`s this range's batch did not finish (no outcome): sent again on the next submit. */
  unfinished: Schema.optional(Schema.Array(Schema.String)),
  /** When each step was written, epoch milliseconds. */
  updatedAtMillis: Schema.Number
})
/** The type of {@link RangeState}. */
export type RangeState = typeof RangeState.Type

/** The whole state: every range of every run kept in one store, by key. */
export const SubmissionState = Schema.Struct({
  version: Schema.Literal(1),
  runId: Schema.String,
  ranges: Schema.Record({ key: Schema.String, value: RangeState })
})
/** The type of {@link SubmissionState}. */
export type SubmissionState = typeof SubmissionState.Type

/** A store's operations (the `BatchApiStore` service). */
export interface Store {
  /** Where the state lives, for messages (the state file's path). */
  readonly location: string | undefined
  /** The saved state; none before the first save. */
  readonly load: Effect.Effect<SubmissionState | undefined, StoreError>
  /** Replaces the saved state; durable when it returns (file store: on disk). */
  readonly save: (state: SubmissionState) => Effect.Effect<void, StoreError>
}

/** A store in memory: for tests, and for a submission that need not survive the process. */
export const memory = (): Store => {
  let saved: string | undefined
  return {
    location: undefined,
    load: Effect.sync(() => (saved === undefined ? undefined : (JSON.parse(saved) as SubmissionState))),
    // Kept as text: a later change to the object given cannot reach the saved state.
    save: (state) => Effect.sync(() => { saved = JSON.stringify(state) })
  }
}

const decodeState = Schema.decodeUnknownEither(Schema.parseJson(SubmissionState))

const storeError = (path: string, action: string) => (cause: unknown) =>
  new StoreError({ path, detail: `${action}: ${cause instanceof Error ? cause.message : String(cause)}` })

/**
 * A JSON file store. Each save writes a temporary file beside `path`, flushes it to disk (fsync),
 * renames it over `path` and flushes the directory: a crash leaves the old state or the new one,
 * never a mix.
 */
export const file = (path: string): Store => {
  let saves = 0
  return {
    location: path,
    load: Effect.gen(function* () {
      const text = yield* Effect.tryPromise({
        try: () => Fs.readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : Promise.reject(e))),
        catch: storeError(path, "cannot read it")
      })
      if (text === undefined) return undefined
      const decoded = decodeState(text)
      if (Either.isLeft(decoded)) {
        return yield* Effect.fail(new StoreError({ path, detail: `it is not a batch state file: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left).slice(0, 500)}` }))
      }
      return decoded.right
    }),
    save: (state) =>
      Effect.tryPromise({
        try: async () => {
          const temp = `${path}.${process.pid}.${++saves}.tmp`
          const handle = await Fs.open(temp, "w", 0o600)
          try {
            await handle.writeFile(`${JSON.stringify(state, null, 1)}\n`, "utf8")
            await handle.sync()
          } finally {
            await handle.close()
          }
          await Fs.rename(temp, path)
          const dir = await Fs.open(Path.dirname(path), "r")
          try {
            await dir.sync()
          } finally {
            await dir.close()
          }
        },
        catch: storeError(path, "cannot write it")
      })
  }
}
