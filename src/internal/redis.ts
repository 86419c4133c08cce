/**
 * Shared state in Redis: the connection (scoped), the key prefix, the Lua scripts of the rate limiter
 * and the budget, and what happens when Redis cannot be reached (fail closed, or fall back to local
 * state and return to Redis when it answers again).
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { createHash } from "node:crypto"
import { LimiterUnavailableError } from "../ChatError.js"
import * as Classify from "./classify.js"
import * as Env from "./env.js"
import * as Validate from "./validate.js"

/** Where the shared state lives and what to do without it. */
export interface RedisOptions {
  /** `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS). */
  readonly url: string
  /** Separates jobs that share one key but not their limits or budget. @default "default" */
  readonly namespace?: string | undefined
  /** The API the limits belong to (part of the key prefix), as the client reads it. @default OPENAI_BASE_URL, else https://api.openai.com/v1 */
  readonly baseUrl?: string | undefined
  /** The API key the limits belong to: only a hash of it is used. @default OPENAI_API_KEY */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /**
   * When Redis cannot be reached: `failClosed` fails each request with `LimiterUnavailableError`
   * without sending it; `fallbackLocal` goes on with local state (limits divided by `workers`), with
   * a warning, and returns to Redis when it answers again. @default "failClosed"
   */
  readonly onUnavailable?: "failClosed" | "fallbackLocal" | undefined
  /** How many processes share the limits: `fallbackLocal` gives each 1/workers of them. @default 1 */
  readonly workers?: number | undefined
  /** How long one Redis command may take before Redis counts as unreachable. @default 2 seconds */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** While on local state, how often Redis is tried again. @default 5 seconds */
  readonly retryInterval?: Duration.DurationInput | undefined
}

const NAMESPACE = /^[A-Za-z0-9._:-]{1,100}$/

/** Why a namespace cannot be used, or undefined when it can. */
export const namespaceProblem = (namespace: string): string | undefined =>
  NAMESPACE.test(namespace) ? undefined : `the namespace ${JSON.stringify(namespace)} is not 1 to 100 letters, digits or . _ : -`

/** The URL without its credentials, for messages and logs. */
export const location = (url: string): string => {
  try {
    const parsed = new URL(url)
    parsed.username = ""
    parsed.password = ""
    return parsed.toString().replace(/\/$/, "")
  } catch {
    return "(an unreadable Redis URL)"
  }
}

/**
 * The prefix of every key: `shepherd:{<namespace>:<hash>}:` where the hash is 16 hex digits of
 * SHA-256 over the base URL and the API key (never the key itself). The braces keep all of one
 * namespace's keys in one Redis Cluster slot, as Lua scripts need.
 */
export const keyPrefix = (namespace: string, baseUrl: string, apiKey: string | undefined): string => {
  const digest = createHash("sha256").update(`${baseUrl.replace(/\/+$/, "")}\n${apiKey ?? ""}`).digest("hex").slice(0, 16)
  return `shepherd:{${namespace}:${digest}}:`
}

/**
 * What both stores derive from the options: the key prefix (the identity read from the environment
 * where not given) and the worker count. Every option is checked first: a bad one fails with a
 * `ConfigError` naming it (`["url"]`, `["namespace"]`, `["workers"]`, `["commandTimeout"]`, ...).
 */
export const resolve = (options: RedisOptions): Effect.Effect<{ readonly prefix: string; readonly workers: number }, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    yield* Validate.url(["url"], options.url, ["redis:", "rediss:"], "redis://127.0.0.1:6379")
    const namespace = options.namespace ?? "default"
    const problem = typeof namespace === "string" ? namespaceProblem(namespace) : "the namespace is not a string"
    if (problem !== undefined) return yield* Effect.fail(Validate.invalid(["namespace"], `is invalid: ${problem}`))
    const workers = yield* Validate.positiveInt(["workers"], options.workers ?? 1)
    if (options.commandTimeout !== undefined) yield* Validate.positiveDuration(["commandTimeout"], options.commandTimeout)
    if (options.retryInterval !== undefined) yield* Validate.positiveDuration(["retryInterval"], options.retryInterval)
    if (options.onUnavailable !== undefined) yield* Validate.oneOf(["onUnavailable"], options.onUnavailable, ["failClosed", "fallbackLocal"] as const)
    if (options.baseUrl !== undefined) yield* Validate.url(["baseUrl"], options.baseUrl, ["http:", "https:"], Env.DEFAULT_BASE_URL)
    // As the client reads them (a variable that cannot be read counts as unset).
    const baseUrl = options.baseUrl ?? Option.getOrElse(yield* Effect.orElseSucceed(Env.baseUrl, Option.none), () => Env.DEFAULT_BASE_URL)
    const apiKey = options.apiKey ?? Option.getOrUndefined(yield* Effect.orElseSucceed(Env.apiKey, Option.none))
    return { prefix: keyPrefix(namespace, baseUrl, apiKey === undefined ? undefined : Redacted.value(apiKey)), workers }
  })

/** Takes the password of a Redis URL (as written and decoded) out of a text. */
const scrubberFor = (url: string): Classify.Scrub => {
  let password = ""
  let decodedPassword = ""
  try {
    password = new URL(url).password
    decodedPassword = decodeURIComponent(password)
  } catch {
    // an unreadable URL (ioredis reports it) or a password that is not valid percent-encoding
  }
  const written = Classify.makeScrub(password)
  const decoded = Classify.makeScrub(decodedPassword)
  return (text) => decoded(written(text))
}

/** A Redis error or an unreachable server, as text for `LimiterUnavailableError.detail`. */
const describe = (error: unknown, scrub: Classify.Scrub): string => {
  const text = scrub(error instanceof Error ? error.message : String(error))
  if (/enableOfflineQueue|Stream isn't writeable|Connection is closed/i.test(text)) return "not connected"
  if (/Command timed out/i.test(text)) return "no answer in time"
  return text
}

/** Redis's answers to a wrong or missing password (or user). */
const PASSWORD_REFUSED = /\b(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/i

/** One connection, opened when the scope starts and closed with it. */
export interface Connection {
  readonly redis: Redis
  readonly location: string
  /** Runs a command; a failure or a timeout becomes `LimiterUnavailableError` for `store`. */
  readonly call: <A>(store: LimiterUnavailableError["store"], run: (redis: Redis) => Promise<A>) => Effect.Effect<A, LimiterUnavailableError>
}

/**
 * Connects to Redis. Commands are not queued while disconnected (they fail at once, and the caller
 * decides); the client reconnects in the background, every 100 ms to 2 s.
 */
export const connect = (options: RedisOptions, store: LimiterUnavailableError["store"]): Effect.Effect<Connection, LimiterUnavailableError, Scope.Scope> =>
  Effect.gen(function* () {
    const where = location(options.url)
    const scrub = scrubberFor(options.url)
    const timeout = Math.max(1, Math.round(Duration.toMillis(options.commandTimeout ?? "2 seconds")))
    const redis = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          new Redis(options.url, {
            lazyConnect: true,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            commandTimeout: timeout,
            connectTimeout: timeout,
            retryStrategy: (times) => Math.min(100 * times, 2000),
            // Commands issued in the same tick share one write (many fibers admit at once).
            enableAutoPipelining: true
          }),
        catch: (e) => new LimiterUnavailableError({ store, location: where, detail: describe(e, scrub) })
      }),
      (redis) => Effect.sync(() => redis.disconnect())
    )
    // Errors are reported through the commands that fail; without a listener ioredis would print each.
    // A refused password arrives only here (the commands then fail as "not connected"): it is kept
    // until the next connection error or until the connection is ready, to name the real cause.
    let refusal: string | undefined
    redis.on("error", (e: unknown) => {
      const text = scrub(e instanceof Error ? e.message : String(e))
      refusal = PASSWORD_REFUSED.test(text) ? text : undefined
    })
    redis.on("ready", () => { refusal = undefined })
    const failure = (s: LimiterUnavailableError["store"], e: unknown): LimiterUnavailableError => {
      const detail = describe(e, scrub)
      if (PASSWORD_REFUSED.test(detail)) return new LimiterUnavailableError({ store: s, location: where, detail, reason: "password" })
      if (detail === "not connected" && refusal !== undefined) return new LimiterUnavailableError({ store: s, location: where, detail: refusal, reason: "password" })
      return new LimiterUnavailableError({ store: s, location: where, detail })
    }
    const call: Connection["call"] = (s, run) => Effect.tryPromise({ try: () => run(redis), catch: (e) => failure(s, e) })
    const connected = yield* Effect.either(Effect.tryPromise({ try: () => redis.connect(), catch: (e) => failure(store, e) }))
    // A wrong password is a mistake in the configuration, not an outage: local state would not end it.
    if (connected._tag === "Left" && (options.onUnavailable !== "fallbackLocal" || connected.left.reason === "password")) {
      return yield* Effect.fail(connected.left)
    }
    if (connected._tag === "Left") {
      yield* Effect.logWarning(`shepherd: Redis at ${where} cannot be reached (${connected.left.detail}); using local ${store} state until it can`)
    }
    return { redis, location: where, call }
  })

/**
 * Runs shared operations while Redis answers, and, with `fallbackLocal`, local ones while it does
 * not: a failed shared call switches to local state (one warning), and after `retryInterval` the next
 * call tries Redis again (`onReturn` runs first when it answers).
 */
export interface Guard {
  readonly run: <A>(shared: Effect.Effect<A, LimiterUnavailableError>, local: Effect.Effect<A, LimiterUnavailableError>) => Effect.Effect<A, LimiterUnavailableError>
}

export const makeGuard = (
  connection: Connection,
  options: RedisOptions,
  store: LimiterUnavailableError["store"],
  onReturn: Effect.Effect<void, LimiterUnavailableError> = Effect.void
): Effect.Effect<Guard> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const fallback = options.onUnavailable === "fallbackLocal"
    const retryMillis = Duration.toMillis(options.retryInterval ?? "5 seconds")
    let local = connection.redis.status !== "ready" && fallback
    let retryAt = local ? clock.unsafeCurrentTimeMillis() + retryMillis : 0
    const goLocal = (error: LimiterUnavailableError) =>
      Effect.suspend(() => {
        retryAt = clock.unsafeCurrentTimeMillis() + retryMillis
        if (local) return Effect.void
        local = true
        return Effect.logWarning(
          `shepherd: Redis at ${connection.location} failed (${error.detail}); going on with local ${store} state ` +
            `(1/${options.workers ?? 1} of the limits) and trying Redis again every ${Duration.format(retryMillis)}`
        )
      })
    const run: Guard["run"] = (shared, localEffect) =>
      Effect.suspend(() => {
        if (!fallback) return shared
        if (local && clock.unsafeCurrentTimeMillis() < retryAt) return localEffect
        const wasLocal = local
        const attempt = wasLocal
          ? Effect.zipRight(Effect.zipRight(onReturn, Effect.sync(() => { local = false })), shared)
          : shared
        return attempt.pipe(
          Effect.tap(() => wasLocal ? Effect.logInfo(`shepherd: Redis at ${connection.location} answers again; ${store} state is shared again`) : Effect.void),
          Effect.catchAll((error) => Effect.zipRight(goLocal(error), localEffect))
        )
      })
    return { run }
  })

/** The current time on the Redis server, in ms, unless the caller passes one (tests do). */
const NOW = `
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

/**
 * The sliding window (RateLimit.SlidingWindow) in Lua. KEYS: 1 the log (a list of ids in start
 * order), 2 the entries (id -> "at:tokens"), 3 the state (lastAt, windowTokens, pause, seq).
 * ARGV: now (-1: the server's), tokens, rpm (-1: none), tpm (-1: none), window ms, the latest start
 * in ms from now (-1: none), the longest pause waited out in ms (-1: none).
 * Returns { id, at, now, refused } (refused: 0 admitted, 1 it would start too late, 2 the pause is
 * too long; a refusal records nothing). Keys expire two windows after the last admission (or after
 * the pause).
 */
export const ADMIT = `${NOW}
local tokens = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local maxWait = tonumber(ARGV[6] or '-1')
local maxPause = tonumber(ARGV[7] or '-1')
local state = redis.call('HMGET', KEYS[3], 'lastAt', 'windowTokens', 'pause', 'seq')
local lastAt = tonumber(state[1]) or 0
local windowTokens = tonumber(state[2]) or 0
local pause = tonumber(state[3]) or 0
local seq = tonumber(state[4]) or 0
if maxPause >= 0 and pause - now > maxPause then
  return { 0, pause, now, 2 }
end
if rpm < 0 and tpm < 0 then
  local at = math.max(now, pause)
  if maxWait >= 0 and at - now > maxWait then return { 0, at, now, 1 } end
  return { 0, at, now, 0 }
end
local count = redis.call('LLEN', KEYS[1])
-- The admissions that have left the window by t are counted past (head), dropped only on admission.
local head = 0
local headAt = nil
local headTokens = 0
local function peek()
  if head >= count then headAt = nil; return end
  local id = redis.call('LINDEX', KEYS[1], head)
  local entry = redis.call('HGET', KEYS[2], id)
  local sep = string.find(entry, ':', 1, true)
  headAt = tonumber(string.sub(entry, 1, sep - 1))
  headTokens = tonumber(string.sub(entry, sep + 1))
end
local function expire(t)
  peek()
  while headAt ~= nil and headAt + window <= t do
    windowTokens = windowTokens - headTokens
    head = head + 1
    peek()
  end
end
local t = math.max(now, lastAt, pause)
expire(t)
while rpm >= 0 and count - head >= rpm do
  t = math.max(t, headAt + window)
  expire(t)
end
while tpm >= 0 and count - head > 0 and windowTokens + tokens > tpm do
  t = math.max(t, headAt + window)
  expire(t)
end
if maxWait >= 0 and t - now > maxWait then
  return { 0, t, now, 1 }
end
for i = 1, head do
  local id = redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], id)
end
seq = seq + 1
redis.call('RPUSH', KEYS[1], seq)
redis.call('HSET', KEYS[2], seq, t .. ':' .. tokens)
windowTokens = windowTokens + tokens
redis.call('HSET', KEYS[3], 'lastAt', t, 'windowTokens', windowTokens, 'seq', seq)
local ttl = math.max(t, pause) - now + 2 * window
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return { seq, t, now, 0 }
`

/** Corrects an admission's tokens while it is in the window. ARGV: id, at, tokens. */
export const SETTLE = `
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return 0 end
local sep = string.find(entry, ':', 1, true)
local at = string.sub(entry, 1, sep - 1)
if at ~= ARGV[2] then return 0 end
local old = tonumber(string.sub(entry, sep + 1))
local tokens = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], at .. ':' .. tokens)
redis.call('HINCRBY', KEYS[3], 'windowTokens', tokens - old)
return 1
`

/** Extends the shared pause. ARGV: now (-1: the server's), millis, window ms. Returns the pause's end. */
export const PAUSE = `${NOW}
local untilAt = now + tonumber(ARGV[2])
local pause = tonumber(redis.call('HGET', KEYS[3], 'pause') or '0')
if untilAt > pause then
  pause = untilAt
  redis.call('HSET', KEYS[3], 'pause', pause)
  local ttl = pause - now + 2 * tonumber(ARGV[3])
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
end
return pause
`

/** What is left of the pause, in ms. ARGV: now (-1: the server's). */
export const PAUSE_LEFT = `${NOW}
local pause = tonumber(redis.call('HGET', KEYS[3], 'pause') or '0')
return math.max(0, pause - now)
`

/**
 * The budget's record: KEYS 1 totals (spent, reserved, epoch), 2 leases (zset id -> expiry), 3
 * amounts (id -> micro-dollars held, or "-" once settled). Ids are chosen by the processes (unique
 * per process and call), so that a command whose answer was lost can be settled or cancelled by id,
 * and a settlement written twice counts once. `epoch` is set when the record is created: a process
 * remembers it, and a record without it (FLUSHALL, a restart without persistence, eviction) or with
 * another one, or whose spend is below what the process itself wrote, has been lost.
 *
 * INIT: ARGV a new epoch (used if the record has none). Returns { epoch, spent, reserved }.
 */
export const INIT_BUDGET = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- A new record: leases left by one that was lost would give back what it no longer holds.
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local totals = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
return { epoch, tonumber(totals[1]) or 0, tonumber(totals[2]) or 0 }
`

/**
 * Budget reservation. ARGV: now (-1: the server's), amount, limit, lease ms, id, epoch, floor (the
 * spend this process has written). Leases past their expiry (a process that died holding them) are
 * given back first. Returns { status, spent, reserved }: 1 reserved, 0 refused (over the limit),
 * -1 the record was lost (nothing written), -2 the id was already settled or cancelled.
 */
export const RESERVE = `${NOW}
local totals = redis.call('HMGET', KEYS[1], 'epoch', 'spent', 'reserved')
local spent = tonumber(totals[2]) or 0
if totals[1] ~= ARGV[6] or spent < tonumber(ARGV[7]) then return { -1, spent, tonumber(totals[3]) or 0 } end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  local held = tonumber(redis.call('HGET', KEYS[3], id)) or 0
  if held > 0 then redis.call('HINCRBY', KEYS[1], 'reserved', -held) end
  redis.call('HDEL', KEYS[3], id)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return { -2, spent, reserved } end
local amount = tonumber(ARGV[2])
if spent + reserved + amount > tonumber(ARGV[3]) then return { 0, spent, reserved } end
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
redis.call('HSET', KEYS[3], ARGV[5], amount)
return { 1, spent, reserved + amount }
`

/**
 * Budget settlement: the reservation (if still held) is given back and the actual cost spent, once
 * per id; the id is then marked settled for a lease, so that a repeat (its first answer was lost)
 * counts nothing and a reservation under it that arrives late is refused (a cancellation is a
 * settlement of 0). ARGV: now (-1: the server's), id, actual, lease ms, epoch, floor.
 * Returns { status (1 done, -1 the record was lost: nothing written), spent, reserved }.
 */
export const SETTLE_BUDGET = `${NOW}
local totals = redis.call('HMGET', KEYS[1], 'epoch', 'spent')
if totals[1] ~= ARGV[5] or (tonumber(totals[2]) or 0) < tonumber(ARGV[6]) then return { -1, 0, 0 } end
local id = ARGV[2]
local held = redis.call('HGET', KEYS[3], id)
if held ~= '-' then
  local amount = tonumber(held) or 0
  if amount > 0 then redis.call('HINCRBY', KEYS[1], 'reserved', -amount) end
  redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[3], id, '-')
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
end
local after = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
return { 1, tonumber(after[1]) or 0, tonumber(after[2]) or 0 }
`

/**
 * After a loss: adds what this process committed to the record there is now (creating it, marked
 * `rebuilt`, when there is none), so that a process started later does not begin from zero.
 * ARGV: a new epoch, micro-dollars. Returns the record's epoch.
 */
export const REBUILD_BUDGET = `
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'rebuilt', '1')
end
redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[2]))
return redis.call('HGET', KEYS[1], 'epoch')
`

/** Runs a script by its SHA-1, loading it on a server that does not know it (NOSCRIPT). */
export const script = (source: string) => {
  const sha = createHash("sha1").update(source).digest("hex")
  return (redis: Redis, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>): Promise<unknown> =>
    redis.evalsha(sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) return redis.eval(source, keys.length, ...keys, ...args)
      throw error
    })
}
