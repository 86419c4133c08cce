/**
 * Issue 13, item A.3, on plain numbers: the adaptive pace (internal/serverPace) never refills faster
 * than a limit a minute, and converges against a steady limit whatever the headers say.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { RateLimit } from "../src/index.js"
import { ServerPace } from "../src/internal/serverPace.js"
import { formatReset } from "../src/testing/internal/limits.js"

describe("13.A.3 properties", () => {
  const headerValue = FastCheck.oneof(
    FastCheck.integer({ min: -5, max: 100_000 }).map(String),
    FastCheck.constantFrom("", "abc", "NaN", "Infinity", "1e9")
  )
  const reset = FastCheck.oneof(
    FastCheck.integer({ min: 0, max: 1_000_000_000 }).map((ms) => formatReset(ms)),
    FastCheck.constantFrom("0s", "1ms", "9999h", "", "soon", "0.001s")
  )
  it.prop(
    "13.A.3 whatever the headers say, a bucket never refills faster than its limit per minute",
    { answers: FastCheck.array(FastCheck.record({ limit: headerValue, remaining: headerValue, reset, dt: FastCheck.integer({ min: 0, max: 120_000 }) }), { minLength: 1, maxLength: 20 }) },
    ({ answers }) => {
      const pace = new ServerPace(RateLimit.parseResetDuration)
      const readable = (v: string) => v.trim() !== "" && Number.isFinite(Number(v))
      let now = 0
      let limit: number | undefined // the limit the latest readable answer stated
      for (const a of answers) {
        now += a.dt
        pace.observe({ "x-ratelimit-limit-requests": a.limit, "x-ratelimit-remaining-requests": a.remaining, "x-ratelimit-reset-requests": a.reset }, 0, 0, now)
        if (readable(a.limit) && readable(a.remaining) && Number(a.limit) > 0) limit = Number(a.limit)
        const perMinute = pace.bucketPerMinute("requests")
        expect(perMinute === undefined).toBe(limit === undefined)
        if (perMinute !== undefined) expect(perMinute).toBeLessThanOrEqual(limit! * (1 + 1e-9))
      }
    }
  )

})

/**
 * A steady limit of `perMinute` requests a minute (a bucket holding `perMinute`), the client's
 * ServerPace, its shared pause and its retries, `concurrency` requests at a time, `latency` ms each,
 * on simulated time. Returns the 429s and the share of the server's allowance used.
 */
const simulate = (options: {
  readonly perMinute: number
  readonly requests: number
  readonly headers: "openai" | "none" | "disagree" | "lagging"
  readonly randomRefusals?: number
}) => {
  const { perMinute, requests } = options
  const concurrency = 50
  const latency = 50
  const rate = perMinute / 60_000
  const pace = new ServerPace(RateLimit.parseResetDuration)
  let level = perMinute
  let last = 0
  let pause = 0
  let limited = 0
  let succeeded = 0
  let started = 0
  let seed = 42
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31)
  const history: Array<{ at: number; headers: Record<string, string> }> = []
  const headersAt = (now: number): Record<string, string> => {
    const real = { "x-ratelimit-limit-requests": String(perMinute), "x-ratelimit-remaining-requests": String(Math.floor(level)), "x-ratelimit-reset-requests": formatReset((perMinute - level) / rate) }
    switch (options.headers) {
      case "openai":
        return real
      case "none":
        return {}
      case "disagree":
        return { ...real, "x-ratelimit-limit-requests": String(2 * perMinute), "x-ratelimit-remaining-requests": String(Math.floor(level) + perMinute) }
      case "lagging": {
        history.push({ at: now, headers: real })
        while (history.length > 1 && history[1]!.at <= now - 2000) history.shift()
        return history[0]!.headers
      }
    }
  }
  /** Events in time order: a worker free to plan its next attempt, or an answer arriving. */
  type Event = { t: number; kind: "plan"; retry: boolean } | { t: number; kind: "answer"; startedAt: number; ok: boolean; retryAfter: number; headers: Record<string, string> }
  const queue: Array<Event> = []
  const push = (e: Event) => {
    let i = queue.length
    while (i > 0 && (queue[i - 1]!.t > e.t || (queue[i - 1]!.t === e.t && e.kind === "answer" && queue[i - 1]!.kind === "plan"))) i--
    queue.splice(i, 0, e)
  }
  for (let w = 0; w < concurrency; w++) push({ t: 0, kind: "plan", retry: false })
  let end = 0
  while (queue.length > 0) {
    const e = queue.shift()!
    if (e.kind === "answer") {
      if (Object.keys(e.headers).length > 0) pace.observe(e.headers, 0, 0, e.t)
      if (e.ok) {
        pace.succeeded(e.startedAt, e.t)
        succeeded++
        end = e.t
        push({ t: e.t, kind: "plan", retry: false })
      } else {
        pace.rateLimited(e.startedAt, e.t)
        pause = Math.max(pause, e.t + e.retryAfter)
        push({ t: e.t + e.retryAfter, kind: "plan", retry: true })
      }
      continue
    }
    if (!e.retry && started >= requests) continue
    if (!e.retry) started++
    const at = Math.max(e.t, pause, pace.plan(1, e.t).at)
    pace.reserve(1, e.t, at)
    level = Math.min(perMinute, level + (at - last) * rate)
    last = at
    const refusedAtRandom = options.randomRefusals !== undefined && random() < options.randomRefusals
    if (level >= 1 && !refusedAtRandom) {
      level -= 1
      push({ t: at + latency, kind: "answer", startedAt: at, ok: true, retryAfter: 0, headers: headersAt(at) })
    } else {
      limited++
      push({ t: at + latency, kind: "answer", startedAt: at, ok: false, retryAfter: refusedAtRandom ? 20 : Math.ceil((1 - level) / rate), headers: {} })
    }
  }
  return { limited, succeeded, seconds: end / 1000, share: limited / requests, used: succeeded / (perMinute * (1 + end / 60_000)), aimd: pace.aimdPerMinute }
}

describe("13.A.3 the adaptive pace converges against a steady limit, whatever the headers (simulated time)", () => {
  for (const headers of ["openai", "none", "disagree", "lagging"] as const) {
    it(`13.A.3 headers "${headers}": 429s <= 2% of requests, >= 80% of the server's allowance used`, () => {
      const r = simulate({ perMinute: 6000, requests: 10_000, headers })
      expect(r.share, JSON.stringify(r)).toBeLessThanOrEqual(0.02)
      expect(r.used, JSON.stringify(r)).toBeGreaterThanOrEqual(0.8)
      expect(r.succeeded).toBe(10_000)
    })
  }

  it("13.A.3 429s at random (4%, whatever the rate) do not drive the pace down to nothing", () => {
    const r = simulate({ perMinute: 1e9, requests: 5000, headers: "none", randomRefusals: 0.04 })
    // Unpaced, 50 at a time at 50 ms each is 1,000 a second. The first 429s slow it (they cannot be
    // told from a limit's); by the end the pace is back above half of that.
    expect(r.succeeded / r.seconds, JSON.stringify(r)).toBeGreaterThan(400)
    expect(r.aimd! / 60, JSON.stringify(r)).toBeGreaterThan(500)
  })
})
