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
import type * as BatchApiSchema from "../BatchApiSchema.js"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type * as BatchApiMock from "./internal/batchApi.js"
import * as Faults from "./internal/faults.js"
import { handle } from "./internal/routing.js"
import { State } from "./internal/state.js"
import * as Validation from "./internal/validation.js"

/**
 * Response delay before each answer. A duration is fixed; the others draw from the seeded generator.
 *
 * @since 0.1.0
 * @category options
 */
export type Latency =
  | Duration.DurationInput
  | { readonly uniform: readonly [Duration.DurationInput, Duration.DurationInput] }
  | { readonly logNormal: { readonly median: Duration.DurationInput; readonly sigma: number } }

/**
 * A fault the server can answer with instead of a completion.
 *
 * @since 0.1.0
 * @category options
 */
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

/**
 * How streamed answers (`stream: true`) are sent. The time to the first chunk is `latency`.
 *
 * @since 0.1.0
 * @category options
 */
export interface StreamingOptions {
  /** Characters of content per chunk. @default 8 */
  readonly chunkChars?: number
  /**
   * Delay between chunks, kept on average: chunk `i` is sent `i` intervals after the first, so a
   * timer that fires late is made up at the next chunk (none is sent early; the gap after a late one
   * can be shorter than `interval`, the first gap never is). @default 0
   */
  readonly interval?: Duration.DurationInput
  /** Send a `: keep-alive` comment before the first chunk and between chunks. @default false */
  readonly keepAlive?: boolean
  /** Write each chunk's JSON pretty-printed over several `data:` lines. @default false */
  readonly multiLineData?: boolean
}

/**
 * How the assistant content is written when JSON content is on (the defects models produce).
 *
 * @since 0.1.0
 * @category options
 */
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

/**
 * The Batch API's options (`/v1/files`, `/v1/batches`): its time scale (`validating`, `perRequest`,
 * `finalizing`, `completionWindow`), its limits, failing requests and the faults of its endpoints.
 * It runs on the wall clock.
 * @since 0.2.0
 * @category batch api
 */
export type BatchApiOptions = Partial<Omit<BatchApiMock.Options, "now">>

/**
 * A fault the file or batch endpoints answer with: `server_error` (5xx), `rate_limit` (429 with
 * `retry-after`) or `quota` (429 `insufficient_quota`).
 * @since 0.2.0
 * @category batch api
 */
export type BatchApiFault = BatchApiMock.Fault

/**
 * What the Batch API received, one entry per request (`action`: upload, create, retrieve, list,
 * content, delete, cancel, or fault).
 * @since 0.2.0
 * @category batch api
 */
export type BatchApiJournalEntry = BatchApiMock.JournalEntry

/**
 * Server options. Every default is in {@link defaults}.
 *
 * @since 0.1.0
 * @category options
 */
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
  /** The Batch API's time scale, limits and faults; its routes take no latency and no random fault. @default {} (1 s validating, 10 ms per request, 1 s finalizing, 24 h window) */
  readonly batchApi: BatchApiOptions
}

/**
 * The defaults of every option.
 *
 * @since 0.1.0
 * @category options
 */
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
  streaming: {},
  batchApi: {}
}

/**
 * What the server received, one entry per request.
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * Counters since start (or the last `reset`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly requests: number
  readonly byStatus: Readonly<Record<string, number>>
  readonly faults: Readonly<Record<string, number>>
  readonly hungUp: number
  /** 429s sent because a configured `rpm` or `tpm` was exceeded (scripted and random faults are in `faults`). */
  readonly rateLimited: number
}

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
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
  /** Clear the journal and the counters, refill the rate-limit buckets, forget the Batch API's files and batches (also `POST /_mock/reset`). */
  readonly reset: Effect.Effect<void>
  /** The Batch API's state (also `GET /_mock/batch-api`: `{ journal, files, batches }`). */
  readonly batchApi: {
    readonly journal: Effect.Effect<ReadonlyArray<BatchApiJournalEntry>>
    readonly files: Effect.Effect<ReadonlyArray<BatchApiSchema.FileObject>>
    readonly batches: Effect.Effect<ReadonlyArray<BatchApiSchema.Batch>>
    /** Replace the fault scripts of the file and batch endpoints. */
    readonly setFaults: (faults: { readonly files?: ReadonlyArray<BatchApiFault | "ok">; readonly batches?: ReadonlyArray<BatchApiFault | "ok"> }) => Effect.Effect<void>
  }
}

/**
 * The running mock server, as a service: provided by {@link layer}.
 *
 * @since 0.1.0
 * @category tags
 */
export class MockServer extends Context.Tag("effect-shepherd/testing/MockServer")<MockServer, Service>() {}

/**
 * The server could not start (port taken, bad host).
 *
 * @since 0.1.0
 * @category errors
 */
export class MockServerError extends Schema.TaggedError<MockServerError>()("MockServerError", {
  detail: Schema.String
}) {
  override get message(): string {
    return `the mock server could not start: ${this.detail}. Pick another port (0 picks a free one).`
  }
}

/**
 * The fault types `faults` may name.
 * @since 0.2.0
 * @category faults
 */
export const FAULT_TYPES: typeof Faults.FAULT_TYPES = Faults.FAULT_TYPES

/**
 * Checks the server's options: a `ConfigError` naming the bad one (`["rpm"]`, `["faults", "0", "type"]`,
 * `["latency", "uniform"]`): a port from 0 to 65535, a finite `seed`, `faultRate` from 0 to 1, whole
 * limits of at least 1, finite non-negative durations, known fault types, an `apiKey` a header can carry.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions: (options: Partial<Options>) => Effect.Effect<void, ConfigError.ConfigError> = (options) =>
  Validation.validateOptions({ ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Options)

/**
 * Starts the server; it closes (and drops open connections) when the scope closes. Fails with a
 * `ConfigError` naming an invalid option (see {@link validateOptions}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Partial<Options> = {}): Effect.Effect<Service, MockServerError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    const config: Options = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) }
    const state = new State(config)
    const server = Http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => handle(state, req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
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
          for (const timer of state.timers) clearTimeout(timer)
          state.timers.clear()
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )

    const host = config.host.includes(":") ? `[${config.host}]` : config.host
    return MockServer.of({
      url: `http://${host}:${port}/v1`,
      port,
      journal: Effect.sync(() => state.journal.slice(-config.journalLimit)),
      stats: Effect.sync(() => ({ ...state.stats, byStatus: { ...state.stats.byStatus }, faults: { ...state.stats.faults } })),
      setScript: (next) => Effect.sync(() => { state.script = [...next] }),
      reset: Effect.sync(() => state.reset()),
      batchApi: {
        journal: Effect.sync(() => state.batchApi.journal()),
        files: Effect.sync(() => state.batchApi.files()),
        batches: Effect.sync(() => state.batchApi.batches()),
        setFaults: (faults) => Effect.sync(() => state.batchApi.setFaults(faults))
      }
    })
  })

/**
 * The server as a layer: started when the layer is built, closed with its scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Partial<Options> = {}): Layer.Layer<MockServer, MockServerError | ConfigError.ConfigError> =>
  Layer.scoped(MockServer, make(options))
