/**
 * The OpenAI Batch API input line format (`BatchRequestInput`): one line as a request, or what is
 * wrong with it. Pure functions.
 * @internal
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Batch from "../Batch.js"
import * as ChatSchema from "../ChatSchema.js"
import { parseJson } from "../internal/jsonText.js"

/** The endpoints `shepherd run` sends to. (`/v1/completions`, in the format too, is a legacy API.) */
export const SUPPORTED_URLS = ["/v1/chat/completions", "/v1/embeddings"] as const

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
  const parsed = parseJson(text)
  if (Either.isLeft(parsed)) return Either.left(`not JSON (${parsed.left})`)
  const json = parsed.right
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
