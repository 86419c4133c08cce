/**
 * The progress display of `shepherd run` on stderr: a bar when it is a terminal, else a plain line
 * every interval. `stop` draws the last frame from the final counts (so it agrees with the summary)
 * and ends the display; nothing else may be written to the stream while the bar is up, because the
 * bar redraws its line from a saved cursor position.
 * @internal
 */
import { SingleBar } from "cli-progress"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as RunStats from "./runStats.js"

/** Where the display writes: stderr, or a stand-in in tests. */
export interface Output {
  readonly isTTY?: boolean | undefined
  readonly write: (text: string) => unknown
}

/** A running display. */
export interface Display {
  /** Draws the last frame and ends the display; then the stream is free. Idempotent. */
  readonly stop: Effect.Effect<void>
}

/** The bar's line: `{etaText}`, not `{eta}`, which cli-progress fills with its own unitless seconds. */
export const BAR_FORMAT = "{bar} {value}/{total} | {rate} req/s | ETA {etaText} | {tokens} tokens | {cost} | {errors} errors"

const payload = (stats: RunStats.RunStats, now: number) => {
  const p = RunStats.progress(stats, now)
  return { rate: p.rate.toFixed(1), etaText: RunStats.duration(p.etaSeconds), tokens: p.tokens, cost: p.cost, errors: p.errors }
}

/** Starts the display on `output` (stderr by default); `stop` it before writing anything else there. */
export const start = (
  stats: RunStats.RunStats,
  interval: Duration.Duration,
  output: Output = process.stderr
): Effect.Effect<Display> =>
  Effect.gen(function* () {
    if (output.isTTY === true) {
      const bar = new SingleBar({
        stream: output as NodeJS.WritableStream,
        format: BAR_FORMAT,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50
      })
      bar.start(stats.total, stats.alreadyDone, payload(stats, yield* Clock.currentTimeMillis))
      const updates = yield* Effect.forkDaemon(Effect.forever(
        Effect.zipRight(
          Effect.sleep("200 millis"),
          Effect.map(Clock.currentTimeMillis, (now) => bar.update(stats.alreadyDone + stats.written, payload(stats, now)))
        )
      ))
      let stopped = false
      return {
        stop: Effect.gen(function* () {
          if (stopped) return
          stopped = true
          yield* Fiber.interrupt(updates)
          bar.update(stats.alreadyDone + stats.written, payload(stats, yield* Clock.currentTimeMillis))
          bar.stop()
        })
      }
    }
    const lines = yield* Effect.forkDaemon(Effect.forever(
      Effect.zipRight(
        Effect.sleep(interval),
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => output.write(RunStats.progressLine(stats, now) + "\n")))
      )
    ))
    return { stop: Fiber.interrupt(lines).pipe(Effect.asVoid) }
  })

/** No display (`--no-progress`). */
export const none: Display = { stop: Effect.void }
