/** The route stage (internal/router/stage.ts): the choice by capacity, the breaker, and one test per fallback cause. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Budget from "../src/Budget.js"
import * as ChatError from "../src/ChatError.js"
import type * as ClientService from "../src/internal/clientService.js"
import { limit } from "../src/internal/limit.js"
import * as Pipeline from "../src/internal/pipeline.js"
import { retry } from "../src/internal/retryPolicy.js"
import { assemble, type Deployment } from "../src/internal/router/deployment.js"
import { pick, route, type Table } from "../src/internal/router/stage.js"
import * as RateLimit from "../src/RateLimit.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import type { FallbackCause } from "../src/Router.js"
import { type Answer, callFor } from "./pipelineHelpers.js"

type Outcome = "ok" | "filtered" | ChatError.ChatError

/** An endpoint answering each attempt it is sent with the next of `outcomes` (the last repeats); `sent` counts them. */
const queued = (outcomes: ReadonlyArray<Outcome>) => {
  const state = { sent: 0, bodies: [] as Array<string> }
  const endpoint: Pipeline.Endpoint<Answer> = {
    name: "chat",
    usedTokens: () => undefined,
    usage: (answer) => answer.usage,
    onEnd: (effect, f) => Effect.onExit(effect, (exit) => f({ exit, received: exit._tag === "Success" ? exit.value : undefined })),
    exchange: (call, attempt) =>
      Effect.suspend(() => {
        const outcome = outcomes[Math.min(state.sent, outcomes.length - 1)]!
        state.sent++
        state.bodies.push(call.body)
        if (outcome !== "ok" && outcome !== "filtered") return Effect.fail(outcome)
        const value = (outcome === "filtered" ? { choices: [{ finish_reason: "content_filter" }] } : { usage: { prompt_tokens: 10, completion_tokens: 5 } }) as Answer
        return Effect.succeed({ value, requestId: "r", status: 200, attempts: attempt.number, latencyMillis: 0, headers: {} })
      })
  }
  return { endpoint, state }
}

const breaker = { failures: 2, initialMillis: 10_000, maxMillis: 60_000 }

const deployment = (
  index: number,
  name: string,
  models: ReadonlyArray<string> | Record<string, string>,
  outcomes: ReadonlyArray<Outcome>,
  options: { readonly rpm?: number; readonly priority?: number } = {}
) =>
  Effect.gen(function* () {
    const { endpoint, state } = queued(outcomes)
    const endpoints = { chat: endpoint, embeddings: endpoint, streaming: endpoint, streamSettings: {} } as unknown as ClientService.Endpoints
    const d = assemble({
      name,
      index,
      priority: options.priority ?? 0,
      models: new Map(Array.isArray(models) ? models.map((m) => [m, m]) : Object.entries(models)),
      endpoints,
      limiter: yield* RateLimit.make({ rpm: options.rpm, adaptive: false }),
      policy: RetryPolicy.resolve({ maxRetries: 0 }),
      breaker
    })
    return { d, state }
  })

const tableOf = (deployments: ReadonlyArray<Deployment>, o: { fallbacks?: Record<string, ReadonlyArray<string>>; fallbackOn?: ReadonlyArray<FallbackCause>; contextWindows?: Record<string, number> } = {}): Table => ({
  deployments,
  chains: new Map(Object.entries(o.fallbacks ?? {}).map(([m, list]) => [m, [m, ...list]])),
  fallbackOn: new Set(o.fallbackOn ?? ["context_length", "rate_limited_long", "unavailable"]),
  contextWindows: new Map(Object.entries(o.contextWindows ?? {})),
  tracing: false,
  turn: 0
})

const send = (table: Table, model = "m") =>
  Effect.flatMap(callFor(queued(["ok"]).endpoint, { model }), (call) => route(table)(Budget.guard(retry(limit(Pipeline.exchange))))(call))

const apiError = (status: number, code?: string) => new ChatError.ApiError({ status, code, detail: "no", attempts: 1 })

describe("route stage: choice", () => {
  it.effect("sends where the window has room, by priority while several have; waits on the soonest when none has", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], ["ok"], { rpm: 1 })
      const b = yield* deployment(1, "b", ["m"], ["ok"], { rpm: 2, priority: 1 })
      const table = tableOf([a.d, b.d])
      const first = yield* send(table)
      expect(first.route).toMatchObject({ deployment: "a", model: "m" })
      expect((yield* send(table)).route?.deployment).toBe("b")
      expect((yield* send(table)).route?.deployment).toBe("b")
      const fourth = yield* Effect.fork(send(table))
      yield* TestClock.adjust("60 seconds")
      expect((yield* Fiber.join(fourth)).route?.deployment).toBe("a")
      expect([a.state.sent, b.state.sent]).toEqual([2, 2])
    }))

  it.effect("sends a model under the name its provider knows it by", () =>
    Effect.gen(function* () {
      const relay = yield* deployment(0, "relay", { m: "vendor/m" }, ["ok"])
      const call = yield* callFor(queued(["ok"]).endpoint, { model: "m" })
      yield* route(tableOf([relay.d]))(retry(Pipeline.exchange))({ ...call, body: JSON.stringify({ model: "m", messages: [] }) })
      expect(JSON.parse(relay.state.bodies[0]!)).toEqual({ model: "vendor/m", messages: [] })
    }))

  it.effect.prop(
    "never picks a deployment whose window is full while another has room",
    [FastCheck.array(FastCheck.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 4 }), FastCheck.array(FastCheck.integer({ min: -40, max: 30 }).map((g) => Math.max(0, g)), { minLength: 1, maxLength: 16 })],
    ([limits, gaps]) =>
      Effect.gen(function* () {
        const deployments = yield* Effect.forEach(limits, (rpm, i) => Effect.map(deployment(i, `d${i}`, ["m"], ["ok"], { rpm, priority: (i * 7) % 3 }), (x) => x.d))
        const table = tableOf(deployments)
        const call = yield* callFor(queued(["ok"]).endpoint, { model: "m" })
        for (const gap of gaps) {
          // Most steps are at the same instant (a burst); some move the clock on (TestClock.adjust costs a timer turn).
          if (gap > 0) yield* TestClock.adjust(`${gap} seconds`)
          const room = yield* Effect.forEach(deployments, (d) => Effect.map(d.limiter.nextStart!(0), (wait) => wait === 0))
          const picked = (yield* pick(table, call, "m", new Set()))!
          if (room.some((r) => r)) expect(room[picked.deployment.index]).toBe(true)
          // Take its slot only when it has one now: a call would otherwise wait in its queue.
          if (room[picked.deployment.index]) yield* picked.deployment.limiter.withPermit(0, Effect.void, () => ({}))
        }
      }),
    { fastCheck: { numRuns: 30 } }
  )
})

describe("route stage: cooldown", () => {
  it.effect("failures in a row take a deployment out; after the cooldown one probe brings it back", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [apiError(503), apiError(503), "ok"])
      const b = yield* deployment(1, "b", ["m"], ["ok"], { priority: 1 })
      const table = tableOf([a.d, b.d])
      for (let i = 0; i < 3; i++) expect((yield* send(table)).route?.deployment).toBe("b")
      expect(a.state.sent).toBe(2)
      yield* TestClock.adjust("10 seconds")
      const probe = yield* send(table)
      expect(probe.route).toMatchObject({ deployment: "a", tries: [{ deployment: "a", model: "m", attempts: 1 }] })
      expect((yield* send(table)).route?.deployment).toBe("a")
    }))

  it.effect("a request waits for the only deployment's cooldown when its deadline allows", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [apiError(502), apiError(502), "ok"])
      const table = tableOf([a.d])
      expect((yield* Effect.flip(send(table)))._tag).toBe("ApiError")
      expect((yield* Effect.flip(send(table)))._tag).toBe("ApiError")
      const waiting = yield* Effect.fork(send(table))
      yield* TestClock.adjust("9 seconds")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(waiting)).route?.deployment).toBe("a")
    }))

  it.effect("a refused key takes the deployment out for the run", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [apiError(401, "invalid_api_key")])
      const b = yield* deployment(1, "b", ["m"], ["ok"], { priority: 1 })
      const table = tableOf([a.d, b.d])
      yield* send(table)
      yield* TestClock.adjust("1 hour")
      yield* send(table)
      expect([a.state.sent, b.state.sent]).toEqual([1, 2])
    }))
})

describe("route stage: fallbacks, one per cause", () => {
  it.effect("context_length: the next model with a larger context", () =>
    Effect.gen(function* () {
      const small = yield* deployment(0, "small", ["s"], [apiError(400, "context_length_exceeded")])
      const mid = yield* deployment(1, "mid", ["m"], ["ok"])
      const large = yield* deployment(2, "large", ["l"], ["ok"])
      const table = tableOf([small.d, mid.d, large.d], { fallbacks: { s: ["m", "l"] }, contextWindows: { s: 8000, m: 4000, l: 128000 } })
      const answer = yield* send(table, "s")
      expect(answer.route).toEqual({
        deployment: "large",
        model: "l",
        tries: [{ deployment: "small", model: "s", attempts: 1, error: "ApiError" }, { deployment: "large", model: "l", attempts: 1 }]
      })
      expect(answer.attempts).toBe(2)
      expect(mid.state.sent).toBe(0)
    }))

  it.effect("rate_limited_long: a 429 asking for more than maxRetryAfter goes to the next deployment", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [new ChatError.RateLimitError({ retryAfterMillis: 120_000, attempts: 1 })])
      const b = yield* deployment(1, "b", ["m"], ["ok"], { priority: 1 })
      expect((yield* send(tableOf([a.d, b.d]))).route?.tries.map((t) => t.deployment)).toEqual(["a", "b"])
    }))

  it.effect("unavailable: retries ended on 5xx or transport go to the next deployment, then the next model", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [apiError(503)])
      const b = yield* deployment(1, "b", ["m"], [new ChatError.TransportError({ code: "ECONNREFUSED", detail: "refused", attempts: 1 })], { priority: 1 })
      const c = yield* deployment(2, "c", ["n"], ["ok"])
      const answer = yield* send(tableOf([a.d, b.d, c.d], { fallbacks: { m: ["n"] } }))
      expect(answer.route?.tries.map((t) => `${t.deployment}/${t.model}`)).toEqual(["a/m", "b/m", "c/n"])
    }))

  it.effect("unavailable: a 404 saying the deployment does not serve the model (model_not_found, Azure's DeploymentNotFound) goes to the next deployment, then the next model; another 404 does not", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [apiError(404, "model_not_found")])
      const b = yield* deployment(1, "b", ["m"], [apiError(404, "DeploymentNotFound")], { priority: 1 })
      const c = yield* deployment(2, "c", ["n"], ["ok"])
      const answer = yield* send(tableOf([a.d, b.d, c.d], { fallbacks: { m: ["n"] } }))
      expect(answer.route?.tries.map((t) => `${t.deployment}/${t.model}`)).toEqual(["a/m", "b/m", "c/n"])
      const other = yield* deployment(0, "x", ["m"], [apiError(404, "not_found")])
      const backup = yield* deployment(1, "y", ["m"], ["ok"], { priority: 1 })
      expect(yield* Effect.flip(send(tableOf([other.d, backup.d])))).toMatchObject({ _tag: "ApiError", status: 404, code: "not_found" })
      expect(backup.state.sent).toBe(0)
    }))

  it.effect("unavailable: a deployment answering 200 with something that is not an answer goes to the next one, and is cooled down", () =>
    Effect.gen(function* () {
      const garbage = new ChatError.ResponseDecodeError({ status: 200, detail: "not a chat completion", bodyExcerpt: "<html>", attempts: 1 })
      const a = yield* deployment(0, "a", ["m"], [garbage])
      const b = yield* deployment(1, "b", ["m"], ["ok"], { priority: 1 })
      const table = tableOf([a.d, b.d])
      expect((yield* send(table)).route?.tries.map((t) => t.deployment)).toEqual(["a", "b"])
      yield* send(table)
      yield* send(table)
      const sentBefore = a.state.sent
      yield* send(table) // "a" failed three times in a row: out for its cooldown
      expect(a.state.sent).toBe(sentBefore)
    }))

  it.effect("content_filter: the next model when configured; the filtered answer when not", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], ["filtered"])
      const b = yield* deployment(1, "b", ["n"], ["ok"])
      const on = yield* send(tableOf([a.d, b.d], { fallbacks: { m: ["n"] }, fallbackOn: ["content_filter"] }))
      expect(on.route?.tries).toEqual([{ deployment: "a", model: "m", attempts: 1, error: "ContentFilter" }, { deployment: "b", model: "n", attempts: 1 }])
      const off = yield* send(tableOf([a.d, b.d], { fallbacks: { m: ["n"] } }))
      expect(off.route?.deployment).toBe("a")
      const refused = yield* deployment(2, "r", ["m"], [apiError(400, "content_filter")])
      expect((yield* send(tableOf([refused.d, b.d], { fallbacks: { m: ["n"] }, fallbackOn: ["content_filter"] }))).route?.model).toBe("n")
    }))

  it.effect("a cause left out of fallbackOn ends the call with its error", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["m"], [apiError(503)])
      const b = yield* deployment(1, "b", ["m"], ["ok"], { priority: 1 })
      const error = yield* Effect.flip(send(tableOf([a.d, b.d], { fallbackOn: ["context_length"] })))
      expect(error).toMatchObject({ _tag: "ApiError", status: 503 })
      expect(b.state.sent).toBe(0)
    }))

  it.effect("the budget holds each try at the price of the model tried", () =>
    Effect.gen(function* () {
      const a = yield* deployment(0, "a", ["gpt-4.1"], [apiError(400, "context_length_exceeded")])
      const b = yield* deployment(1, "b", ["gpt-4.1-mini"], ["ok"])
      const budget = yield* Budget.make({ maxUsd: 10 })
      const call = yield* callFor(queued(["ok"]).endpoint, { model: "gpt-4.1", budget })
      yield* route(tableOf([a.d, b.d], { fallbacks: { "gpt-4.1": ["gpt-4.1-mini"] } }))(Budget.guard(retry(Pipeline.exchange)))(call)
      const { reservedMicroUsd, spentMicroUsd } = yield* budget.snapshot
      // 10 prompt and 5 completion tokens at gpt-4.1-mini's price (12 micro-dollars), not gpt-4.1's (60).
      expect(spentMicroUsd).toBeCloseTo(10 * 0.4 + 5 * 1.6, 3)
      expect(reservedMicroUsd).toBe(0)
    }))
})

describe("breaker verdicts", () => {
  it("a 429 neither opens nor closes the breaker; a 503 opens it, an answer closes it", async () => {
    const { verdictOf } = await import("../src/internal/router/breaker.js")
    const { Exit } = await import("effect")
    expect(verdictOf(Exit.fail(new ChatError.RateLimitError({ retryAfterMillis: 1_000, attempts: 1 })))).toBe("neither")
    expect(verdictOf(Exit.fail(new ChatError.ApiError({ status: 503, detail: "down", attempts: 1 })))).toBe("down")
    expect(verdictOf(Exit.succeed(1))).toBe("up")
  })
})
