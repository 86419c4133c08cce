import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { Json, JsonParser } from "../src/index.js"
import * as JsonPool from "../src/internal/jsonPool.js"

const samples = [
  '{"a": 1}',
  'Sure:\n```json\n{"a": [1, 2,],}\n```',
  "prose {'x': True} more",
  '{"cut": [1, 2',
  "no json at all",
  "",
  "[".repeat(2000)
]

const parserWith = (options: Partial<JsonParser.Options>) =>
  Effect.map(Layer.build(JsonParser.layer(options)), (ctx) => Context.get(ctx, JsonParser.JsonParser))

/** About `bytes` of a document whose objects each end with a trailing comma: slow for jsonrepair. */
const trailingCommas = (bytes: number) => "[" + Array.from({ length: Math.ceil(bytes / 12) }, (_, i) => `{"id": ${i},}`).join(",") + "]"
/** Trailing commas plus a defect the linear pass leaves to jsonrepair (`undefined`): jsonrepair is quadratic on the rest. */
const leftToJsonrepair = (bytes: number) => trailingCommas(bytes).slice(0, -1) + ', {"x": undefined}]'

describe("JsonParser", () => {
  it.scopedLive("the pool gives exactly what inline parsing gives, values and errors alike", () =>
    Effect.gen(function* () {
      // Equality is the point here, not the deadline: a cold worker on a loaded machine took ~2 s to start.
      const pooled = yield* parserWith({ inlineBelowBytes: 0, maxThreads: 1, deadline: "1 minute" })
      for (const text of samples) {
        const inline = Json.parseEither(text)
        const viaPool = yield* Effect.either(pooled.parse(text))
        expect(viaPool).toEqual(inline)
        if (Either.isLeft(viaPool)) expect(viaPool.left).toBeInstanceOf(Json.JsonParseError)
      }
    }))

  it.scopedLive("a large malformed document is repaired in a worker", () =>
    Effect.gen(function* () {
      const parser = yield* parserWith({ inlineBelowBytes: 1024, maxThreads: 1 })
      const doc = trailingCommas(100_000)
      const result = yield* parser.parse(doc)
      expect(result.recovery).toBe("repaired")
      expect((result.value as Array<{ id: number }>).at(-1)!.id).toBe(Math.ceil(100_000 / 12) - 1)
    }))

  it.scopedLive("interrupting a parse aborts its task, and the pool keeps serving", () =>
    Effect.gen(function* () {
      const parser = yield* parserWith({ inlineBelowBytes: 1024, maxThreads: 1 })
      // about 1.5 s of jsonrepair work (it is quadratic on this shape)
      const fiber = yield* Effect.fork(parser.parse(leftToJsonrepair(350_000), { deadline: "1 minute" }))
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(fiber) // returns once the worker is stopped
      const next = yield* parser.parse("x".repeat(2000) + ' {"ok": true}')
      expect(next.value).toEqual({ ok: true })
    }), 20_000)

  it.scopedLive("a worker that runs out of memory gives worker_failed; the pool replaces it", () =>
    Effect.gen(function* () {
      const parser = yield* parserWith({ inlineBelowBytes: 1024, maxThreads: 1, maxWorkerHeapMb: 32 })
      const huge = "[" + Array.from({ length: 600_000 }, (_, i) => `{'id': ${i}, 'name': 'item ${i}',}`).join(",") + "]"
      const error = yield* Effect.flip(parser.parse(huge))
      expect(error.reason).toBe("worker_failed")
      const next = yield* parser.parse("y".repeat(2000) + ' {"ok": 1}')
      expect(next.value).toEqual({ ok: 1 })
    }), 60_000)

  it.scopedLive("a parse past its deadline fails with reason deadline; the pool keeps serving", () =>
    Effect.gen(function* () {
      const parser = yield* parserWith({ inlineBelowBytes: 1024, maxThreads: 1, deadline: "300 millis", deadlinePerMb: "0 millis" })
      // seconds of jsonrepair work: the linear pass does not take it (undefined), jsonrepair is quadratic on the rest
      const error = yield* Effect.flip(parser.parse(leftToJsonrepair(600_000)))
      expect(error).toMatchObject({ _tag: "JsonParseError", reason: "deadline" })
      expect(error.message).toContain("300 ms")
      // (a fresh worker starts for these: its start is not what this test measures)
      const next = yield* parser.parse("z".repeat(2000) + ' {"ok": 2}', { deadline: "30 seconds" })
      expect(next.value).toEqual({ ok: 2 })
      // the linear pass reads the same defects without the one it leaves out
      const repaired = yield* parser.parse(trailingCommas(600_000), { deadline: "30 seconds" })
      expect(repaired.recovery).toBe("repaired")
    }), 30_000)

  it.scopedLive("a per-call deadline wins over the layer's", () =>
    Effect.gen(function* () {
      const parser = yield* parserWith({ inlineBelowBytes: 1024, maxThreads: 1, deadline: "1 minute" })
      const error = yield* Effect.flip(parser.parse(leftToJsonrepair(600_000), { deadline: "200 millis" }))
      expect(error.reason).toBe("deadline")
    }), 30_000)

  it.scopedLive("a parse waiting for a free worker can be interrupted, and the waiting does not count against its deadline", () =>
    Effect.gen(function* () {
      const parser = yield* parserWith({ inlineBelowBytes: 1024, maxThreads: 1, deadline: "1 minute" })
      // the only worker is busy with a slow parse
      const busy = yield* Effect.fork(parser.parse(leftToJsonrepair(150_000)))
      yield* Effect.sleep("50 millis")
      const waiting = yield* Effect.fork(parser.parse("w".repeat(2000) + ' {"w": 1}'))
      yield* Effect.sleep("50 millis")
      yield* Fiber.interrupt(waiting) // returns: it was only waiting in line
      // a deadline shorter than the wait behind `busy` (seconds of jsonrepair): it counts from
      // the start of its own parse, so the parse still succeeds
      const result = yield* parser.parse("q".repeat(2000) + ' {"q": 1}', { deadline: "1 second" })
      expect(result.value).toEqual({ q: 1 })
      yield* Fiber.join(busy)
    }), 30_000)

  it.effect("the deadline waits for the worker to start the parse: nothing counts while the start flag is unset (TestClock)", () =>
    Effect.gen(function* () {
      const started = new Int32Array(new SharedArrayBuffer(4))
      const timer = Effect.zipRight(JsonPool.untilStarted(started), Effect.fail("deadline" as const).pipe(Effect.delay("60 millis")))
      const fiber = yield* Effect.fork(Effect.flip(timer))
      yield* TestClock.adjust("5 seconds") // a cold worker still starting: no deadline yet
      expect(fiber.unsafePoll()).toBeNull()
      Atomics.store(started, 0, 1) // the worker starts the parse
      yield* TestClock.adjust("40 millis") // seen at the next look (every 20 ms); the 60 ms run from there
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("60 millis")
      expect(yield* Fiber.join(fiber)).toBe("deadline")
    }))
})
