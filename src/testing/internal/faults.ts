/**
 * The mock server's faults: which exist, how an option names one (checked), and how each is
 * answered on the wire (an OpenAI error body, a proxy's HTML page, a reset, a hang, a bad body).
 * Streaming faults are the stream writer's (streamWriter.ts).
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import type * as Http from "node:http"
import * as Validate from "../../internal/validate.js"
import type { Fault, JournalEntry } from "../MockServer.js"
import { send, type State } from "./state.js"

/** The fault types an option may name. */
export const FAULT_TYPES = [
  "rate_limit",
  "server_error",
  "bad_request",
  "reset",
  "hang",
  "malformed_json",
  "truncated_body",
  "stream_stall",
  "stream_disconnect",
  "stream_error"
] as const

/** An OpenAI error body. */
export const errorBody = (message: string, type: string, param: string | null, code: string | null): string =>
  JSON.stringify({ error: { message, type, param, code } })

/** Checks a fault as an option gives it: a `ConfigError` under `path` naming what is wrong. */
export const checkFault = (path: ReadonlyArray<string>, fault: unknown): Either.Either<unknown, ConfigError.ConfigError> =>
  Either.gen(function* () {
    if (typeof fault !== "object" || fault === null) return yield* Either.left(Validate.invalid(path, `must be a fault such as { type: "rate_limit" }`))
    const f = fault as Record<string, unknown>
    const type = yield* Validate.oneOf([...path, "type"], f["type"], FAULT_TYPES)
    if (type === "rate_limit") {
      if (f["retryAfterSeconds"] !== undefined) yield* Validate.nonNegative([...path, "retryAfterSeconds"], f["retryAfterSeconds"])
      if (f["retryAfterMillis"] !== undefined) yield* Validate.nonNegative([...path, "retryAfterMillis"], f["retryAfterMillis"])
    }
    if (type === "server_error" && f["status"] !== undefined && f["status"] !== 500 && f["status"] !== 502 && f["status"] !== 503) {
      return yield* Either.left(Validate.invalid([...path, "status"], `must be 500, 502 or 503, got ${String(f["status"])}`))
    }
    if (type.startsWith("stream_") && f["afterChunks"] !== undefined) yield* Validate.nonNegativeInt([...path, "afterChunks"], f["afterChunks"])
    return fault
  })

/** Answers with a (non-streaming) fault instead of the reply; `limitHeaders` are the rate-limit headers of the answer. */
export const answerFault = (
  state: State,
  fault: Fault,
  entry: JournalEntry,
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  limitHeaders: Record<string, string> = {}
): void => {
  state.countFault(entry, fault.type)
  switch (fault.type) {
    case "rate_limit": {
      const headers: Record<string, string> = { ...limitHeaders }
      if (fault.retryAfterSeconds !== undefined) headers["retry-after"] = String(fault.retryAfterSeconds)
      if (fault.retryAfterMillis !== undefined) headers["retry-after-ms"] = String(fault.retryAfterMillis)
      return send(state, entry, res, 429, errorBody("Rate limit reached for requests (mock). Please try again later.", "requests", null, "rate_limit_exceeded"), headers)
    }
    case "server_error": {
      const status = fault.status ?? 502
      const html = `<html><head><title>${status} Bad Gateway</title></head><body><center><h1>${status}</h1></center><hr><center>mock-proxy</center></body></html>`
      return send(state, entry, res, status, html, { "content-type": "text/html" })
    }
    case "bad_request":
      return send(state, entry, res, 400, errorBody("Invalid request (mock fault).", "invalid_request_error", "messages", "invalid_value"))
    case "reset": {
      // Mid-response: the status line and headers go out, then a TCP RST instead of the body.
      state.countStatus(entry, 200)
      res.writeHead(200, { "content-type": "application/json", "content-length": 1024 })
      res.flushHeaders()
      setImmediate(() => req.socket.resetAndDestroy())
      return
    }
    case "hang":
      return
    case "malformed_json":
      return send(state, entry, res, 200, `{"id":"chatcmpl-mock","object":"chat.completion","choices":[{"index":0,,}`)
    case "truncated_body": {
      const body = JSON.stringify({ id: "chatcmpl-mock-truncated", object: "chat.completion", created: 0, model: "mock", choices: [] })
      state.countStatus(entry, 200)
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
      res.write(body.slice(0, Math.floor(body.length / 2)))
      // Let the partial body reach the client before closing.
      setImmediate(() => req.socket.destroy())
      return
    }
    case "stream_stall":
    case "stream_disconnect":
    case "stream_error":
      // Streaming faults apply to streamed answers only: the caller never passes one here.
      return
  }
}
