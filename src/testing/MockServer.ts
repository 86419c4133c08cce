/**
 * An OpenAI-compatible HTTP server on loopback for tests, benchmarks and the demo: deterministic
 * replies, configurable latency, scripted or random faults, a journal of what it received.
 *
 * ```ts
 * const program = Effect.gen(function* () {
 *   const server = yield* MockServer.MockServer
 *   console.log(server.url) // http://127.0.0.1:54321/v1
 * }).pipe(Effect.provide(MockServer.layer({ latency: "50 millis" })))
 * ```
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as ChatSchema from "../ChatSchema.js"
import * as Validate from "../internal/validate.js"
import * as Content from "./internal/content.js"
import * as Limits from "./internal/limits.js"

/** Response delay before each answer. A duration is fixed; the others draw from the seeded generator. */
export type Latency =
  | Duration.DurationInput
  | { readonly uniform: readonly [Duration.DurationInput, Duration.DurationInput] }
  | { readonly logNormal: { readonly median: Duration.DurationInput; readonly sigma: number } }

/** A fault the server can answer with instead of a completion. */
export type Fault =
  /** 429 with `retry-after` (seconds) and/or `retry-after-ms`, and an OpenAI `rate_limit_exceeded` body. */
  | { readonly type: "rate_limit"; readonly retryAfterSeconds?: number; readonly retryAfterMillis?: number }
  /** 500, 502 or 503 with an HTML body, as a proxy sends. @default status 502 */
  | { readonly type: "server_error"; readonly status?: 500 | 502 | 503 }
  /** 400 with an OpenAI `invalid_request_error` body. */
  | { readonly type: "bad_request" }
  /** The headers of a 200 are sent, then the connection is reset (TCP RST) instead of the body. */
  | { readonly type: "reset" }
  /** Nothing is ever sent; the connection stays open until the client gives up. */
  | { readonly type: "hang" }
  /** 200 whose body is not JSON. */
  | { readonly type: "malformed_json" }
  /** 200 whose body stops halfway, shorter than its `content-length`, then the connection closes. */
  | { readonly type: "truncated_body" }
  /** Streaming requests: `afterChunks` chunks are sent, then nothing more (the connection stays open). */
  | { readonly type: "stream_stall"; readonly afterChunks?: number }
  /** Streaming requests: `afterChunks` chunks are sent, then the connection is dropped. */
  | { readonly type: "stream_disconnect"; readonly afterChunks?: number }
  /** Streaming requests: `afterChunks` chunks are sent, then an `{"error": ...}` event, then the end. */
  | { readonly type: "stream_error"; readonly afterChunks?: number }

/** How streamed answers (`stream: true`) are sent. The time to the first chunk is `latency`. */
export interface StreamingOptions {
  /** Characters of content per chunk. @default 8 */
  readonly chunkChars?: number
  /** Delay between chunks. @default 0 */
  readonly interval?: Duration.DurationInput
  /** Send a `: keep-alive` comment before the first chunk and between chunks. @default false */
  readonly keepAlive?: boolean
  /** Write each chunk's JSON pretty-printed over several `data:` lines. @default false */
  readonly multiLineData?: boolean
}

/** How the assistant content is written when JSON content is on (the defects models produce). */
export interface JsonContentOptions {
  /** Wrap in a ```json fence. @default false */
  readonly fence?: boolean
  /** Surround with a sentence before and after. @default false */
  readonly prose?: boolean
  /** Add a trailing comma before every `}` and `]`. @default false */
  readonly trailingComma?: boolean
  /** Cut the text at 60% of its length (as at `max_tokens`). @default false */
  readonly truncate?: boolean
  /** Answer with JSON only the requests that ask for it (a JSON `response_format`); others get prose. @default false (every answer is JSON) */
  readonly onlyWhenAsked?: boolean
}

/** Server options. Every default is in {@link defaults}. */
export interface Options {
  /** TCP port; 0 picks a free one. @default 0 */
  readonly port: number
  /** Interface to listen on. @default "127.0.0.1" */
  readonly host: string
  /** Delay before every answer. @default 0 */
  readonly latency: Latency
  /** Seed of the generator behind random latency and random faults. @default 1 */
  readonly seed: number
  /** Share of POST requests answered with a fault drawn from `faults`, 0 to 1. @default 0 */
  readonly faultRate: number
  /** The faults drawn (uniformly) when `faultRate` hits. @default rate_limit (1 s) and server_error */
  readonly faults: ReadonlyArray<Fault>
  /** Answers for the first POST requests, in order ("ok" for a normal answer); random faults apply after it runs out. @default [] */
  readonly script: ReadonlyArray<Fault | "ok">
  /** When set, any other bearer token gets 401. @default undefined (no auth) */
  readonly apiKey: string | undefined
  /** Always answer with JSON content written like this; requests with a JSON `response_format` get clean JSON when unset. @default undefined */
  readonly jsonContent: JsonContentOptions | undefined
  /** Check request bodies against the chat-completion schema and answer 400 like OpenAI. @default true */
  readonly validate: boolean
  /** Most journal entries kept (the newest). @default 10000 */
  readonly journalLimit: number
  /** Requests per minute allowed, as a token bucket like OpenAI's; over it, 429 with `retry-after-ms`. @default undefined (no limit) */
  readonly rpm: number | undefined
  /** Tokens per minute allowed (prompt tokens plus `max_tokens`, or the completion when unset). @default undefined (no limit) */
  readonly tpm: number | undefined
  /**
   * The period `rpm` and `tpm` refill over, instead of a minute: a test shortens it (with the client's
   * test-only `RateLimit` `window`) so that a scenario spanning several windows takes seconds.
   * @default "60 seconds"
   */
  readonly window: Duration.DurationInput
  /** How streamed answers are sent. @default { chunkChars: 8, interval: 0 } */
  readonly streaming: StreamingOptions
}

export const defaults: Options = {
  port: 0,
  host: "127.0.0.1",
  latency: 0,
  seed: 1,
  faultRate: 0,
  faults: [{ type: "rate_limit", retryAfterSeconds: 1 }, { type: "server_error", status: 502 }],
  script: [],
  apiKey: undefined,
  jsonContent: undefined,
  validate: true,
  journalLimit: 10_000,
  rpm: undefined,
  tpm: undefined,
  window: "60 seconds",
  streaming: {}
}

/** What the server received, one entry per request. */
export interface JournalEntry {
  /** 1, 2, 3, ... in order of arrival. */
  readonly seq: number
  readonly method: string
  readonly path: string
  /** Request headers, lower-cased, without `authorization`. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  /** The parsed JSON body (or the raw text when it is not JSON; undefined when empty). */
  readonly body: unknown
  /** Wall-clock arrival time, epoch milliseconds. */
  readonly receivedAtMillis: number
  /** The status sent, once sent (undefined for a hang, a reset, or a client that left first). */
  status: number | undefined
  /** The fault answered, if any. */
  fault: Fault["type"] | undefined
  /** The client closed the connection before the answer was complete. */
  hungUp: boolean
}

/** Counters since start (or the last `reset`). */
export interface Stats {
  readonly requests: number
  readonly byStatus: Readonly<Record<string, number>>
  readonly faults: Readonly<Record<string, number>>
  readonly hungUp: number
  /** 429s sent because a configured `rpm` or `tpm` was exceeded (scripted and random faults are in `faults`). */
  readonly rateLimited: number
}

/** A running server. */
export interface Service {
  /** The base URL clients use, ending in `/v1`. */
  readonly url: string
  readonly port: number
  /** The newest `journalLimit` entries, oldest first. */
  readonly journal: Effect.Effect<ReadonlyArray<JournalEntry>>
  /** The counters (also `GET /_mock/stats`, for a server in another process). */
  readonly stats: Effect.Effect<Stats>
  /** Replace the script (the answers of the next POST requests). */
  readonly setScript: (script: ReadonlyArray<Fault | "ok">) => Effect.Effect<void>
  /** Clear the journal and the counters, and refill the rate-limit buckets (also `POST /_mock/reset`). */
  readonly reset: Effect.Effect<void>
}

export class MockServer extends Context.Tag("effect-shepherd/testing/MockServer")<MockServer, Service>() {}

/** The server could not start (port taken, bad host). */
export class MockServerError extends Schema.TaggedError<MockServerError>()("MockServerError", {
  detail: Schema.String
}) {
  override get message(): string {
    return `the mock server could not start: ${this.detail}. Pick another port (0 picks a free one).`
  }
}

const decodeChatRequest = Schema.decodeUnknownEither(ChatSchema.ChatCompletionRequest, { errors: "first" })
const decodeEmbeddingRequest = Schema.decodeUnknownEither(ChatSchema.EmbeddingRequest, { onExcessProperty: "error" })

const errorBody = (message: string, type: string, param: string | null, code: string | null) =>
  JSON.stringify({ error: { message, type, param, code } })

const issuePath = (error: ParseResult.ParseError): string | null => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined || first.path.length === 0) return null
  // OpenAI writes paths as messages[0].content
  return first.path.map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join("")
}

/**
 * The fault types `faults` may name.
 * @since 0.2.0
 * @category faults
 */
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

const checkFault = (path: ReadonlyArray<string>, fault: unknown): Either.Either<unknown, ConfigError.ConfigError> =>
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

/**
 * Checks the server's options: a `ConfigError` naming the bad one (`["rpm"]`, `["faults", "0", "type"]`,
 * `["latency", "uniform"]`): a port from 0 to 65535, a finite `seed`, `faultRate` from 0 to 1, whole
 * limits of at least 1, finite non-negative durations, known fault types, an `apiKey` a header can carry.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Partial<Options>): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const o = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Options
    yield* Validate.between(["port"], o.port, 0, 65535)
    yield* Validate.nonNegativeInt(["port"], o.port)
    yield* Validate.nonEmptyString(["host"], o.host)
    const latency = o.latency as unknown
    if (typeof latency === "object" && latency !== null && "uniform" in latency) {
      const range = (latency as { uniform: unknown }).uniform
      if (!Array.isArray(range) || range.length !== 2) return yield* Effect.fail(Validate.invalid(["latency", "uniform"], "must be [low, high]"))
      const low = yield* Validate.nonNegativeDuration(["latency", "uniform", "0"], range[0])
      const high = yield* Validate.nonNegativeDuration(["latency", "uniform", "1"], range[1])
      if (Duration.greaterThan(low, high)) return yield* Effect.fail(Validate.invalid(["latency", "uniform"], "must be [low, high] with low <= high"))
    } else if (typeof latency === "object" && latency !== null && "logNormal" in latency) {
      const ln = (latency as { logNormal: { median?: unknown; sigma?: unknown } }).logNormal
      yield* Validate.positiveDuration(["latency", "logNormal", "median"], ln?.median)
      yield* Validate.nonNegative(["latency", "logNormal", "sigma"], ln?.sigma)
    } else {
      yield* Validate.nonNegativeDuration(["latency"], latency)
    }
    if (!(typeof o.seed === "number" && Number.isFinite(o.seed))) return yield* Effect.fail(Validate.invalid(["seed"], `must be a finite number, got ${String(o.seed)}`))
    yield* Validate.between(["faultRate"], o.faultRate, 0, 1)
    if (!Array.isArray(o.faults)) return yield* Effect.fail(Validate.invalid(["faults"], "must be an array of faults"))
    for (const [i, fault] of o.faults.entries()) yield* checkFault(["faults", String(i)], fault)
    if (o.faultRate > 0 && o.faults.length === 0) return yield* Effect.fail(Validate.invalid(["faults"], "must hold at least one fault when faultRate is above 0"))
    if (!Array.isArray(o.script)) return yield* Effect.fail(Validate.invalid(["script"], `must be an array of faults and "ok"`))
    for (const [i, step] of o.script.entries()) if (step !== "ok") yield* checkFault(["script", String(i)], step)
    if (o.apiKey !== undefined) yield* Validate.apiKey(["apiKey"], o.apiKey, "the mock server's apiKey")
    yield* Validate.boolean(["validate"], o.validate)
    yield* Validate.positiveInt(["journalLimit"], o.journalLimit)
    if (o.rpm !== undefined) yield* Validate.positiveInt(["rpm"], o.rpm)
    if (o.tpm !== undefined) yield* Validate.positiveInt(["tpm"], o.tpm)
    if (typeof o.streaming !== "object" || o.streaming === null) return yield* Effect.fail(Validate.invalid(["streaming"], "must be an object"))
    if (o.streaming.chunkChars !== undefined) yield* Validate.positiveInt(["streaming", "chunkChars"], o.streaming.chunkChars)
    if (o.streaming.interval !== undefined) yield* Validate.nonNegativeDuration(["streaming", "interval"], o.streaming.interval)
  })

/**
 * Starts the server; it closes (and drops open connections) when the scope closes. Fails with a
 * `ConfigError` naming an invalid option (see {@link validateOptions}).
 */
export const make = (options: Partial<Options> = {}): Effect.Effect<Service, MockServerError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    const config: Options = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) }
    const random = Content.mulberry32(config.seed)
    const sampleLatency = Content.latencySampler(config.latency, random)
    let script = [...config.script]
    let journal: Array<JournalEntry> = []
    let seq = 0
    let stats = { requests: 0, byStatus: {} as Record<string, number>, faults: {} as Record<string, number>, hungUp: 0, rateLimited: 0 }
    let limits = Limits.make(config.rpm, config.tpm, Duration.toMillis(config.window))
    const timers = new Set<NodeJS.Timeout>()

    const nextFault = (): Fault | undefined => {
      const scripted = script.shift()
      if (scripted !== undefined) return scripted === "ok" ? undefined : scripted
      if (config.faultRate > 0 && config.faults.length > 0 && random() < config.faultRate) {
        return config.faults[Math.floor(random() * config.faults.length)]
      }
      return undefined
    }

    const send = (entry: JournalEntry, res: Http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
      entry.status = status
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "x-request-id": `req_mock_${entry.seq}`,
        ...headers
      })
      res.end(body)
    }

    const answerFault = (fault: Fault, entry: JournalEntry, req: Http.IncomingMessage, res: Http.ServerResponse, limitHeaders: Record<string, string> = {}) => {
      entry.fault = fault.type
      stats.faults[fault.type] = (stats.faults[fault.type] ?? 0) + 1
      switch (fault.type) {
        case "rate_limit": {
          const headers: Record<string, string> = { ...limitHeaders }
          if (fault.retryAfterSeconds !== undefined) headers["retry-after"] = String(fault.retryAfterSeconds)
          if (fault.retryAfterMillis !== undefined) headers["retry-after-ms"] = String(fault.retryAfterMillis)
          return send(entry, res, 429, errorBody("Rate limit reached for requests (mock). Please try again later.", "requests", null, "rate_limit_exceeded"), headers)
        }
        case "server_error": {
          const status = fault.status ?? 502
          const html = `<html><head><title>${status} Bad Gateway</title></head><body><center><h1>${status}</h1></center><hr><center>mock-proxy</center></body></html>`
          return send(entry, res, status, html, { "content-type": "text/html" })
        }
        case "bad_request":
          return send(entry, res, 400, errorBody("Invalid request (mock fault).", "invalid_request_error", "messages", "invalid_value"))
        case "reset": {
          // Mid-response: the status line and headers go out, then a TCP RST instead of the body.
          entry.status = 200
          stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1
          res.writeHead(200, { "content-type": "application/json", "content-length": 1024 })
          res.flushHeaders()
          return setImmediate(() => req.socket.resetAndDestroy())
        }
        case "hang":
          return
        case "malformed_json":
          return send(entry, res, 200, `{"id":"chatcmpl-mock","object":"chat.completion","choices":[{"index":0,,}`)
        case "truncated_body": {
          const body = JSON.stringify({ id: "chatcmpl-mock-truncated", object: "chat.completion", created: 0, model: "mock", choices: [] })
          entry.status = 200
          stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1
          res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
          res.write(body.slice(0, Math.floor(body.length / 2)))
          // Let the partial body reach the client before closing.
          return setImmediate(() => req.socket.destroy())
        }
      }
    }

    /** A completion as server-sent events, chunk by chunk, with the streaming fault if one is due. */
    const sendStream = (
      entry: JournalEntry,
      req: Http.IncomingMessage,
      res: Http.ServerResponse,
      request: ChatSchema.ChatCompletionRequest,
      completion: ChatSchema.ChatCompletion,
      headers: Record<string, string>,
      fault: Extract<Fault, { type: "stream_stall" | "stream_disconnect" | "stream_error" }> | undefined
    ) => {
      entry.status = 200
      stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "x-request-id": `req_mock_${entry.seq}`, ...headers })
      const chunks = Content.streamChunks(request, completion, config.streaming.chunkChars ?? 8)
      const interval = Duration.toMillis(config.streaming.interval ?? 0)
      const event = (value: unknown) =>
        config.streaming.multiLineData === true
          ? JSON.stringify(value, null, 1).split("\n").map((line) => `data: ${line}\n`).join("") + "\n"
          : `data: ${JSON.stringify(value)}\n\n`
      const keepAlive = config.streaming.keepAlive === true ? ": keep-alive\n\n" : ""
      let i = 0
      const next = () => {
        if (res.destroyed) return
        if (fault !== undefined && i === (fault.afterChunks ?? 2)) {
          if (fault.type === "stream_stall") return
          if (fault.type === "stream_disconnect") return req.socket.destroy()
          res.end(`data: ${JSON.stringify({ error: { message: "The server had an error while processing your request (mock).", type: "server_error", param: null, code: null } })}\n\n`)
          return
        }
        if (i >= chunks.length) {
          res.end("data: [DONE]\n\n")
          return
        }
        res.write(keepAlive + event(chunks[i++]))
        if (interval <= 0) return setImmediate(next)
        const timer = setTimeout(() => {
          timers.delete(timer)
          next()
        }, interval)
        timers.add(timer)
      }
      if (keepAlive !== "") res.write(keepAlive)
      next()
    }

    const answer = (entry: JournalEntry, req: Http.IncomingMessage, res: Http.ServerResponse, body: unknown) => {
      const path = entry.path
      const invalid = (error: ParseResult.ParseError) =>
        send(entry, res, 400, errorBody(`Invalid request body: ${ParseResult.TreeFormatter.formatErrorSync(error)}`, "invalid_request_error", issuePath(error), null))
      /** The rate limits first, then a fault if one is due, else the reply. */
      const answerWith = (reply: unknown, cost: number) => {
        const verdict = limits.take(Date.now(), cost)
        if (verdict.limited !== undefined) {
          stats.rateLimited++
          return send(entry, res, 429, verdict.body!, verdict.headers)
        }
        const fault = nextFault()
        // Streaming faults apply to streamed answers only.
        if (fault !== undefined && !fault.type.startsWith("stream_")) return answerFault(fault, entry, req, res, verdict.headers)
        return send(entry, res, 200, JSON.stringify(reply), verdict.headers)
      }
      if (path === "/v1/chat/completions") {
        const decoded = config.validate ? decodeChatRequest(body) : Either.right(body as ChatSchema.ChatCompletionRequest)
        if (Either.isLeft(decoded)) return invalid(decoded.left)
        const reply = Content.completion(decoded.right, config.jsonContent, entry.seq)
        const usage = reply.usage!
        const allowance = decoded.right.max_completion_tokens ?? decoded.right.max_tokens
        // Like OpenAI: the prompt plus the completion allowance (or, without one, what was produced).
        const cost = usage.prompt_tokens + (allowance === undefined || allowance === null ? usage.completion_tokens : allowance * (decoded.right.n ?? 1))
        if (decoded.right.stream === true) {
          const verdict = limits.take(Date.now(), cost)
          if (verdict.limited !== undefined) {
            stats.rateLimited++
            return send(entry, res, 429, verdict.body!, verdict.headers)
          }
          const fault = nextFault()
          if (fault !== undefined && fault.type.startsWith("stream_")) {
            entry.fault = fault.type
            stats.faults[fault.type] = (stats.faults[fault.type] ?? 0) + 1
            return sendStream(entry, req, res, decoded.right, reply, verdict.headers, fault as Extract<Fault, { type: "stream_stall" | "stream_disconnect" | "stream_error" }>)
          }
          if (fault !== undefined) return answerFault(fault, entry, req, res, verdict.headers)
          return sendStream(entry, req, res, decoded.right, reply, verdict.headers, undefined)
        }
        return answerWith(reply, cost)
      }
      if (path === "/v1/embeddings") {
        const decoded = config.validate ? decodeEmbeddingRequest(body) : Either.right(body as ChatSchema.EmbeddingRequest)
        if (Either.isLeft(decoded)) return invalid(decoded.left)
        const reply = Content.embeddings(decoded.right)
        return answerWith(reply, reply.usage.prompt_tokens)
      }
      return send(entry, res, 404, errorBody(`Unknown request URL: ${req.method} ${path}.`, "invalid_request_error", null, "unknown_url"))
    }

    const resetState = () => {
      journal = []
      stats = { requests: 0, byStatus: {}, faults: {}, hungUp: 0, rateLimited: 0 }
      limits = Limits.make(config.rpm, config.tpm, Duration.toMillis(config.window))
    }

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse, raw: string) => {
      // Control endpoints for a server in another process (benchmarks): outside /v1, never journaled.
      if (req.url === "/_mock/stats" && req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" })
        return res.end(JSON.stringify(stats))
      }
      if (req.url === "/_mock/reset" && req.method === "POST") {
        resetState()
        res.writeHead(204)
        return res.end()
      }
      const { authorization, ...headers } = req.headers
      const path = (req.url ?? "/").split("?")[0] ?? "/"
      let body: unknown = undefined
      let bodyIsJson = raw === ""
      if (raw !== "") {
        try {
          body = JSON.parse(raw)
          bodyIsJson = true
        } catch {
          body = raw
        }
      }
      const entry: JournalEntry = {
        seq: ++seq,
        method: req.method ?? "GET",
        path,
        headers,
        body,
        receivedAtMillis: Date.now(),
        status: undefined,
        fault: undefined,
        hungUp: false
      }
      stats.requests++
      journal.push(entry)
      if (journal.length > config.journalLimit * 2) journal = journal.slice(-config.journalLimit)
      res.on("close", () => {
        if (!res.writableFinished) {
          entry.hungUp = true
          stats.hungUp++
        }
      })

      if (config.apiKey !== undefined && authorization !== `Bearer ${config.apiKey}`) {
        return send(entry, res, 401, errorBody("Incorrect API key provided. You can find your API key at your provider's dashboard.", "invalid_request_error", null, "invalid_api_key"))
      }
      if (req.method === "GET" && path === "/v1/models") {
        return send(entry, res, 200, JSON.stringify(Content.models))
      }
      if (req.method !== "POST") {
        return send(entry, res, 405, errorBody(`Method ${req.method} is not allowed for ${path}.`, "invalid_request_error", null, null))
      }
      if (!bodyIsJson || raw === "") {
        return send(entry, res, 400, errorBody("We could not parse the JSON body of your request.", "invalid_request_error", null, null))
      }
      const delay = sampleLatency()
      if (delay <= 0) return answer(entry, req, res, body)
      const timer = setTimeout(() => {
        timers.delete(timer)
        if (!res.destroyed) answer(entry, req, res, body)
      }, delay)
      timers.add(timer)
    }

    const server = Http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => handle(req, res, chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")))
      req.on("error", () => req.socket.destroy())
    })

    const port = yield* Effect.acquireRelease(
      Effect.async<number, MockServerError>((resume) => {
        const onError = (error: Error) => resume(Effect.fail(new MockServerError({ detail: error.message })))
        server.once("error", onError)
        server.listen(config.port, config.host, () => {
          server.off("error", onError)
          resume(Effect.succeed((server.address() as AddressInfo).port))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const timer of timers) clearTimeout(timer)
          timers.clear()
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )

    const host = config.host.includes(":") ? `[${config.host}]` : config.host
    return MockServer.of({
      url: `http://${host}:${port}/v1`,
      port,
      journal: Effect.sync(() => journal.slice(-config.journalLimit)),
      stats: Effect.sync(() => ({ ...stats, byStatus: { ...stats.byStatus }, faults: { ...stats.faults } })),
      setScript: (next) => Effect.sync(() => { script = [...next] }),
      reset: Effect.sync(resetState)
    })
  })

/** The server as a layer: started when the layer is built, closed with its scope. */
export const layer = (options: Partial<Options> = {}): Layer.Layer<MockServer, MockServerError | ConfigError.ConfigError> =>
  Layer.scoped(MockServer, make(options))
