/**
 * The undici transport: one attempt straight onto the client's own undici `Agent` (the default of
 * `ChatClient.layer`), for whole answers and for streams.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Dispatcher } from "undici"
import type * as ChatError from "../ChatError.js"
import { Abort, signalOf } from "./abort.js"
import * as Classify from "./classify.js"
import {
  announcedLength,
  attemptTimeout,
  entered,
  type Exchange,
  flatten,
  ignore,
  type Open,
  type Opened,
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


/** What reading a streamed body needs to know. */
interface PullSettings {
  readonly timers: ReturnType<typeof streamDeadlines>
  readonly failure: (error: unknown) => ChatError.TransportError | ChatError.TimeoutError
  readonly maxResponseBytes: number
  readonly attempts: number
  readonly abort: () => void
}

/** The pieces of a streamed body, each read once it arrives, held to `maxResponseBytes` and the stream's deadlines. */
const pullFrom = (readable: Dispatcher.ResponseData["body"], settings: PullSettings): Opened["pull"] => {
  const { timers, failure, maxResponseBytes, attempts, abort } = settings
  // Everything already buffered is taken in one read: under load several pieces wait, and one
  // pull for all of them saves the per-piece cost of the stream that carries them (bench/streaming).
  let ended = false
  let failed: unknown = undefined
  let received = 0
  readable.once("end", () => { ended = true })
  readable.once("error", (error) => { failed ??= error })
  const take = (): Uint8Array | undefined => {
    const first = readable.read() as Buffer | null
    if (first === null) return undefined
    const second = readable.read() as Buffer | null
    if (second === null) return first
    const pieces = [first, second]
    for (let piece = readable.read() as Buffer | null; piece !== null; piece = readable.read() as Buffer | null) pieces.push(piece)
    return Buffer.concat(pieces)
  }
  type Result = Effect.Effect<Uint8Array, Option.Option<ChatError.TransportError | ChatError.TimeoutError>>
  /** What a read gives now, if anything: the buffered bytes, the end, or the failure. */
  const attempt = (): Result | undefined => {
    const bytes = take()
    if (bytes !== undefined) {
      received += bytes.length
      if (received > maxResponseBytes) {
        timers.cancel()
        abort()
        return Effect.fail(Option.some(Classify.responseTooLarge(maxResponseBytes, attempts)))
      }
      timers.touch()
      return Effect.succeed(bytes)
    }
    if (failed !== undefined) {
      const mapped = failure(failed)
      timers.cancel()
      return Effect.fail(Option.some(mapped))
    }
    if (ended || readable.readableEnded) {
      timers.cancel()
      return Effect.fail(Option.none())
    }
    if (readable.destroyed) {
      // Closed without an end or an error: an abort (a deadline) or a dropped connection.
      const mapped = failure(readable.errored ?? new Error("the response body closed before its end"))
      timers.cancel()
      return Effect.fail(Option.some(mapped))
    }
    return undefined
  }
  // Waits for the readable only when nothing is buffered: a read that finds bytes suspends nothing.
  const wait: Result = Effect.async((resume) => {
    const onEvent = () => {
      const result = attempt()
      if (result === undefined) return
      stop()
      resume(result)
    }
    const stop = () => {
      readable.off("readable", onEvent)
      readable.off("end", onEvent)
      readable.off("error", onEvent)
      readable.off("close", onEvent)
    }
    readable.on("readable", onEvent)
    readable.on("end", onEvent)
    readable.on("error", onEvent)
    readable.on("close", onEvent)
    return Effect.sync(stop)
  })
  return Effect.suspend(() => attempt() ?? wait)
}

/** Streaming straight onto undici (the default transport). */
export const openViaUndici = (agent: Dispatcher, settings: Settings): Open => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, accept: "text/event-stream", "content-type": "application/json" }
  return (body, attempts, timeoutMillis, idleMillis, total) =>
    Effect.gen(function* () {
      const controller = new Abort()
      const timers = streamDeadlines(deadlines, timeoutMillis, idleMillis, total, attempts, () => controller.abort())
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          timers.cancel()
          controller.abort()
        })
      )
      const failure = (error: unknown) => timers.expired() ?? Classify.transportError(error, attempts, connectTimeoutMillis, scrub)
      const response = yield* Effect.tryPromise({
        try: () => agent.request({ origin, path, method: "POST", headers, body, signal: signalOf(controller) }),
        catch: failure
      })
      const pull = pullFrom(response.body, { timers, failure, maxResponseBytes, attempts, abort: () => controller.abort() })
      return { status: response.statusCode, headers: Classify.scrubHeaders(flatten(response.headers), scrub), pull, started: timers.start }
    })
}

