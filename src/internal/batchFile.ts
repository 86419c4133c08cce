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
import * as Readline from "node:readline"
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

/** The lines of a file, lazily (a 1M-line file is never held whole). A last line without `\n` is included. */
export const readLines = (path: string): Stream.Stream<Line, FileError> =>
  Stream.suspend(() => {
    let number = 0
    return Stream.fromAsyncIterable(
      Readline.createInterface({ input: Fs.createReadStream(path, { encoding: "utf8", highWaterMark: 1 << 16 }), crlfDelay: Infinity }),
      (e) => new FileError({ path, detail: e instanceof Error ? e.message : String(e) })
    ).pipe(Stream.map((text): Line => ({ number: ++number, text })))
  })

/** Calls `f` on every line of a file, a chunk of lines per step (no effect per line). */
export const forEachLine = (path: string, f: (line: Line) => void): Effect.Effect<void, FileError> =>
  Stream.runForEachChunk(readLines(path), (chunk) =>
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
 * its status and body, as OpenAI writes it; a failure with no usable answer (timeout, transport,
 * undecodable body) is an `error` with a code and a message.
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
        body: {
          error: {
            message: error.message,
            type: error._tag === "ApiError" ? error.type ?? null : "rate_limit_error",
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

/** What an earlier output file holds. */
export interface Done {
  /** The `custom_id`s with a final outcome. */
  readonly ids: IdTable
  /** Lines that a rerun drops: outcomes to send again, a partial last line, unreadable lines. */
  readonly dropped: number
  /** The numbers of the lines kept, in order (for `rewriteOutput`). */
  readonly keep: ReadonlyArray<number>
  /** The file must be rewritten before appending (lines to drop, or no newline at its end). */
  readonly needsRewrite: boolean
}

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

/** Reads an earlier output file (none yet: nothing done). Changes nothing. */
export const scanOutput = (path: string): Effect.Effect<Done, FileError> =>
  Effect.gen(function* () {
    const ids = new IdTable()
    if (!Fs.existsSync(path)) return { ids, dropped: 0, keep: [], needsRewrite: false }
    let dropped = 0
    const keep: Array<number> = []
    yield* forEachLine(path, (line) => {
        if (line.text === "") return
        let json: unknown
        try {
          json = JSON.parse(line.text)
        } catch {
          dropped++
          return
        }
        if (isFinal(json) && ids.add(json.custom_id, line.number) === undefined) keep.push(line.number)
        else dropped++
      })
    const newline = yield* Effect.try({ try: () => lastByteIsNewline(path), catch: (e) => new FileError({ path, detail: String(e) }) })
    return { ids, dropped, keep, needsRewrite: dropped > 0 || !newline }
  })

/**
 * Rewrites an output file with the lines `keep` only, so that each id keeps exactly one line and
 * appending starts on a line of its own: into a temporary file, flushed to disk, then renamed over
 * the original (a crash during the rewrite leaves the old file whole).
 */
export const rewriteOutput = (path: string, keep: ReadonlyArray<number>): Effect.Effect<void, FileError> =>
  Effect.gen(function* () {
    const tmp = `${path}.${process.pid}.tmp`
    const fd = yield* Effect.try({ try: () => Fs.openSync(tmp, "w"), catch: (e) => new FileError({ path: tmp, detail: String(e) }) })
    let next = 0
    let pending = ""
    yield* forEachLine(path, (line) => {
      if (keep[next] === line.number) {
        next++
        pending += line.text + "\n"
        if (pending.length >= 1 << 16) {
          Fs.writeSync(fd, pending)
          pending = ""
        }
      }
    }).pipe(
      Effect.zipRight(Effect.sync(() => {
        if (pending !== "") Fs.writeSync(fd, pending)
      })),
      Effect.ensuring(Effect.sync(() => {
        Fs.fsyncSync(fd)
        Fs.closeSync(fd)
      }))
    )
    yield* Effect.try({
      try: () => Fs.renameSync(tmp, path),
      catch: (e) => new FileError({ path, detail: `could not replace it for the rerun: ${String(e)}` })
    })
  })
