/**
 * How one attempt reaches the server. Two ways, one contract: send the body, bind the request to a
 * deadline and a size limit, and give back the status, headers and whole body text, or a transport
 * failure.
 * - internal/transportUndici.ts: straight onto the client's own undici `Agent` (the default of
 *   `ChatClient.layer`).
 * - internal/transportPlatform.ts: through any `@effect/platform` `HttpClient` (the extension point).
 * bench/throughput measures both: at concurrency 200 the platform's client costs about twice the CPU
 * per request of the direct call (see docs/benchmarks.md). This module holds their contract and
 * what they share.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
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

/** The error of an attempt that outlived `timeout`. */
export const attemptTimeout = (timeoutMillis: number, attempts: number) =>
  new ChatError.TimeoutError({ phase: "attempt", timeoutMillis, attempts })

/**
 * An answer as the rest of the client sees it: every string the server sent (header names and
 * values, the body) scrubbed of the key, once, here where it enters. Errors, spans, metrics, request
 * ids and output files are all made from these values, so none can carry the key.
 */
export const entered = (
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
export const flatten = (headers: Record<string, string | Array<string> | undefined>): Record<string, string> => {
  const out: Record<string, string> = Object.create(null)
  for (const key of Object.keys(headers)) {
    const value = headers[key]
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(", ") : value
  }
  return out
}

/** The size a response announces (`content-length`), when it announces one. */
export const announcedLength = (headers: Readonly<Record<string, string | Array<string> | undefined>>): number | undefined => {
  const value = headers["content-length"]
  if (typeof value !== "string") return undefined
  const length = Number(value)
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined
}

/** Does nothing: a listener for errors already reported another way (a body stream's late `error`). */
export const ignore = () => {}

/** UTF-8 text of `chunks` (`size` bytes in all), a leading BOM dropped as undici's `text()` does. */
export const utf8 = (chunks: ReadonlyArray<Uint8Array>, size: number): string => {
  if (size === 0) return ""
  const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
  const buffer = Buffer.isBuffer(whole) ? whole : Buffer.from(whole.buffer, whole.byteOffset, whole.byteLength)
  const start = buffer.length > 2 && buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf ? 3 : 0
  return buffer.toString("utf8", start)
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
export const streamDeadlines = (deadlines: Deadlines, timeoutMillis: number, idleMillis: number, total: Total, attempts: number, abort: () => void) => {
  let phase: "attempt" | "idle" = "attempt"
  let current = deadlines.register(timeoutMillis, abort)
  const whole = deadlines.register(total.leftMillis, abort)
  // The idle deadline is not moved at every piece (a re-link per piece, in a list as long as the
  // streams in flight): a piece notes its time, and the deadline, when it comes, looks at the last
  // piece and either aborts or waits again for what is left of the idle time.
  let lastPiece = 0
  // The reader paused the socket (its unread pieces passed the high-water mark): the server is not
  // the one that is quiet, so the idle deadline waits until the reader resumes it.
  let paused = false
  const onIdle = () => {
    const quietMillis = deadlines.now() - lastPiece
    if (paused) current = deadlines.register(idleMillis, onIdle)
    else if (quietMillis < idleMillis) current = deadlines.register(idleMillis - quietMillis, onIdle)
    else abort()
  }
  const touch = () => {
    if (phase === "idle") lastPiece = deadlines.now()
  }
  return {
    /** Bytes arrived: once the answer started, the idle clock starts again. */
    touch,
    /** The reader paused the socket (`true`) or resumed it (`false`, which starts the idle clock again). */
    pause: (on: boolean) => {
      paused = on
      if (!on) touch()
    },
    /** The first event arrived. */
    start: () => {
      if (phase === "idle") return
      deadlines.cancel(current)
      phase = "idle"
      lastPiece = deadlines.now()
      current = deadlines.register(idleMillis, onIdle)
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

