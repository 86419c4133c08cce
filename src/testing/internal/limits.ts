/**
 * The mock server's rate limits: token buckets per minute like OpenAI's (per `windowMillis` in tests), with its headers.
 * @internal
 */

interface Bucket {
  readonly limit: number
  level: number
  last: number
}

const refill = (bucket: Bucket, now: number, windowMillis: number) => {
  bucket.level = Math.min(bucket.limit, bucket.level + ((now - bucket.last) * bucket.limit) / windowMillis)
  bucket.last = now
}

/** OpenAI's duration format: `20ms`, `1s`, `1.5s`, `6m0s`. */
export const formatReset = (millis: number): string => {
  const ms = Math.max(0, Math.ceil(millis))
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(3))}s`
  const minutes = Math.floor(ms / 60_000)
  return `${minutes}m${Number(((ms - minutes * 60_000) / 1000).toFixed(3))}s`
}

/** What the limits decided of one request. */
export interface Verdict {
  /** Which limit refused the request, if one did. */
  readonly limited: "requests" | "tokens" | undefined
  /** The x-ratelimit-* headers (and retry-after on a refusal). */
  readonly headers: Record<string, string>
  /** The 429 body on a refusal. */
  readonly body: string | undefined
}

/** The mock server's own rate limits: token buckets of requests and tokens, refilled over the window. */
export interface Limits {
  /** Takes one request of `tokens` tokens at `now` if both buckets allow it. */
  readonly take: (now: number, tokens: number) => Verdict
}

/** Limits of `rpm` requests and `tpm` tokens per `windowMillis` (either left out: no limit of that kind). */
export const make = (rpm: number | undefined, tpm: number | undefined, windowMillis = 60_000): Limits => {
  const start = Date.now()
  const requests: Bucket | undefined = rpm === undefined ? undefined : { limit: rpm, level: rpm, last: start }
  const tokens: Bucket | undefined = tpm === undefined ? undefined : { limit: tpm, level: tpm, last: start }
  const headersOf = (): Record<string, string> => {
    const headers: Record<string, string> = {}
    if (requests !== undefined) {
      headers["x-ratelimit-limit-requests"] = String(requests.limit)
      headers["x-ratelimit-remaining-requests"] = String(Math.floor(requests.level))
      headers["x-ratelimit-reset-requests"] = formatReset(((requests.limit - requests.level) * windowMillis) / requests.limit)
    }
    if (tokens !== undefined) {
      headers["x-ratelimit-limit-tokens"] = String(tokens.limit)
      headers["x-ratelimit-remaining-tokens"] = String(Math.floor(tokens.level))
      headers["x-ratelimit-reset-tokens"] = formatReset(((tokens.limit - tokens.level) * windowMillis) / tokens.limit)
    }
    return headers
  }
  const refuse = (kind: "requests" | "tokens", bucket: Bucket, needed: number): Verdict => {
    const waitMillis = Math.ceil(((needed - bucket.level) * windowMillis) / bucket.limit)
    const headers = { ...headersOf(), "retry-after-ms": String(waitMillis), "retry-after": String(Math.ceil(waitMillis / 1000)) }
    const unit = kind === "requests" ? "requests per min (RPM)" : "tokens per min (TPM)"
    const message = `Rate limit reached for mock on ${unit}: Limit ${bucket.limit}, Used ${Math.ceil(bucket.limit - bucket.level)}, Requested ${needed}. Please try again in ${formatReset(waitMillis)}.`
    return { limited: kind, headers, body: JSON.stringify({ error: { message, type: kind, param: null, code: "rate_limit_exceeded" } }) }
  }
  return {
    take: (now, cost) => {
      if (requests === undefined && tokens === undefined) return { limited: undefined, headers: {}, body: undefined }
      if (requests !== undefined) refill(requests, now, windowMillis)
      if (tokens !== undefined) refill(tokens, now, windowMillis)
      if (requests !== undefined && requests.level < 1) return refuse("requests", requests, 1)
      // A request larger than the whole bucket is refused like any other (OpenAI does the same).
      if (tokens !== undefined && tokens.level < cost) return refuse("tokens", tokens, cost)
      if (requests !== undefined) requests.level -= 1
      if (tokens !== undefined) tokens.level -= cost
      return { limited: undefined, headers: headersOf(), body: undefined }
    }
  }
}
