/**
 * The start of every call: the `Call` the stages see, with the services in force for it. A `Budget` or
 * `RateLimit` found when the client was built wins; else the call's own context is read, so that a
 * budget or a shared limiter merged beside the client (`Layer.merge(ChatClient.layer(), Budget.layer(...))`)
 * is enforced too; else the client's own limiter (from its `limits` option) and no budget. The retry
 * policy is the client's, or the one `withRetry` set for the calling fiber. One fiber-runtime read per
 * call: no Layer, Context or fiber is built.
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Budget from "../Budget.js"
import type { ChatError } from "../ChatError.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import * as RetryPolicy from "../RetryPolicy.js"
import * as Pipeline from "./pipeline.js"

/** What the client fixed when it was built. */
export interface Client {
  readonly dispatch: Pipeline.Dispatch
  readonly clock: Clock.Clock
  /** The attempt timeout (`timeout`), in ms. */
  readonly timeoutMillis: number
  /** The client's retry options (`retry`). */
  readonly retry: Partial<RetryPolicy.Options>
  /** A limiter found when the client was built. */
  readonly limiter: RateLimit.Service | undefined
  /** The limiter used when neither the client's build nor the call has one. */
  readonly ownLimiter: RateLimit.Service
  /** A budget found when the client was built. */
  readonly budget: Budget.Service | undefined
  /** A response cache found when the client was built. */
  readonly cache?: ResponseCache.Service | undefined
}

/** Starts calls for `client`: `start(endpoint, model, body, tokens)` runs one through the pipeline. */
export const starter = (client: Client) => {
  const basePolicy = RetryPolicy.resolve(client.retry)
  // `withRetry` options are resolved once per options object, not once per call.
  let lastOverride: Partial<RetryPolicy.Options> | undefined
  let lastPolicy = basePolicy
  const policyFor = (override: Partial<RetryPolicy.Options> | undefined): RetryPolicy.Resolved => {
    if (override === undefined) return basePolicy
    if (override !== lastOverride) {
      lastPolicy = RetryPolicy.resolve({ ...client.retry, ...override })
      lastOverride = override
    }
    return lastPolicy
  }
  return <A, R>(endpoint: Pipeline.Endpoint<A, R>, model: string, body: string, tokens: Pipeline.Tokens): Effect.Effect<Pipeline.Received<A>, ChatError, R> =>
    Effect.withFiberRuntime((fiber) => {
      const context = fiber.currentContext
      const call: Pipeline.Call<A, R> = {
        endpoint,
        model,
        body,
        tokens,
        policy: policyFor(fiber.getFiberRef(RetryPolicy.currentRetry)),
        timeoutMillis: client.timeoutMillis,
        clock: client.clock,
        limiter: client.limiter ?? (context.unsafeMap.get(RateLimit.RateLimit.key) as RateLimit.Service | undefined) ?? client.ownLimiter,
        budget: client.budget ?? (context.unsafeMap.get(Budget.Budget.key) as Budget.Service | undefined),
        cache: client.cache ?? (context.unsafeMap.get(ResponseCache.ResponseCache.key) as ResponseCache.Service | undefined),
        onSent: Pipeline.notListening
      }
      return client.dispatch(call)
    })
}
