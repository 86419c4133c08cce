/**
 * The undici transport: one attempt straight onto the client's own undici `Agent` (the default of
 * `ChatClient.layer`), for whole answers and for streams.
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Dispatcher } from "undici"
import type * as ChatError from "../ChatError.js"
import { Abort, signalOf } from "./abort.js"
import * as Classify from "./classify.js"
import * as UndiciStream from "./undiciStream.js"
import {
  announcedLength,
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
 * One undici call per attempt inside a single `Effect.async`: no fiber, scope or span per request.
 * The deadline and an interruption both abort the request through its signal (internal/abort.ts:
 * one listener slot, not an `AbortController` per attempt).
 *
 * The body is held to `maxResponseBytes`: a larger `content-length` is refused before any of the
 * body is read; a body without one (chunked) is counted as it arrives and abandoned past the limit.
 * A `content-length` body is read with undici's own `text()` as before (undici stops at that
 * length): the common case adds one header lookup, nothing per chunk.
 */
export const viaUndici = (agent: Dispatcher, settings: Settings): Send => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, "content-type": "application/json" }
  return (body, attempts, timeoutMillis) =>
    Effect.async<Exchange, ChatError.TransportError | ChatError.TimeoutError>((resume) => {
      const controller = new Abort()
      const deadline = deadlines.register(timeoutMillis, () => controller.abort())
      const failure = (error: unknown) =>
        deadline.expired ? attemptTimeout(timeoutMillis, attempts) : Classify.transportError(error, attempts, connectTimeoutMillis, scrub)
      const tooLarge = (response: Dispatcher.ResponseData) => {
        // The abort destroys the body with an error: someone must be listening for it.
        response.body.on("error", ignore)
        deadlines.cancel(deadline)
        controller.abort()
        resume(Effect.fail(Classify.responseTooLarge(maxResponseBytes, attempts)))
      }
      agent
        .request({ origin, path, method: "POST", headers, body, signal: signalOf(controller) })
        .then((response) => {
          const answered = (text: string, cut?: ChatError.TransportError) => {
            deadlines.cancel(deadline)
            resume(Effect.succeed(entered(scrub, response.statusCode, flatten(response.headers), text, cut)))
          }
          const length = announcedLength(response.headers)
          if (length !== undefined) {
            if (length > maxResponseBytes) return tooLarge(response)
            return response.body.text().then((text) => answered(text))
          }
          const chunks: Array<Buffer> = []
          let size = 0
          let settled = false
          const readable = response.body
          readable.on("data", (chunk: Buffer) => {
            if (settled) return
            size += chunk.length
            if (size > maxResponseBytes) {
              settled = true
              chunks.length = 0
              return tooLarge(response)
            }
            chunks.push(chunk)
          })
          readable.once("end", () => {
            if (settled) return
            settled = true
            answered(utf8(chunks, size))
          })
          const broke = (error: unknown) => {
            if (settled) return
            settled = true
            deadlines.cancel(deadline)
            const mapped = failure(error)
            // What arrived may still be the whole answer (a chunked body without its last chunk):
            // the caller decides from its content. A deadline's abort is not such a case.
            if (size > 0 && mapped._tag === "TransportError") answered(utf8(chunks, size), mapped)
            else resume(Effect.fail(mapped))
          }
          readable.once("error", broke)
          readable.once("close", () => broke(readable.errored ?? new Error("the response body closed before its end")))
        })
        .catch((error: unknown) => {
          deadlines.cancel(deadline)
          resume(Effect.fail(failure(error)))
        })
      return Effect.sync(() => {
        deadlines.cancel(deadline)
        controller.abort()
      })
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
