/**
 * The errors of a chat call. Each is a `Schema.TaggedError`: plain data that survives
 * `JSON.stringify`, worker threads and output files, handled with `Effect.catchTag(s)`.
 *
 * None of them ever holds the API key: they keep strings and numbers only (never a request object
 * or its headers), and text a server sent back is scrubbed of the key before it is stored.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as ChatSchema from "./ChatSchema.js"

const optionalString = Schema.optional(Schema.String)

/**
 * The server's error object (`{ message, type, param, code }` of an OpenAI error body), as it sent
 * it, scrubbed of the key: what `shepherd run` writes as the failed request's `response.body.error`.
 *
 * @since 0.2.0
 * @category errors
 */
export const ServerError = ChatSchema.ErrorResponse.fields.error
/**
 * The type of the {@link ServerError} schema.
 *
 * @since 0.2.0
 * @category models
 */
export type ServerError = typeof ServerError.Type

/** A server's message as a clause: without its final period, so that ours can follow. */
const clause = (text: string): string => text.trim().replace(/\.+$/, "")

/**
 * The provider answered 429 (or asked to slow down).
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimitError extends Schema.TaggedError<RateLimitError>()("RateLimitError", {
  /** Delay the server asked for (`retry-after-ms`, else `retry-after`), in milliseconds. */
  retryAfterMillis: Schema.optional(Schema.Number),
  /** The server's own message, scrubbed of the key. */
  detail: optionalString,
  /** OpenAI's error `code` (e.g. `rate_limit_exceeded`, `insufficient_quota`). */
  code: optionalString,
  requestId: optionalString,
  /** The server's `x-should-retry` header, when it sent one: it overrides the status rule. */
  shouldRetry: Schema.optional(Schema.Boolean),
  /** Attempts made, the first included. */
  attempts: Schema.Number,
  /** The error object of the body, when it was an OpenAI error body (scrubbed of the key). @since 0.2.0 */
  serverError: Schema.optional(ServerError)
}) {
  override get message(): string {
    const wait = this.retryAfterMillis === undefined ? "" : `; the server asked to wait ${this.retryAfterMillis} ms`
    const detail = this.detail === undefined ? "" : `: ${clause(this.detail)}`
    return `rate limited by the provider (429) after ${this.attempts} attempt(s)${wait}${detail}. ` +
      `Lower the concurrency or set rpm/tpm limits below your account's, or raise maxRetries.`
  }
}

/**
 * The provider answered with a status that is not 2xx or 429.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApiError extends Schema.TaggedError<ApiError>()("ApiError", {
  status: Schema.Number,
  /** OpenAI's error `type` (e.g. `invalid_request_error`). */
  type: optionalString,
  /** OpenAI's error `code` (e.g. `invalid_api_key`, `model_not_found`). */
  code: optionalString,
  /** The request parameter the server blamed. */
  param: optionalString,
  /** The server's message or, for a body that is not an OpenAI error, its first 2 KB. Scrubbed of the key. */
  detail: Schema.String,
  requestId: optionalString,
  /** Delay the server asked for (`retry-after-ms` / `retry-after`, e.g. on a 503), in milliseconds. */
  retryAfterMillis: Schema.optional(Schema.Number),
  /** The server's `x-should-retry` header, when it sent one: it overrides the status rule. */
  shouldRetry: Schema.optional(Schema.Boolean),
  attempts: Schema.Number,
  /** The error object of the body (or of a stream's error event), when it was an OpenAI error (scrubbed of the key). @since 0.2.0 */
  serverError: Schema.optional(ServerError)
}) {
  override get message(): string {
    const kind = [this.type, this.code].filter((_) => _ !== undefined).join("/")
    const id = this.requestId === undefined ? "" : ` (request id ${this.requestId})`
    return `the API answered ${this.status}${kind === "" ? "" : ` ${kind}`}${id}: ${clause(this.detail)}. ${adviceFor(this.status)}`
  }
}

const adviceFor = (status: number): string => {
  if (status === 401) return "Check OPENAI_API_KEY (or --api-key-env) and that it belongs to this base URL."
  if (status === 403) return "The key has no access to this model or endpoint: check the project's permissions."
  if (status === 404) return "Check the model name and the base URL (it usually ends in /v1)."
  if (status === 400 || status === 422) return "Fix the request: the server rejected its content."
  if (status >= 500) return "The provider failed; retrying later usually succeeds."
  return "See the provider's documentation for this status."
}

/**
 * A deadline passed. `phase` says which one.
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  /**
   * - `connect`: the TCP/TLS connection was not established in time
   * - `attempt`: one attempt (headers and the whole body; for a stream, headers and the first event) took too long
   * - `total`: all attempts and waits together (for a stream, up to its last chunk) took too long
   * - `idle`: a stream sent nothing for too long
   */
  phase: Schema.Literal("connect", "attempt", "total", "idle"),
  timeoutMillis: Schema.Number,
  attempts: Schema.Number
}) {
  override get message(): string {
    const option = this.phase === "connect" ? "connectTimeout" : this.phase === "attempt" ? "timeout" : this.phase === "total" ? "totalTimeout" : "idleTimeout"
    return `${this.phase} timeout after ${this.timeoutMillis} ms (${this.attempts} attempt(s)). ` +
      `The server is slow or unreachable: raise the ${option} option or check the base URL.`
  }
}

/**
 * The connection failed: refused, reset, closed early, DNS failure, truncated body. Also an answer
 * too large to hold: `code` `RESPONSE_TOO_LARGE` (past `maxResponseBytes`) or `EVENT_TOO_LARGE` (one
 * stream event past `maxEventBytes`), which are final, not retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  /** The system or undici error code when there is one (`ECONNRESET`, `UND_ERR_SOCKET`, ...), or Shepherd's own (`RESPONSE_TOO_LARGE`, `STREAM_ENDED_EARLY`, ...). */
  code: optionalString,
  /** What failed, in words. */
  detail: Schema.String,
  attempts: Schema.Number
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    if (this.code === "RESPONSE_TOO_LARGE" || this.code === "EVENT_TOO_LARGE") {
      // The detail names the limit to raise; the connection itself was fine.
      return `the answer was too large${code}: ${clause(this.detail)}.`
    }
    return `the connection to the API failed${code}: ${clause(this.detail)}. ` +
      `Check that the base URL is reachable; transient failures succeed when retried.`
  }
}

/**
 * A 2xx answer whose body is not the expected JSON.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResponseDecodeError extends Schema.TaggedError<ResponseDecodeError>()("ResponseDecodeError", {
  status: Schema.Number,
  /** Why it did not decode (JSON syntax, or the Schema's issues). */
  detail: Schema.String,
  /** At most the first 2 KB of the body, scrubbed of the key. */
  bodyExcerpt: Schema.String,
  requestId: optionalString,
  attempts: Schema.Number
}) {
  override get message(): string {
    return `the API answered ${this.status} with a body that is not the answer expected (a chat completion, or embeddings): ${clause(this.detail)}. ` +
      `Check that the base URL points at an OpenAI-compatible /v1 endpoint.`
  }
}

/**
 * The request would take the spend past the configured budget; it was not sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class BudgetExceededError extends Schema.TaggedError<BudgetExceededError>()("BudgetExceededError", {
  /** The budget, in micro-dollars. */
  limitMicroUsd: Schema.Number,
  /** Spent plus reserved by requests in flight, in micro-dollars. */
  committedMicroUsd: Schema.Number,
  /** The worst-case cost of this request, in micro-dollars. */
  requiredMicroUsd: Schema.Number,
  /** Set when the budget cannot be enforced at all (a model without a known price). */
  detail: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const usd = (micro: number) => `$${(micro / 1e6).toFixed(6)}`
    if (this.detail !== undefined) return `budget cannot be enforced: ${this.detail}`
    return `budget exceeded: this request may cost up to ${usd(this.requiredMicroUsd)} but only ` +
      `${usd(Math.max(0, this.limitMicroUsd - this.committedMicroUsd))} of ${usd(this.limitMicroUsd)} is left. ` +
      `Raise the budget (maxUsd / --budget-usd) or lower max_tokens.`
  }
}

/**
 * The shared limits (rate limits or budget kept in Redis) could not be reached and the store is
 * configured to fail closed: the request was not sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class LimiterUnavailableError extends Schema.TaggedError<LimiterUnavailableError>()("LimiterUnavailableError", {
  /** Which shared state: `rate-limit` or `budget`. */
  store: Schema.Literal("rate-limit", "budget"),
  /** Where it lives, without credentials (e.g. `redis://127.0.0.1:6379`). */
  location: Schema.String,
  /** Why it failed (connection refused, timed out, a Redis error). */
  detail: Schema.String,
  /**
   * `unreachable` (also when absent): no answer, or an error; `password`: Redis refused the
   * credentials (WRONGPASS, NOAUTH), which waiting will not fix; `lost`: Redis answers but the
   * shared budget's record is gone (FLUSHALL, a restart without persistence, eviction), so what was
   * spent before is unknown. @since 0.2.0
   */
  reason: Schema.optional(Schema.Literal("unreachable", "password", "lost"))
}) {
  override get message(): string {
    const what = this.store === "budget" ? "budget" : "rate limits"
    if (this.reason === "password") {
      return `Redis at ${this.location} refused the password (${clause(this.detail)}), so the request was not sent. ` +
        `Check the password (or user) in the Redis URL.`
    }
    if (this.reason === "lost") {
      return `the shared budget at ${this.location} was lost (${clause(this.detail)}), so the request was not sent: ` +
        `what the other processes spent is unknown. Make Redis keep its data (persistence, maxmemory-policy noeviction), ` +
        `then start a new budget (a new namespace) for what is left, or choose onUnavailable: "fallbackLocal" to go on ` +
        `with each process's own record.`
    }
    return `the shared ${what} at ${this.location} could not be reached (${clause(this.detail)}), ` +
      `so the request was not sent. Check that Redis is running and reachable, or choose onUnavailable: "fallbackLocal" ` +
      `to go on with local limits divided among the workers.`
  }
}

/**
 * Every error a chat call can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatError =
  | RateLimitError
  | ApiError
  | TimeoutError
  | TransportError
  | ResponseDecodeError
  | BudgetExceededError
  | LimiterUnavailableError

/**
 * The `ChatError` union as one `Schema`, to decode errors read back from files or workers.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatError: Schema.Union<[
  typeof RateLimitError,
  typeof ApiError,
  typeof TimeoutError,
  typeof TransportError,
  typeof ResponseDecodeError,
  typeof BudgetExceededError,
  typeof LimiterUnavailableError
]> = Schema.Union(RateLimitError, ApiError, TimeoutError, TransportError, ResponseDecodeError, BudgetExceededError, LimiterUnavailableError)
