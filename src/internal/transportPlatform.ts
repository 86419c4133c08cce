/**
 * The platform transport: one attempt through any `@effect/platform` `HttpClient` (your own client
 * with middleware, a test stub, or the platform's client over the Agent with `transport: "platform"`),
 * for whole answers and for streams.
 * @internal
 */
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as ChatError from "../ChatError.js"
import * as Classify from "./classify.js"
import { announcedLength, attemptTimeout, entered, type Exchange, type Open, type Opened, type Send, type Settings, streamDeadlines, utf8 } from "./transport.js"

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
