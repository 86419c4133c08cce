/**
 * A cache of answers, as a stage of `ChatClient`'s pipeline (docs/cache.md): an identical request
 * (same endpoint, same canonical body, same base URL and API key) is answered from the cache, with
 * no limiter, no budget and nothing sent; identical requests in flight at once are sent once and
 * share the answer. Errors, refusals and answers cut by `max_tokens` are never stored; streams
 * bypass the cache.
 *
 * ```ts
 * const client = ChatClient.layer().pipe(Layer.provide(ResponseCache.layerFile(".shepherd-cache")))
 * ```
 *
 * @since 0.2.0
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as ChatSchema from "./ChatSchema.js"
import * as FileStore from "./internal/cache/file.js"
import * as Hold from "./internal/cache/hold.js"
import * as MemoryStore from "./internal/cache/memory.js"
import * as RedisStore from "./internal/cache/redis.js"
import * as Shared from "./internal/redis.js"
import * as Validate from "./internal/validate.js"

/**
 * A store failed (a file that cannot be written, Redis out of reach). When a layer is built it fails
 * the layer; during a call it is never the call's error: the call goes on as a miss (a warning is
 * logged once until the store answers again).
 *
 * @since 0.2.0
 * @category errors
 */
export class ResponseCacheError extends Schema.TaggedError<ResponseCacheError>()("ResponseCacheError", {
  operation: Schema.Literal("open", "get", "set", "remove"),
  /** The directory, `memory`, or the Redis URL without credentials. */
  location: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return this.operation === "open"
      ? `the response cache at ${this.location} cannot be opened (${this.detail}): check the directory's permissions or the Redis URL, or run without the cache`
      : `the response cache at ${this.location} failed to ${this.operation} an entry (${this.detail}); the request was sent as a miss`
  }
}

/**
 * Where entries are kept: text by key (64 hex digits). `memory`, `file` and `Redis` are built in;
 * {@link layerKeyValueStore} adapts any `@effect/platform` `KeyValueStore`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Store {
  /** For messages: the directory, `memory`, or the Redis URL without credentials. */
  readonly location: string
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, ResponseCacheError>
  /** `ttlMillis`: the cache's `ttl`, for stores that expire entries themselves (Redis); entries also carry it. */
  readonly set: (key: string, entry: string, ttlMillis: number | undefined) => Effect.Effect<void, ResponseCacheError>
  readonly remove: (key: string) => Effect.Effect<void, ResponseCacheError>
}

/**
 * A request as the `cacheable` predicate sees it.
 *
 * @since 0.2.0
 * @category models
 */
export type Request =
  | { readonly endpoint: "chat"; readonly body: ChatSchema.ChatCompletionRequest }
  | { readonly endpoint: "embeddings"; readonly body: ChatSchema.EmbeddingRequest }

/**
 * Options of every cache layer. Every default is in {@link defaults}.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** How long an entry answers; after it, a miss. @default undefined (entries do not expire) */
  readonly ttl?: Duration.DurationInput | undefined
  /** Which requests go through the cache. @default defaultCacheable */
  readonly cacheable?: ((request: Request) => boolean) | undefined
  /** Never read: send every cacheable request and write (or rewrite) its entry. @default false */
  readonly refresh?: boolean | undefined
  /** Also store chat answers cut by `max_tokens` (`finish_reason: "length"`). @default false */
  readonly cacheLength?: boolean | undefined
  /**
   * Share entries between API keys of the same base URL: the key's hash is left out of the cache
   * key. Only for keys of one account or answers that do not depend on who asks. @default false
   */
  readonly sharedAcrossKeys?: boolean | undefined
}

/**
 * Options with their defaults, checked.
 *
 * @since 0.2.0
 * @category options
 */
export interface Resolved {
  readonly ttlMillis: number | undefined
  readonly cacheable: (request: Request) => boolean
  readonly refresh: boolean
  readonly cacheLength: boolean
  readonly sharedAcrossKeys: boolean
}

/**
 * The default `cacheable` rule: every request except chat requests that ask for several answers
 * (`n > 1`: each call is meant to sample anew) or that offer tools (`tools` or the older `functions`)
 * without `tool_choice: "none"`: the cache cannot tell a tool that reads from one that acts, and a
 * replayed tool call would repeat the action without the model deciding it again. Embeddings are
 * always cacheable.
 *
 * @since 0.2.0
 * @category options
 */
export const defaultCacheable = (request: Request): boolean => {
  if (request.endpoint === "embeddings") return true
  const body = request.body as ChatSchema.ChatCompletionRequest & { readonly functions?: unknown }
  if (typeof body.n === "number" && body.n > 1) return false
  const offersTools = (Array.isArray(body.tools) && body.tools.length > 0) || (Array.isArray(body.functions) && body.functions.length > 0)
  return !offersTools || body.tool_choice === "none"
}

/**
 * The defaults of every option.
 *
 * @since 0.2.0
 * @category options
 */
export const defaults: Resolved = { ttlMillis: undefined, cacheable: defaultCacheable, refresh: false, cacheLength: false, sharedAcrossKeys: false }

/**
 * The cache service: a store and the rules it is used with.
 *
 * @since 0.2.0
 * @category models
 */
export interface Service {
  readonly store: Store
  readonly options: Resolved
}

/**
 * The cache. `ChatClient` uses it when the layer that builds the client has it, or else when the
 * call's own context has it, as it does `Budget`.
 *
 * @since 0.2.0
 * @category tags
 */
export class ResponseCache extends Context.Tag("effect-shepherd/ResponseCache")<ResponseCache, Service>() {}

/**
 * Checks options (`ttl` a positive duration, the flags booleans, `cacheable` a function) and fills in
 * the defaults; fails with a `ConfigError` naming the option.
 *
 * @since 0.2.0
 * @category validation
 */
export const resolveOptions = (options: Options = {}): Effect.Effect<Resolved, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const ttl = options.ttl === undefined ? undefined : yield* Validate.positiveDuration(["ttl"], options.ttl)
    const flag = (name: "refresh" | "cacheLength" | "sharedAcrossKeys") =>
      options[name] === undefined ? Either.right(defaults[name]) : Validate.boolean([name], options[name])
    if (options.cacheable !== undefined && typeof options.cacheable !== "function") {
      return yield* Effect.fail(Validate.invalid(["cacheable"], "must be a function from a request to a boolean"))
    }
    return {
      ttlMillis: ttl === undefined ? undefined : Duration.toMillis(ttl),
      cacheable: options.cacheable ?? defaultCacheable,
      refresh: yield* flag("refresh"),
      cacheLength: yield* flag("cacheLength"),
      sharedAcrossKeys: yield* flag("sharedAcrossKeys")
    }
  })

/**
 * The cache over any `Store`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (store: Store, options: Options = {}): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.map(resolveOptions(options), (resolved) => ({ store, options: resolved }))

/**
 * Entries in memory, for one process, least recently used evicted first once their bytes pass
 * `maxBytes` (an entry larger than `maxBytes` is not kept).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (options: Options & { readonly maxBytes: number }): Layer.Layer<ResponseCache, ConfigError.ConfigError> =>
  Layer.effect(ResponseCache, Effect.flatMap(Validate.positiveInt(["maxBytes"], options.maxBytes), (maxBytes) => make(MemoryStore.make(maxBytes), options)))

/**
 * Entries as files under `dir` (created if missing), kept across restarts and shared by every process
 * that uses the same directory: each entry is written to a temporary file and renamed into place, so
 * a reader never sees half of one, and an entry damaged on disk reads as a miss. Expired entries stay
 * on disk until rewritten (delete the directory to empty it). Fails to build with
 * `ResponseCacheError` when the directory cannot be created.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerFile = (dir: string, options: Options = {}): Layer.Layer<ResponseCache, ConfigError.ConfigError | ResponseCacheError> =>
  Layer.effect(
    ResponseCache,
    Effect.gen(function* () {
      const path = yield* Validate.nonEmptyString(["dir"], dir)
      return yield* make(yield* FileStore.make(path), options)
    })
  )

/**
 * Options of {@link layerRedis}.
 *
 * @since 0.2.0
 * @category options
 */
export interface RedisOptions extends Options {
  /** `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS). */
  readonly url: string
  /** The password, when it is not in `url`. @default none */
  readonly password?: Redacted.Redacted<string> | undefined
  /** Separates caches that share one Redis. @default "default" */
  readonly namespace?: string | undefined
  /** How long one Redis command may take before it counts as failed (the call is then a miss). @default 2 seconds */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

/**
 * Entries in Redis, shared by every process and machine using it (with `ttl`, Redis also expires
 * them itself). The connection opens when the layer is built and closes with it; fails to build
 * with `ResponseCacheError` when Redis cannot be reached or refuses the password, and with a
 * `ConfigError` naming an invalid option. Once built, a failed command is a miss, not an error.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<ResponseCache, ConfigError.ConfigError | ResponseCacheError> =>
  Layer.scoped(
    ResponseCache,
    Effect.gen(function* () {
      yield* Validate.url(["url"], options.url, ["redis:", "rediss:"], "redis://127.0.0.1:6379")
      const namespace = options.namespace ?? "default"
      const problem = Shared.namespaceProblem(namespace)
      if (problem !== undefined) return yield* Effect.fail(Validate.invalid(["namespace"], `is invalid: ${problem}`))
      const timeout = yield* Validate.positiveDuration(["commandTimeout"], options.commandTimeout ?? "2 seconds")
      const resolved = yield* resolveOptions(options)
      const store = yield* RedisStore.make({ url: options.url, password: options.password, namespace, commandTimeoutMillis: Duration.toMillis(timeout) })
      return { store, options: resolved }
    })
  )

/**
 * The cache over the `KeyValueStore` of `@effect/platform` in the context (its `layerMemory`,
 * `layerFileSystem`, or your own). Expiry is checked from the entry itself; a store failure is a miss.
 * Note that `KeyValueStore.layerFileSystem` writes files in place: prefer {@link layerFile} when
 * several processes share a directory.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerKeyValueStore = (options: Options = {}): Layer.Layer<ResponseCache, ConfigError.ConfigError, KeyValueStore.KeyValueStore> =>
  Layer.effect(ResponseCache, Effect.flatMap(KeyValueStore.KeyValueStore, (kv) => make(fromKeyValueStore(kv), options)))

/** A `KeyValueStore` as a `Store`: its `PlatformError`s become `ResponseCacheError`s. */
const fromKeyValueStore = (kv: KeyValueStore.KeyValueStore): Store => {
  const location = "KeyValueStore"
  const fail = (operation: ResponseCacheError["operation"]) => (e: { readonly message: string }) => new ResponseCacheError({ operation, location, detail: e.message })
  return {
    location,
    get: (key) => Effect.mapError(kv.get(key), fail("get")),
    set: (key, entry) => Effect.mapError(kv.set(key, entry), fail("set")),
    remove: (key) => Effect.mapError(kv.remove(key), fail("remove"))
  }
}

/**
 * An answer obtained under {@link hold}, and what to do with the cache entries it made.
 *
 * @since 0.2.0
 * @category validation
 */
export interface Held<A> {
  readonly value: A
  /** Writes the entries of the answers received (kept until now). */
  readonly accept: Effect.Effect<void>
  /** Removes the entries the answers were read from; what was received is never written. */
  readonly reject: Effect.Effect<void>
}

/**
 * Runs `effect` with the cache writes of its calls held back, for callers that check an answer
 * before trusting it (`Structured.generate` does): `accept` writes them, `reject` drops them and
 * removes any entry an answer was read from, so that a rejected answer is never replayed. Writes
 * neither accepted nor rejected are dropped.
 *
 * @since 0.2.0
 * @category validation
 */
export const hold: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<Held<A>, E, R> = Hold.hold
