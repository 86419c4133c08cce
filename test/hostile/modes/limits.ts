/**
 * Rate-limit misbehaviours (issue 13, items A.2 and A.3): asks for absurd waits, headers that
 * describe no real limit, and a limit enforced with no headers at all.
 */
import * as Hostile from "../server.js"

const tooMany = (headers: Record<string, string>) => (res: Parameters<Hostile.HttpMode>[1]) =>
  Hostile.json(res, 429, Hostile.errorBody("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"), headers)

/** The first request gets 429 with `retry-after: 99999` (27.7 hours); every later one is answered. */
export const retryAfterHugeOnce: Hostile.HttpMode = (request, res) =>
  request.index === 0 ? tooMany({ "retry-after": "99999" })(res) : Hostile.json(res, 200, Hostile.completion(`answer ${request.index}`))

/** Answers every request, each time saying that none are left until a reset 9999 hours away. */
export const resetInTenThousandHours: Hostile.HttpMode = (request, res) =>
  Hostile.json(res, 200, Hostile.completion(`answer ${request.index}`), {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "9999h"
  })

/**
 * A steady limit of `perSecond` requests a second, as a token bucket holding `perSecond`, enforced
 * with no `x-ratelimit-*` header at all: over it, 429 with `retry-after-ms` (the time until one
 * request fits). `limited()` counts the 429s sent.
 */
export const bucketWithoutHeaders = (perSecond: number) => {
  let level = perSecond
  let last = Date.now()
  let limited = 0
  const mode: Hostile.HttpMode = (request, res) => {
    const now = Date.now()
    level = Math.min(perSecond, level + ((now - last) * perSecond) / 1000)
    last = now
    if (level < 1) {
      limited++
      return tooMany({ "retry-after-ms": String(Math.ceil(((1 - level) * 1000) / perSecond)) })(res)
    }
    level -= 1
    Hostile.json(res, 200, Hostile.completion(`answer ${request.index}`))
  }
  return { mode, limited: () => limited }
}
