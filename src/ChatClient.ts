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
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Agent } from "undici"
import * as ChatError from "./ChatError.js"
import { TimeoutError } from "./ChatError.js"
import * as ChatSchema from "./ChatSchema.js"
import * as Classify from "./internal/classify.js"
import * as Deadlines from "./internal/deadlines.js"
import * as Transport from "./internal/transport.js"
import * as Tokens from "./internal/tokens.js"
import * as Budget from "./Budget.js"
import * as Metrics from "./Metrics.js"
import * as Pricing from "./Pricing.js"
import * as RateLimit from "./RateLimit.js"
import * as RetryPolicy from "./RetryPolicy.js"
import * as Sse from "./Sse.js"
import * as Env from "./internal/env.js"
import * as Validate from "./internal/validate.js"
import { VERSION } from "./internal/version.js"

/** The OpenAI API; the only base URL for which an API key is required. */
export const DEFAULT_BASE_URL: string = Env.DEFAULT_BASE_URL

/** Client options. Every default is in {@link defaults}; `layerConfig` reads the environment variable named on each. */
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

/** Options as given: any may be left out (or `undefined`) to take its default. */
export type Overrides = { readonly [K in keyof Options]?: Options[K] | undefined }

/** The defaults of every option. */
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

/** A completion with what the transport saw. */
export interface ChatResult {
  readonly completion: ChatSchema.ChatCompletion
  /** The provider's `x-request-id`, to quote in support requests. */
  readonly requestId: string | undefined
  readonly status: number
  /** Attempts made, the first included. */
  readonly attempts: number
  /** From sending the first attempt to the decoded completion, in milliseconds. */
  readonly latencyMillis: number
  /** Response headers, lower-cased. */
  readonly headers: Readonly<Record<string, string>>
}

/** Embeddings with what the transport saw. */
export interface EmbeddingResult {
  readonly embeddings: ChatSchema.EmbeddingResponse
  /** The provider's `x-request-id`. */
  readonly requestId: string | undefined
  readonly status: number
  /** Attempts made, the first included. */
  readonly attempts: number
  /** From sending the first attempt to the decoded response, in milliseconds. */
  readonly latencyMillis: number
  /** Response headers, lower-cased. */
  readonly headers: Readonly<Record<string, string>>
}

/** The client service. */
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
   * Sends one embeddings request (`POST {baseUrl}/embeddings`) through the same limits, budget,
   * retries and deadlines as chat calls.
   */
  readonly embed: (request: ChatSchema.EmbeddingRequest) => Effect.Effect<ChatSchema.EmbeddingResponse, ChatError.ChatError>
  /** As `embed`, with the request id, status, attempts, latency and headers. */
  readonly embedWithMetadata: (request: ChatSchema.EmbeddingRequest) => Effect.Effect<EmbeddingResult, ChatError.ChatError>
  /** The resolved options, the key still `Redacted`. */
  readonly options: Options
}

/** What one call produced, whatever the endpoint. */
interface Received<A> {
  readonly value: A
  readonly requestId: string | undefined
  readonly status: number
  readonly attempts: number
  readonly latencyMillis: number
  readonly headers: Readonly<Record<string, string>>
}

/** An endpoint: how to send to it, how to read its answer, how many tokens an answer used. */
interface Endpoint<A> {
  readonly name: "chat" | "embeddings"
  readonly send: Transport.Send
  readonly classify: (
    received: Classify.Received,
    scrub: Classify.Scrub
  ) => Either.Either<A, ChatError.RateLimitError | ChatError.ApiError | ChatError.ResponseDecodeError>
  readonly usedTokens: (value: A) => number | undefined
  readonly usage: (value: A) => { readonly prompt_tokens: number; readonly completion_tokens: number } | undefined
}

/** Per-call retry options, set by {@link withRetry}; they win over the client's. */
export const currentRetry: FiberRef.FiberRef<Partial<RetryPolicy.Options> | undefined> = FiberRef.unsafeMake<
  Partial<RetryPolicy.Options> | undefined
>(undefined)

/**
 * Runs `effect` with other retry options for the chat calls it makes (they win over the client's):
 * `ChatClient.withRetry({ maxRetries: 0 })(chat.create(request))`. Options written in code, so an
 * invalid one is a programming error: `effect` does not run, and the fiber dies with an `Error`
 * naming the option (`retry.maxRetries ...`); check them with `RetryPolicy.validateOptions` first
 * for a typed `ConfigError`.
 */
export const withRetry = (options: Partial<RetryPolicy.Options>) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.zipRight(
    Effect.orDieWith(RetryPolicy.validateOptions(options, ["retry"]), (error) => new Error(`ChatClient.withRetry: ${error.message}`)),
    Effect.flatMap(FiberRef.get(currentRetry), (outer) => Effect.locally(effect, currentRetry, { ...outer, ...options }))
  )

/** The `ChatClient` service tag. */
export class ChatClient extends Context.Tag("effect-shepherd/ChatClient")<ChatClient, Service>() {}

/**
 * Checks options and fills in defaults; fails with a `ConfigError` that names the bad option by its
 * path (`["timeout"]`, `["retry", "factor"]`, `["limits", "rpm"]`, `["headers", "x-team"]`). An API key
 * that an HTTP header cannot carry (a pasted line break, whitespace, a character beyond ASCII) fails
 * with `["apiKey"]`, and its message never contains the key.
 */
export const resolveOptions = (options: Overrides): Effect.Effect<Options, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const resolved: Options = { ...defaults, ...withoutUndefined(options) }
    const url = yield* Validate.url(["baseUrl"], resolved.baseUrl, ["http:", "https:"], DEFAULT_BASE_URL)
    if (resolved.apiKey === undefined && url.hostname === "api.openai.com") {
      return yield* Effect.fail(
        ConfigError.MissingData(
          ["OPENAI_API_KEY"],
          "an API key is required for api.openai.com: set OPENAI_API_KEY, or set OPENAI_BASE_URL to a server that needs none"
        )
      )
    }
    if (resolved.apiKey !== undefined) {
      if (!Redacted.isRedacted(resolved.apiKey)) {
        return yield* Effect.fail(Validate.invalid(["apiKey"], "must be a Redacted string: pass Redacted.make(key)"))
      }
      const key: unknown = Redacted.value(resolved.apiKey)
      if (typeof key !== "string") return yield* Effect.fail(Validate.invalid(["apiKey"], "must hold a string"))
      yield* Validate.apiKey(["apiKey"], key, "OPENAI_API_KEY when read from the environment")
    }
    yield* Validate.positiveInt(["connections"], resolved.connections)
    yield* Validate.positiveDuration(["keepAliveTimeout"], resolved.keepAliveTimeout)
    yield* Validate.positiveDuration(["connectTimeout"], resolved.connectTimeout)
    yield* Validate.positiveDuration(["timeout"], resolved.timeout)
    yield* Validate.positiveDuration(["idleTimeout"], resolved.idleTimeout)
    yield* Validate.positiveInt(["maxResponseBytes"], resolved.maxResponseBytes)
    yield* Validate.positiveInt(["maxEventBytes"], resolved.maxEventBytes)
    if (typeof resolved.headers !== "object" || resolved.headers === null) {
      return yield* Effect.fail(Validate.invalid(["headers"], "must be an object of header names to values"))
    }
    for (const [name, value] of Object.entries(resolved.headers)) {
      yield* Validate.headerName(["headers", name], name)
      yield* Validate.headerValue(["headers", name], value)
    }
    yield* Validate.oneOf(["transport"], resolved.transport, ["undici", "platform"] as const)
    yield* Validate.boolean(["tracing"], resolved.tracing)
    yield* RetryPolicy.validateOptions(resolved.retry, ["retry"])
    yield* RateLimit.validateOptions(resolved.limits, ["limits"])
    return resolved
  })

const withoutUndefined = (options: Overrides): Partial<Options> =>
  Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<Options>

/** Builds the service from resolved options and a way to send. */
const makeWith = (
  resolved: Options,
  transport: (settings: Transport.Settings) => Transport.Send,
  openStream: (settings: Transport.Settings) => Transport.Open
): Effect.Effect<Service, ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const deadlines = yield* Deadlines.make
    const budget = yield* Effect.serviceOption(Budget.Budget)
    const shared = yield* Effect.serviceOption(RateLimit.RateLimit)
    const limiter = Option.isSome(shared) ? shared.value : yield* RateLimit.make(resolved.limits)
    const secret = resolved.apiKey === undefined ? undefined : Redacted.value(resolved.apiKey)
    const scrub = Classify.makeScrub(secret)
    const base = resolved.baseUrl.replace(/\/+$/, "")
    const settingsFor = (path: string): Transport.Settings => ({
      url: new URL(base + path),
      headers: {
        ...resolved.headers,
        "user-agent": `effect-shepherd/${VERSION}`,
        accept: "application/json",
        ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` })
      },
      connectTimeoutMillis: Duration.toMillis(resolved.connectTimeout),
      maxResponseBytes: resolved.maxResponseBytes,
      deadlines,
      scrub
    })
    const chatEndpoint: Endpoint<ChatSchema.ChatCompletion> = {
      name: "chat",
      usage: (completion) => completion.usage ?? undefined,
      send: transport(settingsFor("/chat/completions")),
      classify: Classify.classify,
      usedTokens: (completion) => completion.usage?.total_tokens
    }
    const embeddingsEndpoint: Endpoint<ChatSchema.EmbeddingResponse> = {
      name: "embeddings",
      usage: (response) => ({ prompt_tokens: response.usage.prompt_tokens, completion_tokens: 0 }),
      send: transport(settingsFor("/embeddings")),
      classify: Classify.classifyWith(Classify.decodeEmbeddings),
      usedTokens: (response) => response.usage.total_tokens
    }

    const timeoutMillis = Duration.toMillis(resolved.timeout)
    const basePolicy = RetryPolicy.resolve(resolved.retry)

    /** One attempt: send, then classify the answer (a 2xx is decoded, any other status typed). */
    const exchange = <A>(endpoint: Endpoint<A>, body: string, attempts: number, attemptTimeoutMillis: number, start: number): Effect.Effect<Received<A>, ChatError.ChatError> =>
      Effect.flatMap(endpoint.send(body, attempts, attemptTimeoutMillis), ({ headers, status, text, cut }) => {
        const now = clock.unsafeCurrentTimeMillis()
        const classified = endpoint.classify({ status, headers, body: text, nowMillis: now, attempts }, scrub)
        // A body that broke off counts only when it is a whole answer: a 2xx that decodes.
        return Either.isLeft(classified)
          ? Effect.fail(cut ?? classified.left)
          : Effect.succeed<Received<A>>({
            value: classified.right,
            requestId: headers["x-request-id"],
            status,
            attempts,
            latencyMillis: now - start,
            headers
          })
      })

    /**
     * What an attempt's end tells the limiter (the tokens used when known, the server's counters, a
     * 429's delay), counted in the metrics. For every endpoint, streams included.
     */
    const attemptOutcome = <A extends { readonly headers: Readonly<Record<string, string>> }>(
      usedTokens: (value: A) => number | undefined
    ) =>
    (exit: Exit.Exit<A, ChatError.ChatError>): RateLimit.Outcome => {
      Metrics.attempts.unsafeUpdate(1, [])
      if (Exit.isSuccess(exit)) return { usedTokens: usedTokens(exit.value), headers: exit.value.headers }
      const error = Cause.failureOption(exit.cause)
      if (error._tag === "Some" && error.value._tag === "RateLimitError") {
        Metrics.rateLimited.unsafeUpdate(1, [])
        return { retryAfterMillis: error.value.retryAfterMillis, rateLimited: true }
      }
      return {}
    }
    const outcome = <A>(endpoint: Endpoint<A>) => attemptOutcome((received: Received<A>) => endpoint.usedTokens(received.value))
    /** A streamed answer's tokens are known only at its end: the estimate stays. */
    const streamOutcome = attemptOutcome(() => undefined)

    /** What a failed call settles in the budget: nothing when the server refused it, else its hold (it may have been billed). */
    const failedCost = (reservation: Budget.Reservation, cause: Cause.Cause<unknown>): Option.Option<Pricing.MicroUsd> =>
      Option.match(Cause.failureOption(cause), {
        onNone: () => Option.some(reservation.amount),
        onSome: (error) => (ChatError.isRefusal(error) ? Option.none() : Option.some(reservation.amount))
      })

    /** The prompt tokens (counted once, and only when a limit or a budget needs them: about 5 us per message) and the limiter's tokens. */
    const tokensOf = (prompt: () => number, allowance: number) => {
      const countTokens = limiter.countsTokens()
      const promptTokens = countTokens || Option.isSome(budget) ? prompt() : 0
      return { promptTokens, tokens: countTokens ? promptTokens + allowance : 0 }
    }

    /**
     * Attempts until one succeeds, the policy stops, or the total deadline would pass. Every attempt,
     * retries included, is admitted by the rate limiter within `bounds` (the deadline, and
     * `maxRetryAfter` for its pauses). Each attempt's timeout, read with `attemptTimeout()` when it is
     * sent, is cut to the time left, so the deadline needs no timer of its own; a wait that would end
     * past it is not started.
     */
    const withRetries = <A>(
      attempt: (attempts: number, attemptTimeout: () => number, start: number, bounds: RateLimit.Bounds) => Effect.Effect<A, ChatError.ChatError>,
      policy: RetryPolicy.Resolved
    ): Effect.Effect<A, ChatError.ChatError> =>
      Effect.suspend(() => {
        const start = clock.unsafeCurrentTimeMillis()
        const deadline = start + policy.totalTimeoutMillis
        const total = (attempts: number) => new TimeoutError({ phase: "total", timeoutMillis: policy.totalTimeoutMillis, attempts })
        const attemptTimeout = () => Math.max(1, Math.min(timeoutMillis, deadline - clock.unsafeCurrentTimeMillis()))
        const loop = (attempts: number): Effect.Effect<A, ChatError.ChatError> => {
          const left = deadline - clock.unsafeCurrentTimeMillis()
          if (left <= 0) return Effect.fail(total(attempts - 1))
          const bounds: RateLimit.Bounds = { deadline, timeoutMillis: policy.totalTimeoutMillis, maxWaitMillis: policy.maxRetryAfterMillis, attempts: attempts - 1 }
          return Effect.catchAll(attempt(attempts, attemptTimeout, start, bounds), (error) => {
            // An attempt cut to the time left that timed out ran into the total deadline.
            if (error._tag === "TimeoutError" && error.phase === "attempt" && clock.unsafeCurrentTimeMillis() >= deadline) return Effect.fail(total(attempts))
            return Effect.flatMap(Random.next, (random) => {
              const decision = RetryPolicy.decide(policy, error, attempts, random)
              if (decision._tag === "Stop") return Effect.fail(error)
              if (clock.unsafeCurrentTimeMillis() + decision.delayMillis >= deadline) return Effect.fail(total(attempts))
              return Effect.zipRight(Effect.sleep(decision.delayMillis), loop(attempts + 1))
            })
          })
        }
        return loop(1)
      })

    /** The retry policy in force: the client's, or the one `withRetry` set for this fiber. */
    const currentPolicy = FiberRef.getWith(currentRetry, (override) =>
      Effect.succeed(override === undefined ? basePolicy : RetryPolicy.resolve({ ...resolved.retry, ...override })))

    /**
     * One call with its retries, under the budget when there is one: hold the worst case before
     * sending, then count what the call really cost. A call never sent (every attempt refused by
     * the limiter, e.g. shared limits out of reach, or interrupted while waiting) or refused by the
     * server (429, other statuses) cost nothing; one that failed in transit may have: it keeps its hold.
     */
    const metricPrices = Option.match(budget, { onNone: () => Pricing.defaultTable, onSome: (b) => b.prices })
    /** Updates the metrics for a call that ended. */
    const record = (
      endpoint: "chat" | "embeddings" | "stream",
      model: string,
      startMillis: number,
      exit: Exit.Exit<unknown, ChatError.ChatError>,
      attempts: number,
      usage: { readonly prompt_tokens: number; readonly completion_tokens: number } | undefined
    ) => {
      const outcome = Exit.isSuccess(exit)
        ? "success"
        : Option.match(Cause.failureOption(exit.cause), { onNone: () => "interrupted", onSome: (error) => error._tag })
      Metrics.tagged(Metrics.requests, "model", model, "endpoint", endpoint, "outcome", outcome).unsafeUpdate(1, [])
      Metrics.tagged(Metrics.latency, "endpoint", endpoint).unsafeUpdate(clock.unsafeCurrentTimeMillis() - startMillis, [])
      if (attempts > 1) Metrics.retries.unsafeUpdate(attempts - 1, [])
      if (usage !== undefined) {
        Metrics.tagged(Metrics.tokens, "model", model, "kind", "prompt").unsafeUpdate(usage.prompt_tokens, [])
        Metrics.tagged(Metrics.tokens, "model", model, "kind", "completion").unsafeUpdate(usage.completion_tokens, [])
        const cost = Pricing.cost(model, usage, metricPrices)
        if (Option.isSome(cost)) Metrics.tagged(Metrics.costMicroUsd, "model", model).unsafeUpdate(cost.value, [])
      }
    }

    /** The attempts a failure reports (0 when it was refused before sending). */
    const attemptsOf = (exit: Exit.Exit<unknown, ChatError.ChatError>): number =>
      Option.match(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none(), {
        onNone: () => 0,
        onSome: (error) => ("attempts" in error ? error.attempts : 0)
      })

    /** `effect` in a span named `shepherd.<name>` when tracing is on; `annotate` adds what the end tells. */
    const traced = <A, R>(
      name: string,
      model: string,
      effect: Effect.Effect<A, ChatError.ChatError, R>,
      annotate: (a: A) => Record<string, unknown>
    ): Effect.Effect<A, ChatError.ChatError, R> =>
      !resolved.tracing
        ? effect
        : effect.pipe(
          Effect.tap((a) => Effect.annotateCurrentSpan(annotate(a))),
          Effect.tapError((error) =>
            Effect.annotateCurrentSpan({
              "shepherd.error": error._tag,
              ...("attempts" in error ? { "shepherd.attempts": error.attempts } : {}),
              ...("status" in error && error.status !== undefined ? { "http.response.status_code": error.status } : {}),
              ...("requestId" in error && error.requestId !== undefined ? { "shepherd.request_id": error.requestId } : {})
            })),
          // No stack capture: a stack trace per call cost more than the span itself (bench/throughput).
          Effect.withSpan(`shepherd.${name}`, { kind: "client", attributes: { "shepherd.model": model }, captureStackTrace: false })
        )

    const call = <A>(
      endpoint: Endpoint<A>,
      model: string,
      body: string,
      prompt: () => number,
      allowance: number,
      costOf: (value: A, prices: Pricing.PriceTable) => Option.Option<Pricing.MicroUsd>
    ): Effect.Effect<Received<A>, ChatError.ChatError> => {
      const { promptTokens, tokens } = tokensOf(prompt, allowance)
      const onEnd = outcome(endpoint)
      /** `sent()` is called as an attempt starts: a call whose attempts were all refused unsent costs nothing. */
      const run = (sent: () => void) =>
        Effect.flatMap(currentPolicy, (policy) =>
          withRetries((attempts, attemptTimeout, start, bounds) =>
            limiter.withPermit(
              tokens,
              Effect.suspend(() => {
                sent()
                return exchange(endpoint, body, attempts, attemptTimeout(), start)
              }),
              onEnd,
              bounds
            ), policy))
      const budgeted = Option.isNone(budget) ? run(() => undefined) : Effect.flatMap(budget.value.reserve(model, promptTokens, allowance), (reservation) => {
        let sent = false
        return Effect.onExit(run(() => { sent = true }), (exit) =>
          budget.value.settle(
            reservation,
            Exit.isSuccess(exit)
              ? Option.orElse(costOf(exit.value.value, budget.value.prices), () => Option.some(reservation.amount))
              : sent ? failedCost(reservation, exit.cause) : Option.none()
          ))
      })
      return Effect.suspend(() => {
        const start = clock.unsafeCurrentTimeMillis()
        const observed = Effect.onExit(budgeted, (exit) =>
          Effect.sync(() =>
            record(endpoint.name, model, start, exit, Exit.isSuccess(exit) ? exit.value.attempts : attemptsOf(exit), Exit.isSuccess(exit) ? endpoint.usage(exit.value.value) : undefined)
          ))
        return traced(endpoint.name, model, observed, (r) => ({
          "shepherd.attempts": r.attempts,
          "http.response.status_code": r.status,
          ...(r.requestId === undefined ? {} : { "shepherd.request_id": r.requestId })
        }))
      })
    }

    const createWithMetadata = (request: ChatSchema.ChatCompletionRequest): Effect.Effect<ChatResult, ChatError.ChatError> =>
      Effect.map(
        call(
          chatEndpoint,
          request.model,
          JSON.stringify(request.stream === true ? { ...request, stream: undefined, stream_options: undefined } : request),
          () => Tokens.promptTokens(request.messages),
          Tokens.completionAllowance(request),
          (completion, prices) =>
            Option.flatMap(Option.fromNullable(completion.usage), (usage) => Pricing.cost(request.model, usage, prices))
        ),
        ({ value, ...rest }): ChatResult => ({ completion: value, ...rest })
      )

    const embedWithMetadata = (request: ChatSchema.EmbeddingRequest): Effect.Effect<EmbeddingResult, ChatError.ChatError> =>
      Effect.map(
        call(
          embeddingsEndpoint,
          request.model,
          JSON.stringify(request),
          () => Tokens.embeddingInputTokens(request.input),
          0,
          (response, prices) => Pricing.cost(request.model, { prompt_tokens: response.usage.prompt_tokens, completion_tokens: 0 }, prices)
        ),
        ({ value, ...rest }): EmbeddingResult => ({ embeddings: value, ...rest })
      )

    const openChat = openStream(settingsFor("/chat/completions"))
    const idleMillis = Duration.toMillis(resolved.idleTimeout)
    const maxEventBytes = resolved.maxEventBytes
    const decodeErrorEvent = Schema.decodeUnknownEither(ChatSchema.ErrorResponse, { onExcessProperty: "ignore" })
    const isChunk = Schema.is(ChatSchema.ChatCompletionChunk as Schema.Schema<ChatSchema.ChatCompletionChunk, ChatSchema.ChatCompletionChunk>)

    /**
     * One streaming attempt: open, check the status, and read up to the first event. The attempt's
     * deadline runs until that event (keep-alive comments do not stop it); the call's total deadline
     * (`totalAt`, on the client's clock) bounds the whole stream.
     */
    const openAttempt = (body: string, attempts: number, attemptTimeoutMillis: number, totalAt: number, totalTimeoutMillis: number) =>
      Effect.flatMap(Scope.make(), (scope) =>
        Effect.gen(function* () {
          const total = { leftMillis: totalAt - clock.unsafeCurrentTimeMillis(), timeoutMillis: totalTimeoutMillis }
          const opened = yield* Scope.extend(openChat(body, attempts, attemptTimeoutMillis, idleMillis, total), scope)
          if (opened.status < 200 || opened.status >= 300) {
            const text = yield* Transport.readText(opened.pull, scrub)
            return yield* Effect.fail(Classify.statusError({ status: opened.status, headers: opened.headers, body: text, nowMillis: clock.unsafeCurrentTimeMillis(), attempts }, scrub))
          }
          const decoder = Sse.makeDecoder({ maxEventBytes })
          // Until the first event arrives the attempt may be retried.
          let first: Array<Sse.Event> = []
          let ended = false
          while (first.length === 0 && !ended) {
            const next = yield* Effect.either(opened.pull)
            if (Either.isRight(next)) first = decoder.feed(next.right)
            else if (Option.isSome(next.left)) return yield* Effect.fail(next.left.value)
            else {
              ended = true
              first = decoder.end()
            }
            if (decoder.overflowed) return yield* Effect.fail(Classify.eventTooLarge(maxEventBytes, attempts))
          }
          if (first.length === 0) {
            return yield* Effect.fail(new ChatError.TransportError({ code: "STREAM_EMPTY", detail: "the stream ended before its first event", attempts }))
          }
          opened.started()
          return { scope, pull: opened.pull, decoder, first, ended, status: opened.status, headers: opened.headers, attempts }
        }).pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))))

    const stream = (request: ChatSchema.ChatCompletionRequest): Stream.Stream<ChatSchema.ChatCompletionChunk, ChatError.ChatError> =>
      Stream.unwrapScoped(Effect.gen(function* () {
        const body = JSON.stringify({ ...request, stream: true })
        const allowance = Tokens.completionAllowance(request)
        const { promptTokens, tokens } = tokensOf(() => Tokens.promptTokens(request.messages), allowance)
        let usage: ChatSchema.CompletionUsage | undefined
        let received = false
        let sent = false
        // Recorded as a call is, a budget refusal included.
        const start = clock.unsafeCurrentTimeMillis()
        let openedAttempts: number | undefined
        yield* Effect.addFinalizer((exit) =>
          Effect.sync(() => {
            const e = exit as Exit.Exit<unknown, ChatError.ChatError>
            record("stream", request.model, start, e, openedAttempts ?? attemptsOf(e), usage)
          }))
        if (Option.isSome(budget)) {
          const b = budget.value
          const reservation = yield* b.reserve(request.model, promptTokens, allowance)
          // From the usage chunk when there is one; once a chunk arrived the answer was billed.
          yield* Effect.addFinalizer((exit) =>
            b.settle(
              reservation,
              usage !== undefined
                ? Option.orElse(Pricing.cost(request.model, usage, b.prices), () => Option.some(reservation.amount))
                : received || Exit.isSuccess(exit)
                ? Option.some(reservation.amount)
                : sent
                ? failedCost(reservation, exit.cause)
                : Option.none()
            ))
        }
        const policy = yield* currentPolicy
        const opened = yield* withRetries(
          (attempts, attemptTimeout, callStart, bounds) =>
            limiter.withPermit(
              tokens,
              Effect.suspend(() => {
                sent = true
                return openAttempt(body, attempts, attemptTimeout(), callStart + policy.totalTimeoutMillis, policy.totalTimeoutMillis)
              }),
              streamOutcome,
              bounds
            ),
          policy
        )
        received = true
        openedAttempts = opened.attempts
        Metrics.timeToFirstToken.unsafeUpdate(clock.unsafeCurrentTimeMillis() - start, [])
        if (resolved.tracing) {
          yield* Effect.annotateCurrentSpan({
            "shepherd.attempts": opened.attempts,
            "http.response.status_code": opened.status,
            ...(opened.headers["x-request-id"] === undefined ? {} : { "shepherd.request_id": opened.headers["x-request-id"] })
          })
        }
        yield* Effect.addFinalizer((exit) => Scope.close(opened.scope, exit))
        const requestId = opened.headers["x-request-id"]
        let done = false
        let finished = false
        /** The chunks in a piece of events; `done` once `[DONE]` is seen. */
        const toChunks = (events: ReadonlyArray<Sse.Event>): Either.Either<Chunk.Chunk<ChatSchema.ChatCompletionChunk>, ChatError.ChatError> => {
          const out: Array<ChatSchema.ChatCompletionChunk> = []
          for (const event of events) {
            if (event.data === "[DONE]") {
              done = true
              break
            }
            // Where an event's text enters: scrubbed of the key before anything reads it.
            const data = scrub(event.data)
            let json: unknown
            try {
              json = JSON.parse(data)
            } catch (e) {
              return Either.left(new ChatError.ResponseDecodeError({
                status: opened.status,
                detail: `a stream event is not JSON (${e instanceof Error ? e.message : String(e)})`,
                bodyExcerpt: Classify.excerpt(data, scrub),
                requestId,
                attempts: opened.attempts
              }))
            }
            if (isChunk(json)) {
              if (json.usage !== undefined && json.usage !== null) usage = json.usage
              for (const choice of json.choices) if (choice.finish_reason !== null) finished = true
              out.push(json)
              continue
            }
            const errorEvent = decodeErrorEvent(json)
            if (Either.isRight(errorEvent)) {
              const error = errorEvent.right.error
              return Either.left(new ChatError.ApiError({
                status: opened.status,
                type: error.type ?? undefined,
                code: error.code === undefined || error.code === null ? undefined : String(error.code),
                param: error.param ?? undefined,
                detail: error.message,
                requestId,
                attempts: opened.attempts,
                serverError: error
              }))
            }
            const other = (json as { error?: unknown } | null)?.error
            if (typeof other === "object" && other !== null) {
              return Either.left(new ChatError.ApiError({
                status: opened.status,
                detail: `an error event arrived mid-stream: ${Classify.excerpt(data, scrub)}`,
                requestId,
                attempts: opened.attempts
              }))
            }
            return Either.left(new ChatError.ResponseDecodeError({
              status: opened.status,
              detail: "a stream event is not a chat.completion.chunk",
              bodyExcerpt: Classify.excerpt(data, scrub),
              requestId,
              attempts: opened.attempts
            }))
          }
          return Either.right(Chunk.unsafeFromArray(out))
        }
        let bodyEnded = opened.ended
        const endOfBody = (): Effect.Effect<never, Option.Option<ChatError.ChatError>> =>
          // Without [DONE] the answer is complete only if every choice had finished.
          done || finished
            ? Effect.fail(Option.none())
            : Effect.fail(Option.some(new ChatError.TransportError({ code: "STREAM_ENDED_EARLY", detail: "the stream ended before [DONE]", attempts: opened.attempts })))
        const emit = (events: ReadonlyArray<Sse.Event>, next: Effect.Effect<Chunk.Chunk<ChatSchema.ChatCompletionChunk>, Option.Option<ChatError.ChatError>>) => {
          const chunks = toChunks(events)
          if (Either.isLeft(chunks)) return Effect.fail(Option.some(chunks.left))
          return chunks.right.length > 0 || done ? Effect.succeed(chunks.right) : next
        }
        /** The next chunks: bytes are read until they complete an event that holds one. */
        const nextChunks: Effect.Effect<Chunk.Chunk<ChatSchema.ChatCompletionChunk>, Option.Option<ChatError.ChatError>> = Effect.suspend(() => {
          if (done) return Effect.fail(Option.none())
          if (bodyEnded) return endOfBody()
          return Effect.matchEffect(opened.pull, {
            onFailure: Option.match({
              onNone: () => {
                bodyEnded = true
                return emit(opened.decoder.end(), endOfBody())
              },
              onSome: (error) => Effect.fail(Option.some<ChatError.ChatError>(error))
            }),
            onSuccess: (bytes) => {
              const events = opened.decoder.feed(bytes)
              return opened.decoder.overflowed ? Effect.fail(Option.some(Classify.eventTooLarge(maxEventBytes, opened.attempts))) : emit(events, nextChunks)
            }
          })
        })
        const first = toChunks(opened.first)
        if (Either.isLeft(first)) return Stream.fail(first.left)
        return Stream.concat(Stream.fromChunk(first.right), Stream.repeatEffectChunkOption(nextChunks))
      })).pipe((chunks) => resolved.tracing ? Stream.withSpan(chunks, "shepherd.stream", { kind: "client", attributes: { "shepherd.model": request.model }, captureStackTrace: false }) : chunks)

    return ChatClient.of({
      create: (request) => Effect.map(createWithMetadata(request), (result) => result.completion),
      createWithMetadata,
      stream,
      embed: (request) => Effect.map(embedWithMetadata(request), (result) => result.embeddings),
      embedWithMetadata,
      options: resolved
    })
  })

/**
 * Builds the service over whatever `HttpClient` the context has: a stub in tests, or your own client
 * with middleware. The client must honour the request's `AbortSignal` (the platform's clients do):
 * deadlines and interruption abort through it.
 */
export const make = (
  options: Overrides
): Effect.Effect<Service, ConfigError.ConfigError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.flatMap(Effect.zip(resolveOptions(options), HttpClient.HttpClient), ([resolved, http]) =>
    makeWith(resolved, (settings) => Transport.viaHttpClient(http, settings), (settings) => Transport.openViaHttpClient(http, settings)))

/** The service over an `HttpClient` you provide (your own middleware, proxy or test stub). */
export const layerWithoutHttpClient = (
  options: Overrides = {}
): Layer.Layer<ChatClient, ConfigError.ConfigError, HttpClient.HttpClient> => Layer.scoped(ChatClient, make(options))

/**
 * The client over its own undici `Agent` (keep-alive, at most `connections` sockets, connect
 * timeout), destroyed when the layer's scope closes: open sockets close and requests in flight are
 * aborted. With `transport: "platform"` the Agent is used through `@effect/platform-node`'s
 * `NodeHttpClient.layerUndiciWithoutDispatcher` instead of directly.
 */
export const layer = (options: Overrides = {}): Layer.Layer<ChatClient, ConfigError.ConfigError> =>
  Layer.scoped(
    ChatClient,
    Effect.gen(function* () {
      const resolved = yield* resolveOptions(options)
      const agent = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new Agent({
            connections: resolved.connections,
            keepAliveTimeout: Duration.toMillis(resolved.keepAliveTimeout),
            connect: { timeout: Duration.toMillis(resolved.connectTimeout) }
          })
        ),
        (agent) => Effect.promise(() => agent.destroy())
      )
      if (resolved.transport === "undici") {
        return yield* makeWith(resolved, (settings) => Transport.viaUndici(agent, settings), (settings) => Transport.openViaUndici(agent, settings))
      }
      // Loaded only for this transport: it brings @effect/platform-node's HTTP stack (~0.4 s to load).
      const NodeHttpClient = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpClient"))
      const platform = yield* Layer.build(
        NodeHttpClient.layerUndiciWithoutDispatcher.pipe(Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, agent)))
      )
      const http = Context.get(platform, HttpClient.HttpClient)
      return yield* makeWith(resolved, (settings) => Transport.viaHttpClient(http, settings), (settings) => Transport.openViaHttpClient(http, settings))
    })
  )

/** Reads the options from the environment (see {@link Options}); `overrides` win over the environment. */
export const optionsConfig: Config.Config<Overrides> = Config.all({
  apiKey: Env.apiKey,
  baseUrl: Env.baseUrl,
  connections: Config.option(Config.integer("SHEPHERD_CONNECTIONS")),
  timeout: Config.option(Config.duration("SHEPHERD_TIMEOUT")),
  idleTimeout: Config.option(Config.duration("SHEPHERD_IDLE_TIMEOUT")),
  maxResponseBytes: Config.option(Config.integer("SHEPHERD_MAX_RESPONSE_BYTES")),
  tracing: Config.option(Config.boolean("SHEPHERD_TRACING")),
  connectTimeout: Config.option(Config.duration("SHEPHERD_CONNECT_TIMEOUT")),
  maxRetries: Config.option(Config.integer("SHEPHERD_MAX_RETRIES")),
  totalTimeout: Config.option(Config.duration("SHEPHERD_TOTAL_TIMEOUT"))
}).pipe(
  Config.map((env) => ({
    apiKey: Option.getOrUndefined(env.apiKey),
    baseUrl: Option.getOrUndefined(env.baseUrl),
    connections: Option.getOrUndefined(env.connections),
    timeout: Option.getOrUndefined(env.timeout),
    idleTimeout: Option.getOrUndefined(env.idleTimeout),
    maxResponseBytes: Option.getOrUndefined(env.maxResponseBytes),
    tracing: Option.getOrUndefined(env.tracing),
    connectTimeout: Option.getOrUndefined(env.connectTimeout),
    retry: Option.isNone(env.maxRetries) && Option.isNone(env.totalTimeout)
      ? undefined
      : {
        ...Option.match(env.maxRetries, { onNone: () => ({}), onSome: (maxRetries) => ({ maxRetries }) }),
        ...Option.match(env.totalTimeout, { onNone: () => ({}), onSome: (totalTimeout) => ({ totalTimeout }) })
      }
  }))
)

/** The client configured from `OPENAI_API_KEY`, `OPENAI_BASE_URL` and `SHEPHERD_*`, over its own pool. */
export const layerConfig = (overrides: Overrides = {}): Layer.Layer<ChatClient, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(optionsConfig, (env) =>
      layer({ ...withoutUndefined(env), ...withoutUndefined(overrides), retry: { ...env.retry, ...overrides.retry } }))
  )
