/**
 * The router's options checked when its layer is built: each deployment's client options (its own
 * over the shared `client`), its models and priority; the fallback chains, causes, context windows
 * and the breaker. A mistake fails with a `ConfigError` naming its path
 * (`["deployments", "1", "limits", "rpm"]`, `["fallbacks", "gpt-4.1", "0"]`, `["client", "timeout"]`).
 * @internal
 */
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Options as ClientOptions, Overrides } from "../../ChatClient.js"
import * as Router from "../../Router.js"
import * as Validate from "../validate.js"
import type { Settings as BreakerSettings } from "./breaker.js"

/** The options, checked. */
export interface Checked {
  /** Each deployment's client options, resolved. */
  readonly clients: ReadonlyArray<ClientOptions>
  readonly breaker: BreakerSettings
  readonly chains: ReadonlyMap<string, ReadonlyArray<string>>
  readonly fallbackOn: ReadonlySet<Router.FallbackCause>
  readonly contextWindows: ReadonlyMap<string, number>
}

/** `error` with `prefix` before its path (and in its message). */
export const under = (prefix: Validate.Path, error: ConfigError.ConfigError): ConfigError.ConfigError => {
  if (error._op !== "InvalidData" && error._op !== "MissingData") return error
  const old = Validate.pathText(error.path)
  const path = [...prefix, ...error.path]
  const message = error.message.startsWith(old) ? Validate.pathText(path) + error.message.slice(old.length) : `${Validate.pathText(path)}: ${error.message}`
  return error._op === "InvalidData" ? ConfigError.InvalidData(path, message) : ConfigError.MissingData(path, message)
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> => typeof value === "object" && value !== null && !Array.isArray(value)

/** Whether the deployment itself sets the option at `path` (else the shared `client` does). */
const ownOption = (d: Router.Deployment, path: ReadonlyArray<string>): boolean => {
  const top = (d as unknown as Record<string, unknown>)[path[0] ?? ""]
  if (top === undefined) return false
  if (path[0] === "baseUrl" || path[0] === "apiKey" || path[0] === "limits" || path[0] === "connections") return true
  return isRecord(top) && path[1] !== undefined && top[path[1]] !== undefined
}

/** One deployment's name, models and priority. */
const checkShape = (d: Router.Deployment, at: Validate.Path, names: Set<string>): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (!isRecord(d)) return yield* Effect.fail(Validate.invalid(at, "must be an object"))
    const name = yield* Validate.nonEmptyString([...at, "name"], d.name)
    if (names.has(name)) return yield* Effect.fail(Validate.invalid([...at, "name"], `must be unique: "${name}" names two deployments`))
    names.add(name)
    const models: unknown = d.models
    if (Array.isArray(models)) {
      if (models.length === 0) return yield* Effect.fail(Validate.invalid([...at, "models"], "must name at least one model"))
      for (const [j, m] of models.entries()) yield* Validate.nonEmptyString([...at, "models", String(j)], m)
    } else if (isRecord(models)) {
      if (Object.keys(models).length === 0) return yield* Effect.fail(Validate.invalid([...at, "models"], "must name at least one model"))
      for (const [alias, m] of Object.entries(models)) yield* Validate.nonEmptyString([...at, "models", alias], m)
    } else return yield* Effect.fail(Validate.invalid([...at, "models"], "must be a list of model names or a record from model name to the provider's name"))
    if (d.priority !== undefined) yield* Validate.atLeast([...at, "priority"], d.priority, Number.MIN_SAFE_INTEGER)
  })

/** One deployment's client options: its own over the shared ones. */
const clientOf = (
  options: Router.Options,
  d: Router.Deployment,
  at: Validate.Path,
  resolve: (o: Overrides) => Effect.Effect<ClientOptions, ConfigError.ConfigError>
): Effect.Effect<ClientOptions, ConfigError.ConfigError> => {
  const shared = options.client ?? {}
  const given: Overrides = {
    ...shared,
    baseUrl: d.baseUrl,
    apiKey: d.apiKey,
    limits: d.limits ?? {},
    connections: d.connections ?? shared.connections,
    headers: { ...shared.headers, ...d.headers },
    retry: { ...shared.retry, ...d.retry }
  }
  if (d.baseUrl === undefined) return Effect.fail(Validate.invalid([...at, "baseUrl"], "must be set: the deployment's base URL, usually ending in /v1"))
  return Effect.mapError(resolve(given), (error) => (error._op === "InvalidData" || error._op === "MissingData") && ownOption(d, error.path) ? under(at, error) : under(["client"], error))
}

/** The fallback chains, every model of them served by some deployment. */
const checkFallbacks = (options: Router.Options, served: ReadonlySet<string>): Effect.Effect<Map<string, ReadonlyArray<string>>, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const chains = new Map<string, ReadonlyArray<string>>()
    if (options.fallbacks === undefined) return chains
    if (!isRecord(options.fallbacks)) return yield* Effect.fail(Validate.invalid(["fallbacks"], "must be a record from a model to the models to try after it"))
    for (const [model, list] of Object.entries(options.fallbacks)) {
      if (!Array.isArray(list)) return yield* Effect.fail(Validate.invalid(["fallbacks", model], "must be a list of models"))
      for (const [j, next] of (list as ReadonlyArray<unknown>).entries()) {
        const name = yield* Validate.nonEmptyString(["fallbacks", model, String(j)], next)
        if (!served.has(name)) return yield* Effect.fail(Validate.invalid(["fallbacks", model, String(j)], `names "${name}", which no deployment serves: add it to a deployment's models`))
      }
      chains.set(model, [model, ...(list as ReadonlyArray<string>)])
    }
    return chains
  })

/** The breaker's settings. */
const checkCooldown = (options: Router.Options): Effect.Effect<BreakerSettings, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const c = { ...Router.cooldownDefaults, ...Object.fromEntries(Object.entries(options.cooldown ?? {}).filter(([, v]) => v !== undefined)) }
    const failures = yield* Validate.positiveInt(["cooldown", "failures"], c.failures)
    const initial = yield* Validate.positiveDuration(["cooldown", "initial"], c.initial)
    const max = yield* Validate.positiveDuration(["cooldown", "max"], c.max)
    return { failures, initialMillis: Duration.toMillis(initial), maxMillis: Math.max(Duration.toMillis(initial), Duration.toMillis(max)) }
  })

/** Checks every option; `resolve` is `ChatClient.resolveOptions`. */
export const check = (
  options: Router.Options,
  resolve: (o: Overrides) => Effect.Effect<ClientOptions, ConfigError.ConfigError>
): Effect.Effect<Checked, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (!isRecord(options)) return yield* Effect.fail(Validate.invalid(["options"], "must be an object"))
    if (!Array.isArray(options.deployments) || options.deployments.length === 0) {
      return yield* Effect.fail(Validate.invalid(["deployments"], "must list at least one deployment"))
    }
    const names = new Set<string>()
    const served = new Set<string>()
    const clients: Array<ClientOptions> = []
    for (const [i, d] of options.deployments.entries()) {
      const at = ["deployments", String(i)]
      yield* checkShape(d, at, names)
      for (const m of Array.isArray(d.models) ? d.models : Object.keys(d.models)) served.add(m)
      clients.push(yield* clientOf(options, d, at, resolve))
    }
    const fallbackOn = options.fallbackOn ?? Router.defaultFallbackOn
    if (!Array.isArray(fallbackOn)) return yield* Effect.fail(Validate.invalid(["fallbackOn"], "must be a list of causes"))
    for (const [j, cause] of fallbackOn.entries()) yield* Validate.oneOf(["fallbackOn", String(j)], cause, Router.FALLBACK_CAUSES)
    const contextWindows = new Map<string, number>()
    if (options.contextWindows !== undefined) {
      if (!isRecord(options.contextWindows)) return yield* Effect.fail(Validate.invalid(["contextWindows"], "must be a record from model to tokens"))
      for (const [model, size] of Object.entries(options.contextWindows)) contextWindows.set(model, yield* Validate.positiveInt(["contextWindows", model], size))
    }
    return {
      clients,
      breaker: yield* checkCooldown(options),
      chains: yield* checkFallbacks(options, served),
      fallbackOn: new Set(fallbackOn),
      contextWindows
    }
  })
