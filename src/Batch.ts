/**
 * Many requests through one client: exactly one outcome per input, success or typed failure, with
 * the input's `custom_id`. `run` streams outcomes as they complete (memory stays flat with the input:
 * inputs are pulled lazily, at most `concurrency` at a time); `runAll` collects them in input order.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as ChatClient from "./ChatClient.js"
import type * as ChatError from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import * as Pricing from "./Pricing.js"

/** One request of a batch. */
export interface BatchRequest {
  /** Your identifier, carried to the outcome (unique within a batch). */
  readonly custom_id: string
  readonly body: ChatSchema.ChatCompletionRequest
}

interface OutcomeBase {
  readonly custom_id: string
  /** Position in the input, from 0. */
  readonly index: number
  /** Attempts made. */
  readonly attempts: number
  /** From the call's start to its end, waits included, in milliseconds. */
  readonly latencyMillis: number
}

/** The result of one request. */
export type BatchOutcome =
  | (OutcomeBase & {
    readonly _tag: "Success"
    readonly completion: ChatSchema.ChatCompletion
    readonly requestId: string | undefined
    /** The call's cost in micro-dollars; none for a model without a known price. */
    readonly costMicroUsd: Option.Option<Pricing.MicroUsd>
  })
  | (OutcomeBase & { readonly _tag: "Failure"; readonly error: ChatError.ChatError })

export interface Options {
  /** Requests in flight at most. @default 16 */
  readonly concurrency?: number | undefined
  /** Prices for the outcomes' costs. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
}

const toStream = (requests: Stream.Stream<BatchRequest> | Iterable<BatchRequest>): Stream.Stream<BatchRequest> =>
  Stream.StreamTypeId in (requests as object) ? (requests as Stream.Stream<BatchRequest>) : Stream.fromIterable(requests as Iterable<BatchRequest>)

/**
 * Sends every request and emits one outcome per input, in completion order. Interrupting the stream
 * stops new sends and aborts the requests in flight.
 */
export const run = (
  requests: Stream.Stream<BatchRequest> | Iterable<BatchRequest>,
  options: Options = {}
): Stream.Stream<BatchOutcome, never, ChatClient.ChatClient> =>
  Stream.unwrap(Effect.map(ChatClient.ChatClient, (chat) => {
    const prices = options.prices ?? Pricing.defaultTable
    return toStream(requests).pipe(
      Stream.zipWithIndex,
      Stream.mapEffect(([request, index]) =>
        Effect.flatMap(Clock.currentTimeMillis, (start) =>
          Effect.matchEffect(chat.createWithMetadata(request.body), {
            onSuccess: (result) =>
              Effect.succeed<BatchOutcome>({
                _tag: "Success",
                custom_id: request.custom_id,
                index,
                attempts: result.attempts,
                latencyMillis: result.latencyMillis,
                completion: result.completion,
                requestId: result.requestId,
                costMicroUsd: result.completion.usage == null
                  ? Option.none()
                  : Pricing.cost(request.body.model, result.completion.usage, prices)
              }),
            onFailure: (error) =>
              Effect.map(Clock.currentTimeMillis, (end): BatchOutcome => ({
                _tag: "Failure",
                custom_id: request.custom_id,
                index,
                attempts: "attempts" in error ? error.attempts : 0,
                latencyMillis: end - start,
                error
              }))
          })), { concurrency: options.concurrency ?? 16, unordered: true })
    )
  }))

/** `run`, collected in input order. */
export const runAll = (
  requests: Stream.Stream<BatchRequest> | Iterable<BatchRequest>,
  options: Options = {}
): Effect.Effect<Array<BatchOutcome>, never, ChatClient.ChatClient> =>
  Effect.map(Stream.runCollect(run(requests, options)), (outcomes) =>
    Chunk.toArray(outcomes).sort((a, b) => a.index - b.index))
