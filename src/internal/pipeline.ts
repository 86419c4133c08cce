/**
 * The request pipeline of one call, as stages (drawn in docs/architecture.md). A stage takes the next
 * dispatch and gives a dispatch, as undici's interceptors do (`dispatch => dispatch`); `ChatClient`
 * composes them once, when its layer is built:
 *
 *   call = observe(cache(route(Budget.guard(retry(limit(countAttempt(exchange)))))))
 *
 * Two shapes of dispatch: a call stage (`Stage`: observe, cache, route with its fallbacks, budget)
 * sees the call once; an attempt stage (`AttemptStage`: limit, the attempt's metrics) sees
 * each attempt; `retry` turns attempts into a call. Everything a stage knows of the call is in
 * `Call`: a stage changes what the stages after it see by passing them another `Call` (a router picks
 * the endpoint and limiter of a deployment), and answers without the next ones by not calling them
 * (a cache hit).
 * @internal
 */
import type * as Clock from "effect/Clock"
import type * as Effect from "effect/Effect"
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Budget from "../Budget.js"
import type { ChatError } from "../ChatError.js"
import type * as ChatSchema from "../ChatSchema.js"
import type { Metadata } from "../ChatClient.js"
import type * as RateLimit from "../RateLimit.js"
import type * as ResponseCache from "../ResponseCache.js"
import type * as RetryPolicy from "../RetryPolicy.js"

/** What one call (or one attempt) produced, with what the transport saw. */
export interface Received<A> extends Metadata {
  readonly value: A
}

/** The token counts a price is computed from. */
export type Usage = Pick<ChatSchema.CompletionUsage, "prompt_tokens" | "completion_tokens" | "prompt_tokens_details">

/**
 * How a call ended: its exit, and what it received if it got an answer. A stream's exit is the whole
 * stream's, and the code that consumes the stream can end it with a failure of its own, of any type
 * (`null`, a string): hence `unknown`, read through {@link outcomeOf}.
 */
export interface End<A> {
  readonly exit: Exit.Exit<unknown, unknown>
  readonly received: Received<A> | undefined
}

/**
 * The outcome label of a call that ended: `success`, `interrupted`, its failure's `_tag`, or `other`
 * for a failure without one.
 */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return "interrupted"
  const error = failure.value
  return typeof error === "object" && error !== null && typeof (error as { readonly _tag?: unknown })._tag === "string" ? (error as { readonly _tag: string })._tag : "other"
}

/**
 * One kind of call against one deployment: how to make one attempt, and how to read its answer.
 * `ChatClient` builds one per kind (chat, embeddings, stream) when its layer is built.
 */
export interface Endpoint<A, R = never> {
  readonly name: "chat" | "embeddings" | "stream"
  /** One attempt: send, then classify the answer (the exchange and classify stages). */
  readonly exchange: (call: Call<A, R>, attempt: Attempt) => Effect.Effect<Received<A>, ChatError, R>
  /** Tokens an answer used (the limiter corrects its estimate with it); undefined when unknown. */
  readonly usedTokens: (value: A) => number | undefined
  /** The usage an answer reported, for its cost and the token metrics (a stream's: once it ended). */
  readonly usage: (value: A) => Usage | undefined
  /**
   * Runs `f` once the call has ended: when `effect` ends for a whole answer; when the stream's scope
   * closes for a stream (its last chunk read, a failure, or an interruption).
   */
  readonly onEnd: (
    effect: Effect.Effect<Received<A>, ChatError, R>,
    f: (end: End<A>) => Effect.Effect<void>
  ) => Effect.Effect<Received<A>, ChatError, R>
}

/** The prompt tokens of a call, counted once and only when a stage needs them (about 5 us per message). */
export class Tokens {
  private counted = -1
  private constructor(
    /** The completion tokens the call may use (its `max_tokens` times `n`; 0 for embeddings). */
    readonly allowance: number,
    private readonly source: unknown,
    private readonly count: (source: never) => number
  ) {}
  /** The tokens of `source`, counted by `count` (a function made once, not per call) when first read. */
  static of<S>(allowance: number, source: S, count: (source: S) => number): Tokens {
    return new Tokens(allowance, source, count as (source: never) => number)
  }
  get prompt(): number {
    if (this.counted < 0) this.counted = this.count(this.source as never)
    return this.counted
  }
}

/** One call as the stages see it. */
export interface Call<A, R = never> {
  readonly endpoint: Endpoint<A, R>
  readonly model: string
  /** The request body as sent. */
  readonly body: string
  readonly tokens: Tokens
  /** The retry policy in force: the client's, or the one `withRetry` set for this fiber. */
  readonly policy: RetryPolicy.Resolved
  /** The client's deadline for one attempt (`timeout`), in ms. */
  readonly timeoutMillis: number
  readonly clock: Clock.Clock
  readonly limiter: RateLimit.Service
  /** The budget the call is held against, if any. */
  readonly budget: Budget.Service | undefined
  /** The response cache the call may be answered from, if any. */
  readonly cache?: ResponseCache.Service | undefined
  /** Called as an attempt is sent: a call whose attempts were all refused unsent cost nothing. */
  readonly onSent: () => void
}

/** One attempt as the retry loop hands it down. */
export interface Attempt {
  /** 1 for the first attempt. */
  readonly number: number
  /** When the call's first attempt started (epoch ms, the call's clock). */
  readonly startMillis: number
  /** The call's total deadline (epoch ms). */
  readonly deadlineMillis: number
  /** What bounds the limiter's wait for this attempt's start. */
  readonly bounds: RateLimit.Bounds
}

/** The attempt's deadline as it is sent: the client's `timeout`, cut to what is left of the total one. */
export const attemptTimeoutMillis = <A, R>(call: Call<A, R>, attempt: Attempt): number =>
  Math.max(1, Math.min(call.timeoutMillis, attempt.deadlineMillis - call.clock.unsafeCurrentTimeMillis()))

/** A call dispatch: the whole call, its retries included. */
export type Dispatch = <A, R>(call: Call<A, R>) => Effect.Effect<Received<A>, ChatError, R>

/** An attempt dispatch: one attempt. */
export type Send = <A, R>(call: Call<A, R>, attempt: Attempt) => Effect.Effect<Received<A>, ChatError, R>

/** A call stage (observe, budget; cache, route, fallbacks). */
export type Stage = (next: Dispatch) => Dispatch

/** An attempt stage (limit, the attempt's metrics). */
export type AttemptStage = (next: Send) => Send

/** The innermost dispatch: the endpoint's exchange. */
export const exchange: Send = (call, attempt) => call.endpoint.exchange(call, attempt)

const noop = () => {}

/** `onSent` for a call no stage listens to. */
export const notListening: () => void = noop
