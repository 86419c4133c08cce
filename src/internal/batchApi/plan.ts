/**
 * Splitting the input into batch files: one endpoint per file, within the request and byte limits,
 * each range named by its positions and the SHA-256 of its content (the same requests always make
 * the same file, name and key, which is how a rerun recognises its own work).
 * @internal
 */
import * as Either from "effect/Either"
import * as Crypto from "node:crypto"
import type * as Batch from "../../Batch.js"
import { FileTooLargeError, InvalidLinesError } from "../../BatchApiError.js"

/** One request with its input position and its batch-file line. */
export interface Item {
  readonly request: Batch.BatchRequest
  readonly index: number
  /** The `BatchRequestInput` line, newline included. */
  readonly line: string
  readonly bytes: number
}

/** A range of requests that becomes one batch file. */
export interface Planned {
  readonly key: string
  readonly items: ReadonlyArray<Item>
  readonly bytes: number
  readonly sha256: string
  readonly endpoint: string
  readonly filename: string
  readonly retryOf: string | undefined
}

/** The limits of one file. */
export interface Limits {
  readonly maxRequests: number
  readonly maxBytes: number
}

const urlOf = (request: Batch.BatchRequest): string => request.url ?? "/v1/chat/completions"

/** The batch-file line of a request. */
export const item = (request: Batch.BatchRequest, index: number): Item => {
  const line = `${JSON.stringify({ custom_id: request.custom_id, method: "POST", url: urlOf(request), body: request.body })}\n`
  return { request, index, line, bytes: Buffer.byteLength(line) }
}

/** A run id as it may appear in a file name and a metadata value. */
export const safeRunId = (runId: string): string => runId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 64)

/**
 * A range's key, file name and hash. The key is `<first>-<last>-<count>-<id>`, `id` the start of the
 * content's SHA-256, or for a retry (`retryOf`) of the SHA-256 of the retried key and the content.
 */
export const planned = (items: ReadonlyArray<Item>, runId: string, retryOf?: string): Planned => {
  const hash = Crypto.createHash("sha256")
  let bytes = 0
  for (const it of items) {
    hash.update(it.line)
    bytes += it.bytes
  }
  const sha256 = hash.digest("hex")
  // A retry's key also names the range it retries: the same requests sent again in a later
  // generation (all of a range unfinished, twice) make a new range, never the old one's key.
  const id = retryOf === undefined ? sha256 : Crypto.createHash("sha256").update(`${retryOf}\n${sha256}`).digest("hex")
  const key = `${items[0]!.index}-${items[items.length - 1]!.index}-${items.length}-${id.slice(0, 16)}`
  return {
    key,
    items,
    bytes,
    sha256,
    endpoint: urlOf(items[0]!.request),
    filename: `shepherd-${safeRunId(runId)}-${key}.jsonl`,
    retryOf
  }
}

/** The content to upload. */
export const content = (range: Planned): Uint8Array => Buffer.from(range.items.map((it) => it.line).join(""), "utf8")

/** Refuses an input whose `custom_id`s repeat (every provider refuses such a file). */
export const checkUnique = (items: ReadonlyArray<Item>): Either.Either<void, InvalidLinesError> => {
  const first = new Map<string, number>()
  const errors: Array<InvalidLinesError["errors"][number]> = []
  for (const it of items) {
    const seen = first.get(it.request.custom_id)
    if (seen === undefined) first.set(it.request.custom_id, it.index)
    else errors.push({ index: it.index, custom_id: it.request.custom_id, code: "duplicate_custom_id", message: `custom_id is also used by input ${seen}` })
  }
  return errors.length === 0 ? Either.void : Either.left(new InvalidLinesError({ errors }))
}

/**
 * Consecutive items grouped into files: a new file at a change of endpoint, or when the next request
 * would pass `maxRequests` or `maxBytes`. A request larger than `maxBytes` alone cannot be sent.
 */
export const split = (items: ReadonlyArray<Item>, limits: Limits): Either.Either<Array<Array<Item>>, FileTooLargeError> => {
  const groups: Array<Array<Item>> = []
  let current: Array<Item> = []
  let bytes = 0
  for (const it of items) {
    if (it.bytes > limits.maxBytes) {
      return Either.left(new FileTooLargeError({
        bytes: it.bytes,
        limitBytes: limits.maxBytes,
        detail: `the request ${it.request.custom_id} (input ${it.index}) alone is larger than maxBytesPerFile`
      }))
    }
    const head = current[0]
    if (head !== undefined && (urlOf(head.request) !== urlOf(it.request) || current.length >= limits.maxRequests || bytes + it.bytes > limits.maxBytes)) {
      groups.push(current)
      current = []
      bytes = 0
    }
    current.push(it)
    bytes += it.bytes
  }
  if (current.length > 0) groups.push(current)
  return Either.right(groups)
}
