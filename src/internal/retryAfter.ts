/**
 * Reads the delay a server asks for before the next attempt.
 * `retry-after-ms` (OpenAI's, milliseconds) wins over `retry-after` (seconds, or an HTTP date).
 * @internal
 */
export const parseRetryAfter = (
  headers: Readonly<Record<string, string | undefined>>,
  nowMillis: number
): number | undefined => {
  const ms = headers["retry-after-ms"]
  if (ms !== undefined) {
    const value = Number(ms.trim())
    if (ms.trim() !== "" && Number.isFinite(value) && value >= 0) return value
  }
  const ra = headers["retry-after"]
  if (ra === undefined || ra.trim() === "") return undefined
  const seconds = Number(ra.trim())
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined
  const date = Date.parse(ra)
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMillis)
}
