/**
 * Many requests through one client: exactly one outcome per input, success or typed failure, with
 * the input's `custom_id`. `run` streams outcomes as they complete (memory stays flat with the input:
 * inputs are pulled lazily, at most `concurrency` at a time); `runAll` collects them in input order.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Budget from "./Budget.js"
import * as ChatClient from "./ChatClient.js"
import * as ChatError from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import * as ErrorRules from "./internal/errorRules.js"
import * as Usage from "./internal/usage.js"
import * as Pricing from "./Pricing.js"

/**
 * One chat-completion request of a batch (`url` may be left out).
 *
 * @since 0.1.0
 * @category models
 */
export interface ChatRequest {
  /** Your identifier, carried to the outcome (unique within a batch). */
  readonly custom_id: string
  readonly url?: "/v1/chat/completions" | undefined
  readonly body: ChatSchema.ChatCompletionRequest
}

/**
 * One embeddings request of a batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddingRequest {
  /** Your identifier, carried to the outcome (unique within a batch). */
  readonly custom_id: string
  readonly url: "/v1/embeddings"
  readonly body: ChatSchema.EmbeddingRequest
}

/**
 * One request of a batch: a chat completion, or embeddings.
 *
 * @since 0.1.0
 * @category models
 */
export type BatchRequest = ChatRequest | EmbeddingRequest

interface OutcomeBase {
  readonly custom_id: string
  /** Position in the input, from 0. */
  readonly index: number
  /** Attempts made (0: refused before sending, e.g. by the budget). */
  readonly attempts: number
  /** From the call's start to its end, waits included, in milliseconds. */
  readonly latencyMillis: number
}

interface SuccessBase extends OutcomeBase {
  readonly _tag: "Success"
  /** The provider's `x-request-id`. */
  readonly requestId: string | undefined
  /** The HTTP status of the answer. */
  readonly status: number
  /** Tokens as the provider reported them (zero when it reported none). */
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number }
  /** The call's cost in micro-dollars; none for a model without a known price; 0 when `cached`. */
  readonly costMicroUsd: Option.Option<Pricing.MicroUsd>
  /**
   * Set when the `ResponseCache` answered (nothing was sent or paid): what the answer cost when it
   * was paid for, saved this time (none for a model without a known price).
   * @since 0.2.0
   */
  readonly cached?: { readonly savedMicroUsd: Option.Option<Pricing.MicroUsd> } | undefined
}

/**
 * A chat request answered.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChatSuccess extends SuccessBase {
  readonly url: "/v1/chat/completions"
  readonly completion: ChatSchema.ChatCompletion
}

/**
 * An embeddings request answered.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddingSuccess extends SuccessBase {
  readonly url: "/v1/embeddings"
  readonly embeddings: ChatSchema.EmbeddingResponse
}

/**
 * A request that ended in a typed error (after its retries), or was not sent (budget).
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure extends OutcomeBase {
  readonly _tag: "Failure"
  readonly error: ChatError.ChatError
}

/**
 * The outcome of a request of type `R`: chat requests give `ChatSuccess`, embeddings `EmbeddingSuccess`.
 *
 * @since 0.1.0
 * @category models
 */
export type OutcomeOf<R extends BatchRequest> = (R extends EmbeddingRequest ? EmbeddingSuccess : ChatSuccess) | Failure

/**
 * The result of one request.
 *
 * @since 0.1.0
 * @category models
 */
export type BatchOutcome = ChatSuccess | EmbeddingSuccess | Failure

/**
 * Options of `run` and `runAll`.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Requests in flight at most. @default 16 */
  readonly concurrency?: number | undefined
  /** Prices for the outcomes' costs. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
  /**
   * Checked before each send; once it gives `true`, nothing more is sent or read from the input, the
   * requests in flight complete, and the stream ends after their outcomes (the inputs not sent have
   * none). For a graceful stop on a signal. @default never
   */
  readonly stopWhen?: Effect.Effect<boolean> | undefined
}

/**
 * How many requests in a row must fail without reaching a server (refused, DNS, TLS, connect timeout),
 * with no answer before them, for a batch to stop sending. Each of them has used all its retries.
 * @since 0.2.0
 * @category constants
 */
export const UNREACHABLE_STOP_AFTER = 3

const toStream = <R, E, Q>(requests: Stream.Stream<R, E, Q> | Iterable<R>): Stream.Stream<R, E, Q> =>
  Stream.StreamTypeId in (requests as object) ? (requests as Stream.Stream<R, E, Q>) : Stream.fromIterable(requests as Iterable<R>)

/** An outcome's usage and cost, with the client's cost rule (`Budget.costOf`); a cache hit cost nothing. */
const usageAndCost = (model: string, usage: Budget.Usage | undefined, prices: Pricing.PriceTable, cached: boolean | undefined) => {
  const tokens = { promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 }
  const cost = Budget.costOf(model, usage, prices)
  return cached === true
    ? { usage: tokens, costMicroUsd: Option.some(0), cached: { savedMicroUsd: cost } }
    : { usage: tokens, costMicroUsd: cost }
}

const isEmbedding = (request: BatchRequest): request is EmbeddingRequest => request.url === "/v1/embeddings"

/** What every success carries, from the call's metadata. */
const succeeded = (request: BatchRequest, index: number, result: ChatClient.Metadata) => ({
  _tag: "Success" as const,
  custom_id: request.custom_id,
  index,
  attempts: result.attempts,
  latencyMillis: result.latencyMillis,
  requestId: result.requestId,
  status: result.status
})

/** Sends one request through the client; its success as an outcome. */
const sender = (chat: ChatClient.Service, prices: Pricing.PriceTable) =>
(request: BatchRequest, index: number): Effect.Effect<BatchOutcome, ChatError.ChatError> => {
  if (isEmbedding(request)) {
    return Effect.map(chat.embedWithMetadata(request.body), (result): EmbeddingSuccess => ({
      ...succeeded(request, index, result),
      url: "/v1/embeddings",
      embeddings: result.embeddings,
      ...usageAndCost(request.body.model, Usage.ofEmbeddings(result.embeddings), prices, result.cached)
    }))
  }
  return Effect.map(chat.createWithMetadata(request.body), (result): ChatSuccess => ({
    ...succeeded(request, index, result),
    url: "/v1/chat/completions",
    completion: result.completion,
    ...usageAndCost(request.body.model, Usage.ofCompletion(result.completion), prices, result.cached)
  }))
}

/**
 * Every input's outcome, with the batch's stop rules (see {@link run}): after a refusal that every
 * later request would meet, later inputs fail with it, unsent.
 */
const outcomes = (send: (request: BatchRequest, index: number) => Effect.Effect<BatchOutcome, ChatError.ChatError>) => {
  let stoppedBy: ChatError.ChatError | undefined
  // The unreachable rule: consecutive failures that never reached a server, while none has answered.
  let answered = false
  let unreachableRun = 0
  const failed = (error: ChatError.ChatError) => {
    if (ErrorRules.isUnreachable(error)) {
      unreachableRun++
      if (stoppedBy === undefined && !answered && unreachableRun >= UNREACHABLE_STOP_AFTER) stoppedBy = error
    } else if (!ErrorRules.stopsSending(error) || ErrorRules.isKeyRefusal(error)) {
      answered = true
      unreachableRun = 0
    }
    if (stoppedBy === undefined && ErrorRules.stopsSending(error)) stoppedBy = error
  }
  return (request: BatchRequest, index: number): Effect.Effect<BatchOutcome> =>
    stoppedBy !== undefined
      ? Effect.succeed<BatchOutcome>({ _tag: "Failure", custom_id: request.custom_id, index, attempts: 0, latencyMillis: 0, error: stoppedBy })
      : Effect.flatMap(Clock.currentTimeMillis, (start) =>
        Effect.catchAll(Effect.tap(send(request, index), () => { answered = true }), (error) => {
          failed(error)
          return Effect.map(Clock.currentTimeMillis, (end): BatchOutcome => ({
            _tag: "Failure",
            custom_id: request.custom_id,
            index,
            attempts: "attempts" in error ? error.attempts : 0,
            latencyMillis: end - start,
            error
          }))
        }))
}

/**
 * The inputs shared by the worker fibers: the next one with its index, `undefined` once the input
 * has ended. One fiber pulls a chunk at a time; the others wait for it.
 */
const inputs = <R, E, Q>(pull: Effect.Effect<Chunk.Chunk<R>, Option.Option<E>, Q>) => {
  let buffer: ReadonlyArray<R> = []
  let position = 0
  let index = 0
  let ended = false
  let pulling: Deferred.Deferred<void> | undefined
  const next: Effect.Effect<readonly [R, number] | undefined, E, Q> = Effect.suspend(() => {
    if (position < buffer.length) return Effect.succeed([buffer[position++]!, index++] as const)
    if (ended) return Effect.succeed(undefined)
    if (pulling !== undefined) return Effect.zipRight(Deferred.await(pulling), next)
    const signal = Deferred.unsafeMake<void>(FiberId.none)
    pulling = signal
    const release = Effect.sync(() => {
      pulling = undefined
      Deferred.unsafeDone(signal, Exit.void)
    })
    return pull.pipe(
      Effect.matchEffect({
        onFailure: Option.match({
          onNone: () => Effect.sync(() => { ended = true }),
          onSome: (error) => Effect.zipRight(Effect.sync(() => { ended = true }), Effect.fail(error))
        }),
        onSuccess: (chunk) => Effect.sync(() => {
          buffer = Chunk.toReadonlyArray(chunk)
          position = 0
        })
      }),
      Effect.ensuring(release),
      Effect.zipRight(next)
    )
  })
  return next
}

/**
 * Sends every request and emits one outcome per input, in completion order. Interrupting the stream
 * stops new sends and aborts the requests in flight.
 *
 * The batch stops sending when a request meets a refusal that every later one would meet too: the
 * `Budget` in the context refuses it (`BudgetExceededError`), shared limits that fail closed cannot
 * be reached (`LimiterUnavailableError`), the provider refuses the key (`ApiError` 401, or a 403 about
 * the key), or the server cannot be reached at all (`UNREACHABLE_STOP_AFTER` requests in a row failed
 * with a refused connection, a DNS or TLS failure or a connect timeout, and none was answered). Requests
 * already in flight complete, and every later input gets a `Failure` with that error and `attempts: 0`,
 * without being sent (so each input still has its outcome and nothing more is spent or waited for).
 *
 * An input stream that fails (a file that cannot be read) fails the outcome stream with its error.
 *
 * @since 0.1.0
 * @category running
 */
export const run = <R extends BatchRequest, E = never, Q = never>(
  requests: Stream.Stream<R, E, Q> | Iterable<R>,
  options: Options = {}
): Stream.Stream<OutcomeOf<R>, E, ChatClient.ChatClient | Q> =>
  Stream.unwrap(Effect.map(ChatClient.ChatClient, (chat): Stream.Stream<OutcomeOf<R>, E, Q> => {
    const outcomeOf = outcomes(sender(chat, options.prices ?? Pricing.defaultTable))
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 16))
    const stopWhen = options.stopWhen
    return Stream.unwrapScoped(Effect.gen(function* () {
      // `concurrency` worker fibers take inputs from one shared buffer and hand outcomes to a
      // Mailbox the stream drains a chunk at a time. `Stream.mapEffect({ concurrency, unordered })`
      // cost about 230 us of CPU per element here against 10 us for this (bench/batch-memory).
      const mailbox = yield* Mailbox.make<BatchOutcome, E>({ capacity: concurrency * 4 })
      const next = inputs(yield* Stream.toPull(toStream(requests)))
      let stopped = false
      const worker: Effect.Effect<void, E, Q> = Effect.gen(function* () {
        while (true) {
          if (stopWhen !== undefined && !stopped && (yield* stopWhen)) stopped = true
          if (stopped) return
          const item = yield* next
          if (item === undefined) return
          yield* mailbox.offer(yield* outcomeOf(item[0], item[1]))
        }
      })
      yield* Effect.forkScoped(
        Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true }).pipe(
          Effect.matchCauseEffect({ onFailure: (cause) => mailbox.failCause(cause), onSuccess: () => mailbox.end })
        )
      )
      return Mailbox.toStream(mailbox) as Stream.Stream<OutcomeOf<R>, E>
    }))
  }))

/**
 * `run`, collected in input order.
 *
 * @since 0.1.0
 * @category running
 */
export const runAll = <R extends BatchRequest, E = never, Q = never>(
  requests: Stream.Stream<R, E, Q> | Iterable<R>,
  options: Options = {}
): Effect.Effect<Array<OutcomeOf<R>>, E, ChatClient.ChatClient | Q> =>
  Effect.map(Stream.runCollect(run(requests, options)), (outcomes) =>
    Chunk.toArray(outcomes).sort((a, b) => a.index - b.index))
