/**
 * Why a try may fall back (`Router.FallbackCause`), from the typed error (its tag, status and code),
 * never from a message alone; and the next model of a fallback chain.
 * @internal
 */
import type { ChatError } from "../../ChatError.js"
import type * as ChatSchema from "../../ChatSchema.js"
import type { FallbackCause } from "../../Router.js"
import { isKeyRefusal } from "../errorRules.js"

/** `isKeyRefusal` as a plain test (its type guard would narrow the error to `never` when false). */
export const keyRefused = (error: ChatError): boolean => isKeyRefusal(error)

/** The code of the router's own refusal of a deployment that is cooling down. */
export const COOLING_DOWN = "deployment_cooling_down"

const CONTEXT_CODES = new Set(["context_length_exceeded", "string_above_max_length"])
// The deployment does not serve the model it was sent (OpenAI's code; Azure's, for a deployment name
// it does not have): another deployment of the model, or the next model, may.
const MODEL_MISSING_CODES = new Set(["model_not_found", "DeploymentNotFound"])
// vLLM and some relays answer 400 without a code; their message then names the context length.
const CONTEXT_WORDS = /maximum context length|context[ _]length|context window/i

/** The fallback cause of a failed try, if it has one. */
export const causeOf = (error: ChatError): FallbackCause | undefined => {
  switch (error._tag) {
    case "ApiError":
      if (error.code === COOLING_DOWN || keyRefused(error) || error.status >= 500) return "unavailable"
      if (error.status === 404 && MODEL_MISSING_CODES.has(error.code ?? "")) return "unavailable"
      if (error.code === "content_filter" || error.code === "content_policy_violation") return "content_filter"
      if ((error.status === 400 || error.status === 413) && (CONTEXT_CODES.has(error.code ?? "") || (error.code === undefined && CONTEXT_WORDS.test(error.detail)))) {
        return "context_length"
      }
      return undefined
    case "RateLimitError":
      // It reached the router: the retries on this deployment gave up on it (a wait past
      // maxRetryAfter, 429s until the retries ran out, or a quota the server says not to retry).
      return "rate_limited_long"
    case "TransportError":
      return error.code === "RESPONSE_TOO_LARGE" || error.code === "EVENT_TOO_LARGE" ? undefined : "unavailable"
    case "TimeoutError":
      return error.phase === "total" ? undefined : "unavailable"
    case "ResponseDecodeError":
      // A 2xx that is not an answer (a proxy's HTML page, a cut body): this deployment is not serving.
      return "unavailable"
    default:
      return undefined
  }
}

/** Whether a chat answer was cut by the content filter: every choice ended with `content_filter`. */
export const filtered = (value: unknown): boolean => {
  const choices = (value as Partial<ChatSchema.ChatCompletion> | undefined)?.choices
  return Array.isArray(choices) && choices.length > 0 && choices.every((c) => c.finish_reason === "content_filter")
}

/**
 * The model to try after `current` in `chain` (the requested model first, then its fallbacks), or
 * undefined. For `context_length`, the first later model with a larger context window, when both
 * windows are known; otherwise the next one.
 */
export const nextModel = (
  chain: ReadonlyArray<string>,
  current: string,
  cause: FallbackCause,
  contextWindows: ReadonlyMap<string, number>
): string | undefined => {
  const later = chain.slice(chain.indexOf(current) + 1)
  if (cause !== "context_length") return later[0]
  const size = contextWindows.get(current)
  if (size === undefined) return later[0]
  return later.find((model) => (contextWindows.get(model) ?? Number.POSITIVE_INFINITY) > size)
}
