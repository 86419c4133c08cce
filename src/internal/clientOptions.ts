/**
 * `ChatClient`'s options: checked and completed (`ChatClient.resolveOptions`), and read from the
 * environment (`ChatClient.optionsConfig`). The option types are declared in ChatClient.ts.
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { Options, Overrides } from "../ChatClient.js"
import * as RateLimit from "../RateLimit.js"
import * as RetryPolicy from "../RetryPolicy.js"
import * as Env from "./env.js"
import * as Validate from "./validate.js"

/** Checks options and fills in `defaults` (see `ChatClient.resolveOptions`). */
export const resolve = (options: Overrides, defaults: Options): Effect.Effect<Options, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const resolved: Options = { ...defaults, ...withoutUndefined(options) }
    const url = yield* Validate.url(["baseUrl"], resolved.baseUrl, ["http:", "https:"], Env.DEFAULT_BASE_URL)
    if (resolved.apiKey === undefined && url.hostname === "api.openai.com") {
      return yield* Effect.fail(
        ConfigError.MissingData(
          ["OPENAI_API_KEY"],
          "an API key is required for api.openai.com: set OPENAI_API_KEY, or set OPENAI_BASE_URL to a server that needs none"
        )
      )
    }
    if (resolved.apiKey !== undefined) {
      if (!Redacted.isRedacted(resolved.apiKey)) {
        return yield* Effect.fail(Validate.invalid(["apiKey"], "must be a Redacted string: pass Redacted.make(key)"))
      }
      const key: unknown = Redacted.value(resolved.apiKey)
      if (typeof key !== "string") return yield* Effect.fail(Validate.invalid(["apiKey"], "must hold a string"))
      yield* Validate.apiKey(["apiKey"], key, "OPENAI_API_KEY when read from the environment")
    }
    yield* Validate.positiveInt(["connections"], resolved.connections)
    yield* Validate.positiveDuration(["keepAliveTimeout"], resolved.keepAliveTimeout)
    yield* Validate.positiveDuration(["connectTimeout"], resolved.connectTimeout)
    yield* Validate.positiveDuration(["timeout"], resolved.timeout)
    yield* Validate.positiveDuration(["idleTimeout"], resolved.idleTimeout)
    yield* Validate.positiveInt(["maxResponseBytes"], resolved.maxResponseBytes)
    yield* Validate.positiveInt(["maxEventBytes"], resolved.maxEventBytes)
    if (typeof resolved.headers !== "object" || resolved.headers === null) {
      return yield* Effect.fail(Validate.invalid(["headers"], "must be an object of header names to values"))
    }
    for (const [name, value] of Object.entries(resolved.headers)) {
      yield* Validate.headerName(["headers", name], name)
      yield* Validate.headerValue(["headers", name], value)
    }
    yield* Validate.oneOf(["transport"], resolved.transport, ["undici", "platform"] as const)
    yield* Validate.boolean(["tracing"], resolved.tracing)
    yield* RetryPolicy.validateOptions(resolved.retry, ["retry"])
    yield* RateLimit.validateOptions(resolved.limits, ["limits"])
    return resolved
  })

/** `options` without the keys whose value is `undefined` (they take their default). */
export const withoutUndefined = (options: Overrides): Partial<Options> =>
  Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<Options>

/** The options the environment sets (see `ChatClient.Options`). */
export const fromEnv: Config.Config<Overrides> = Config.all({
  apiKey: Env.apiKey,
  baseUrl: Env.baseUrl,
  connections: Config.option(Config.integer("SHEPHERD_CONNECTIONS")),
  timeout: Config.option(Config.duration("SHEPHERD_TIMEOUT")),
  idleTimeout: Config.option(Config.duration("SHEPHERD_IDLE_TIMEOUT")),
  maxResponseBytes: Config.option(Config.integer("SHEPHERD_MAX_RESPONSE_BYTES")),
  tracing: Config.option(Config.boolean("SHEPHERD_TRACING")),
  connectTimeout: Config.option(Config.duration("SHEPHERD_CONNECT_TIMEOUT")),
  maxRetries: Config.option(Config.integer("SHEPHERD_MAX_RETRIES")),
  totalTimeout: Config.option(Config.duration("SHEPHERD_TOTAL_TIMEOUT"))
}).pipe(
  Config.map((env) => ({
    apiKey: Option.getOrUndefined(env.apiKey),
    baseUrl: Option.getOrUndefined(env.baseUrl),
    connections: Option.getOrUndefined(env.connections),
    timeout: Option.getOrUndefined(env.timeout),
    idleTimeout: Option.getOrUndefined(env.idleTimeout),
    maxResponseBytes: Option.getOrUndefined(env.maxResponseBytes),
    tracing: Option.getOrUndefined(env.tracing),
    connectTimeout: Option.getOrUndefined(env.connectTimeout),
    retry: Option.isNone(env.maxRetries) && Option.isNone(env.totalTimeout)
      ? undefined
      : {
        ...Option.match(env.maxRetries, { onNone: () => ({}), onSome: (maxRetries) => ({ maxRetries }) }),
        ...Option.match(env.totalTimeout, { onNone: () => ({}), onSome: (totalTimeout) => ({ totalTimeout }) })
      }
  }))
)

