import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as Deadlines from "../src/internal/deadlines.js"
import { streamDeadlines } from "../src/internal/transport.js"

interface Case {
  readonly start: number
  readonly deadline: number
  /** undefined: the work never ends by itself */
  readonly work: number | undefined
}

const runCases = (cases: ReadonlyArray<Case>) =>
  Effect.scoped(Effect.gen(function* () {
    const deadlines = yield* Deadlines.make
    const fibers = yield* Effect.forEach(cases, (c) =>
      Effect.fork(Effect.gen(function* () {
        yield* Effect.sleep(c.start)
        // Work that ends after `work` ms, or when its deadline aborts it (as a request is aborted).
        let deadline: Deadlines.Deadline | undefined
        const aborted = Effect.async<"done" | "aborted">((resume) => {
          deadline = deadlines.register(c.deadline, () => resume(Effect.succeed("aborted")))
        })
        const how = yield* (c.work === undefined ? aborted : Effect.raceFirst(aborted, Effect.as(Effect.sleep(c.work), "done" as const)))
        deadlines.cancel(deadline!)
        return { how, expired: deadline!.expired, at: yield* Clock.currentTimeMillis }
      })))
    yield* TestClock.adjust(10_000_000)
    return yield* Effect.forEach(fibers, Fiber.join)
  }))

describe("Deadlines", () => {
  it("every attempt ends at its own deadline or when its work ends, whichever is first, in any order of arrival", async () => {
    const arbitraryCase = FastCheck.record({
      start: FastCheck.integer({ min: 0, max: 5_000 }),
      deadline: FastCheck.integer({ min: 1, max: 60_000 }),
      work: FastCheck.option(FastCheck.integer({ min: 0, max: 60_000 }), { nil: undefined })
    }).filter((c) => c.work !== c.deadline) // a tie has no single right answer
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.array(arbitraryCase, { minLength: 1, maxLength: 20 }), async (cases) => {
        const results = await Effect.runPromise(runCases(cases).pipe(Effect.provide(TestContext.TestContext)))
        cases.forEach((c, i) => {
          const r = results[i]!
          const timesOut = c.work === undefined || c.work > c.deadline
          expect(r.how).toBe(timesOut ? "aborted" : "done")
          expect(r.expired).toBe(timesOut)
          expect(r.at).toBe(c.start + (timesOut ? c.deadline : c.work!))
        })
      }),
      { numRuns: 60 }
    )
    // About 4 s alone (TestClock lets the fibers settle in real time at each of the thousands of
    // wake-ups); more on a loaded machine. 60 runs of up to 20 attempts: over 600 arrivals in any order.
  }, 90_000)

  it.effect("a deadline shorter than the one the manager sleeps on still fires on time", () =>
    Effect.gen(function* () {
      const results = yield* runCases([
        { start: 0, deadline: 60_000, work: undefined },
        { start: 10, deadline: 100, work: undefined }
      ])
      expect(results.map((r) => r.at)).toEqual([60_000, 110])
    }))

  it.scoped("a stream's idle deadline: pieces closer than the idle time keep it open; a longer gap aborts it as idle (TestClock)", () =>
    Effect.gen(function* () {
      const deadlines = yield* Deadlines.make
      let aborts = 0
      const timers = streamDeadlines(deadlines, 5_000, 30_000, { leftMillis: 600_000, timeoutMillis: 600_000 }, 1, () => { aborts++ })
      timers.start()
      for (let piece = 0; piece < 6; piece++) {
        yield* TestClock.adjust("20 seconds")
        timers.touch()
      }
      yield* TestClock.adjust("29 seconds")
      expect(aborts).toBe(0)
      expect(timers.expired()).toBeUndefined()
      yield* TestClock.adjust("2 seconds")
      expect(aborts).toBe(1)
      expect(timers.expired()).toMatchObject({ _tag: "TimeoutError", phase: "idle", timeoutMillis: 30_000 })
      timers.cancel()
    }))

  it.scoped("a stream paused by its reader is not idle: the idle deadline waits for the resume, then counts from it (TestClock)", () =>
    Effect.gen(function* () {
      const deadlines = yield* Deadlines.make
      let aborts = 0
      const timers = streamDeadlines(deadlines, 5_000, 30_000, { leftMillis: 600_000, timeoutMillis: 600_000 }, 1, () => { aborts++ })
      timers.start()
      yield* TestClock.adjust("10 seconds")
      timers.pause(true)
      yield* TestClock.adjust("100 seconds") // the reader is slow: no piece, and no abort
      expect(aborts).toBe(0)
      timers.pause(false)
      yield* TestClock.adjust("29 seconds")
      expect(aborts).toBe(0)
      yield* TestClock.adjust("2 seconds")
      expect(aborts).toBe(1)
      expect(timers.expired()).toMatchObject({ _tag: "TimeoutError", phase: "idle" })
      timers.cancel()
    }))
})
