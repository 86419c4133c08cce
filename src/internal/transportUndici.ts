/**
 * The undici transport: one attempt straight onto the client's own undici `Agent` (the default of
 * `ChatClient.layer`), for whole answers and for streams.
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Dispatcher } from "undici"
import * as Classify from "./classify.js"
import * as UndiciAnswer from "./undiciAnswer.js"
import * as UndiciStream from "./undiciStream.js"
import {
  attemptTimeout,
  entered,
  type Exchange,
  flatten,
  ignore,
  type Open,
  type Send,
  type Settings,
  streamDeadlines,
  utf8
} from "./transport.js"

/**
 * One undici call per attempt, read through undici's handler callbacks (internal/undiciAnswer.ts):
 * no fiber, scope, span, promise or Node stream per request. The deadline and an interruption both
 * abort the request.
 *
 * The body is held to `maxResponseBytes`: a larger `content-length` is refused before any of the
 * body is read; a body without one (chunked) is counted as it arrives and abandoned past the limit.
 */
export const viaUndici = (agent: Dispatcher, settings: Settings): Send => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, "content-type": "application/json" }
  return (body, attempts, timeoutMillis) =>
    Effect.async<Exchange, UndiciAnswer.Failure>((resume) => {
      let abort = ignore
      const deadline = deadlines.register(timeoutMillis, () => abort())
      const reading: UndiciAnswer.Reading = {
        failure: (error) => deadline.expired ? attemptTimeout(timeoutMillis, attempts) : Classify.transportError(error, attempts, connectTimeoutMillis, scrub),
        tooLarge: () => Classify.responseTooLarge(maxResponseBytes, attempts),
        maxResponseBytes,
        done: () => deadlines.cancel(deadline)
      }
      abort = UndiciAnswer.send(agent, { origin, path, method: "POST", headers, body }, reading, {
        answered: (arrived) => resume(Effect.succeed(entered(scrub, arrived.status, flatten(arrived.headers), utf8(arrived.chunks, arrived.size), arrived.cut))),
        failed: (error) => resume(Effect.fail(error))
      })
      return Effect.sync(abort)
    })
}

/** Streaming straight onto undici (the default transport), through undici's handler callbacks (internal/undiciStream.ts). */
export const openViaUndici = (agent: Dispatcher, settings: Settings): Open => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, accept: "text/event-stream", "content-type": "application/json" }
  return (body, attempts, timeoutMillis, idleMillis, total) =>
    Effect.suspend(() => {
      let abort = ignore
      const timers = streamDeadlines(deadlines, timeoutMillis, idleMillis, total, attempts, () => abort())
      const reading: UndiciStream.Reading = {
        failure: (error) => timers.expired() ?? Classify.transportError(error, attempts, connectTimeoutMillis, scrub),
        tooLarge: () => Classify.responseTooLarge(maxResponseBytes, attempts),
        maxResponseBytes,
        touch: timers.touch,
        pause: timers.pause,
        done: timers.cancel
      }
      const started = UndiciStream.open(agent, { origin, path, method: "POST", headers, body }, reading, (f) => {
        abort = f
      })
      return Effect.zipRight(
        Effect.addFinalizer(() =>
          Effect.sync(() => {
            timers.cancel()
            abort()
          })
        ),
        Effect.map(started, (answer) => ({
          status: answer.status,
          headers: Classify.scrubHeaders(flatten(answer.headers), scrub),
          pull: answer.pull,
          started: timers.start
        }))
      )
    })
}
