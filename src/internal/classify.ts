/**
 * Turns what the HTTP layer produced (a status, headers and body text, or an `HttpClientError`) into a
 * completion or a typed `ChatError`. Pure functions: no I/O, so every case is unit-tested directly.
 * @internal
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as ChatError from "../ChatError.js"
import * as ChatSchema from "../ChatSchema.js"
import * as EmbeddingVectors from "./embeddingVectors.js"
import * as FastIs from "./fastIs.js"
import { parseJson } from "./jsonText.js"
import { parseRetryAfter } from "./retryAfter.js"

/** Largest piece of a non-JSON body kept in an error (an HTML 502 page from a proxy). */
export const MAX_BODY_EXCERPT = 2048

/** Replaces every occurrence of the secret in `text`; identity when there is no secret. */
export type Scrub = (text: string) => string

const REDACTED = "[REDACTED]"

/** The shortest key scrubbed: shorter ones are placeholders, not secrets. */
const MIN_SECRET_LENGTH = 4

/**
 * A scrubber for `secret`. It replaces the secret as written, JSON-escaped (`JSON.stringify`'s form)
 * and URL-encoded (`encodeURIComponent`'s form); and when a text writes some of the secret's own
 * characters as `\u0073` or `%73` escapes (a server can echo the key so, and JSON.parse would undo
 * it), those escapes are decoded first, so that the secret is found and replaced. A shorter piece of
 * the secret (OpenAI's own `sk-abc***xyz`) is left as it is, and so is a key under 4 characters.
 */
export const makeScrub = (secret: string | undefined): Scrub => {
  // A key of one to three characters ("x", "-": what local servers such as vLLM or Ollama are
  // often given) is no secret, and replacing it would rewrite every answer ("index" holds "x").
  if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return (text) => text
  const forms = [...new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)])]
  const replace = (text: string): string => {
    let out = text
    for (const form of forms) if (out.includes(form)) out = out.split(form).join(REDACTED)
    return out
  }
  // Escapes of the secret's own characters (never of `"` or `\`, whose decoding would change the
  // text's JSON): `\u00XX` as JSON writes them, `%XX` as a URL does, any case of hex digits.
  const own = new Set([...secret].filter((c) => c !== '"' && c !== "\\" && c.charCodeAt(0) < 128))
  const escape = /\\u00([0-7][0-9a-fA-F])|%([0-7][0-9a-fA-F])/g
  const decode = (text: string): string =>
    text.replace(escape, (match, json: string | undefined, url: string | undefined) => {
      const c = String.fromCharCode(parseInt(json ?? url ?? "", 16))
      return own.has(c) ? c : match
    })
  // Every form, and every text whose escapes decode to the secret, is at least as long as the secret:
  // shorter texts (most header names and values) cannot hold it and are returned without a scan.
  const shortest = secret.length
  return (text) => {
    if (text.length < shortest) return text
    const out = replace(text)
    if (!out.includes("\\u00") && !out.includes("%")) return out
    const decoded = decode(out)
    return decoded === out ? out : forms.some((form) => decoded.includes(form)) ? replace(decoded) : out
  }
}

/** Headers that carry a credential: their values are scrubbed as the API key is. */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(["authorization", "api-key", "x-api-key", "proxy-authorization"])

/**
 * The scrubber of a client: its API key, and the value of every credential header it sends
 * (`api-key` for Azure, `authorization` or `x-api-key` given in `headers`, with or without a scheme
 * such as `Bearer `), each as {@link makeScrub} finds it.
 */
export const makeClientScrub = (apiKey: string | undefined, headers: Readonly<Record<string, string>>): Scrub => {
  const secrets = [apiKey]
  for (const [name, value] of Object.entries(headers)) {
    if (!CREDENTIAL_HEADERS.has(name.toLowerCase())) continue
    secrets.push(value)
    const space = value.indexOf(" ")
    if (space > 0) secrets.push(value.slice(space + 1).trim())
  }
  return combineScrubs(secrets.filter((s): s is string => s !== undefined && s.length >= MIN_SECRET_LENGTH).map(makeScrub))
}

/** Scrubbers applied one after the other (a router's: every deployment's); one alone as it is. */
export const combineScrubs = (scrubs: ReadonlyArray<Scrub>): Scrub => {
  if (scrubs.length <= 1) return scrubs[0] ?? makeScrub(undefined)
  return (text) => scrubs.reduce((t, scrub) => scrub(t), text)
}

/**
 * An answer's headers with every name and value scrubbed: the same object when nothing held the
 * secret (no copy on the common path).
 */
export const scrubHeaders = (headers: Record<string, string>, scrub: Scrub): Record<string, string> => {
  let out: Record<string, string> | undefined
  for (const name in headers) {
    const value = headers[name]!
    const cleanName = scrub(name)
    const cleanValue = scrub(value)
    if (cleanName !== name || cleanValue !== value) {
      out ??= Object.assign(Object.create(null) as Record<string, string>, headers)
      if (cleanName !== name) delete out[name]
      out[cleanName] = cleanValue
    }
  }
  return out ?? headers
}

/** A body as an error message may quote it: scrubbed of the key, cut at `MAX_BODY_EXCERPT` characters. */
export const excerpt = (text: string, scrub: Scrub): string => {
  const clean = scrub(text)
  return clean.length <= MAX_BODY_EXCERPT ? clean : clean.slice(0, MAX_BODY_EXCERPT) + "…"
}

// A completion's Type and Encoded sides are the same JSON, so a body that passes `is` already is the
// typed value, unknown fields and all. `Schema.is` costs 3.8 µs against 12 µs for a decode that copies
// them (onExcessProperty: "preserve"), and FastIs.is (the same check compiled to closures) about
// 0.6 µs; the full decode runs only to explain a failure.
const decodeErrorBody = Schema.decodeUnknownEither(ChatSchema.ErrorResponse, { onExcessProperty: "ignore" })

/** An answer, its headers and body already scrubbed of the key where it entered (internal/transport). */
export interface Received {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: string
  readonly nowMillis: number
  readonly attempts: number
}

/** Decodes a 2xx body into `A`, or explains why not with a `ResponseDecodeError`. */
export type Decoder<A> = (received: Received, scrub: Scrub) => Either.Either<A, ChatError.ResponseDecodeError>

/** The `ResponseDecodeError` of a 2xx body that is not the answer expected. */
const undecodable = (received: Received, scrub: Scrub, detail: string) =>
  Either.left(
    new ChatError.ResponseDecodeError({
      status: received.status,
      detail: scrub(detail),
      bodyExcerpt: excerpt(received.body, scrub),
      requestId: received.headers["x-request-id"],
      attempts: received.attempts
    })
  )

/** A decoder for a response Schema whose Type and Encoded sides are the same JSON. */
export const decoderFor = <A>(schema: Schema.Schema<A, A>, what: string): Decoder<A> => {
  const is = FastIs.is(schema)
  const decode = Schema.decodeUnknownEither(schema)
  return (received, scrub) => {
    const json = parseJson(received.body)
    if (Either.isLeft(json)) return undecodable(received, scrub, `invalid JSON (${json.left})`)
    if (is(json.right)) return Either.right(json.right)
    const decoded = decode(json.right)
    return undecodable(received, scrub, Either.isLeft(decoded) ? ParseResult.TreeFormatter.formatErrorSync(decoded.left).slice(0, 1000) : `not ${what}`)
  }
}

/** A 2xx body: the decoded completion, or `ResponseDecodeError`. */
export const decodeSuccess: Decoder<ChatSchema.ChatCompletion> = decoderFor(
  ChatSchema.ChatCompletion as Schema.Schema<ChatSchema.ChatCompletion, ChatSchema.ChatCompletion>,
  "a chat completion"
)

const isEmbeddingsWire = FastIs.is(Schema.encodedSchema(ChatSchema.EmbeddingResponse))
const decodeEmbeddingsWire = Schema.decodeUnknownEither(Schema.encodedSchema(ChatSchema.EmbeddingResponse))

/**
 * A 2xx body of `/embeddings`: checked against the wire shape, then each base64 vector decoded to a
 * `Float32Array` (a vector that does not decode is named in the `ResponseDecodeError`).
 */
export const decodeEmbeddings: Decoder<ChatSchema.EmbeddingResponse> = (received, scrub) => {
  const json = parseJson(received.body)
  if (Either.isLeft(json)) return undecodable(received, scrub, `invalid JSON (${json.left})`)
  if (!isEmbeddingsWire(json.right)) {
    const decoded = decodeEmbeddingsWire(json.right)
    return undecodable(received, scrub, Either.isLeft(decoded) ? ParseResult.TreeFormatter.formatErrorSync(decoded.left).slice(0, 1000) : "not an embeddings response")
  }
  const vectors = EmbeddingVectors.fromWire(json.right)
  return Either.isLeft(vectors) ? undecodable(received, scrub, `an embedding is not valid base64 float32: ${vectors.left}`) : Either.right(vectors.right)
}

/**
 * A non-2xx answer: `RateLimitError` for 429, `ApiError` otherwise; an OpenAI error body's object is
 * kept whole as `serverError`. `received` is already scrubbed (transport's `entered`).
 */
export const statusError = (received: Received, scrub: Scrub): ChatError.RateLimitError | ChatError.ApiError => {
  const json = parseJson(received.body)
  const body = Either.isRight(json) ? decodeErrorBody(json.right) : undefined
  const error = body !== undefined && Either.isRight(body) ? body.right.error : undefined
  const requestId = received.headers["x-request-id"]
  const code = error?.code === undefined || error.code === null ? undefined : String(error.code)
  const should = received.headers["x-should-retry"]
  const shouldRetry = should === "true" ? true : should === "false" ? false : undefined
  const retryAfterMillis = parseRetryAfter(received.headers, received.nowMillis)
  if (received.status === 429) {
    return new ChatError.RateLimitError({
      retryAfterMillis,
      detail: error === undefined ? undefined : scrub(error.message),
      code,
      requestId,
      shouldRetry,
      attempts: received.attempts,
      ...(error === undefined ? {} : { serverError: error })
    })
  }
  return new ChatError.ApiError({
    status: received.status,
    type: error?.type ?? undefined,
    code,
    param: error?.param ?? undefined,
    detail: error === undefined ? (received.body === "" ? "(empty body)" : excerpt(received.body, scrub)) : scrub(error.message),
    requestId,
    retryAfterMillis,
    shouldRetry,
    attempts: received.attempts,
    ...(error === undefined ? {} : { serverError: error })
  })
}

const CONNECT_TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT"])

/** The first `code` and the innermost message along an error's `cause` chain. */
const describeCause = (cause: unknown): { code: string | undefined; detail: string } => {
  let code: string | undefined
  let detail = "unknown transport failure"
  let current: unknown = cause
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    if (typeof current === "object") {
      const c = current as { code?: unknown; message?: unknown; cause?: unknown }
      if (code === undefined && typeof c.code === "string") code = c.code
      if (typeof c.message === "string" && c.message !== "") detail = c.message
      current = c.cause
    } else {
      detail = String(current)
      break
    }
  }
  return { code, detail }
}

/**
 * A failure before a whole answer arrived (refused, reset, closed early, a truncated body), given as
 * the error undici or the `HttpClient` raised: `TransportError`, or `TimeoutError{phase: "connect"}`.
 */
export const transportError = (
  cause: unknown,
  attempts: number,
  connectTimeoutMillis: number,
  scrub: Scrub
): ChatError.TransportError | ChatError.TimeoutError => {
  const { code, detail } = describeCause(cause)
  if (code !== undefined && CONNECT_TIMEOUT_CODES.has(code)) {
    return new ChatError.TimeoutError({ phase: "connect", timeoutMillis: connectTimeoutMillis, attempts })
  }
  return new ChatError.TransportError({ code, detail: scrub(detail), attempts })
}

/** An answer longer than `maxResponseBytes` (final: another attempt would download it again). */
export const responseTooLarge = (maxResponseBytes: number, attempts: number): ChatError.TransportError =>
  new ChatError.TransportError({
    code: "RESPONSE_TOO_LARGE",
    detail: `the answer is longer than maxResponseBytes (${maxResponseBytes} bytes), so it was abandoned; ` +
      `raise maxResponseBytes (env SHEPHERD_MAX_RESPONSE_BYTES) if answers this large are expected`,
    attempts
  })

/** One stream event longer than `maxEventBytes` (final). */
export const eventTooLarge = (maxEventBytes: number, attempts: number): ChatError.TransportError =>
  new ChatError.TransportError({
    code: "EVENT_TOO_LARGE",
    detail: `one stream event is longer than maxEventBytes (${maxEventBytes}), so the stream was abandoned; ` +
      `raise maxEventBytes if events this large are expected`,
    attempts
  })

/** `transportError` for an `HttpClientError`, whose `cause` holds the transport's own error. */
export const httpClientError = (
  error: HttpClientError.HttpClientError,
  attempts: number,
  connectTimeoutMillis: number,
  scrub: Scrub
): ChatError.TransportError | ChatError.TimeoutError =>
  error._tag === "RequestError" && error.reason === "InvalidUrl"
    ? new ChatError.TransportError({ code: "INVALID_URL", detail: "invalid URL", attempts })
    : transportError(error.cause, attempts, connectTimeoutMillis, scrub)

/** Any answer that arrived whole: the value for a decodable 2xx, else the typed error. */
export const classifyWith = <A>(decoder: Decoder<A>) =>
(
  received: Received,
  scrub: Scrub
): Either.Either<A, ChatError.RateLimitError | ChatError.ApiError | ChatError.ResponseDecodeError> =>
  received.status >= 200 && received.status < 300 ? decoder(received, scrub) : Either.left(statusError(received, scrub))

/** `classifyWith` for chat completions. */
export const classify = classifyWith(decodeSuccess)

/** Where a stream event arrived: its answer's status, request id and attempt. */
export interface StreamContext {
  readonly status: number
  readonly requestId: string | undefined
  readonly attempts: number
}

/** The `[DONE]` event that ends a stream. */
export const DONE = "[DONE]"

const isChunk = FastIs.is(ChatSchema.ChatCompletionChunk as Schema.Schema<ChatSchema.ChatCompletionChunk, ChatSchema.ChatCompletionChunk>)
/** Any object under `error`: an error event whose body is not OpenAI's shape. */
const isOtherError = Schema.is(Schema.Struct({ error: Schema.Object }))

/**
 * One stream event's data, scrubbed of the key before anything reads it: `"done"` for `[DONE]`, a
 * chunk, or the error it stands for: an error event (`{error: {...}}`, decoded with
 * `ChatSchema.ErrorResponse`, kept whole as `serverError`) is an `ApiError`; text that is not JSON, or
 * JSON that is neither a chunk nor an error, a `ResponseDecodeError`.
 */
export const streamEvent = (
  raw: string,
  context: StreamContext,
  scrub: Scrub
): Either.Either<ChatSchema.ChatCompletionChunk | "done", ChatError.ApiError | ChatError.ResponseDecodeError> => {
  if (raw === DONE) return Either.right("done")
  const data = scrub(raw)
  const { status, requestId, attempts } = context
  const json = parseJson(data)
  if (Either.isLeft(json)) {
    return Either.left(new ChatError.ResponseDecodeError({ status, detail: `a stream event is not JSON (${json.left})`, bodyExcerpt: excerpt(data, scrub), requestId, attempts }))
  }
  if (isChunk(json.right)) return Either.right(json.right)
  const body = decodeErrorBody(json.right)
  if (Either.isRight(body)) {
    const error = body.right.error
    return Either.left(new ChatError.ApiError({
      status,
      type: error.type ?? undefined,
      code: error.code === undefined || error.code === null ? undefined : String(error.code),
      param: error.param ?? undefined,
      detail: error.message,
      requestId,
      attempts,
      serverError: error
    }))
  }
  if (isOtherError(json.right)) {
    return Either.left(new ChatError.ApiError({ status, detail: `an error event arrived mid-stream: ${excerpt(data, scrub)}`, requestId, attempts }))
  }
  return Either.left(new ChatError.ResponseDecodeError({ status, detail: "a stream event is not a chat.completion.chunk", bodyExcerpt: excerpt(data, scrub), requestId, attempts }))
}
