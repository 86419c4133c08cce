import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as FastCheck from "effect/FastCheck"
import { parseDuration } from "../src/cli/durationText.js"
import { parseRetryAfter } from "../src/internal/retryAfter.js"

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-03-01T12:00:00Z")

  it("reads seconds, milliseconds and HTTP dates; retry-after-ms wins", () => {
    expect(parseRetryAfter({ "retry-after": "20" }, now)).toBe(20_000)
    expect(parseRetryAfter({ "retry-after": "0.5" }, now)).toBe(500)
    expect(parseRetryAfter({ "retry-after-ms": "250" }, now)).toBe(250)
    expect(parseRetryAfter({ "retry-after-ms": "250", "retry-after": "20" }, now)).toBe(250)
    expect(parseRetryAfter({ "retry-after": "Sun, 01 Mar 2026 12:00:42 GMT" }, now)).toBe(42_000)
    expect(parseRetryAfter({ "retry-after": "Sun, 01 Mar 2026 11:00:00 GMT" }, now)).toBe(0)
    expect(parseRetryAfter({}, now)).toBeUndefined()
  })

  it("ignores what it cannot read instead of guessing", () => {
    expect(parseRetryAfter({ "retry-after": "soon" }, now)).toBeUndefined()
    expect(parseRetryAfter({ "retry-after": "-3" }, now)).toBeUndefined()
    expect(parseRetryAfter({ "retry-after-ms": "abc", "retry-after": "2" }, now)).toBe(2000)
    expect(parseRetryAfter({ "retry-after-ms": "" }, now)).toBeUndefined()
  })

  it("property: any non-negative seconds value round-trips, and any header text gives undefined or a finite delay >= 0", () => {
    FastCheck.assert(FastCheck.property(FastCheck.integer({ min: 0, max: 86_400 }), (s) => parseRetryAfter({ "retry-after": String(s) }, now) === s * 1000))
    FastCheck.assert(FastCheck.property(FastCheck.integer({ min: 0, max: 10_000_000 }), (ms) => parseRetryAfter({ "retry-after-ms": String(ms), "retry-after": "1" }, now) === ms))
    FastCheck.assert(
      FastCheck.property(FastCheck.option(FastCheck.string()), FastCheck.option(FastCheck.string()), (a, b) => {
        const headers: Record<string, string> = {}
        if (a !== null) headers["retry-after"] = a
        if (b !== null) headers["retry-after-ms"] = b
        const value = parseRetryAfter(headers, now)
        return value === undefined || (Number.isFinite(value) && value >= 0)
      })
    )
  })
})

describe("parseDuration (command-line durations)", () => {
  it("reads ms, s, m and h", () => {
    expect(Duration.toMillis(parseDuration("50ms"))).toBe(50)
    expect(Duration.toMillis(parseDuration("1.5s"))).toBe(1500)
    expect(Duration.toMillis(parseDuration("2m"))).toBe(120_000)
    expect(Duration.toMillis(parseDuration("1h"))).toBe(3_600_000)
  })

  it("14.3 refuses a bare number: add a unit, e.g. 5s", () => {
    expect(() => parseDuration("5")).toThrow('"5" has no unit: add a unit, e.g. 5s')
    expect(() => parseDuration(" 1.5 ")).toThrow("add a unit, e.g. 1.5s")
  })

  it("property: n followed by a unit is n times the unit; anything else is refused with the accepted forms", () => {
    const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const
    FastCheck.assert(
      FastCheck.property(FastCheck.integer({ min: 0, max: 100_000 }), FastCheck.constantFrom<Array<keyof typeof units>>("ms", "s", "m", "h"), (n, unit) =>
        Duration.toMillis(parseDuration(`${n}${unit}`)) === n * units[unit])
    )
    FastCheck.assert(
      FastCheck.property(FastCheck.string().filter((s) => !/^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$/.test(s)), (text) => {
        expect(() => parseDuration(text)).toThrow(/write e\.g\. 50ms/)
      })
    )
  })
})
