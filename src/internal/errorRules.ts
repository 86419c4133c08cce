/**
 * What a failed call means for the calls after it: a refusal of the key, a reason to stop sending, a
 * server that was never reached, a refusal that cost nothing. The rules behind `Batch.run`, the budget
 * stage and `shepherd run`, kept out of the public `ChatError` namespace.
 * @internal
 */
import { ApiError, BudgetExceededError, LimiterUnavailableError, RateLimitError, TimeoutError, TransportError } from "../ChatError.js"

const KEY_WORDS = /api[ _-]?key|authenticat|unauthori[sz]ed|unsupported_country|country, region/i

/**
 * Whether the provider refused the API key itself (not this one request): a 401, or a 403 that names
 * the key, its authentication or the caller's region. Every later request with the same key would be refused
 * the same way.
 */
export const isKeyRefusal = (error: unknown): error is ApiError =>
  error instanceof ApiError &&
  (error.status === 401 ||
    (error.status === 403 && KEY_WORDS.test(`${error.code ?? ""} ${error.type ?? ""} ${error.detail}`)))

/**
 * Refused for a reason that refuses the requests after it too (the budget is spent, the shared limits
 * cannot be reached, the provider refused the key): a batch stops sending on it, and the command line
 * writes no outcome for the request, so that a rerun sends it.
 */
export const stopsSending = (error: unknown): error is BudgetExceededError | LimiterUnavailableError | ApiError =>
  error instanceof BudgetExceededError || error instanceof LimiterUnavailableError || isKeyRefusal(error)

/** Connection failures that mean the request never reached a server: refused, no such host, TLS. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN",
  "EADDRNOTAVAIL", "EPROTO", "INVALID_URL"
])
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_)|CERT|SELF_SIGNED|UNABLE_TO_VERIFY/

/**
 * Whether a failure means the server was never reached, so the request was not delivered: connection
 * refused, a DNS failure, a TLS failure, or a connect timeout. A batch that meets a short run of these
 * and no answer stops sending (see `Batch.run`).
 */
export const isUnreachable = (error: unknown): error is TransportError | TimeoutError =>
  (error instanceof TransportError && error.code !== undefined && (UNREACHABLE_CODES.has(error.code) || TLS_CODE.test(error.code))) ||
  (error instanceof TimeoutError && error.phase === "connect")

/** A `RateLimitError` or an `ApiError`: the server refused the request, so nothing was billed. */
export const isRefusal = (error: unknown): error is RateLimitError | ApiError =>
  error instanceof RateLimitError || error instanceof ApiError
