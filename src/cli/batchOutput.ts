/**
 * The OpenAI Batch API output line format (`BatchRequestOutput`): writing one line per outcome,
 * deciding which lines are final, and reading (and repairing) an earlier output to resume.
 * Pure functions, except `scanOutput`, `rewriteOutput` and `repairOutput`, which read and write files.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fs from "node:fs"
import type * as Batch from "../Batch.js"
import type * as ChatError from "../ChatError.js"
import * as EmbeddingVectors from "../internal/embeddingVectors.js"
import { parseJson } from "../internal/jsonText.js"
import { isResendableStatus } from "../internal/retryable.js"
import { FileError, forEachLine, type Line } from "./batchLines.js"
import { IdTable } from "./idTable.js"

/** A `BatchRequestOutput` line. */
export interface OutputLine {
  readonly id: string
  readonly custom_id: string
  readonly response: { readonly status_code: number; readonly request_id: string | undefined; readonly body: unknown } | null
  readonly error: { readonly code: string; readonly message: string } | null
}

/** The `error.code` written for failures that are not an HTTP answer. */
const nonHttpCode = (error: ChatError.ChatError): string => {
  switch (error._tag) {
    case "TimeoutError":
      return `timeout_${error.phase}`
    case "TransportError":
      return "transport_error"
    case "ResponseDecodeError":
      return "response_decode_error"
    case "BudgetExceededError":
      return "budget_exceeded"
    case "LimiterUnavailableError":
      return "limiter_unavailable"
    default:
      return "error"
  }
}

/**
 * The output line of an outcome. An HTTP answer (a success, or an error status) is a `response` with
 * its status and body, as OpenAI writes it (for an error status, the server's error object in its own
 * words, scrubbed of the key); a failure with no usable answer (timeout, transport, undecodable body)
 * is an `error` with a code and Shepherd's message.
 */
export const outputLine = (outcome: Batch.BatchOutcome, id: string): OutputLine => {
  if (outcome._tag === "Success") {
    return {
      id,
      custom_id: outcome.custom_id,
      response: {
        status_code: outcome.status,
        request_id: outcome.requestId,
        // A base64 answer's vectors (Float32Arrays once decoded) are written back as the base64 that came.
        body: outcome.url === "/v1/embeddings" ? EmbeddingVectors.toWire(outcome.embeddings) : outcome.completion
      },
      error: null
    }
  }
  const error = outcome.error
  if (error._tag === "ApiError" || error._tag === "RateLimitError") {
    const status = error._tag === "ApiError" ? error.status : 429
    return {
      id,
      custom_id: outcome.custom_id,
      response: {
        status_code: status,
        request_id: error.requestId,
        // The server's own error object, as OpenAI's batch output carries it; a body that was not an
        // OpenAI error gives its text (ApiError.detail: its first 2 KB) as the message.
        body: {
          error: error.serverError ?? {
            message: error.detail ?? "",
            type: error._tag === "ApiError" ? error.type ?? null : null,
            param: error._tag === "ApiError" ? error.param ?? null : null,
            code: error.code ?? null
          }
        }
      },
      error: null
    }
  }
  return { id, custom_id: outcome.custom_id, response: null, error: { code: nonHttpCode(error), message: error.message } }
}

/**
 * Whether an output line is a final outcome a rerun keeps: an answer, or an error that sending again
 * would repeat (a 4xx other than 401/408/409/429; a 2xx body that was paid for but not understood).
 * Rate limits, 5xx, timeouts, transport failures and budget refusals are sent again
 * (`isResendableStatus`: the statuses the client retries, and 401).
 */
export const isFinal = (line: unknown): line is OutputLine => {
  if (typeof line !== "object" || line === null) return false
  const l = line as Partial<Record<keyof OutputLine, unknown>>
  if (typeof l.custom_id !== "string") return false
  const response = l.response as { status_code?: unknown } | null | undefined
  if (response !== null && response !== undefined && typeof response.status_code === "number") return !isResendableStatus(response.status_code)
  const error = l.error as { code?: unknown } | null | undefined
  return error !== null && error !== undefined && error.code === "response_decode_error"
}

/**
 * Whether a parsed line is a batch output line (`BatchRequestOutput`): an object with a string
 * `custom_id`, and `response` and `error`, each an object or null. An input line is not one.
 */
export const isOutputLine = (line: unknown): boolean => {
  if (typeof line !== "object" || line === null || Array.isArray(line)) return false
  const l = line as Record<string, unknown>
  const objectOrNull = (v: unknown) => v === null || (typeof v === "object" && !Array.isArray(v))
  return typeof l["custom_id"] === "string" && "response" in l && objectOrNull(l["response"]) && "error" in l && objectOrNull(l["error"])
}

/** An output line that is not JSON but starts as one: damaged (a short write by an older version), sent again. */
const looksLikeDamagedOutput = (text: string): boolean => text.startsWith('{"id":"')


/** What an earlier output file holds. */
export interface Done {
  /** The `custom_id`s with a final outcome. */
  readonly ids: IdTable
  /** Lines that a rerun drops: outcomes to send again, a partial last line, damaged lines. */
  readonly dropped: number
  /** The numbers of the lines kept, in order (for `rewriteOutput`). */
  readonly keep: ReadonlyArray<number>
  /** The file must be repaired before appending (lines to drop, or no newline at its end). */
  readonly needsRewrite: boolean
  /**
   * How: `truncate` a cut last line (nothing else to drop; needs no free space), add the missing
   * final `newline`, or `rewrite` the file without the dropped lines.
   */
  readonly repair: "none" | "truncate" | "newline" | "rewrite"
  /** The first line that is not a batch output line (the file is something else: refuse it). */
  readonly foreign: Line | undefined
}

const nothingDone = (): Done => ({ ids: new IdTable(), dropped: 0, keep: [], needsRewrite: false, repair: "none", foreign: undefined })

const lastByteIsNewline = (path: string): boolean => {
  const size = Fs.statSync(path).size
  if (size === 0) return true
  const fd = Fs.openSync(path, "r")
  try {
    const last = Buffer.alloc(1)
    Fs.readSync(fd, last, 0, 1, size - 1)
    return last[0] === 0x0a
  } finally {
    Fs.closeSync(fd)
  }
}

/** The length of a file up to and including its last `\n` (0 if none), read backwards. */
const wholeLinesLength = (path: string): number => {
  const fd = Fs.openSync(path, "r")
  try {
    const block = Buffer.alloc(1 << 16)
    let end = Fs.fstatSync(fd).size
    while (end > 0) {
      const start = Math.max(0, end - block.length)
      const n = Fs.readSync(fd, block, 0, end - start, start)
      const at = block.subarray(0, n).lastIndexOf(0x0a)
      if (at !== -1) return start + at + 1
      end = start
    }
    return 0
  } finally {
    Fs.closeSync(fd)
  }
}


const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Reads an earlier output file (none yet: nothing done). Changes nothing. A device or pipe (`/dev/null`)
 * holds nothing to resume. A line that is not an output line is reported in `foreign`, except a cut
 * last line (a crash mid-write) and damaged output lines, which are dropped.
 */
export const scanOutput = (path: string): Effect.Effect<Done, FileError> =>
  Effect.gen(function* () {
    const stat = yield* Effect.try({ try: () => Fs.statSync(path, { throwIfNoEntry: false }), catch: (e) => new FileError({ path, detail: errorText(e) }) })
    if (stat === undefined) return nothingDone()
    if (stat.isDirectory()) return yield* new FileError({ path, detail: "is a directory, not an output file" })
    if (!stat.isFile()) return nothingDone()
    const ids = new IdTable()
    let dropped = 0
    const keep: Array<number> = []
    let foreign: Line | undefined
    let lastLine = 0
    let lastKept = false
    // A line that is not JSON is a cut last line if it is the last one; it is known only at the end.
    let unparsed: Line | undefined
    const settle = (line: Line) => {
      if (looksLikeDamagedOutput(line.text)) dropped++
      else foreign ??= line
    }
    yield* forEachLine(path, (line) => {
      lastLine = line.number
      lastKept = false
      if (unparsed !== undefined) {
        settle(unparsed)
        unparsed = undefined
      }
      if (line.text.trim() === "") return
      const parsed = parseJson(line.text)
      if (Either.isLeft(parsed)) {
        unparsed = line
        return
      }
      const json = parsed.right
      if (!isOutputLine(json)) foreign ??= line
      else if (isFinal(json) && ids.add(json.custom_id, line.number) === undefined) {
        keep.push(line.number)
        lastKept = true
      } else dropped++
    })
    const newline = yield* Effect.try({ try: () => lastByteIsNewline(path), catch: (e) => new FileError({ path, detail: errorText(e) }) })
    const cutTail = unparsed !== undefined && unparsed.number === lastLine && !newline
    if (unparsed !== undefined && !cutTail) settle(unparsed)
    const repair = dropped > 0 ? "rewrite" : cutTail ? "truncate" : !newline && lastKept ? "newline" : !newline ? "rewrite" : "none"
    return { ids, dropped: dropped + (cutTail ? 1 : 0), keep, needsRewrite: repair !== "none", repair, foreign }
  })

/**
 * Writes all of `data` at the file's position: a short write goes on with the rest; a write of
 * nothing is an error (no progress). Throws the write's error.
 */
export const writeFully = (fd: number, data: Buffer, write: (fd: number, data: Buffer, offset: number, length: number) => number = Fs.writeSync): number => {
  let offset = 0
  while (offset < data.length) {
    const n = write(fd, data, offset, data.length - offset)
    if (!(n > 0)) throw Object.assign(new Error(`wrote ${offset} of ${data.length} bytes, then nothing`), { code: "EIO" })
    offset += n
  }
  return offset
}

/**
 * Rewrites an output file with the lines `keep` only, so that each id keeps exactly one line and
 * appending starts on a line of its own: into a temporary file, flushed to disk, then renamed over
 * the original (a crash during the rewrite leaves the old file whole). On any failure (a full disk)
 * the temporary file is removed and the original is left as it was.
 */
export const rewriteOutput = (path: string, keep: ReadonlyArray<number>): Effect.Effect<void, FileError> =>
  Effect.gen(function* () {
    const tmp = `${path}.${process.pid}.tmp`
    const failed = (e: unknown) => new FileError({ path, detail: `could not rewrite it for the rerun (${errorText(e)}); it is unchanged` })
    yield* Effect.acquireUseRelease(
      Effect.try({ try: () => Fs.openSync(tmp, "w"), catch: failed }),
      (fd) =>
        Effect.gen(function* () {
          let next = 0
          let pending = ""
          yield* forEachLine(path, (line) => {
            if (keep[next] === line.number) {
              next++
              pending += line.text + "\n"
              if (pending.length >= 1 << 16) {
                writeFully(fd, Buffer.from(pending))
                pending = ""
              }
            }
          }).pipe(Effect.catchAllDefect((e) => Effect.fail(failed(e))))
          yield* Effect.try({
            try: () => {
              if (pending !== "") writeFully(fd, Buffer.from(pending))
              Fs.fsyncSync(fd)
            },
            catch: failed
          })
        }),
      (fd) => Effect.sync(() => Fs.closeSync(fd))
    ).pipe(
      Effect.zipRight(Effect.try({ try: () => Fs.renameSync(tmp, path), catch: failed })),
      Effect.onError(() =>
        Effect.sync(() => {
          try {
            Fs.rmSync(tmp, { force: true })
          } catch {
            // not a file of ours (a directory of that name): left alone
          }
        })
      )
    )
  })

/** Makes an output file ready for appending, as `scanOutput` found it (`Done.repair`). */
export const repairOutput = (path: string, done: Done): Effect.Effect<void, FileError> => {
  switch (done.repair) {
    case "none":
      return Effect.void
    case "rewrite":
      return rewriteOutput(path, done.keep)
    case "truncate":
      return Effect.try({
        try: () => Fs.truncateSync(path, wholeLinesLength(path)),
        catch: (e) => new FileError({ path, detail: `could not remove its cut last line (${errorText(e)})` })
      })
    case "newline":
      return Effect.try({
        try: () => Fs.appendFileSync(path, "\n"),
        catch: (e) => new FileError({ path, detail: `could not end its last line (${errorText(e)}); it is unchanged` })
      })
  }
}
