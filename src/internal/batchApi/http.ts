/**
 * The provider's Batch API over `@effect/platform`'s `HttpClient`: one function per endpoint, each
 * retried on 5xx, 429 (not a quota refusal), 408/409 and transport failures with backoff on the
 * Effect `Clock`, honouring `retry-after`. Every text kept from an answer (error messages, file
 * contents) is scrubbed of the key first; the key itself is only ever read to build the header.
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as BatchApiSchema from "../../BatchApiSchema.js"
import { FileTooLargeError, ProviderError, QuotaError } from "../../BatchApiError.js"
import * as ChatSchema from "../../ChatSchema.js"
import * as Classify from "../classify.js"
import * as JsonText from "../jsonText.js"
import { announcedLength, utf8 } from "../transport.js"
import { isRetryableStatus } from "../retryable.js"
import { parseRetryAfter } from "../retryAfter.js"

/** The longest file content read (a string cannot be much longer in V8), and the longest other answer. */
const MAX_CONTENT_BYTES = 400 * 1024 * 1024
const MAX_OBJECT_BYTES = 16 * 1024 * 1024
const TOO_LARGE = "response_too_large"

/** A body as text, read up to `maxBytes`: a longer one (announced or counted) fails, unread beyond. */
const boundedText = (response: HttpClientResponse.HttpClientResponse, maxBytes: number, operation: string, attempts: number) => {
  const tooLarge = (what: string) =>
    new ProviderError({ operation, status: response.status, code: TOO_LARGE, detail: `the answer is ${what}, more than the ${maxBytes} bytes read`, attempts })
  const announced = announcedLength(response.headers)
  if (announced !== undefined && announced > maxBytes) return Effect.fail(tooLarge(`${announced} bytes`))
  return response.stream.pipe(
    Stream.runFoldEffect({ chunks: [] as Array<Uint8Array>, size: 0 }, (read, chunk) => {
      if (read.size + chunk.length > maxBytes) return Effect.fail(tooLarge("longer"))
      read.chunks.push(chunk)
      read.size += chunk.length
      return Effect.succeed(read)
    }),
    Effect.map((read) => utf8(read.chunks, read.size))
  )
}

/** What a call can fail with. */
export type CallError = ProviderError | QuotaError | FileTooLargeError

/** How calls are made. */
export interface Settings {
  readonly baseUrl: string
  readonly apiKey: Redacted.Redacted<string>
  /** Extra headers on every call (organization, project). */
  readonly headers: Readonly<Record<string, string>>
  readonly maxRetries: number
  readonly initialDelayMillis: number
  readonly maxRetryAfterMillis: number
  readonly timeoutMillis: number
}

/** The Batch API calls. */
export interface Provider {
  readonly upload: (filename: string, content: Uint8Array) => Effect.Effect<BatchApiSchema.FileObject, CallError>
  /** The oldest `purpose=batch` file named `filename` of `bytes` bytes. */
  readonly findFile: (filename: string, bytes: number) => Effect.Effect<Option.Option<BatchApiSchema.FileObject>, CallError>
  readonly create: (request: BatchApiSchema.CreateBatchRequest) => Effect.Effect<BatchApiSchema.Batch, CallError>
  /** The oldest batch of `inputFileId` whose metadata contradicts no pair of `metadata` (a key it lacks counts as a match). */
  readonly findBatch: (inputFileId: string, metadata: BatchApiSchema.Metadata) => Effect.Effect<Option.Option<BatchApiSchema.Batch>, CallError>
  readonly retrieve: (batchId: string) => Effect.Effect<BatchApiSchema.Batch, CallError>
  readonly cancel: (batchId: string) => Effect.Effect<BatchApiSchema.Batch, CallError>
  /** A file's content as text, scrubbed of the key. */
  readonly content: (fileId: string) => Effect.Effect<string, CallError>
}

const QUOTA_CODES = new Set(["insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "token_limit_exceeded", "quota_exceeded"])

const decodeError = Schema.decodeUnknownEither(ChatSchema.ErrorResponse, { onExcessProperty: "ignore" })

interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly text: string
}

/** A refusal as a typed error, and whether another attempt may succeed. */
const refusal = (operation: string, answer: Answer, attempts: number, bytes: number | undefined): { error: CallError; retry: boolean } => {
  const body = decodeError(Either.getOrUndefined(JsonText.parseJson(answer.text)))
  const server = Either.isRight(body) ? body.right.error : undefined
  const code = server?.code === undefined || server.code === null ? undefined : String(server.code)
  const detail = server?.message ?? (answer.text === "" ? "(empty body)" : answer.text.slice(0, Classify.MAX_BODY_EXCERPT))
  const requestId = answer.headers["x-request-id"]
  if (code !== undefined && QUOTA_CODES.has(code)) return { error: new QuotaError({ code, detail }), retry: false }
  if (answer.status === 413 || code === "file_too_large") {
    return { error: new FileTooLargeError({ bytes: bytes ?? 0, detail }), retry: false }
  }
  // A 409 to a cancel is the batch's state (already ending), not a conflict worth waiting out.
  const retry = isRetryableStatus(answer.status) && !(answer.status === 409 && operation === "cancel batch")
  return { error: new ProviderError({ operation, status: answer.status, code, detail, requestId, attempts }), retry }
}

/** A call with its retries (see {@link makeCall}). */
type Call = <A>(
  operation: string,
  request: HttpClientRequest.HttpClientRequest,
  decode: (text: string) => Either.Either<A, string>,
  options?: { readonly bytes?: number; readonly recover?: Effect.Effect<Option.Option<A>, CallError> }
) => Effect.Effect<A, CallError>

/** Calls through `client` with the key, scrubbing, a deadline per attempt and retries. */
const makeCall = (client: HttpClient.HttpClient, settings: Settings, scrub: Classify.Scrub): Call => {
  const withAuth = (request: HttpClientRequest.HttpClientRequest) =>
    request.pipe(
      HttpClientRequest.setHeaders(settings.headers),
      HttpClientRequest.setHeader("authorization", `Bearer ${Redacted.value(settings.apiKey)}`)
    )

  /**
   * One attempt: the answer with its text and headers scrubbed, or a transport failure. The body is
   * read up to a bound (a file's content up to `MAX_CONTENT_BYTES`, anything else up to
   * `MAX_OBJECT_BYTES`): a server sending more gets a typed error, not the process's memory.
   */
  const attempt = (request: HttpClientRequest.HttpClientRequest, operation: string, attempts: number) =>
    client.execute(withAuth(request)).pipe(
      Effect.flatMap((response) =>
        Effect.map(boundedText(response, operation === "download" ? MAX_CONTENT_BYTES : MAX_OBJECT_BYTES, operation, attempts), (text): Answer => ({
          status: response.status,
          headers: Classify.scrubHeaders(response.headers as Record<string, string>, scrub),
          text: scrub(text)
        }))
      ),
      Effect.timeoutFail({
        duration: settings.timeoutMillis,
        onTimeout: () => new ProviderError({ operation, code: "timeout", detail: `no whole answer within ${settings.timeoutMillis} ms`, attempts })
      }),
      Effect.catchTag("RequestError", "ResponseError", (error) =>
        Effect.fail(new ProviderError({ operation, code: "transport_error", detail: scrub(Classify.transportError(error.cause ?? error, attempts, 0, scrub).message), attempts })))
    )

  /**
   * A call with its retries. `recover` runs before each retry: when it finds what an earlier attempt
   * already made (an upload that failed after reaching the server), that is the result.
   */
  const call: Call = <A>(
    operation: string,
    request: HttpClientRequest.HttpClientRequest,
    decode: (text: string) => Either.Either<A, string>,
    options: { readonly bytes?: number; readonly recover?: Effect.Effect<Option.Option<A>, CallError> } = {}
  ): Effect.Effect<A, CallError> => {
    const loop = (attempts: number): Effect.Effect<A, CallError> =>
      Effect.gen(function* () {
        if (attempts > 1 && options.recover !== undefined) {
          const found = yield* options.recover
          if (Option.isSome(found)) return found.value
        }
        const answer = yield* Effect.either(attempt(request, operation, attempts))
        let failure: { error: CallError; retry: boolean; waitMillis?: number | undefined }
        if (Either.isLeft(answer)) {
          failure = { error: answer.left, retry: !(answer.left._tag === "ProviderError" && answer.left.code === TOO_LARGE) }
        } else if (answer.right.status >= 200 && answer.right.status < 300) {
          const decoded = decode(answer.right.text)
          if (Either.isRight(decoded)) return decoded.right
          return yield* Effect.fail(new ProviderError({ operation, status: answer.right.status, code: "undecodable", detail: scrub(decoded.left), attempts }))
        } else {
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          failure = { ...refusal(operation, answer.right, attempts, options.bytes), waitMillis: parseRetryAfter(answer.right.headers, now) }
        }
        if (!failure.retry || attempts > settings.maxRetries) return yield* Effect.fail(failure.error)
        if (failure.waitMillis !== undefined && failure.waitMillis > settings.maxRetryAfterMillis) return yield* Effect.fail(failure.error)
        const backoff = settings.initialDelayMillis * 2 ** (attempts - 1)
        const wait = failure.waitMillis ?? (yield* Random.nextRange(0, backoff))
        yield* Effect.sleep(Duration.millis(wait))
        return yield* loop(attempts + 1)
      })
    return loop(1)
  }
  return call
}

const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema, BatchApiSchema.decodeOptions)
  return (text: string): Either.Either<A, string> => {
    const json = JsonText.parseJson(text)
    if (Either.isLeft(json)) return Either.left(`invalid JSON (${json.left})`)
    return Either.mapLeft(decode(json.right), (e) => ParseResult.TreeFormatter.formatErrorSync(e).slice(0, 1000))
  }
}

const decodeFile = decoder(BatchApiSchema.FileObject)
const decodeBatch = decoder(BatchApiSchema.Batch)

/**
 * A list page as providers really send it: `data` is all that is required. `has_more` counts only
 * when it is `true`, and the next page starts after `last_id` when it is a string, else after the
 * last item (OpenAI's files list has no `has_more` before 2024; some providers send neither).
 */
const page = <A, I>(item: Schema.Schema<A, I>) =>
  decoder(Schema.Struct({ data: Schema.Array(item), has_more: Schema.optional(Schema.Unknown), last_id: Schema.optional(Schema.Unknown) }))
const decodeFiles = page(BatchApiSchema.FileObject)
const decodeBatches = page(BatchApiSchema.Batch)

/** Pages read at most by one look-up: a server that ignores `after` ends here, not in a loop. */
const MAX_PAGES = 1000

/** The cursor of the page after `p`: none when there is no more, or when the server repeats a cursor. */
const nextCursor = (p: { readonly data: ReadonlyArray<{ readonly id: string }>; readonly has_more?: unknown; readonly last_id?: unknown }, seen: Set<string>): string | undefined => {
  if (p.has_more !== true || p.data.length === 0) return undefined
  const cursor = typeof p.last_id === "string" && p.last_id !== "" ? p.last_id : p.data[p.data.length - 1]!.id
  if (seen.has(cursor) || seen.size >= MAX_PAGES) return undefined
  seen.add(cursor)
  return cursor
}

/** The oldest batch file of that name and size, paging through the list. */
const findFileWith = (call: Call, url: (path: string) => string): Provider["findFile"] => (filename, bytes) => {
  const seen = new Set<string>()
  const pageFrom = (after: string | undefined): Effect.Effect<Option.Option<BatchApiSchema.FileObject>, CallError> =>
    Effect.flatMap(
      call("list files", HttpClientRequest.get(url("/files"), { urlParams: { purpose: "batch", order: "asc", limit: "10000", ...(after === undefined ? {} : { after }) } }), decodeFiles),
      (p) => {
        const found = p.data.find((f) => f.filename === filename && f.bytes === bytes)
        if (found !== undefined) return Effect.succeed(Option.some(found))
        const next = nextCursor(p, seen)
        return next === undefined ? Effect.succeed(Option.none()) : pageFrom(next)
      }
    )
  return pageFrom(undefined)
}

/**
 * The oldest batch of that file, paging through the list. The input file is the range's own (its
 * name holds the range), so it identifies the batch; the metadata only rules out a batch that names
 * another range, as some providers leave metadata out of lists (or drop keys they do not know).
 */
const findBatchWith = (call: Call, url: (path: string) => string): Provider["findBatch"] => (inputFileId, metadata) => {
  const matches = (b: BatchApiSchema.Batch) =>
    b.input_file_id === inputFileId && Object.entries(metadata).every(([k, v]) => b.metadata?.[k] === undefined || b.metadata[k] === v)
  const seen = new Set<string>()
  // Newest first: keep paging to the end so that the oldest match wins (it is the one that counts).
  const pageFrom = (after: string | undefined, found: Option.Option<BatchApiSchema.Batch>): Effect.Effect<Option.Option<BatchApiSchema.Batch>, CallError> =>
    Effect.flatMap(
      call("list batches", HttpClientRequest.get(url("/batches"), { urlParams: { limit: "100", ...(after === undefined ? {} : { after }) } }), decodeBatches),
      (p) => {
        const here = [...p.data].reverse().find(matches)
        const best = here === undefined ? found : Option.some(here)
        const next = nextCursor(p, seen)
        return next === undefined ? Effect.succeed(best) : pageFrom(next, best)
      }
    )
  return pageFrom(undefined, Option.none())
}

/** The Batch API of `settings.baseUrl` through `client`. */
export const make = (client: HttpClient.HttpClient, settings: Settings): Provider => {
  const call = makeCall(client, settings, Classify.makeClientScrub(Redacted.value(settings.apiKey), settings.headers))
  const base = settings.baseUrl.replace(/\/+$/, "")
  const url = (path: string) => `${base}${path}`
  const findFile = findFileWith(call, url)
  const findBatch = findBatchWith(call, url)
  return {
    upload: (filename, content) => {
      const form = new FormData()
      form.append("purpose", "batch")
      form.append("file", new Blob([content], { type: "application/jsonl" }), filename)
      return call("upload", HttpClientRequest.post(url("/files")).pipe(HttpClientRequest.bodyFormData(form)), decodeFile, {
        bytes: content.length,
        recover: findFile(filename, content.length)
      })
    },
    findFile,
    create: (request) =>
      call("create batch", HttpClientRequest.post(url("/batches")).pipe(HttpClientRequest.bodyUnsafeJson(request)), decodeBatch, {
        recover: findBatch(request.input_file_id, request.metadata ?? {})
      }),
    findBatch,
    retrieve: (batchId) => call("retrieve batch", HttpClientRequest.get(url(`/batches/${encodeURIComponent(batchId)}`)), decodeBatch),
    cancel: (batchId) => call("cancel batch", HttpClientRequest.post(url(`/batches/${encodeURIComponent(batchId)}/cancel`)), decodeBatch),
    content: (fileId) => call("download", HttpClientRequest.get(url(`/files/${encodeURIComponent(fileId)}/content`)), Either.right)
  }
}
