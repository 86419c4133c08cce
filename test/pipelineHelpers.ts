/** Helpers for the pipeline stage tests: a call for an endpoint whose attempts are scripted. */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Budget from "../src/Budget.js"
import type * as ChatError from "../src/ChatError.js"
import type * as Pipeline from "../src/internal/pipeline.js"
import { notListening, Tokens } from "../src/internal/pipeline.js"
import type * as RateLimit from "../src/RateLimit.js"
import * as RetryPolicy from "../src/RetryPolicy.js"

/** A value an attempt answers with: its usage and tokens. */
export interface Answer {
  readonly usage?: Pipeline.Usage | undefined
}

/** What one scripted attempt does: answer, fail, or hang until interrupted. */
export type Step = { readonly answer: Answer } | { readonly fail: ChatError.ChatError } | "hang"

/** A limiter that admits at once and records what it was told. */
export const recordingLimiter = (countsTokens = false) => {
  const seen: Array<{ tokens: number; bounds: RateLimit.Bounds | undefined; outcome: RateLimit.Outcome }> = []
  const limiter: RateLimit.Service = {
    withPermit: (tokens, use, outcome, bounds) =>
      Effect.onExit(use, (exit) => Effect.sync(() => { seen.push({ tokens, bounds, outcome: outcome(exit) }) })),
    countsTokens: () => countsTokens
  }
  return { limiter, seen }
}

/**
 * An endpoint whose attempt `n` does `steps[n - 1]` (the last repeats); `sent` counts attempts that
 * started (each calls `onSent`).
 */
export const scriptedEndpoint = (steps: ReadonlyArray<Step>) => {
  const started: Array<number> = []
  const endpoint: Pipeline.Endpoint<Answer> = {
    name: "chat",
    usedTokens: (answer) => (answer.usage === undefined ? undefined : answer.usage.prompt_tokens + answer.usage.completion_tokens),
    usage: (answer) => answer.usage,
    onEnd: (effect, f) => Effect.onExit(effect, (exit) => f({ exit, received: Exit.isSuccess(exit) ? exit.value : undefined })),
    exchange: (call, attempt) =>
      Effect.suspend(() => {
        call.onSent()
        started.push(call.clock.unsafeCurrentTimeMillis())
        const step = steps[Math.min(attempt.number - 1, steps.length - 1)]!
        if (step === "hang") return Effect.never
        if ("fail" in step) return Effect.fail(step.fail)
        return Effect.succeed<Pipeline.Received<Answer>>({
          value: step.answer,
          requestId: "req-1",
          status: 200,
          attempts: attempt.number,
          latencyMillis: call.clock.unsafeCurrentTimeMillis() - attempt.startMillis,
          headers: { "x-request-id": "req-1" }
        })
      })
  }
  return { endpoint, started }
}

/** A call for `endpoint` on the current clock. */
export const callFor = <A = Answer>(
  endpoint: Pipeline.Endpoint<A>,
  options: {
    readonly retry?: Partial<RetryPolicy.Options>
    readonly limiter?: RateLimit.Service
    readonly budget?: Budget.Service
    readonly model?: string
    readonly promptTokens?: number
    readonly allowance?: number
  } = {}
): Effect.Effect<Pipeline.Call<A>> =>
  Effect.map(Effect.clock, (clock) => ({
    endpoint,
    model: options.model ?? "gpt-4.1",
    body: "{}",
    tokens: Tokens.of(options.allowance ?? 100, options.promptTokens ?? 10, (n: number) => n),
    policy: RetryPolicy.resolve(options.retry ?? {}),
    timeoutMillis: 60_000,
    clock,
    limiter: options.limiter ?? recordingLimiter().limiter,
    budget: options.budget,
    onSent: notListening
  }))
