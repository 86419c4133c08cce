/**
 * The chat-completions client: a service that sends one request and returns a typed completion or a
 * typed `ChatError`, over a connection pool it owns.
 *
 * ```ts
 * const program = Effect.gen(function* () {
 *   const chat = yield* ChatClient.ChatClient
 *   const completion = yield* chat.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "Hi" }] })
 *   console.log(completion.choices[0]?.message.content)
 * })
 * program.pipe(Effect.provide(ChatClient.layerConfig()), NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as ChatError from "./ChatError.js"
import type { LimiterUnavailableError } from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import * as ClientOptions from "./internal/clientOptions.js"
import * as ClientService from "./internal/clientService.js"
import * as Env from "./internal/env.js"
import * as RouterService from "./internal/router/service.js"
import * as RateLimit from "./RateLimit.js"
import * as RetryPolicy from "./RetryPolicy.js"
import type * as Router from "./Router.js"

/**
 * The OpenAI API; the only base URL for which an API key is required.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_BASE_URL: string = Env.DEFAULT_BASE_URL

/**
 * Client options. Every default is in {@link defaults}; `layerConfig` reads the environment variable named on each.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Bearer token. Required for the default OpenAI base URL, optional elsewhere (vLLM often needs none). Env `OPENAI_API_KEY`. */
  readonly apiKey: Redacted.Redacted<string> | undefined
  /** Base URL, usually ending in `/v1`. @default "https://api.openai.com/v1" Env `OPENAI_BASE_URL`. */
  readonly baseUrl: string
  /** Most TCP connections kept to the origin; requests beyond it queue in the pool. @default 256 Env `SHEPHERD_CONNECTIONS`. */
  readonly connections: number
  /** How long an idle keep-alive connection is kept. @default "30 seconds" */
  readonly keepAliveTimeout: Duration.DurationInput
  /** Deadline for establishing a connection. @default "10 seconds" Env `SHEPHERD_CONNECT_TIMEOUT`. */
  readonly connectTimeout: Duration.DurationInput
  /** Deadline for one attempt: headers and the whole body (for `stream`: headers and the first event; comments do not count). @default "60 seconds" Env `SHEPHERD_TIMEOUT`. */
  readonly timeout: Duration.DurationInput
  /** For `stream`: the longest gap allowed between two pieces of the answer. @default "30 seconds" Env `SHEPHERD_IDLE_TIMEOUT`. */
  readonly idleTimeout: Duration.DurationInput
  /**
   * The longest answer accepted, in bytes as they arrive (a whole stream included): past it the
   * request is aborted with `TransportError{code: "RESPONSE_TOO_LARGE"}`, final (not retried). A larger
   * `content-length` is refused before the body is read.
   * @since 0.2.0
   * @default 33554432 (32 MiB) Env `SHEPHERD_MAX_RESPONSE_BYTES`.
   */
  readonly maxResponseBytes: number
  /**
   * For `stream`: the largest single event (its `data:` lines together, counted in decoded characters,
   * one per byte for ASCII): past it `TransportError{code: "EVENT_TOO_LARGE"}`, final.
   * @since 0.2.0
   * @default 4194304 (4 MiB)
   */
  readonly maxEventBytes: number
  /** Extra headers sent with every request (e.g. `OpenAI-Organization`). @default {} */
  readonly headers: Readonly<Record<string, string>>
  /**
   * How `layer` sends: `"undici"` calls its Agent directly; `"platform"` goes through
   * `@effect/platform`'s `HttpClient` over the same Agent (about twice the client CPU per request,
   * bench/throughput). `layerWithoutHttpClient` always uses the `HttpClient` it is given. @default "undici"
   */
  readonly transport: "undici" | "platform"
  /**
   * A span per call (`shepherd.chat`, `shepherd.embeddings`, `shepherd.stream`) with the model, the
   * attempts, the status and the request id (never the key), through Effect's tracer: wire
   * `@effect/opentelemetry` to export them. `false` skips them (bench/throughput measures the cost).
   * @default true Env `SHEPHERD_TRACING` (`false` turns it off).
   */
  readonly tracing: boolean
  /** Retries and the total deadline; see `RetryPolicy.Options` for each field's default. Env `SHEPHERD_MAX_RETRIES`, `SHEPHERD_TOTAL_TIMEOUT`. @default RetryPolicy.defaults */
  readonly retry: Partial<RetryPolicy.Options>
  /**
   * Client-side limits (rpm, tpm, maxInFlight, adaptive); see `RateLimit.Options`. Used when no
   * `RateLimit` service is in the context (a shared one, e.g. Redis-backed, wins).
   * @default { adaptive: true } (no fixed limits; a 429's delay and the server's headers still pause everyone)
   */
  readonly limits: RateLimit.Options
}

/**
 * Options as given: any may be left out (or `undefined`) to take its default.
 *
 * @since 0.1.0
 * @category options
 */
export type Overrides = { readonly [K in keyof Options]?: Options[K] | undefined }

/**
 * The defaults of every option.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults: Options = {
  apiKey: undefined,
  baseUrl: DEFAULT_BASE_URL,
  connections: 256,
  keepAliveTimeout: "30 seconds",
  connectTimeout: "10 seconds",
  timeout: "60 seconds",
  idleTimeout: "30 seconds",
  maxResponseBytes: 32 * 1024 * 1024,
  maxEventBytes: 4 * 1024 * 1024,
  headers: {},
  transport: "undici",
  tracing: true,
  retry: {},
  limits: {}
}

/**
 * What the transport saw of a call, whatever the endpoint: the metadata of `ChatResult` and
 * `EmbeddingResult`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Metadata {
  /** The provider's `x-request-id`, to quote in support requests. */
  readonly requestId: string | undefined
  readonly status: number
  /** Attempts made, the first included. */
  readonly attempts: number
  /** From sending the first attempt to the decoded answer, in milliseconds. */
  readonly latencyMillis: number
  /** Response headers, lower-cased. */
  readonly headers: Readonly<Record<string, string>>
  /**
   * The `ResponseCache` answered: nothing was sent or paid for (`attempts` is 0, `headers` empty).
   * @since 0.2.0
   */
  readonly cached?: boolean | undefined
  /**
   * Through `layerRouter`: the deployment and model that answered, and every try on the way
   * (`attempts` then counts them all). Undefined for a client of one deployment.
   * @since 0.2.0
   */
  readonly route?: Router.Route | undefined
}

/**
 * A completion with what the transport saw.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChatResult extends Metadata {
  readonly completion: ChatSchema.ChatCompletion
}

/**
 * Embeddings with what the transport saw.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddingResult extends Metadata {
  readonly embeddings: ChatSchema.EmbeddingResponse
}

/**
 * The client service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Sends one chat-completion request (`stream` is forced off) and decodes the answer. */
  readonly create: (request: ChatSchema.ChatCompletionRequest) => Effect.Effect<ChatSchema.ChatCompletion, ChatError.ChatError>
  /** As `create`, with the request id, status, attempts, latency and headers. */
  readonly createWithMetadata: (request: ChatSchema.ChatCompletionRequest) => Effect.Effect<ChatResult, ChatError.ChatError>
  /**
   * Streams the answer (`stream: true`) as its chunks arrive. Retries (with the same policy as
   * `create`) happen only until the first chunk; after it, a failure ends the stream with its typed
   * error. `timeout` runs until the first event (comments do not count); then a gap longer than
   * `idleTimeout` between pieces ends it with `TimeoutError{phase: "idle"}`; `retry.totalTimeout`
   * bounds the whole stream (`TimeoutError{phase: "total"}`). Past `maxResponseBytes` or
   * `maxEventBytes` it ends with a final `TransportError`. An error event sent mid-stream ends it
   * with an `ApiError`. Interrupting the stream closes the connection. `ChatSchema.accumulate`
   * folds the chunks into the completion.
   */
  readonly stream: (request: ChatSchema.ChatCompletionRequest) => Stream.Stream<ChatSchema.ChatCompletionChunk, ChatError.ChatError>
  /**
   * Streams the answer as `stream` does and runs `f` on each chunk as it arrives, in order: what
   * `Stream.runForEach(stream(request), f)` does, with the same retries, deadlines, limits, budget,
   * metrics and span, at a lower CPU cost per chunk and per stream (no `Stream`: Effect's `Stream.run`
   * forks a fiber per run and passes each chunk through three more channels; docs/benchmarks.md).
   * A failure of `f` ends the stream and closes the connection; so does an interruption.
   * @since 0.2.0
   */
  readonly streamForEach: <B, E, R>(
    request: ChatSchema.ChatCompletionRequest,
    f: (chunk: ChatSchema.ChatCompletionChunk) => Effect.Effect<B, E, R>
  ) => Effect.Effect<void, ChatError.ChatError | E, R>
  /**
   * Sends one embeddings request (`POST {baseUrl}/embeddings`) through the same limits, budget,
   * retries and deadlines as chat calls.
   */
  readonly embed: (request: ChatSchema.EmbeddingRequest) => Effect.Effect<ChatSchema.EmbeddingResponse, ChatError.ChatError>
  /** As `embed`, with the request id, status, attempts, latency and headers. */
  readonly embedWithMetadata: (request: ChatSchema.EmbeddingRequest) => Effect.Effect<EmbeddingResult, ChatError.ChatError>
  /** The resolved options, the key still `Redacted`. */
  readonly options: Options
}

/**
 * Per-call retry options, set by {@link withRetry}; they win over the client's. The same FiberRef as
 * `RetryPolicy.currentRetry`.
 *
 * @since 0.1.0
 * @category overrides
 */
export const currentRetry: FiberRef.FiberRef<Partial<RetryPolicy.Options> | undefined> = RetryPolicy.currentRetry

/**
 * Runs an effect with other retry options for the chat calls it makes (they win over the client's),
 * data-first or data-last: `ChatClient.withRetry({ maxRetries: 0 })(chat.create(request))`. The same
 * function as `RetryPolicy.withRetry`, which says what an invalid option does.
 *
 * @since 0.1.0
 * @category overrides
 */
export const withRetry: typeof RetryPolicy.withRetry = RetryPolicy.withRetry

/**
 * The `ChatClient` service: sends chat and embeddings calls through the pipeline of
 * docs/architecture.md (observe, budget, retry, limit, exchange, classify, stream decoding).
 *
 * @since 0.1.0
 * @category tags
 */
export class ChatClient extends Context.Tag("effect-shepherd/ChatClient")<ChatClient, Service>() {}

/**
 * Checks options and fills in defaults; fails with a `ConfigError` that names the bad option by its
 * path (`["timeout"]`, `["retry", "factor"]`, `["limits", "rpm"]`, `["headers", "x-team"]`). An API key
 * that an HTTP header cannot carry (a pasted line break, whitespace, a character beyond ASCII) fails
 * with `["apiKey"]`, and its message never contains the key.
 *
 * @since 0.1.0
 * @category validation
 */
export const resolveOptions: (options: Overrides) => Effect.Effect<Options, ConfigError.ConfigError> = (options) =>
  ClientOptions.resolve(options, defaults)

/**
 * Builds the service over whatever `HttpClient` the context has: a stub in tests, or your own client
 * with middleware. The client must honour the request's `AbortSignal` (the platform's clients do):
 * deadlines and interruption abort through it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Overrides
): Effect.Effect<Service, ConfigError.ConfigError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.flatMap(Effect.zip(resolveOptions(options), HttpClient.HttpClient), ([resolved, http]) =>
    ClientService.overHttpClient(resolved, http))

/**
 * The service over an `HttpClient` you provide (your own middleware, proxy or test stub).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithoutHttpClient = (
  options: Overrides = {}
): Layer.Layer<ChatClient, ConfigError.ConfigError, HttpClient.HttpClient> => Layer.scoped(ChatClient, make(options))

/**
 * The client over its own undici `Agent` (keep-alive, at most `connections` sockets, connect
 * timeout), destroyed when the layer's scope closes: open sockets close and requests in flight are
 * aborted. With `transport: "platform"` the Agent is used through `@effect/platform-node`'s
 * `NodeHttpClient.layerUndiciWithoutDispatcher` instead of directly.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Overrides = {}): Layer.Layer<ChatClient, ConfigError.ConfigError> =>
  Layer.scoped(
    ChatClient,
    Effect.flatMap(resolveOptions(options), ClientService.makeOwnPool)
  )

/**
 * The same `ChatClient` service over many deployments (keys, endpoints, models): each request goes to
 * a deployment that serves its model and would start it soonest (by its limits, the server's pace and
 * its cooldown), and falls back to the next deployment, then the next model, on the causes
 * `fallbackOn` names. Each deployment has its own undici pool, limiter (memory, or Redis with
 * `redis`), retry policy, adaptive pace and circuit breaker; all are closed with the layer. A
 * `RateLimit` in the context is not used (each deployment has its own); a `Budget` is, holding each
 * try at the price of the model tried. Fails to build with a `ConfigError` naming the option's path
 * (`["deployments", "1", "limits", "rpm"]`). See `Router.Options` and docs/routing.md.
 *
 * @since 0.2.0
 * @category layers
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { ChatClient } from "effect-shepherd"
 *
 * const client = ChatClient.layerRouter({
 *   deployments: [
 *     { name: "openai-a", baseUrl: "https://api.openai.com/v1", apiKey: Redacted.make("sk-a"), models: ["gpt-4.1-mini"], limits: { rpm: 500 } },
 *     { name: "relay", baseUrl: "https://relay.example/v1", apiKey: Redacted.make("sk-r"), models: { "gpt-4.1-mini": "openai/gpt-4.1-mini" }, limits: { rpm: 300 } }
 *   ]
 * })
 * ```
 */
export const layerRouter = (options: Router.Options): Layer.Layer<ChatClient, ConfigError.ConfigError | LimiterUnavailableError> =>
  Layer.scoped(ChatClient, RouterService.make(options, resolveOptions))

/**
 * Reads the options from the environment (see {@link Options}); `overrides` win over the environment.
 *
 * @since 0.1.0
 * @category options
 */
export const optionsConfig: Config.Config<Overrides> = ClientOptions.fromEnv

/**
 * The client configured from `OPENAI_API_KEY`, `OPENAI_BASE_URL` and `SHEPHERD_*`, over its own pool.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (overrides: Overrides = {}): Layer.Layer<ChatClient, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(optionsConfig, (env) =>
      layer({ ...ClientOptions.withoutUndefined(env), ...ClientOptions.withoutUndefined(overrides), retry: { ...env.retry, ...overrides.retry } }))
  )
