/**
 * Which HTTP statuses are worth sending again: the one rule behind the client's retries
 * (`RetryPolicy.isRetryable`) and a rerun of `shepherd run` (which output lines are final).
 * @internal
 */

/**
 * Whether the client retries an answer with this status (unless the server's `x-should-retry`
 * header says otherwise): 408 (request timeout), 409 (conflict, e.g. a lock), 429 (rate limited)
 * and every 5xx. Every other status is the answer, as the official OpenAI SDK decides.
 *
 * @since 0.2.0
 * @category retry
 */
export const isRetryableStatus = (status: number): boolean => status === 408 || status === 409 || status === 429 || status >= 500

/**
 * Whether a rerun of a batch sends a request again that got this status: the statuses the client
 * retries, and 401 (the key was refused, not the request; `shepherd run` writes no line for it, but
 * earlier versions did).
 *
 * @since 0.2.0
 * @category retry
 */
export const isResendableStatus = (status: number): boolean => status === 401 || isRetryableStatus(status)

/**
 * Error codes of a request a provider did not answer for a reason of its own (overloaded, rate
 * limited, an internal error, a timeout) or did not run at all (its batch expired or was
 * cancelled): the same request may succeed when sent again. A Batch API error-file line carries
 * one of these with no HTTP status when the provider never ran the request.
 */
const RESENDABLE_CODES: ReadonlySet<string> = new Set([
  "batch_expired",
  "batch_cancelled",
  "server_error",
  "internal_error",
  "internal_server_error",
  "service_unavailable",
  "server_overloaded",
  "engine_overloaded",
  "overloaded",
  "overloaded_error",
  "rate_limit_exceeded",
  "rate_limit_error",
  "timeout",
  "request_timeout"
])

/**
 * Whether a rerun sends a request again whose only answer is this error code (see
 * {@link RESENDABLE_CODES}); any other code is the request's final answer.
 *
 * @since 0.2.0
 * @category retry
 */
export const isResendableCode = (code: string): boolean => RESENDABLE_CODES.has(code)
