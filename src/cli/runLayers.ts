/**
 * The layers of `shepherd run`: the client, with the budget (`--budget-usd`) and, with `--redis`, the
 * shared limits and budget. Built before anything is read or sent, so that a configuration error (no
 * key for the default URL, a bad base URL, Redis unreachable or refusing the password) stops the run
 * here, in words naming the flag or variable to change.
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Budget from "../Budget.js"
import * as ChatClient from "../ChatClient.js"
import type * as ChatError from "../ChatError.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import * as ConfigErrors from "./configError.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import type { RunConfig } from "./runConfig.js"
import { LIMITER_ADVICE, limiterProblem } from "./runOutcome.js"

/** The client as configured: the budget and the shared limits, when asked for, provided to it. */
export const clientLayer = (config: RunConfig) => {
  const shared = Option.map(config.redis, (redis) => ({
    url: redis.url,
    namespace: redis.namespace,
    baseUrl: config.apiUrl,
    apiKey: config.client.apiKey,
    workers: redis.workers,
    onUnavailable: redis.onUnavailable
  }))
  const prices = config.prices
  const budgetLayer = Option.map(config.budgetUsd, (maxUsd) =>
    Option.match(shared, { onNone: () => Budget.layer({ maxUsd, prices }), onSome: (redis) => Budget.layerRedis({ ...redis, maxUsd, prices }) }))
  const limiterLayer = Option.map(shared, (redis) => RateLimit.layerRedis({ ...redis, ...config.client.limits }))
  const cacheLayer = Option.map(config.cache, (target) =>
    /^rediss?:/i.test(target) ? ResponseCache.layerRedis({ url: target }) : ResponseCache.layerFile(target))
  if (Option.isSome(config.deployments)) {
    // Each deployment has its own limiter (in Redis with --redis, keyed by its base URL and key).
    const redis = Option.getOrUndefined(Option.map(config.redis, ({ namespace, onUnavailable, url, workers }) => ({ url, namespace, workers, onUnavailable })))
    const { apiKey: _key, baseUrl: _url, limits: _limits, ...client } = config.client
    return ChatClient.layerRouter({ ...config.deployments.value.options, client, redis }).pipe(
      Layer.provide(Option.getOrElse(cacheLayer, () => Layer.empty)),
      Layer.provide(Option.getOrElse(budgetLayer, () => Layer.empty))
    )
  }
  return ChatClient.layer(config.client).pipe(
    Layer.provide(Option.getOrElse(cacheLayer, () => Layer.empty)),
    Layer.provide(Option.getOrElse(budgetLayer, () => Layer.empty)),
    Layer.provide(Option.getOrElse(limiterLayer, () => Layer.empty))
  )
}

/**
 * Builds the client in the current scope. A `ConfigError` or a refused Redis password is a usage
 * error (exit 2); Redis out of reach stops the run unfinished (exit 1): nothing was sent.
 */
export const build = (config: RunConfig): Effect.Effect<Context.Context<ChatClient.ChatClient>, CliError, Scope.Scope> =>
  Layer.build(clientLayer(config)).pipe(
    Effect.catchTags({
      ConfigError: (error: ConfigError.ConfigError) =>
        new CliError({
          detail: configProblem(error, config.keyVariable, config.baseUrlFromEnv, Option.getOrUndefined(Option.map(config.deployments, (d) => d.file))),
          exitCode: ExitStatus.USAGE
        }),
      ResponseCacheError: (error: ResponseCache.ResponseCacheError) =>
        new CliError({ detail: `--cache: ${error.message}; nothing was sent`, exitCode: ExitStatus.USAGE }),
      LimiterUnavailableError: (error: ChatError.LimiterUnavailableError) =>
        error.reason === "password"
          // A refused Redis password is a configuration error, found before anything is sent.
          ? new CliError({ detail: `${error.message} It was read from ${config.redisSource}; nothing was sent.`, exitCode: ExitStatus.USAGE })
          : new CliError({ detail: `${limiterProblem(error)}: nothing was sent. ${LIMITER_ADVICE}`, exitCode: ExitStatus.UNFINISHED })
    })
  )

/** A `ConfigError` from building the client, as one sentence naming the flag or variable to change. */
export const configProblem = (error: ConfigError.ConfigError, keyVariable: string, baseUrlFromEnv: boolean, deploymentsFile?: string): string => {
  const first = (e: ConfigError.ConfigError): ConfigError.ConfigError => e._op === "And" || e._op === "Or" ? first(e.left) : e
  const e = first(error)
  // A router's option paths are the file's own (deployments.1.limits.rpm).
  if (deploymentsFile !== undefined && "path" in e && e.path[0] !== "client" && e.path[0] !== "redis") return `--deployments ${deploymentsFile}: ${e.message}`
  if ("path" in e && e.path[0] === "OPENAI_API_KEY") {
    return `no API key: ${ChatClient.DEFAULT_BASE_URL} needs one. Set ${keyVariable}` +
      `${keyVariable === "OPENAI_API_KEY" ? " (or name another variable with --api-key-env)" : ""}, or pass --base-url for a server that needs none`
  }
  // The library names its option (limits.rpm, baseUrl); the user wrote a flag or a variable.
  return ConfigErrors.describe(e, new Map([
    ...ConfigErrors.runFlags,
    ["apiKey", keyVariable],
    ["baseUrl", baseUrlFromEnv ? "OPENAI_BASE_URL" : "--base-url"]
  ]))
}
