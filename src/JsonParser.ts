/**
 * `Json.parse` as a service that keeps large documents off the event loop: texts below
 * `inlineBelowBytes` parse on the calling thread, larger ones in a piscina worker pool owned by the
 * layer (destroyed when its scope closes). Interrupting a parse aborts its task; a worker that crashes
 * or runs out of memory gives `JsonParseError{reason: "worker_failed"}` and the pool replaces it.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { existsSync } from "node:fs"
import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import * as JsonPool from "./internal/jsonPool.js"
import * as Validate from "./internal/validate.js"
import * as Json from "./Json.js"

/**
 * Pool options. Every default is in {@link defaults}.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options extends Json.Options {
  /**
   * Texts shorter than this (in UTF-16 code units, about bytes for ASCII) parse inline. Chosen from
   * bench/json: a malformed 64 KB answer blocks the event loop about 4 ms inline, 1 KB 0.08 ms, so
   * 16 KB keeps an inline parse near 1 ms, while a pool round trip costs about 0.3 ms. @default 16384
   */
  readonly inlineBelowBytes: number
  /** Worker threads at most. @default availableParallelism() - 1, at least 1 */
  readonly maxThreads: number
  /** An idle worker exits after this long. @default "30 seconds" */
  readonly idleTimeout: Duration.DurationInput
  /** Heap of each worker, in MB; a document that needs more fails with `worker_failed`. @default 512 */
  readonly maxWorkerHeapMb: number
  /**
   * Longest a parse in the pool may take, plus `deadlinePerMb` for each MB of text, counted from
   * the moment a worker starts it (a cold worker's start-up and a wait for a free worker do not
   * count); past it the task is aborted (piscina ends that worker and starts another) and the call fails with
   * `JsonParseError{reason: "deadline"}`. bench/json-adversarial: the linear pass reads every defect
   * kind at 20 MB/s or more (8 MB in under 0.4 s), so only inputs left to jsonrepair come near it.
   * @default "2 seconds"
   */
  readonly deadline: Duration.DurationInput
  /** Added to `deadline` for each MB of text. @default "250 millis" */
  readonly deadlinePerMb: Duration.DurationInput
}

/**
 * Checks pool options: `inlineBelowBytes` a whole number of at least 0, `maxThreads` and
 * `maxWorkerHeapMb` whole numbers of at least 1, `deadline` a positive finite duration, `idleTimeout`
 * and `deadlinePerMb` finite durations of at least 0, and `Json.Options`' limits. Fails with a
 * `ConfigError` naming the option, e.g. `["maxThreads"]`.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Partial<Options>, path: ReadonlyArray<string> = []): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    yield* Json.validateOptions(options, path)
    if (options.inlineBelowBytes !== undefined) yield* Validate.nonNegativeInt([...path, "inlineBelowBytes"], options.inlineBelowBytes)
    if (options.maxThreads !== undefined) yield* Validate.positiveInt([...path, "maxThreads"], options.maxThreads)
    if (options.maxWorkerHeapMb !== undefined) yield* Validate.positiveInt([...path, "maxWorkerHeapMb"], options.maxWorkerHeapMb)
    if (options.idleTimeout !== undefined) yield* Validate.nonNegativeDuration([...path, "idleTimeout"], options.idleTimeout)
    if (options.deadline !== undefined) yield* Validate.positiveDuration([...path, "deadline"], options.deadline)
    if (options.deadlinePerMb !== undefined) yield* Validate.nonNegativeDuration([...path, "deadlinePerMb"], options.deadlinePerMb)
  })

/**
 * Per-call options of `parse`.
 *
 * @since 0.1.0
 * @category options
 */
export interface ParseOptions {
  /**
   * This call's deadline (the size allowance is not added): a positive finite duration; an invalid
   * one is a defect (a programming error), reported when the call runs. @default the layer's
   */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * Every default of {@link Options}, `Json.defaults`' limits included.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults: Options = {
  ...Json.defaults,
  inlineBelowBytes: 16_384,
  maxThreads: Math.max(1, availableParallelism() - 1),
  idleTimeout: "30 seconds",
  maxWorkerHeapMb: 512,
  deadline: "2 seconds",
  deadlinePerMb: "250 millis"
}

/**
 * The parser service, what the {@link JsonParser} Tag gives.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * Recovers the JSON value of `text` (as `Json.parse`): inline below `inlineBelowBytes`, else in
   * the pool within its deadline.
   */
  readonly parse: (text: string, options?: ParseOptions) => Effect.Effect<Json.JsonResult, Json.JsonParseError>
}

/**
 * The JSON parser service: `parse` recovers the JSON value of a model's answer as `Json.parse` does,
 * on the calling thread for short texts and in a worker pool, within a deadline, for long ones.
 * Provided by {@link layer}, which owns the pool. `Structured.generate` uses it when the context has it.
 *
 * @since 0.1.0
 * @category tags
 */
export class JsonParser extends Context.Tag("effect-shepherd/JsonParser")<JsonParser, Service>() {}

/**
 * The compiled worker: beside this module in the built package (dist/src -> dist/workers); under a
 * TypeScript test runner, the build's copy.
 *
 * @since 0.1.0
 * @category utils
 */
export const workerPath = (): string => {
  const candidates = [new URL("../workers/jsonWorkerEntry.cjs", import.meta.url), new URL("../dist/workers/jsonWorkerEntry.cjs", import.meta.url)]
  for (const url of candidates) {
    const path = fileURLToPath(url)
    if (existsSync(path)) return path
  }
  throw new Error("the JSON worker is not built: run `npm run build` (it compiles workers/ into dist/workers/)")
}

/**
 * The pool as a layer: started when built, destroyed (its workers terminated) with its scope. Fails
 * to build with a `ConfigError` naming an invalid option (see {@link validateOptions}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Partial<Options> = {}): Layer.Layer<JsonParser, ConfigError.ConfigError> =>
  Layer.scoped(
    JsonParser,
    Effect.gen(function* () {
      yield* validateOptions(options)
      const o: Options = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) }
      const limits = { maxBytes: o.maxBytes, maxDepth: o.maxDepth }
      const inPool = yield* JsonPool.make(o, workerPath())
      // One token per thread; a parse takes one to run in the pool. A queue serves waiters in order
      // (a semaphore let newcomers take a freed permit first, and one parse waited 1.5 s behind 38).
      const slots = yield* Queue.bounded<void>(o.maxThreads)
      yield* Queue.offerAll(slots, Array.from({ length: o.maxThreads }, () => undefined))
      const inSlot = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
        // The wait for a token stays interruptible (an interrupted caller leaves the line).
        Effect.acquireUseRelease(Effect.interruptible(Queue.take(slots)), () => effect, () => Queue.offer(slots, undefined))
      const baseMillis = Duration.toMillis(o.deadline)
      const perMbMillis = Duration.toMillis(o.deadlinePerMb)
      const withDeadline = (text: string, options: ParseOptions | undefined) => Effect.suspend(() => {
        if (options?.deadline !== undefined) {
          const checked = Validate.positiveDuration(["deadline"], options.deadline)
          if (checked._tag === "Left") return Effect.dieMessage(`JsonParser.parse: ${String(checked.left)}`)
        }
        const millis = options?.deadline !== undefined
          ? Duration.toMillis(options.deadline)
          : baseMillis + Math.ceil((perMbMillis * text.length) / (1024 * 1024))
        // At most one task per thread is handed to piscina, so that the deadline counts the parse,
        // not a wait in piscina's queue (where one task was seen starved behind 38 later ones).
        // It starts when the worker starts the parse (a cold worker's start-up took over 2 s on a
        // loaded machine). Past it the task is interrupted, whose abort signal ends that worker.
        const started = new Int32Array(new SharedArrayBuffer(4))
        const late = new Json.JsonParseError({
          reason: "deadline",
          detail: `parsing took longer than its deadline of ${millis} ms and was stopped; the text is not JSON that the linear repair pass reads`,
          excerpt: text.slice(0, 200)
        })
        return inSlot(Effect.raceFirst(inPool(text, started), Effect.zipRight(JsonPool.untilStarted(started), Effect.fail(late).pipe(Effect.delay(millis)))))
      })
      return JsonParser.of({
        parse: (text, options) => (text.length < o.inlineBelowBytes ? Json.parse(text, limits) : withDeadline(text, options))
      })
    })
  )
