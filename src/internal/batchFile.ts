/**
 * The OpenAI Batch API line formats (`BatchRequestInput`, `BatchRequestOutput`): reading and checking
 * input lines, writing one output line per outcome, and reading an earlier output to resume.
 * Pure functions, except `readLines` and `loadDone`, which read files.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import type * as Batch from "../Batch.js"
import type * as ChatError from "../ChatError.js"
import * as ChatSchema from "../ChatSchema.js"
import { IdTable } from "./idTable.js"

/** The endpoints `shepherd run` sends to. (`/v1/completions`, in the format too, is a legacy API.) */
export const SUPPORTED_URLS = ["/v1/chat/completions", "/v1/embeddings"] as const

/** A line of a file, numbered from 1. */
export interface Line {
  readonly number: number
  readonly text: string
}

/** Failure to read or write a file, with its path. */
export class FileError extends Schema.TaggedError<FileError>()("FileError", { path: Schema.String, detail: Schema.String }) {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

/**
 * The longest line read, in bytes (256 MiB). A longer line cannot become a string (V8 stops at 2^29
 * characters, about 512 MB): it is refused with a `FileError` naming the line, not a `RangeError`.
 * The largest legitimate line, a batch output of 2,048 embeddings of 3,072 dimensions, is ~130 MB.
 */
export const MAX_LINE_BYTES = 256 * 1024 * 1024

/** Options of `readLines`. */
export interface ReadOptions {
  /** Longest line accepted, in bytes. @default MAX_LINE_BYTES */
  readonly maxLineBytes?: number | undefined
}

const lineTooLong = (path: string, number: number, max: number) =>
  new FileError({ path, detail: `line ${number} is longer than ${max} bytes: this is not a JSONL batch file (or a line is damaged)` })

/** A line's text: without its `\r` (CRLF files), and without the UTF-8 byte order mark at the start of the file. */
const lineText = (bytes: Buffer, start: number, end: number, number: number): string => {
  if (end > start && bytes[end - 1] === 0x0d) end--
  if (number === 1 && end - start >= 3 && bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf) start += 3
  return bytes.toString("utf8", start, end)
}

/** The lines of a file, a read buffer's worth at a time. */
async function* lineBatches(path: string, max: number): AsyncGenerator<Array<Line>> {
  const stream = Fs.createReadStream(path, { highWaterMark: 1 << 16 })
  let number = 0
  // The start of the current line, when it began in an earlier buffer.
  let parts: Array<Buffer> = []
  let partBytes = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines: Array<Line> = []
      let start = 0
      let newline: number
      while ((newline = chunk.indexOf(0x0a, start)) !== -1) {
        number++
        if (partBytes === 0) {
          lines.push({ number, text: lineText(chunk, start, newline, number) })
        } else {
          if (partBytes + newline - start > max) throw lineTooLong(path, number, max)
          parts.push(chunk.subarray(start, newline))
          const whole = Buffer.concat(parts)
          lines.push({ number, text: lineText(whole, 0, whole.length, number) })
          parts = []
          partBytes = 0
        }
        start = newline + 1
      }
      if (start < chunk.length) {
        partBytes += chunk.length - start
        if (partBytes > max) throw lineTooLong(path, number + 1, max)
        parts.push(chunk.subarray(start))
      }
      if (lines.length > 0) yield lines
    }
    if (partBytes > 0) {
      const whole = Buffer.concat(parts)
      yield [{ number: number + 1, text: lineText(whole, 0, whole.length, number + 1) }]
    }
  } finally {
    stream.destroy()
  }
}

/**
 * The lines of a file, lazily (a 1M-line file is never held whole). A last line without `\n` is
 * included; `\r\n` ends a line as `\n` does; a UTF-8 byte order mark at the start is skipped. A line
 * longer than `maxLineBytes` fails the stream with a `FileError` naming it.
 */
export const readLines = (path: string, options: ReadOptions = {}): Stream.Stream<Line, FileError> =>
  Stream.suspend(() =>
    Stream.fromAsyncIterable(
      lineBatches(path, options.maxLineBytes ?? MAX_LINE_BYTES),
      (e) => (e instanceof FileError ? e : new FileError({ path, detail: e instanceof Error ? e.message : String(e) }))
    ).pipe(Stream.mapConcat((lines) => lines))
  )

/** Calls `f` on every line of a file, a chunk of lines per step (no effect per line). */
export const forEachLine = (path: string, f: (line: Line) => void, options: ReadOptions = {}): Effect.Effect<void, FileError> =>
  Stream.runForEachChunk(readLines(path, options), (chunk) =>
    Effect.sync(() => {
      for (const line of chunk) f(line)
    }))

// Bodies are checked, then sent as written: unknown fields (a parameter newer than this schema) are
// kept, not stripped. `is` allocates nothing; the decode runs only to explain a bad body (checking a
// 1M-line file with a decode per line grew the process to 500 MB, bench/batch-memory).
const isChat = Schema.is(ChatSchema.ChatCompletionRequest)
const isEmbedding = Schema.is(ChatSchema.EmbeddingRequest)
const decodeChat = Schema.decodeUnknownEither(ChatSchema.ChatCompletionRequest, { errors: "first", onExcessProperty: "preserve" })
const decodeEmbedding = Schema.decodeUnknownEither(ChatSchema.EmbeddingRequest, { errors: "first", onExcessProperty: "preserve" })

const firstIssue = (error: ParseResult.ParseError): string => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issue === undefined) return "does not match the request schema"
  const path = issue.path.map((key) => (typeof key === "number" ? `[${key}]` : `.${String(key)}`)).join("")
  return `body${path}: ${issue.message}`
}

const describe = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "an array" : typeof value)

/** One input line as a request, or what is wrong with it (without the line number). Blank lines are `undefined`. */
export const parseInput = (text: string): Either.Either<Batch.BatchRequest, string> | undefined => {
  if (text.trim() === "") return undefined
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return Either.left(`not JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return Either.left(`expected a JSON object, got ${describe(json)}`)
  const line = json as Record<string, unknown>
  const id = line["custom_id"]
  if (id === undefined) return Either.left("missing custom_id")
  if (typeof id !== "string" || id === "") return Either.left(`custom_id must be a non-empty string, got ${JSON.stringify(id)}`)
  if (line["method"] !== "POST") return Either.left(`method must be "POST", got ${JSON.stringify(line["method"]) ?? "nothing"}`)
  const url = line["url"]
  if (url !== "/v1/chat/completions" && url !== "/v1/embeddings") {
    return Either.left(`unsupported url ${JSON.stringify(url) ?? "(missing)"}; supported: ${SUPPORTED_URLS.join(", ")}`)
  }
  const body = line["body"]
  if (typeof body !== "object" || body === null || Array.isArray(body)) return Either.left(`body must be a JSON object, got ${describe(body)}`)
  if (url === "/v1/embeddings") {
    if (isEmbedding(body)) return Either.right({ custom_id: id, url, body })
    const decoded = decodeEmbedding(body)
    return Either.left(Either.isLeft(decoded) ? firstIssue(decoded.left) : "body does not match the embeddings request schema")
  }
  if (!isChat(body)) {
    const decoded = decodeChat(body)
    return Either.left(Either.isLeft(decoded) ? firstIssue(decoded.left) : "body does not match the chat request schema")
  }
  if (body.stream === true) return Either.left("body.stream must not be true: batch outputs are whole responses")
  return Either.right({ custom_id: id, url, body })
}

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
      response: { status_code: outcome.status, request_id: outcome.requestId, body: outcome.url === "/v1/embeddings" ? outcome.embeddings : outcome.completion },
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
 * HTTP statuses worth sending again on a rerun: the ones the client retries, and 401 (the key was
 * refused, not the request; `shepherd run` writes no line for it, but earlier versions did).
 */
const RETRYABLE_STATUS = (status: number) => status === 401 || status === 408 || status === 409 || status === 429 || status >= 500

/**
 * Whether an output line is a final outcome a rerun keeps: an answer, or an error that sending again
 * would repeat (a 4xx other than 401/408/409/429; a 2xx body that was paid for but not understood).
 * Rate limits, 5xx, timeouts, transport failures and budget refusals are sent again.
 */
export const isFinal = (line: unknown): line is OutputLine => {
  if (typeof line !== "object" || line === null) return false
  const l = line as Partial<Record<keyof OutputLine, unknown>>
  if (typeof l.custom_id !== "string") return false
  const response = l.response as { status_code?: unknown } | null | undefined
  if (response !== null && response !== undefined && typeof response.status_code === "number") return !RETRYABLE_STATUS(response.status_code)
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

/** A line of a file, as a short excerpt for messages. */
export const excerpt = (text: string, max = 80): string => JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text)

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
      let json: unknown
      try {
        json = JSON.parse(line.text)
      } catch {
        unparsed = line
        return
      }
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
