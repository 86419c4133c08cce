/**
 * `JsonParser`'s worker pool: a piscina pool that is replaced when a worker dies, and a parse run on
 * it (its abort signal ends the task).
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Piscina } from "piscina"
import type { Reply, Task } from "../../workers/jsonWorker.js"
import * as Json from "../Json.js"
import type { Options } from "../JsonParser.js"

const fromReply = (reply: Reply): Effect.Effect<Json.JsonResult, Json.JsonParseError> =>
  reply._tag === "ok"
    ? Effect.sync(() => ({ value: JSON.parse(reply.json) as unknown, recovery: reply.recovery }))
    : Effect.fail(new Json.JsonParseError({
      reason: reply.reason,
      detail: reply.detail,
      excerpt: reply.excerpt,
      ...(reply.position === undefined ? {} : { position: reply.position })
    }))

/**
 * Starts the pool (`filename` is the compiled worker), destroyed with the scope; gives a parse in it.
 * A parse that the pool cannot finish fails with `worker_failed`.
 */
export const make = (
  o: Options,
  filename: string
): Effect.Effect<(text: string, started?: Int32Array) => Effect.Effect<Json.JsonResult, Json.JsonParseError>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const limits = { maxBytes: o.maxBytes, maxDepth: o.maxDepth }
    const workerFailed = (cause: unknown, text: string) =>
      new Json.JsonParseError({
        reason: "worker_failed",
        detail: `the parsing worker failed: ${cause instanceof Error ? cause.message : String(cause)}`,
        excerpt: text.slice(0, 200)
      })

    /**
     * A pool and the tasks running on it. Piscina 5 reports a worker that dies of its resourceLimits
     * on the pool, but then leaves some tasks (and every later one) pending forever (seen here with
     * ERR_WORKER_OUT_OF_MEMORY): so on any pool error, its tasks fail with `worker_failed` and a
     * fresh pool takes its place.
     */
    interface Generation {
      readonly pool: Piscina<Task, Reply>
      readonly running: Set<(cause: unknown) => void>
    }
    const start = (): Generation => {
      const pool = new Piscina<Task, Reply>({
        filename,
        maxThreads: o.maxThreads,
        minThreads: 0,
        idleTimeout: Duration.toMillis(o.idleTimeout),
        resourceLimits: { maxOldGenerationSizeMb: o.maxWorkerHeapMb }
      })
      const generation: Generation = { pool, running: new Set() }
      pool.on("error", (cause: unknown) => retire(generation, cause))
      return generation
    }
    /** Replaces a pool whose worker died: its tasks fail with `worker_failed`, new ones go to a fresh pool. */
    const retire = (generation: Generation, cause: unknown) => {
      if (current === generation) current = start()
      for (const fail of generation.running) fail(cause)
      generation.running.clear()
      generation.pool.destroy().catch(() => undefined)
    }
    const workerDied = (cause: unknown) =>
      typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string" &&
      (cause as { code: string }).code.startsWith("ERR_WORKER")
    let current = start()
    yield* Effect.addFinalizer(() => Effect.promise(() => current.pool.destroy().catch(() => undefined)))

    const inPool = (text: string, started?: Int32Array) =>
      Effect.flatMap(
        Effect.async<Reply, Json.JsonParseError>((resume, signal) => {
          const generation = current
          const fail = (cause: unknown) => resume(Effect.fail(workerFailed(cause, text)))
          generation.running.add(fail)
          generation.pool.run({ text, ...limits, started }, { signal }).then(
            (reply) => {
              generation.running.delete(fail)
              resume(Effect.succeed(reply))
            },
            (cause: unknown) => {
              generation.running.delete(fail)
              fail(cause)
              // Do not wait for the pool's own error event: the next task must not go to this pool.
              if (workerDied(cause)) retire(generation, cause)
            }
          )
        }),
        fromReply
      )
    return inPool
  })

/** How often a waiting parse looks whether its worker has started it, and for how long at most. */
const STARTED_POLL_MILLIS = 20
const STARTUP_ALLOWANCE_MILLIS = 60_000

/** Waits until a worker has started the task (`started[0]` set), or the start-up allowance ran out. */
export const untilStarted = (started: Int32Array): Effect.Effect<void> =>
  Effect.suspend(() => {
    let waited = 0
    const poll: Effect.Effect<void> = Effect.suspend(() => {
      if (Atomics.load(started, 0) === 1 || waited >= STARTUP_ALLOWANCE_MILLIS) return Effect.void
      waited += STARTED_POLL_MILLIS
      return Effect.zipRight(Effect.sleep(STARTED_POLL_MILLIS), poll)
    })
    return poll
  })
