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
