/**
 * The retry stage: attempts until one succeeds, the policy stops, or the total deadline would pass,
 * each decision made by `RetryPolicy.decide` (the one decision path, shared with
 * `RetryPolicy.schedule`). Every attempt, retries included, goes through the attempt stages below
 * (the limiter admits it within `bounds`: the deadline, and `maxRetryAfter` for its pauses). Each
 * attempt's timeout is cut to the time left when it is sent (`Pipeline.attemptTimeoutMillis`), so the
 * deadline needs no timer of its own; a wait that would end past it is not started.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { type ChatError, TimeoutError } from "../ChatError.js"
import * as RetryPolicy from "../RetryPolicy.js"
import type * as Pipeline from "./pipeline.js"

const total = (policy: RetryPolicy.Resolved, attempts: number) =>
  new TimeoutError({ phase: "total", timeoutMillis: policy.totalTimeoutMillis, attempts })

/** Turns the attempt dispatch below into a call dispatch. */
export const retry = (next: Pipeline.Send): Pipeline.Dispatch => <A, R>(call: Pipeline.Call<A, R>) =>
  Effect.suspend(() => {
    const { clock, policy } = call
    const startMillis = clock.unsafeCurrentTimeMillis()
    const deadlineMillis = startMillis + policy.totalTimeoutMillis
    const loop = (attempts: number): Effect.Effect<Pipeline.Received<A>, ChatError, R> => {
      if (deadlineMillis - clock.unsafeCurrentTimeMillis() <= 0) return Effect.fail(total(policy, attempts - 1))
      const attempt: Pipeline.Attempt = {
        number: attempts,
        startMillis,
        deadlineMillis,
        bounds: { deadline: deadlineMillis, timeoutMillis: policy.totalTimeoutMillis, maxWaitMillis: policy.maxRetryAfterMillis, attempts: attempts - 1 }
      }
      return Effect.catchAll(next(call, attempt), (error) =>
        Effect.flatMap(Random.next, (random) => {
          const decision = RetryPolicy.decide(policy, error, attempts, random, { nowMillis: clock.unsafeCurrentTimeMillis(), deadlineMillis })
          switch (decision._tag) {
            case "Stop":
              return Effect.fail(error)
            case "Deadline":
              return Effect.fail(total(policy, attempts))
            case "Retry":
              return Effect.zipRight(Effect.sleep(decision.delayMillis), loop(attempts + 1))
          }
        }))
    }
    return loop(1)
  })
