/**
 * The sliding window (internal/slidingWindow.ts) on plain numbers, and the memory window on
 * TestClock: the limits hold over any window, whatever the window's length, the bounds, the pauses
 * and the corrections; a refusal changes nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as TestClock from "effect/TestClock"
import { memoryWindow, SlidingWindow, windowMillisOf } from "../src/internal/slidingWindow.js"

type Op =
  | { readonly kind: "admit"; readonly gap: number; readonly tokens: number; readonly maxWait: number | undefined; readonly maxPause: number | undefined }
  | { readonly kind: "refund"; readonly back: number; readonly share: number }
  | { readonly kind: "pause"; readonly millis: number }

const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  FastCheck.record({
    kind: FastCheck.constant("admit" as const),
    gap: FastCheck.integer({ min: 0, max: 40_000 }),
    tokens: FastCheck.integer({ min: 0, max: 600 }),
    maxWait: FastCheck.option(FastCheck.integer({ min: 0, max: 120_000 }), { nil: undefined }),
    maxPause: FastCheck.option(FastCheck.integer({ min: 0, max: 30_000 }), { nil: undefined })
  }),
  FastCheck.record({ kind: FastCheck.constant("refund" as const), back: FastCheck.integer({ min: 1, max: 8 }), share: FastCheck.double({ min: 0, max: 1, noNaN: true }) }),
  FastCheck.record({ kind: FastCheck.constant("pause" as const), millis: FastCheck.integer({ min: 0, max: 30_000 }) })
)

const limits = FastCheck.record({
  rpm: FastCheck.option(FastCheck.integer({ min: 1, max: 15 }), { nil: undefined }),
  tpm: FastCheck.option(FastCheck.integer({ min: 600, max: 3000 }), { nil: undefined }),
  windowMillis: FastCheck.integer({ min: 1, max: 90_000 })
})

interface Started {
  readonly id: number
  readonly at: number
  tokens: number
}

/** Runs `ops` on a window; returns the admitted requests with their final (corrected) tokens. */
const run = (window: SlidingWindow, ops: ReadonlyArray<Op>) => {
  const started: Array<Started> = []
  let now = 0
  for (const o of ops) {
    if (o.kind === "admit") {
      now += o.gap
      const d = window.admit(now, o.tokens, o.maxWait === undefined && o.maxPause === undefined ? undefined : { maxWaitMillis: o.maxWait, maxPauseMillis: o.maxPause })
      expect(d.at).toBeGreaterThanOrEqual(now)
      if (d.refused === undefined) {
        if (o.maxWait !== undefined) expect(d.at - now).toBeLessThanOrEqual(o.maxWait)
        started.push({ id: d.id, at: d.at, tokens: o.tokens })
      }
    } else if (o.kind === "refund") {
      // Corrections downwards only: a request that used more than its estimate has already started.
      const target = started[started.length - o.back]
      if (target === undefined) continue
      const tokens = Math.floor(target.tokens * o.share)
      window.settle(target.id, target.at, tokens)
      target.tokens = tokens
    } else {
      window.pauseUntil(now + o.millis)
    }
  }
  return { started, now }
}

describe("SlidingWindow: properties", () => {
  it.prop(
    "over any window of its length, admitted starts never exceed rpm and their (corrected) tokens never exceed tpm",
    [limits, FastCheck.array(op, { minLength: 1, maxLength: 120 }), FastCheck.array(FastCheck.integer({ min: 0, max: 3_000_000 }), { maxLength: 20 })],
    ([{ rpm, tpm, windowMillis }, ops, probes]) => {
      const { started } = run(new SlidingWindow({ rpm, tpm, windowMillis }), ops)
      for (let i = 1; i < started.length; i++) expect(started[i]!.at).toBeGreaterThanOrEqual(started[i - 1]!.at)
      // The fullest windows start at an admission; the probes are arbitrary windows besides.
      for (const from of [...started.map((s) => s.at), ...probes]) {
        const inside = started.filter((s) => s.at >= from && s.at < from + windowMillis)
        if (rpm !== undefined) expect(inside.length).toBeLessThanOrEqual(rpm)
        // A request larger than tpm alone is admitted when the window is empty (it could never fit otherwise).
        if (tpm !== undefined && inside.length > 1) expect(inside.reduce((sum, s) => sum + s.tokens, 0)).toBeLessThanOrEqual(tpm)
      }
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "a refused admission changes nothing: the window decides afterwards as if it had never been asked",
    [limits, FastCheck.array(op, { minLength: 0, maxLength: 60 }), FastCheck.integer({ min: 0, max: 400 }), FastCheck.integer({ min: 0, max: 90_000 })],
    ([{ rpm, tpm, windowMillis }, ops, tokens, later]) => {
      const asked = new SlidingWindow({ rpm, tpm, windowMillis })
      const untouched = new SlidingWindow({ rpm, tpm, windowMillis })
      const { now } = run(asked, ops)
      run(untouched, ops)
      // Admissions that may not wait at all, until the limits refuse some (40 > any rpm or tpm / 100
      // here); `untouched` sees only the admitted ones.
      for (let i = 0; i < 40; i++) {
        const decision = asked.admit(now, tokens + 100, { maxWaitMillis: 0, maxPauseMillis: 0 })
        if (decision.refused === undefined) expect(untouched.admit(now, tokens + 100)).toEqual(decision)
        else expect(decision.id).toBe(0)
      }
      for (const gap of [0, later, windowMillis]) expect(asked.admit(now + gap, tokens)).toEqual(untouched.admit(now + gap, tokens))
    },
    { fastCheck: { numRuns: 300 } }
  )
})

describe("the memory window on the Effect Clock", () => {
  it.effect("waits are counted from the Clock's now; the margin lengthens the window", () =>
    Effect.gen(function* () {
      expect(windowMillisOf({})).toBe(60_000)
      expect(windowMillisOf({ windowMargin: "1 second" })).toBe(61_000)
      expect(windowMillisOf({ window: "5 seconds" }, "1 second")).toBe(6000)
      const window = memoryWindow({ rpm: 2, windowMargin: "500 millis" })
      yield* TestClock.adjust("10 seconds")
      const waits = [(yield* window.admit(1)).waitMillis, (yield* window.admit(1)).waitMillis, (yield* window.admit(1)).waitMillis]
      expect(waits).toEqual([0, 0, 60_500])
      yield* TestClock.adjust("1 second")
      expect((yield* window.admit(1)).waitMillis).toBe(59_500)
    }))

  it.effect("the pause is measured on the Clock and refuses, unrecorded, a request that would wait longer than it accepts", () =>
    Effect.gen(function* () {
      const window = memoryWindow({ rpm: 1 })
      yield* window.pause(5000)
      yield* TestClock.adjust("2 seconds")
      expect(yield* window.pauseRemaining).toBe(3000)
      const refused = yield* window.admit(1, { maxPauseMillis: 1000 })
      expect(refused.refused).toBe("paused")
      expect(refused.waitMillis).toBe(3000)
      // Nothing was recorded: the next admission starts at the pause's end, not a window later.
      expect((yield* window.admit(1)).waitMillis).toBe(3000)
    }))
})
