/**
 * How one attempt reaches the server. Two ways, one contract: send the body, bind the request to a
 * deadline and a size limit, and give back the status, headers and whole body text, or a transport
 * failure.
 * - `viaUndici`: straight onto the client's own undici `Agent` (the default of `ChatClient.layer`).
 * - `viaHttpClient`: through any `@effect/platform` `HttpClient` (the extension point).
 * bench/throughput measures both: at concurrency 200 the platform's client costs about twice the CPU
 * per request of the direct call (see docs/benchmarks.md).
 * @internal
 */
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Dispatcher } from "undici"
import * as ChatError from "../ChatError.js"
import * as Classify from "./classify.js"
import type { Deadlines } from "./deadlines.js"

/** What came back from one attempt. */
export interface Exchange {
  readonly status: number
  readonly headers: Record<string, string>
  readonly text: string
  /**
   * Set when a body without a length (chunked) broke off before its end: `text` is what arrived.
   * The caller uses it only if it decodes to a whole answer, else fails with this error.
   */
  readonly cut?: ChatError.TransportError | undefined
}

/** Sends `body` as attempt number `attempts`, aborting it after `timeoutMillis`. */
export type Send = (
  body: string,
  attempts: number,
  timeoutMillis: number
) => Effect.Effect<Exchange, ChatError.TransportError | ChatError.TimeoutError>

/** What every transport needs to know. */
export interface Settings {
  /** `{baseUrl}/chat/completions` */
  readonly url: URL
  /** Sent with every request, authorization included. */
  readonly headers: Readonly<Record<string, string>>
  readonly connectTimeoutMillis: number
  /** The longest body accepted, streams included: past it, `TransportError{code: "RESPONSE_TOO_LARGE"}`. */
  readonly maxResponseBytes: number
  readonly deadlines: Deadlines
  readonly scrub: Classify.Scrub
}

const attemptTimeout = (timeoutMillis: number, attempts: number) =>
  new ChatError.TimeoutError({ phase: "attempt", timeoutMillis, attempts })

/**
 * An answer as the rest of the client sees it: every string the server sent (header names and
 * values, the body) scrubbed of the key, once, here where it enters. Errors, spans, metrics, request
 * ids and output files are all made from these values, so none can carry the key.
 */
const entered = (
  scrub: Classify.Scrub,
  status: number,
  headers: Record<string, string>,
  text: string,
  cut?: ChatError.TransportError
): Exchange => ({
  status,
  headers: Classify.scrubHeaders(headers, scrub),
  text: scrub(text),
  cut
})

/**
 * The server's headers as one string each, in an object without a prototype: a header named
 * `__proto__` or `constructor` is an ordinary entry, and a lookup of a name the server did not send
 * finds nothing.
 */
const flatten = (headers: Record<string, string | Array<string> | undefined>): Record<string, string> => {
  const out: Record<string, string> = Object.create(null)
  for (const key of Object.keys(headers)) {
    const value = headers[key]
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(", ") : value
  }
  return out
}

/** The size a response announces (`content-length`), when it announces one. */
const announcedLength = (headers: Readonly<Record<string, string | Array<string> | undefined>>): number | undefined => {
  const value = headers["content-length"]
  if (typeof value !== "string") return undefined
  const length = Number(value)
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined
}

const ignore = () => {}

/** UTF-8 text of `chunks` (`size` bytes in all), a leading BOM dropped as undici's `text()` does. */
const utf8 = (chunks: ReadonlyArray<Uint8Array>, size: number): string => {
  if (size === 0) return ""
  const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
  const buffer = Buffer.isBuffer(whole) ? whole : Buffer.from(whole.buffer, whole.byteOffset, whole.byteLength)
  const start = buffer.length > 2 && buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf ? 3 : 0
  return buffer.toString("utf8", start)
}

/**
 * One undici call per attempt inside a single `Effect.async`: no fiber, scope or span per request.
 * The deadline and an interruption both abort the request through its `AbortSignal`.
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
      const controller = new AbortController()
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
        .request({ origin, path, method: "POST", headers, body, signal: controller.signal })
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

/**
 * Through an `HttpClient`. Each request is bound to a scope (`HttpClient.withScope`); the deadline
 * or an interruption closes it, which aborts the request through the signal the client was given.
 * The body is held to `maxResponseBytes` as on the undici path.
 */
export const viaHttpClient = (client: HttpClient.HttpClient, settings: Settings): Send => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  // The platform's span per request cost about 100 µs of CPU per call (bench/throughput); Shepherd's
  // own span per request arrives with the observability work, with a switch to turn it off.
  const http = client.pipe(HttpClient.withTracerDisabledWhen(() => true), HttpClient.withScope)
  const base = HttpClientRequest.post(settings.url, { headers: settings.headers })
  return (body, attempts, timeoutMillis) =>
    Effect.flatMap(Scope.make(), (scope) => {
      const deadline = deadlines.register(timeoutMillis, () => Effect.runFork(Scope.close(scope, Exit.void)))
      const failure = (
        error: HttpClientError.HttpClientError | ChatError.TransportError | ChatError.TimeoutError
      ): ChatError.TransportError | ChatError.TimeoutError =>
        error._tag === "TransportError" || error._tag === "TimeoutError"
          ? error
          : deadline.expired
          ? attemptTimeout(timeoutMillis, attempts)
          : Classify.httpClientError(error, attempts, connectTimeoutMillis, scrub)
      return http.execute(HttpClientRequest.setBody(base, HttpBody.text(body, "application/json"))).pipe(
        Effect.flatMap((response): Effect.Effect<Exchange, HttpClientError.HttpClientError | ChatError.TransportError | ChatError.TimeoutError> => {
          const length = announcedLength(response.headers)
          if (length !== undefined && length > maxResponseBytes) return Effect.fail(Classify.responseTooLarge(maxResponseBytes, attempts))
          if (length !== undefined) return Effect.map(response.text, (text): Exchange => entered(scrub, response.status, response.headers, text))
          // No length: count the pieces as they arrive.
          const chunks: Array<Uint8Array> = []
          let size = 0
          const answered = (cut?: ChatError.TransportError): Exchange => entered(scrub, response.status, response.headers, utf8(chunks, size), cut)
          return response.stream.pipe(
            Stream.runForEachChunk((pieces) => {
              for (const piece of pieces) {
                size += piece.length
                if (size > maxResponseBytes) return Effect.fail(Classify.responseTooLarge(maxResponseBytes, attempts))
                chunks.push(piece)
              }
              return Effect.void
            }),
            Effect.map(() => answered()),
            Effect.catchAll((error) => {
              const mapped = failure(error)
              // What arrived may still be the whole answer (a chunked body without its last chunk).
              return size > 0 && mapped._tag === "TransportError" && mapped.code !== "RESPONSE_TOO_LARGE"
                ? Effect.succeed(answered(mapped))
                : Effect.fail(mapped)
            })
          )
        }),
        Scope.extend(scope),
        Effect.catchAll((error) => Effect.fail(failure(error))),
        Effect.onExit((exit) => {
          deadlines.cancel(deadline)
          // After a success nothing is left to abort: skip the close, whose AbortController.abort()
          // builds a DOMException with a stack trace (about 3% of client CPU in bench/throughput).
          return Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit)
        })
      )
    })
}

/** A streaming answer: its status and headers, then its body as the bytes arrive. */
export interface Opened {
  readonly status: number
  /** Scrubbed of the key, as an `Exchange`'s; the body's text is scrubbed by whoever reads it (`readText`, the SSE events). */
  readonly headers: Record<string, string>
  /**
   * The next piece of the body; fails with `None` at its end. Until `started` the attempt's deadline
   * runs; after, each gap between pieces may last `idleMillis` at most (`TimeoutError{phase: "idle"}`).
   * Past `maxResponseBytes` in all it fails with `RESPONSE_TOO_LARGE`. One `Effect.async` per piece:
   * no stream operators per chunk (bench/streaming).
   */
  readonly pull: Effect.Effect<Uint8Array, Option.Option<ChatError.TransportError | ChatError.TimeoutError>>
  /**
   * The first event arrived: the attempt's deadline gives way to the idle one. Bytes alone do not
   * count: keep-alive comments must not keep an answer that never starts open.
   */
  readonly started: () => void
}

/** The total deadline of a call, as far as one attempt is concerned. */
export interface Total {
  /** What is left of it when the attempt opens. */
  readonly leftMillis: number
  /** The whole of it, as `TimeoutError{phase: "total"}` reports it. */
  readonly timeoutMillis: number
}

/**
 * Opens a streaming request as attempt number `attempts`; closing the scope aborts it. `total`
 * bounds the whole stream, first event to last (`TimeoutError{phase: "total"}`).
 */
export type Open = (
  body: string,
  attempts: number,
  timeoutMillis: number,
  idleMillis: number,
  total: Total
) => Effect.Effect<Opened, ChatError.TransportError | ChatError.TimeoutError, Scope.Scope>

/** The whole rest of a body as text (an error answer), scrubbed of the key. */
export const readText = (pull: Opened["pull"], scrub: Classify.Scrub): Effect.Effect<string, ChatError.TransportError | ChatError.TimeoutError> =>
  Effect.suspend(() => {
    const decoder = new TextDecoder()
    let text = ""
    const loop: Effect.Effect<string, ChatError.TransportError | ChatError.TimeoutError> = Effect.matchEffect(pull, {
      onFailure: Option.match({ onNone: () => Effect.succeed(scrub(text + decoder.decode())), onSome: Effect.fail }),
      onSuccess: (bytes) => {
        text += decoder.decode(bytes, { stream: true })
        return loop
      }
    })
    return loop
  })

/**
 * Deadlines of a streamed answer: the attempt's until the first event, then an idle one per gap;
 * the call's total deadline over all of it.
 */
const streamDeadlines = (deadlines: Deadlines, timeoutMillis: number, idleMillis: number, total: Total, attempts: number, abort: () => void) => {
  let phase: "attempt" | "idle" = "attempt"
  let current = deadlines.register(timeoutMillis, abort)
  const whole = deadlines.register(total.leftMillis, abort)
  return {
    /** Bytes arrived: once the answer started, the idle clock starts again. */
    touch: () => {
      if (phase === "attempt") return
      deadlines.cancel(current)
      current = deadlines.register(idleMillis, abort)
    },
    /** The first event arrived. */
    start: () => {
      if (phase === "idle") return
      deadlines.cancel(current)
      phase = "idle"
      current = deadlines.register(idleMillis, abort)
    },
    cancel: () => {
      deadlines.cancel(current)
      deadlines.cancel(whole)
    },
    /** The timeout that fired, if one did. */
    expired: (): ChatError.TimeoutError | undefined =>
      whole.expired
        ? new ChatError.TimeoutError({ phase: "total", timeoutMillis: total.timeoutMillis, attempts })
        : current.expired
        ? new ChatError.TimeoutError({ phase, timeoutMillis: phase === "attempt" ? timeoutMillis : idleMillis, attempts })
        : undefined
  }
}

/** Streaming straight onto undici (the default transport). */
export const openViaUndici = (agent: Dispatcher, settings: Settings): Open => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, accept: "text/event-stream", "content-type": "application/json" }
  return (body, attempts, timeoutMillis, idleMillis, total) =>
    Effect.gen(function* () {
      const controller = new AbortController()
      const timers = streamDeadlines(deadlines, timeoutMillis, idleMillis, total, attempts, () => controller.abort())
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          timers.cancel()
          controller.abort()
        })
      )
      const failure = (error: unknown) => timers.expired() ?? Classify.transportError(error, attempts, connectTimeoutMillis, scrub)
      const response = yield* Effect.tryPromise({
        try: () => agent.request({ origin, path, method: "POST", headers, body, signal: controller.signal }),
        catch: failure
      })
      // Everything already buffered is taken in one read: under load several pieces wait, and one
      // pull for all of them saves the per-piece cost of the stream that carries them (bench/streaming).
      const readable = response.body
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
      const pull: Opened["pull"] = Effect.async((resume) => {
        const attempt = (): boolean => {
          const bytes = take()
          if (bytes !== undefined) {
            received += bytes.length
            if (received > maxResponseBytes) {
              timers.cancel()
              controller.abort()
              resume(Effect.fail(Option.some(Classify.responseTooLarge(maxResponseBytes, attempts))))
              return true
            }
            timers.touch()
            resume(Effect.succeed(bytes))
            return true
          }
          if (failed !== undefined) {
            const mapped = failure(failed)
            timers.cancel()
            resume(Effect.fail(Option.some(mapped)))
            return true
          }
          if (ended || readable.readableEnded) {
            timers.cancel()
            resume(Effect.fail(Option.none()))
            return true
          }
          if (readable.destroyed) {
            // Closed without an end or an error: an abort (a deadline) or a dropped connection.
            const mapped = failure(readable.errored ?? new Error("the response body closed before its end"))
            timers.cancel()
            resume(Effect.fail(Option.some(mapped)))
            return true
          }
          return false
        }
        if (attempt()) return
        const onEvent = () => {
          if (attempt()) stop()
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
      return { status: response.statusCode, headers: Classify.scrubHeaders(flatten(response.headers), scrub), pull, started: timers.start }
    })
}

/** Streaming through an `HttpClient`; the deadlines close the request's scope, which aborts it. */
export const openViaHttpClient = (client: HttpClient.HttpClient, settings: Settings): Open => {
  const { deadlines, scrub, connectTimeoutMillis, maxResponseBytes } = settings
  // withScope: the request lives as long as the scope it runs in, so closing that scope aborts it.
  const http = client.pipe(HttpClient.withTracerDisabledWhen(() => true), HttpClient.withScope)
  const base = HttpClientRequest.post(settings.url, { headers: { ...settings.headers, accept: "text/event-stream" } })
  return (body, attempts, timeoutMillis, idleMillis, total) =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const inner = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const timers = streamDeadlines(deadlines, timeoutMillis, idleMillis, total, attempts, () => Effect.runFork(Scope.close(inner, Exit.void)))
      yield* Effect.addFinalizer(() => Effect.sync(timers.cancel))
      const failure = (error: HttpClientError.HttpClientError) => timers.expired() ?? Classify.httpClientError(error, attempts, connectTimeoutMillis, scrub)
      const response = yield* http.execute(HttpClientRequest.setBody(base, HttpBody.text(body, "application/json"))).pipe(
        Scope.extend(inner),
        Effect.mapError(failure)
      )
      // The body's reader lives in the attempt's scope, not in `inner`: a deadline closes `inner`,
      // whose abort makes a pending read fail (closing the reader first would wait on that read).
      const chunks = yield* Stream.toPull(response.stream)
      let received = 0
      const pull: Opened["pull"] = chunks.pipe(
        Effect.mapError(Option.map(failure)),
        Effect.flatMap((piece) => {
          const bytes = Chunk.reduce(piece, new Uint8Array(0), concatBytes)
          received += bytes.length
          if (received > maxResponseBytes) {
            // The attempt's scope closes on this failure, which aborts the request.
            return Effect.fail(Option.some(Classify.responseTooLarge(maxResponseBytes, attempts)))
          }
          timers.touch()
          return Effect.succeed(bytes)
        }),
        Effect.tapError(() => Effect.sync(timers.cancel))
      )
      return { status: response.status, headers: Classify.scrubHeaders(response.headers, scrub), pull, started: timers.start }
    })
}

const concatBytes = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
