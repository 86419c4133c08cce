/**
 * The Redis store: one string per entry, `shepherd:cache:<namespace>:<key>`, written with `SET ... PX
 * <ttl>` when the cache has a TTL (Redis then drops it by itself). The connection is the one the rate
 * limiter and the budget use (internal/redis.ts): scoped, no offline queue, reconnecting in the
 * background, the password never in a message.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Shared from "../redis.js"
import { ResponseCacheError, type Store } from "../../ResponseCache.js"

/** What the store needs: the URL (the password in it or beside it), the namespace and the command timeout. */
export interface Settings {
  readonly url: string
  readonly password: Redacted.Redacted<string> | undefined
  readonly namespace: string
  readonly commandTimeoutMillis: number
}

/** The URL with `password` put in it (for the connection only; messages use `Shared.location`). */
const withPassword = (url: string, password: Redacted.Redacted<string> | undefined): string => {
  if (password === undefined) return url
  const parsed = new URL(url)
  parsed.password = encodeURIComponent(Redacted.value(password))
  return parsed.toString()
}

/** Connects (failing when Redis cannot be reached or refuses the password) and gives the store. */
export const make = (settings: Settings): Effect.Effect<Store, ResponseCacheError, Scope.Scope> =>
  Effect.gen(function* () {
    const location = Shared.location(settings.url)
    const connection = yield* Shared.connect(
      { url: withPassword(settings.url, settings.password), commandTimeout: settings.commandTimeoutMillis, onUnavailable: "failClosed" },
      "rate-limit"
    ).pipe(Effect.mapError((e) => new ResponseCacheError({ operation: "open", location, detail: e.detail })))
    const prefix = `shepherd:cache:${settings.namespace}:`
    const call = <A>(operation: ResponseCacheError["operation"], run: (redis: typeof connection.redis) => Promise<A>) =>
      Effect.mapError(connection.call("rate-limit", run), (e) => new ResponseCacheError({ operation, location, detail: e.detail }))
    const store: Store = {
      location,
      get: (key) => Effect.map(call("get", (redis) => redis.get(prefix + key)), Option.fromNullable),
      set: (key, text, ttlMillis) =>
        Effect.asVoid(call("set", (redis) => ttlMillis === undefined ? redis.set(prefix + key, text) : redis.set(prefix + key, text, "PX", Math.max(1, Math.ceil(ttlMillis))))),
      remove: (key) => Effect.asVoid(call("remove", (redis) => redis.del(prefix + key)))
    }
    return store
  })
