/**
 * Shepherd's `ChatError`s as @effect/ai's `AiError`s, and back: every failure of the @effect/ai
 * services of `effect-shepherd/ai` is an `AiError` whose `cause` is the `ChatError` it came from, so a
 * caller can still tell a budget refusal from a 429.
 *
 * | ChatError | AiError |
 * | --- | --- |
 * | `RateLimitError` | `HttpResponseError` (`StatusCode`, status 429) |
 * | `ApiError` | `HttpResponseError` (`StatusCode`, its status) |
 * | `ResponseDecodeError` | `HttpResponseError` (`Decode`, its status) |
 * | `TimeoutError`, `TransportError` | `HttpRequestError` (`Transport`) |
 * | `BudgetExceededError`, `LimiterUnavailableError` | `UnknownError` (nothing was sent) |
 *
 * ```ts
 * LanguageModel.generateText({ prompt: "Hi" }).pipe(
 *   Effect.catchAll((error) =>
 *     Option.match(ShepherdAiError.chatErrorOf(error), {
 *       onNone: () => Effect.fail(error),
 *       onSome: (cause) => cause._tag === "BudgetExceededError" ? Effect.succeed(undefined) : Effect.fail(error)
 *     })))
 * ```
 *
 * @since 0.2.0
 */
import * as AiError from "@effect/ai/AiError"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as ChatErrors from "../ChatError.js"
import type { ChatError } from "../ChatError.js"
import { withoutCredentials } from "../internal/validate.js"

/**
 * Where a failed call was going, for the `request` of an `HttpRequestError` / `HttpResponseError`
 * (never a header: the key stays out of errors).
 *
 * @since 0.2.0
 * @category models
 */
export interface Origin {
  /** The @effect/ai module that failed, e.g. `"ShepherdLanguageModel"`. */
  readonly module: string
  /** Its method, e.g. `"generateText"`. */
  readonly method: string
  /** The URL of the endpoint, e.g. `http://127.0.0.1:8080/v1/chat/completions`. */
  readonly url: string
}

const isChatError = (u: unknown): u is ChatError => Predicate.isTagged(u, "RateLimitError") ||
  Predicate.isTagged(u, "ApiError") ||
  Predicate.isTagged(u, "TimeoutError") ||
  Predicate.isTagged(u, "TransportError") ||
  Predicate.isTagged(u, "ResponseDecodeError") ||
  Predicate.isTagged(u, "BudgetExceededError") ||
  Predicate.isTagged(u, "LimiterUnavailableError")

// @effect/ai puts the URL in the error's message: shown without credentials or a query string.
const requestOf = (origin: Origin) => ({
  method: "POST" as const,
  url: URL.canParse(origin.url) ? withoutCredentials(new URL(origin.url), { query: true }) : "(an endpoint URL that cannot be shown)",
  urlParams: [],
  hash: Option.none<string>(),
  headers: {}
})

/** Headers of a response the error carries: the request id and the server's wait, when known. */
const responseHeaders = (error: ChatErrors.RateLimitError | ChatErrors.ApiError | ChatErrors.ResponseDecodeError): Record<string, string> => {
  const headers: Record<string, string> = {}
  if (error.requestId !== undefined) headers["x-request-id"] = error.requestId
  if ("retryAfterMillis" in error && error.retryAfterMillis !== undefined) headers["retry-after-ms"] = String(error.retryAfterMillis)
  return headers
}

/**
 * The `AiError` standing for a `ChatError` (see the module's table); its `cause` is the `ChatError`
 * and its `description` the `ChatError`'s message, which says what to do next.
 *
 * @since 0.2.0
 * @category conversions
 */
export const fromChatError = (error: ChatError, origin: Origin): AiError.AiError => {
  const common = { module: origin.module, method: origin.method, description: error.message }
  switch (error._tag) {
    case "RateLimitError":
    case "ApiError":
    case "ResponseDecodeError": {
      const status = error._tag === "RateLimitError" ? 429 : error.status
      const body = error._tag === "ResponseDecodeError" ? error.bodyExcerpt : error.detail
      // HttpResponseError declares no `cause`; it is kept on the instance (Error's own `cause`).
      const props = {
        ...common,
        reason: error._tag === "ResponseDecodeError" ? "Decode" as const : "StatusCode" as const,
        request: requestOf(origin),
        response: { status, headers: responseHeaders(error) },
        ...(body === undefined ? {} : { body }),
        cause: error
      }
      return new AiError.HttpResponseError(props, { disableValidation: true })
    }
    case "TimeoutError":
    case "TransportError":
      return new AiError.HttpRequestError({ ...common, reason: "Transport", request: requestOf(origin), cause: error }, { disableValidation: true })
    case "BudgetExceededError":
    case "LimiterUnavailableError":
      return new AiError.UnknownError({ ...common, cause: error }, { disableValidation: true })
  }
}

/**
 * The `ChatError` behind an `AiError` raised by `effect-shepherd/ai`, if there is one.
 *
 * @since 0.2.0
 * @category conversions
 */
export const chatErrorOf = (error: unknown): Option.Option<ChatError> => {
  if (!AiError.isAiError(error)) return Option.none()
  const cause: unknown = (error as { readonly cause?: unknown }).cause
  return isChatError(cause) ? Option.some(cause) : Option.none()
}
