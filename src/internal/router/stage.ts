/**
 * The route stage (docs/architecture.md), before budget and retry: it picks the deployment of each
 * call (the one that would start it soonest; `choice.ts`), hands the stages after it that
 * deployment's endpoint, limiter and retry policy, and the model as that provider names it; and when
 * the retries there end in a failure `fallbackOn` accepts, it goes on to the next deployment of the
 * model, then to the next model of its fallback chain, within the call's total deadline. The budget
 * stage, after it, holds each try at the price of the model tried.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Budget from "../../Budget.js"
import { ApiError, type ChatError, type LimiterUnavailableError, TimeoutError } from "../../ChatError.js"
import * as Pricing from "../../Pricing.js"
import * as RetryPolicy from "../../RetryPolicy.js"
import { deploymentCostMicroUsd, deploymentRequests, type FallbackCause, type Route, type Try } from "../../Router.js"
import { tagged } from "../observe.js"
import * as Pipeline from "../pipeline.js"
import * as Causes from "./causes.js"
import { choose } from "./choice.js"
import type { Deployment } from "./deployment.js"

/** What the route stage knows of the router. */
export interface Table {
  readonly deployments: ReadonlyArray<Deployment>
  /** For each model with fallbacks: the model, then its fallbacks in order. */
  readonly chains: ReadonlyMap<string, ReadonlyArray<string>>
  readonly fallbackOn: ReadonlySet<FallbackCause>
  readonly contextWindows: ReadonlyMap<string, number>
  readonly tracing: boolean
  /** The rotation of the last tie-break. */
  turn: number
}

/** The deployment a call goes to, and when its cooldown lets it (epoch ms). */
export interface Picked {
  readonly deployment: Deployment
  readonly at: number
  readonly freeAt: number
}

const NO_LABELS: ReadonlyArray<never> = []

const keyOf = (d: Deployment, model: string) => `${d.index}\u0000${model}`

/**
 * The deployment that serves `model` (not yet `tried` with it, not out for the run) and would start
 * the call soonest: the later of its cooldown's end and its limiter's next start.
 */
export const pick = <A, R>(
  table: Table,
  call: Pipeline.Call<A, R>,
  model: string,
  tried: ReadonlySet<string>
): Effect.Effect<Picked | undefined, LimiterUnavailableError> => {
  const now = call.clock.unsafeCurrentTimeMillis()
  const serving = table.deployments.filter((d) => d.models.has(model) && !tried.has(keyOf(d, model)) && d.breaker.availableAt(now) !== Number.POSITIVE_INFINITY)
  if (serving.length === 0) return Effect.succeed(undefined)
  return Effect.map(
    Effect.forEach(serving, (d) => {
      const freeAt = d.breaker.availableAt(now)
      const next = d.limiter.nextStart
      if (next === undefined) return Effect.succeed({ deployment: d, index: d.index, priority: d.priority, inFlight: d.inFlight, at: freeAt, freeAt })
      const tokens = d.limiter.countsTokens() ? call.tokens.prompt + call.tokens.allowance : 0
      return Effect.map(next(tokens), (wait) => ({ deployment: d, index: d.index, priority: d.priority, inFlight: d.inFlight, at: Math.max(freeAt, now + wait), freeAt }))
    }),
    (candidates) => {
      const chosen = choose(candidates, table.turn, table.deployments.length)
      if (chosen !== undefined) table.turn = (chosen.index + 1) % table.deployments.length
      return chosen
    }
  )
}

/** The body for `model` on `d`: the request's own when the provider knows the model by the name it gave. */
const bodyFor = <A, R>(call: Pipeline.Call<A, R>, d: Deployment, model: string): string => {
  const name = d.models.get(model) ?? model
  return name === call.model ? call.body : JSON.stringify({ ...JSON.parse(call.body), model: name })
}

const endpointOf = <A, R>(d: Deployment, name: Pipeline.Endpoint<A, R>["name"]): Pipeline.Endpoint<A, R> =>
  (name === "chat" ? d.endpoints.chat : name === "embeddings" ? d.endpoints.embeddings : d.endpoints.streaming) as unknown as Pipeline.Endpoint<A, R>

const attemptsOf = (error: ChatError): number => ("attempts" in error ? error.attempts : 0)

/** A try's end in the deployment's metrics: its outcome, and the answer's cost at the tried model's price. */
const record = <A, R>(d: Deployment, model: string, call: Pipeline.Call<A, R>, endpoint: Pipeline.Endpoint<A, R>, end: Pipeline.End<A>): Effect.Effect<void> => {
  tagged(deploymentRequests, "deployment", d.name, "model", model, "outcome", Pipeline.outcomeOf(end.exit)).unsafeUpdate(1, NO_LABELS)
  const usage = end.received === undefined ? undefined : endpoint.usage(end.received.value)
  if (usage !== undefined) {
    const cost = Budget.costOf(model, usage, call.budget?.prices ?? Pricing.defaultTable)
    if (Option.isSome(cost)) tagged(deploymentCostMicroUsd, "deployment", d.name).unsafeUpdate(cost.value, NO_LABELS)
  }
  return Effect.void
}

/** The error when no deployment is left for a model and nothing failed: none serves it, or all are out. */
const noDeployment = (model: string, attempts: number) =>
  new ApiError({
    status: 404,
    type: "router",
    code: "no_deployment",
    detail: `no deployment can take model "${model}": none serves it, or every one that does is out for the run (its key was refused)`,
    shouldRetry: false,
    attempts
  })

/** The route stage over `table`. */
export const route = (table: Table): Pipeline.Stage => (next) => <A, R>(call: Pipeline.Call<A, R>) =>
  Effect.withFiberRuntime<Pipeline.Received<A>, ChatError, R>((fiber) => {
    const overridden = fiber.getFiberRef(RetryPolicy.currentRetry) !== undefined
    const clock = call.clock
    const deadline = clock.unsafeCurrentTimeMillis() + call.policy.totalTimeoutMillis
    const chain = table.chains.get(call.model) ?? [call.model]
    const tried = new Set<string>()
    const tries: Array<Try> = []
    const attempts = () => tries.reduce((sum, t) => sum + t.attempts, 0)
    const late = () => new TimeoutError({ phase: "total", timeoutMillis: call.policy.totalTimeoutMillis, attempts: attempts() })

    type Result = Effect.Effect<Pipeline.Received<A>, ChatError, R>

    const onModel = (model: string, last: ChatError | undefined, cause: FallbackCause): Result =>
      Effect.flatMap(pick(table, call, model, tried), (picked): Result => {
        if (picked === undefined) return toNextModel(model, cause, last)
        const now = clock.unsafeCurrentTimeMillis()
        // Cooling down: wait for its probe if the deadline allows (the limiter waits for its own window).
        if (picked.freeAt > now) {
          return picked.freeAt >= deadline ? Effect.fail(last ?? late()) : Effect.zipRight(Effect.sleep(picked.freeAt - now), onModel(model, last, cause))
        }
        return send(picked.deployment, model)
      })

    const toNextModel = (model: string, cause: FallbackCause, last: ChatError | undefined): Result => {
      const following = table.fallbackOn.has(cause) ? Causes.nextModel(chain, model, cause, table.contextWindows) : undefined
      if (following === undefined) return Effect.fail(last ?? noDeployment(model, attempts()))
      return onModel(following, last, cause)
    }

    const finish = (received: Pipeline.Received<A>, d: Deployment, model: string): Result => {
      const routeInfo: Route = { deployment: d.name, model, tries }
      const done: Pipeline.Received<A> = { ...received, attempts: attempts(), route: routeInfo }
      if (!table.tracing) return Effect.succeed(done)
      return Effect.as(Effect.annotateCurrentSpan({ "shepherd.deployment": d.name, "shepherd.route.model": model, "shepherd.route.tries": tries.length }), done)
    }

    const send = (d: Deployment, model: string): Result => {
      tried.add(keyOf(d, model))
      const remaining = deadline - clock.unsafeCurrentTimeMillis()
      const base = overridden ? call.policy : d.policy
      const policy = remaining >= base.totalTimeoutMillis ? base : { ...base, totalTimeoutMillis: remaining }
      const endpoint = endpointOf<A, R>(d, call.endpoint.name)
      const routed: Pipeline.Call<A, R> = { ...call, endpoint, model, limiter: d.limiter, policy, body: bodyFor(call, d, model) }
      d.inFlight++
      const tried$ = Effect.ensuring(endpoint.onEnd(next(routed), (end) => record(d, model, call, endpoint, end)), Effect.sync(() => { d.inFlight-- }))
      return Effect.matchEffect(tried$, {
        onFailure: (error): Result => {
          tries.push({ deployment: d.name, model, attempts: attemptsOf(error), error: error._tag })
          const cause = Causes.causeOf(error)
          if (cause === undefined || !table.fallbackOn.has(cause) || clock.unsafeCurrentTimeMillis() >= deadline) return Effect.fail(error)
          return cause === "unavailable" || cause === "rate_limited_long" ? onModel(model, error, cause) : toNextModel(model, cause, error)
        },
        onSuccess: (received): Result => {
          if (call.endpoint.name === "chat" && table.fallbackOn.has("content_filter") && Causes.filtered(received.value)) {
            const following = Causes.nextModel(chain, model, "content_filter", table.contextWindows)
            if (following !== undefined) {
              tries.push({ deployment: d.name, model, attempts: received.attempts, error: "ContentFilter" })
              return onModel(following, undefined, "content_filter")
            }
          }
          tries.push({ deployment: d.name, model, attempts: received.attempts })
          return finish(received, d, model)
        }
      })
    }

    return onModel(call.model, undefined, "unavailable")
  })
