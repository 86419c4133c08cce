/**
 * The mock Batch API's parsing: multipart uploads and the lines of a batch input file.
 * @internal
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as ChatSchema from "../../ChatSchema.js"
import type * as BatchApiSchema from "../../BatchApiSchema.js"
import * as JsonText from "../../internal/jsonText.js"

/** One part of a multipart body. */
export interface Part {
  readonly name: string
  readonly filename: string | undefined
  readonly data: Buffer
}

/**
 * The parts of a `multipart/form-data` body, or a reason it is not one (as the provider would say).
 */
export const parseMultipart = (contentType: string | undefined, body: Buffer): Either.Either<Array<Part>, string> => {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "")
  if (contentType === undefined || !/^multipart\/form-data/i.test(contentType) || match === null) {
    return Either.left("the body must be multipart/form-data with a boundary")
  }
  const delimiter = Buffer.from(`--${match[1] ?? match[2]}`)
  const parts: Array<Part> = []
  let at = body.indexOf(delimiter)
  if (at < 0) return Either.left("the multipart body has no part")
  while (true) {
    const start = at + delimiter.length
    if (body.subarray(start, start + 2).toString() === "--") return Either.right(parts)
    const next = body.indexOf(delimiter, start)
    if (next < 0) return Either.left("the multipart body does not end with its closing boundary")
    // Each part: CRLF, headers, an empty line, the data, CRLF before the next delimiter.
    const part = body.subarray(start + 2, next - 2)
    const split = part.indexOf("\r\n\r\n")
    if (split < 0) return Either.left("a multipart part has no headers")
    const headers = part.subarray(0, split).toString("utf8")
    const disposition = /content-disposition:[^\r\n]*/i.exec(headers)?.[0] ?? ""
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1]
    if (name === undefined) return Either.left("a multipart part has no name")
    parts.push({ name, filename: /\bfilename="([^"]*)"/i.exec(disposition)?.[1], data: part.subarray(split + 4) })
    at = next
  }
}

/** A line of an accepted batch input file. */
export interface InputLine {
  readonly custom_id: string
  readonly url: string
  readonly body: ChatSchema.ChatCompletionRequest | ChatSchema.EmbeddingRequest
}

const decodeChat = Schema.decodeUnknownEither(ChatSchema.ChatCompletionRequest, { errors: "first" })
const decodeEmbedding = Schema.decodeUnknownEither(ChatSchema.EmbeddingRequest, { errors: "first" })

const firstIssue = (error: ParseResult.ParseError): { message: string; param: string | null } => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  return {
    message: issue?.message ?? "invalid body",
    param: issue === undefined || issue.path.length === 0 ? "body" : `body.${issue.path.map(String).join(".")}`
  }
}

/** The checks of one line: its request, or the error the provider reports for it (line from 1). */
const checkLine = (
  text: string,
  line: number,
  endpoint: string,
  validate: boolean,
  seen: Set<string>
): Either.Either<InputLine, BatchApiSchema.BatchError> => {
  const refuse = (code: string, message: string, param: string | null = null) => Either.left({ code, message, param, line })
  const parsed = JsonText.parseJson(text)
  if (Either.isLeft(parsed)) return refuse("invalid_json", "This line is not valid JSON.")
  const value = parsed.right
  if (typeof value !== "object" || value === null || Array.isArray(value)) return refuse("invalid_json", "This line is not a JSON object.")
  const v = value as Record<string, unknown>
  if (typeof v["custom_id"] !== "string" || v["custom_id"] === "") return refuse("missing_required_parameter", "custom_id is required.", "custom_id")
  if (seen.has(v["custom_id"])) return refuse("duplicate_custom_id", `The custom_id ${v["custom_id"]} is used by an earlier line.`, "custom_id")
  seen.add(v["custom_id"])
  if (v["method"] !== "POST") return refuse("invalid_value", "method must be POST.", "method")
  if (v["url"] !== endpoint) return refuse("mismatched_endpoint", `The url ${String(v["url"])} does not match the batch endpoint ${endpoint}.`, "url")
  const body = v["body"]
  if (validate) {
    const decoded: Either.Either<unknown, ParseResult.ParseError> = endpoint === "/v1/embeddings" ? decodeEmbedding(body) : decodeChat(body)
    if (Either.isLeft(decoded)) {
      const issue = firstIssue(decoded.left)
      return refuse("invalid_request", issue.message, issue.param)
    }
    if (endpoint === "/v1/chat/completions" && (body as ChatSchema.ChatCompletionRequest).stream === true) {
      return refuse("invalid_value", "Streaming is not supported in a batch.", "body.stream")
    }
  }
  return Either.right({ custom_id: v["custom_id"], url: endpoint, body: body as InputLine["body"] })
}

/**
 * Every line of a batch input file checked: the requests, or every refused line (the provider
 * reports them all at once), or one file-level error (no line) when there are too many requests.
 */
export const checkLines = (
  content: string,
  endpoint: string,
  validate: boolean,
  maxRequests: number
): Either.Either<Array<InputLine>, Array<BatchApiSchema.BatchError>> => {
  const texts = content.split("\n")
  if (texts.length > 0 && texts[texts.length - 1] === "") texts.pop()
  if (texts.length === 0) return Either.left([{ code: "empty_file", message: "The input file has no requests.", param: null, line: null }])
  if (texts.length > maxRequests) {
    return Either.left([{
      code: "too_many_requests",
      message: `The input file has ${texts.length} requests; a batch takes at most ${maxRequests}.`,
      param: null,
      line: null
    }])
  }
  const seen = new Set<string>()
  const lines: Array<InputLine> = []
  const errors: Array<BatchApiSchema.BatchError> = []
  texts.forEach((text, i) => {
    const checked = checkLine(text, i + 1, endpoint, validate, seen)
    if (Either.isLeft(checked)) errors.push(checked.left)
    else lines.push(checked.right)
  })
  return errors.length > 0 ? Either.left(errors) : Either.right(lines)
}
