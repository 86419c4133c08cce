/**
 * One deployment of a router: its own undici pool and endpoints (base URL, key), its own limiter
 * (memory, or Redis keyed by its base URL and key), its retry policy and its breaker. Every attempt
 * it sends passes its breaker's gate and tells the breaker how it ended.
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { Options as ClientOptions } from "../../ChatClient.js"
import { ApiError, type ChatError, type LimiterUnavailableError } from "../../ChatError.js"
import * as RateLimit from "../../RateLimit.js"
import * as RetryPolicy from "../../RetryPolicy.js"
import type * as Router from "../../Router.js"
import { deploymentAttempts, deploymentCooldowns, deploymentRateLimited } from "../../Router.js"
import * as ClientService from "../clientService.js"
import type * as Deadlines from "../deadlines.js"
import type * as Pipeline from "../pipeline.js"
import * as RedisStore from "../rateLimitRedis.js"
import { tagged } from "../observe.js"
import { Breaker, type Settings as BreakerSettings, verdictOf } from "./breaker.js"
import { COOLING_DOWN } from "./causes.js"

/** A deployment as the route stage uses it: its parts, with its endpoints behind its breaker. */
export interface Deployment extends Omit<Parts, "breaker"> {
  readonly breaker: Breaker
  /** Requests routed to it and not yet answered (the tie-break after priority). */
  inFlight: number
}

/** The models of a deployment as a map: a list serves each under its own name. */
export const modelsOf = (models: Router.Deployment["models"]): ReadonlyMap<string, string> =>
  new Map(Array.isArray(models) ? models.map((m: string) => [m, m]) : Object.entries(models as Readonly<Record<string, string>>))

const NO_LABELS: ReadonlyArray<never> = []

/** The refusal of an attempt while the deployment is out: final for its retries, a reason to fall back. */
const refusal = (d: Deployment, attempts: number, now: number): ApiError =>
  new ApiError({
    status: 503,
    type: "router",
    code: COOLING_DOWN,
    detail: d.breaker.reason !== undefined
      ? `deployment "${d.name}" is out for the run: ${d.breaker.reason}`
      : `deployment "${d.name}" is cooling down after failures in a row; it is tried again in ${Math.max(0, d.breaker.cooldownUntil - now)} ms`,
    shouldRetry: false,
    attempts
  })

/** What an attempt's end tells the breaker and the deployment's metrics. */
const tell = (d: Deployment, exit: Exit.Exit<unknown, ChatError>, probe: boolean, now: number): Effect.Effect<void> => {
  if (Exit.isFailure(exit)) {
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some" && failure.value._tag === "RateLimitError") tagged(deploymentRateLimited, "deployment", d.name).unsafeUpdate(1, NO_LABELS)
  }
  const verdict = verdictOf(exit)
  const went = d.breaker.record(verdict, probe, now)
  if (went === undefined) return Effect.void
  tagged(deploymentCooldowns, "deployment", d.name).unsafeUpdate(1, NO_LABELS)
  if (went === "out") {
    const status = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
    const code = status?._tag === "Some" && status.value._tag === "ApiError" ? status.value.status : 401
    d.breaker.reason = `its key was refused (${code}); check the key of this deployment`
    return Effect.logWarning(`shepherd router: deployment "${d.name}" refused its key (${code}): it is out for the run. Check its key.`)
  }
  return Effect.logWarning(`shepherd router: deployment "${d.name}" failed ${probe ? "its probe" : "several attempts in a row"}: cooling down until ${new Date(d.breaker.cooldownUntil).toISOString()}, then one probe.`)
}

/** `endpoint` behind the deployment's breaker: a refused attempt is not sent; every sent one is told. */
const guarded = <A, R>(d: () => Deployment, endpoint: Pipeline.Endpoint<A, R>): Pipeline.Endpoint<A, R> => ({
  ...endpoint,
  exchange: (call, attempt) =>
    Effect.suspend(() => {
      const deployment = d()
      const now = call.clock.unsafeCurrentTimeMillis()
      const gate = deployment.breaker.gate(now)
      if (gate === "refused") return Effect.fail(refusal(deployment, attempt.number - 1, now))
      tagged(deploymentAttempts, "deployment", deployment.name).unsafeUpdate(1, NO_LABELS)
      return Effect.onExit(endpoint.exchange(call, attempt), (exit) =>
        Effect.suspend(() => tell(deployment, exit, gate === "probe", call.clock.unsafeCurrentTimeMillis())))
    })
})

/** The limiter of a deployment: on its own memory window, or on Redis keyed by its base URL and key. */
const limiterFor = (
  options: Router.Options,
  d: Router.Deployment,
  limits: RateLimit.Options
): Effect.Effect<RateLimit.Service, ConfigError.ConfigError | LimiterUnavailableError, Scope.Scope> =>
  Effect.gen(function* () {
    // Its own window: in memory (the caller's store in the context is not this deployment's), or in Redis.
    if (options.redis === undefined) return yield* Effect.provide(RateLimit.make(limits), RateLimit.layerStoreMemory)
    const store = yield* RedisStore.make({ ...options.redis, baseUrl: d.baseUrl, apiKey: d.apiKey })
    return yield* Effect.provideService(RateLimit.make(limits), RateLimit.RateLimitStore, store)
  })

/** What a deployment is made of, before its endpoints are put behind its breaker. */
export interface Parts {
  readonly name: string
  /** Its place in `deployments`. */
  readonly index: number
  readonly priority: number
  /** The models it serves: as requests name them -> as its provider does. */
  readonly models: ReadonlyMap<string, string>
  readonly endpoints: ClientService.Endpoints
  readonly limiter: RateLimit.Service
  /** Its retry policy (the client's `retry` under its own). */
  readonly policy: RetryPolicy.Resolved
  readonly breaker: BreakerSettings
}

/** A deployment from its parts: its endpoints behind its breaker. */
export const assemble = (parts: Parts): Deployment => {
  let self: Deployment | undefined
  const me = () => self!
  self = {
    ...parts,
    endpoints: {
      chat: guarded(me, parts.endpoints.chat),
      embeddings: guarded(me, parts.endpoints.embeddings),
      streaming: guarded(me, parts.endpoints.streaming),
      streamSettings: parts.endpoints.streamSettings
    },
    breaker: new Breaker(parts.breaker),
    inFlight: 0
  }
  return self
}

/**
 * Builds deployment `index` from its checked client options (`resolved`), with its own pool,
 * endpoints, limiter and breaker.
 */
export const make = (
  options: Router.Options,
  index: number,
  resolved: ClientOptions,
  breaker: BreakerSettings,
  deadlines: Deadlines.Deadlines
): Effect.Effect<Deployment, ConfigError.ConfigError | LimiterUnavailableError, Scope.Scope> =>
  Effect.gen(function* () {
    const given = options.deployments[index]!
    const transports = yield* ClientService.ownPool(resolved)
    return assemble({
      name: given.name,
      index,
      priority: given.priority ?? 0,
      models: modelsOf(given.models),
      endpoints: ClientService.endpointsFor(resolved, transports, deadlines),
      limiter: yield* limiterFor(options, given, resolved.limits),
      policy: RetryPolicy.resolve(resolved.retry),
      breaker
    })
  })
