/**
 * How one attempt reaches the server. Two ways, one contract: send the body, bind the request to a
 * deadline, and give back the status, headers and whole body text, or a transport failure.
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
  readonly deadlines: Deadlines
  readonly scrub: Classify.Scrub
}

const attemptTimeout = (timeoutMillis: number, attempts: number) =>
  new ChatError.TimeoutError({ phase: "attempt", timeoutMillis, attempts })

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

/**
 * One undici call per attempt inside a single `Effect.async`: no fiber, scope or span per request.
 * The deadline and an interruption both abort the request through its `AbortSignal`.
 */
export const viaUndici = (agent: Dispatcher, settings: Settings): Send => {
  const { deadlines, scrub, connectTimeoutMillis } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, "content-type": "application/json" }
  return (body, attempts, timeoutMillis) =>
    Effect.async<Exchange, ChatError.TransportError | ChatError.TimeoutError>((resume) => {
      const controller = new AbortController()
      const deadline = deadlines.register(timeoutMillis, () => controller.abort())
      agent
        .request({ origin, path, method: "POST", headers, body, signal: controller.signal })
        .then((response) =>
          response.body.text().then((text) => {
            deadlines.cancel(deadline)
            resume(Effect.succeed({ status: response.statusCode, headers: flatten(response.headers), text }))
          })
        )
        .catch((error: unknown) => {
          deadlines.cancel(deadline)
          resume(Effect.fail(deadline.expired ? attemptTimeout(timeoutMillis, attempts) : Classify.transportError(error, attempts, connectTimeoutMillis, scrub)))
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
 */
export const viaHttpClient = (client: HttpClient.HttpClient, settings: Settings): Send => {
  const { deadlines, scrub, connectTimeoutMillis } = settings
  // The platform's span per request cost about 100 µs of CPU per call (bench/throughput); Shepherd's
  // own span per request arrives with the observability work, with a switch to turn it off.
  const http = client.pipe(HttpClient.withTracerDisabledWhen(() => true), HttpClient.withScope)
  const base = HttpClientRequest.post(settings.url, { headers: settings.headers })
  return (body, attempts, timeoutMillis) =>
    Effect.flatMap(Scope.make(), (scope) => {
      const deadline = deadlines.register(timeoutMillis, () => Effect.runFork(Scope.close(scope, Exit.void)))
      return http.execute(HttpClientRequest.setBody(base, HttpBody.text(body, "application/json"))).pipe(
        Effect.flatMap((response) =>
          Effect.map(response.text, (text): Exchange => ({ status: response.status, headers: response.headers, text }))
        ),
        Scope.extend(scope),
        Effect.catchAll((error) =>
          Effect.fail(deadline.expired ? attemptTimeout(timeoutMillis, attempts) : Classify.httpClientError(error, attempts, connectTimeoutMillis, scrub))
        ),
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
  readonly headers: Record<string, string>
  /**
   * The next piece of the body; fails with `None` at its end. Before its first bytes the attempt's
   * deadline runs; after, each gap between pieces may last `idleMillis` at most
   * (`TimeoutError{phase: "idle"}`). One `Effect.async` per piece: no stream operators per chunk
   * (bench/streaming).
   */
  readonly pull: Effect.Effect<Uint8Array, Option.Option<ChatError.TransportError | ChatError.TimeoutError>>
}

/** Opens a streaming request as attempt number `attempts`; closing the scope aborts it. */
export type Open = (
  body: string,
  attempts: number,
  timeoutMillis: number,
  idleMillis: number
) => Effect.Effect<Opened, ChatError.TransportError | ChatError.TimeoutError, Scope.Scope>

/** The whole rest of a body as text (an error answer). */
export const readText = (pull: Opened["pull"]): Effect.Effect<string, ChatError.TransportError | ChatError.TimeoutError> =>
  Effect.suspend(() => {
    const decoder = new TextDecoder()
    let text = ""
    const loop: Effect.Effect<string, ChatError.TransportError | ChatError.TimeoutError> = Effect.matchEffect(pull, {
      onFailure: Option.match({ onNone: () => Effect.succeed(text + decoder.decode()), onSome: Effect.fail }),
      onSuccess: (bytes) => {
        text += decoder.decode(bytes, { stream: true })
        return loop
      }
    })
    return loop
  })

/** Deadlines of a streamed answer: the attempt's until the first bytes, then an idle one per gap. */
const streamDeadlines = (deadlines: Deadlines, timeoutMillis: number, idleMillis: number, attempts: number, abort: () => void) => {
  let phase: "attempt" | "idle" = "attempt"
  let current = deadlines.register(timeoutMillis, abort)
  return {
    /** Bytes arrived: the idle clock starts again. */
    touch: () => {
      deadlines.cancel(current)
      phase = "idle"
      current = deadlines.register(idleMillis, abort)
    },
    cancel: () => deadlines.cancel(current),
    /** The timeout that fired, if one did. */
    expired: (): ChatError.TimeoutError | undefined =>
      current.expired
        ? new ChatError.TimeoutError({ phase, timeoutMillis: phase === "attempt" ? timeoutMillis : idleMillis, attempts })
        : undefined
  }
}

/** Streaming straight onto undici (the default transport). */
export const openViaUndici = (agent: Dispatcher, settings: Settings): Open => {
  const { deadlines, scrub, connectTimeoutMillis } = settings
  const origin = settings.url.origin
  const path = settings.url.pathname + settings.url.search
  const headers = { ...settings.headers, accept: "text/event-stream", "content-type": "application/json" }
  return (body, attempts, timeoutMillis, idleMillis) =>
    Effect.gen(function* () {
      const controller = new AbortController()
      const timers = streamDeadlines(deadlines, timeoutMillis, idleMillis, attempts, () => controller.abort())
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
      return { status: response.statusCode, headers: flatten(response.headers), pull }
    })
}

/** Streaming through an `HttpClient`; the deadlines close the request's scope, which aborts it. */
export const openViaHttpClient = (client: HttpClient.HttpClient, settings: Settings): Open => {
  const { deadlines, scrub, connectTimeoutMillis } = settings
  // withScope: the request lives as long as the scope it runs in, so closing that scope aborts it.
  const http = client.pipe(HttpClient.withTracerDisabledWhen(() => true), HttpClient.withScope)
  const base = HttpClientRequest.post(settings.url, { headers: { ...settings.headers, accept: "text/event-stream" } })
  return (body, attempts, timeoutMillis, idleMillis) =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const inner = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const timers = streamDeadlines(deadlines, timeoutMillis, idleMillis, attempts, () => Effect.runFork(Scope.close(inner, Exit.void)))
      yield* Effect.addFinalizer(() => Effect.sync(timers.cancel))
      const failure = (error: HttpClientError.HttpClientError) => timers.expired() ?? Classify.httpClientError(error, attempts, connectTimeoutMillis, scrub)
      const response = yield* http.execute(HttpClientRequest.setBody(base, HttpBody.text(body, "application/json"))).pipe(
        Scope.extend(inner),
        Effect.mapError(failure)
      )
      // The body's reader lives in the attempt's scope, not in `inner`: a deadline closes `inner`,
      // whose abort makes a pending read fail (closing the reader first would wait on that read).
      const chunks = yield* Stream.toPull(response.stream)
      const pull: Opened["pull"] = chunks.pipe(
        Effect.mapError(Option.map(failure)),
        Effect.flatMap((piece) => {
          timers.touch()
          return Effect.succeed(Chunk.reduce(piece, new Uint8Array(0), concatBytes))
        }),
        Effect.tapError(() => Effect.sync(timers.cancel))
      )
      return { status: response.status, headers: response.headers, pull }
    })
}

const concatBytes = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
