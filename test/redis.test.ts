/** The Redis stores (rate limits, pause, budget) against a real redis-server on a loopback port. */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { afterAll, beforeAll } from "vitest"
import { Budget, ChatClient, RateLimit } from "../src/index.js"
import * as Lua from "../src/internal/rateLimitLua.js"
import * as Shared from "../src/internal/redis.js"
import { SlidingWindow } from "../src/internal/slidingWindow.js"
import { MockServer } from "../src/testing/index.js"
import { admin, redisAvailable, type RedisServer, startRedis } from "./redisServer.js"

const available = redisAvailable("Redis store")
const KEY = "sk-test-redis-0123456789abcdefSECRET"

let server: RedisServer
let scope: Scope.CloseableScope
let redis: Redis
let counter = 0
/** A namespace no other test uses. */
const fresh = () => `t${process.pid}-${++counter}`

beforeAll(async () => {
  if (!available) return
  scope = Effect.runSync(Scope.make())
  server = await Effect.runPromise(Scope.extend(startRedis, scope))
  redis = new Redis(server.url, { lazyConnect: true })
  await redis.connect()
}, 30_000)
afterAll(async () => {
  if (!available) return
  redis.disconnect()
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

const base = (namespace: string) => ({ url: server.url, namespace, baseUrl: "http://127.0.0.1:1/v1", apiKey: Redacted.make(KEY) })
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hi" }], max_tokens: 10 }

/** The micro-dollars a namespace's shared budget has spent, read from Redis. */
const spentIn = (url: string, ns: string) =>
  admin(url, async (client) => {
    const [key] = await client.keys(`*${ns}*budget:totals`)
    return Number(await client.hget(key!, "spent"))
  })

/** One limiter's window in the Redis store built from `options` (the layer's connection lives in the test's scope). */
const redisStore = (options: RateLimit.RedisOptions) =>
  Effect.flatMap(Layer.build(RateLimit.layerStoreRedis(options)), (context) => Context.get(context, RateLimit.RateLimitStore).open(options))

/** Captures log lines. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    lines.push(Array.isArray(message) ? message.join(" ") : String(message))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe.runIf(available)("Redis rate-limit store", () => {
  it("property: the Lua window decides exactly like SlidingWindow for any sequence of admissions (bounded or not: 13.A.2), corrections and pauses", async () => {
    const admit = Shared.script(Lua.ADMIT)
    const settle = Shared.script(Lua.SETTLE)
    const pause = Shared.script(Lua.PAUSE)
    const op = FastCheck.oneof(
      FastCheck.record({
        kind: FastCheck.constant("admit" as const),
        gap: FastCheck.integer({ min: 0, max: 30_000 }),
        tokens: FastCheck.integer({ min: 0, max: 400 }),
        maxWait: FastCheck.option(FastCheck.integer({ min: 0, max: 120_000 }), { nil: undefined }),
        maxPause: FastCheck.option(FastCheck.integer({ min: 0, max: 30_000 }), { nil: undefined })
      }),
      FastCheck.record({ kind: FastCheck.constant("settle" as const), back: FastCheck.integer({ min: 1, max: 10 }), tokens: FastCheck.integer({ min: 0, max: 400 }) }),
      FastCheck.record({ kind: FastCheck.constant("pause" as const), millis: FastCheck.integer({ min: 0, max: 20_000 }) })
    )
    const limits = FastCheck.record({
      rpm: FastCheck.option(FastCheck.integer({ min: 1, max: 12 }), { nil: undefined }),
      tpm: FastCheck.option(FastCheck.integer({ min: 200, max: 2000 }), { nil: undefined }),
      window: FastCheck.constantFrom(60_000, 61_000)
    })
    await FastCheck.assert(
      FastCheck.asyncProperty(limits, FastCheck.array(op, { minLength: 1, maxLength: 80 }), async ({ rpm, tpm, window }, ops) => {
        const prefix = `prop:${fresh()}:`
        const keys = [`${prefix}log`, `${prefix}entries`, `${prefix}state`]
        const memory = new SlidingWindow({ rpm, tpm, windowMillis: window })
        const admitted: Array<{ id: number; at: number }> = []
        let now = 1_700_000_000_000
        for (const o of ops) {
          if (o.kind === "admit") {
            now += o.gap
            const expected = memory.admit(now, o.tokens, { maxWaitMillis: o.maxWait, maxPauseMillis: o.maxPause })
            const [id, at, , refused] = (await admit(redis, keys, [now, o.tokens, rpm ?? -1, tpm ?? -1, window, o.maxWait ?? -1, o.maxPause ?? -1])) as [number, number, number, number]
            expect(at).toBe(expected.at)
            expect(id).toBe(expected.id)
            expect(refused).toBe(expected.refused === undefined ? 0 : expected.refused === "late" ? 1 : 2)
            if (id !== 0) admitted.push({ id, at })
          } else if (o.kind === "settle") {
            const target = admitted[admitted.length - o.back]
            if (target === undefined) continue
            memory.settle(target.id, target.at, o.tokens)
            await settle(redis, keys, [target.id, target.at, o.tokens])
          } else {
            memory.pauseUntil(now + o.millis)
            await pause(redis, keys, [now, o.millis, window])
          }
        }
      }),
      { numRuns: 120 }
    )
  }, 120_000)

  it.scoped("two processes' stores share one window: together they never start more than rpm in it", () =>
    Effect.gen(function* () {
      const ns = fresh()
      const a = yield* redisStore({ ...base(ns), rpm: 6 })
      const b = yield* redisStore({ ...base(ns), rpm: 6 })
      const admitted: Array<RateLimit.Admission> = []
      for (let i = 0; i < 5; i++) {
        admitted.push(yield* a.admit(1))
        admitted.push(yield* b.admit(1))
      }
      // Six start at once; each of the next four one window (60 s) plus the default 1 s margin after
      // the one six places back (start times are on Redis's clock: no timing in the test).
      expect(admitted.slice(0, 6).map((x) => x.waitMillis)).toEqual([0, 0, 0, 0, 0, 0])
      for (let k = 6; k < 10; k++) {
        expect(admitted[k]!.at).toBe(admitted[k - 6]!.at + 61_000)
        expect(admitted[k]!.waitMillis).toBeGreaterThan(0)
      }
      // Another namespace, or another API key, has its own window.
      const other = yield* redisStore({ ...base(fresh()), rpm: 6 })
      expect((yield* other.admit(1)).waitMillis).toBe(0)
      const otherKey = yield* redisStore({ ...base(ns), apiKey: Redacted.make("sk-another"), rpm: 6 })
      expect((yield* otherKey.admit(1)).waitMillis).toBe(0)
    }))

  it.scoped("tpm is shared, and a correction from one process frees tokens for the other", () =>
    Effect.gen(function* () {
      const ns = fresh()
      const a = yield* redisStore({ ...base(ns), tpm: 100 })
      const b = yield* redisStore({ ...base(ns), tpm: 100 })
      const first = yield* a.admit(80)
      expect(first.waitMillis).toBe(0)
      expect((yield* b.admit(30)).at).toBe(first.at + 61_000) // 80 + 30 > 100: after the first leaves the window
      const c = yield* redisStore({ ...base(fresh()), tpm: 100 })
      const d = yield* c.admit(80)
      yield* c.settle(d, 20)
      expect((yield* c.admit(30)).waitMillis).toBe(0) // 20 + 30 <= 100 after the refund
    }))

  it.scoped("a 429's pause set by one process holds the others", () =>
    Effect.gen(function* () {
      const ns = fresh()
      const a = yield* redisStore({ ...base(ns) })
      const b = yield* redisStore({ ...base(ns) })
      // A minute: long enough that no stall of the test can see it end.
      yield* a.pause(60_000)
      const left = yield* b.pauseRemaining
      expect(left).toBeGreaterThan(0)
      expect(left).toBeLessThanOrEqual(60_000)
      const held = yield* b.admit(1)
      expect(held.waitMillis).toBeGreaterThan(0)
      expect(held.waitMillis).toBeLessThanOrEqual(60_000)
      yield* b.pause(10) // a shorter pause never shortens the longer one
      expect(yield* a.pauseRemaining).toBeGreaterThan(10)
    }))

  it.scoped("keys are prefixed by the namespace and a hash of the base URL and key, never the key itself", () =>
    Effect.gen(function* () {
      const ns = fresh()
      const store = yield* redisStore({ ...base(ns), rpm: 10, tpm: 1000 })
      yield* store.admit(5)
      yield* store.pause(100)
      const budget = yield* Budget.makeRedis({ ...base(ns), maxUsd: 1 })
      yield* budget.reserve("gpt-4.1-mini", 10, 10)
      const keys = yield* Effect.promise(() => redis.keys(`*${ns}*`))
      expect(keys.length).toBeGreaterThanOrEqual(5)
      const prefix = Shared.keyPrefix(ns, "http://127.0.0.1:1/v1", KEY)
      expect(prefix).toMatch(new RegExp(`^shepherd:\\{${ns}:[0-9a-f]{16}\\}:$`))
      for (const key of keys) expect(key.startsWith(prefix)).toBe(true)
      // Nothing in Redis holds the key, in key names or values.
      const dump = yield* Effect.promise(async () => {
        const all = await redis.keys("*")
        const parts: Array<string> = [...all]
        for (const key of all) {
          const type = await redis.type(key)
          if (type === "hash") parts.push(JSON.stringify(await redis.hgetall(key)))
          if (type === "list") parts.push(JSON.stringify(await redis.lrange(key, 0, -1)))
          if (type === "zset") parts.push(JSON.stringify(await redis.zrange(key, 0, -1)))
        }
        return parts.join("\n")
      })
      expect(dump).not.toContain(KEY)
      expect(dump).not.toContain("SECRET")
    }))

  it.scoped("RateLimit.layer on layerStoreRedis shares one window with layerRedis and with another limiter on the same store", () =>
    Effect.gen(function* () {
      const ns = fresh()
      const store = yield* Layer.build(RateLimit.layerStoreRedis(base(ns)))
      const onStore = (rpm: number) => Effect.provide(RateLimit.make({ rpm, adaptive: false }), store)
      const [a, b] = yield* Effect.all([onStore(3), onStore(3)])
      const c = Context.get(yield* Layer.build(RateLimit.layerRedis({ ...base(ns), rpm: 3, adaptive: false })), RateLimit.RateLimit)
      for (const limiter of [a, b, c]) yield* limiter.withPermit(1, Effect.void, () => ({}))
      // The fourth start would come a window (61 s) later: past a deadline 5 s away, it fails unsent.
      let sent = false
      const late = yield* Effect.flip(a.withPermit(1, Effect.sync(() => { sent = true }), () => ({}), { deadline: (yield* Clock.currentTimeMillis) + 5000, timeoutMillis: 5000 }))
      expect(late._tag).toBe("TimeoutError")
      expect(sent).toBe(false)
    }))

  it.scoped("an invalid namespace is refused with the reason", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(redisStore({ ...base("has space{}"), rpm: 1 }))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("namespace")
    }))
})

describe.runIf(available)("Redis budget store", () => {
  it.scoped("processes share one budget: together they never commit more than maxUsd", () =>
    Effect.gen(function* () {
      const ns = fresh()
      // gpt-4.1-mini: $0.40 / $1.60 per million tokens; 1000 + 1000 tokens = $0.002 worst case each.
      const budgets = yield* Effect.all(Array.from({ length: 3 }, () => Budget.makeRedis({ ...base(ns), maxUsd: 0.01 })))
      const results = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) => Effect.either(budgets[i % 3]!.reserve("gpt-4.1-mini", 1000, 1000)), { concurrency: 12 })
      const granted = results.filter((r) => r._tag === "Right")
      expect(granted).toHaveLength(5) // 5 x $0.002 = $0.01
      const refused = results.find((r) => r._tag === "Left")
      expect(refused?._tag === "Left" && refused.left._tag).toBe("BudgetExceededError")
      // Settling for less frees the rest for anyone.
      for (const r of granted) if (r._tag === "Right") yield* budgets[0]!.settle(r.right, Option.some(500))
      const snapshot = yield* budgets[2]!.snapshot
      expect(snapshot).toEqual({ limitMicroUsd: 10_000, spentMicroUsd: 2500, reservedMicroUsd: 0 })
      expect((yield* Effect.either(budgets[1]!.reserve("gpt-4.1-mini", 1000, 1000)))._tag).toBe("Right")
    }))

  it.scopedLive("settlements Redis missed (a stall) are written once each when it answers again, even by many requests at the same time", () =>
    Effect.gen(function* () {
      const own = yield* startRedis
      const ns = fresh()
      const budget = yield* Budget.makeRedis({ url: own.url, namespace: ns, maxUsd: 100, commandTimeout: "300 millis" })
      const held = yield* Effect.forEach(Array.from({ length: 21 }, () => 0), () => budget.reserve("gpt-4.1-mini", 10, 10))
      yield* budget.settle(held.pop()!, Option.some(1000)) // Redis knows the script: it will run the unanswered ones
      own.stall()
      // Unanswered: kept. Redis runs them when it wakes, and they are written again: each counts once.
      yield* Effect.forEach(held, (reservation) => budget.settle(reservation, Option.some(1000)), { concurrency: "unbounded" })
      expect((yield* Effect.either(budget.reserve("gpt-4.1-mini", 10, 10)))._tag).toBe("Left") // fails closed
      own.resume()
      const later = yield* Effect.forEach(Array.from({ length: 10 }, () => 0), () => budget.reserve("gpt-4.1-mini", 10, 10), { concurrency: 10 })
      expect(yield* spentIn(own.url, ns)).toBe(21 * 1000)
      for (const reservation of later) yield* budget.settle(reservation, Option.none())
      // The reservation whose answer the stall swallowed was cancelled: nothing is left held.
      expect(yield* admin(own.url, async (client) => Number(await client.hget((await client.keys(`*${ns}*budget:totals`))[0]!, "reserved")))).toBe(0)
    }), 30_000)

  it.scopedLive("a reservation held by a process that died is given back after its lease", () =>
    Effect.gen(function* () {
      const ns = fresh()
      const dying = yield* Budget.makeRedis({ ...base(ns), maxUsd: 0.002, leaseDuration: "300 millis" })
      yield* dying.reserve("gpt-4.1-mini", 1000, 1000)
      const other = yield* Budget.makeRedis({ ...base(ns), maxUsd: 0.002 })
      expect((yield* Effect.either(other.reserve("gpt-4.1-mini", 1000, 1000)))._tag).toBe("Left")
      yield* Effect.sleep("400 millis")
      expect((yield* Effect.either(other.reserve("gpt-4.1-mini", 1000, 1000)))._tag).toBe("Right")
    }))
})

describe.runIf(available)("Redis unreachable", () => {
  it.scoped("failClosed: a client whose Redis dies fails each request with LimiterUnavailableError and sends nothing; the URL's password is not in it", () =>
    Effect.gen(function* () {
      const own = yield* startRedis
      const mock = yield* MockServer.make({ latency: "1 millis" })
      const url = own.url.replace("redis://", "redis://:hunter2@")
      yield* admin(own.url, (client) => client.config("SET", "requirepass", "hunter2"))
      const context = yield* Layer.build(
        ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY) }).pipe(
          Layer.provide(RateLimit.layerRedis({ url, namespace: fresh(), rpm: 100, baseUrl: mock.url, apiKey: Redacted.make(KEY) }))
        )
      )
      const chat = Context.get(context, ChatClient.ChatClient)
      yield* chat.create(request)
      yield* Effect.promise(() => own.kill())
      const exit = yield* Effect.exit(chat.create(request))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Option.getOrThrow(Exit.causeOption(exit).pipe(Option.flatMap((c) => Option.fromNullable(c._tag === "Fail" ? c.error : undefined)))) : undefined
      expect(error?._tag).toBe("LimiterUnavailableError")
      const text = JSON.stringify(error) + String(error)
      expect(text).toContain(`127.0.0.1:${own.port}`)
      expect(text).not.toContain("hunter2")
      expect(text).not.toContain(KEY)
      expect((yield* mock.stats).requests).toBe(1)
      // Building a layer while Redis is down fails at once, with the reason.
      const build = yield* Effect.exit(Layer.build(RateLimit.layerRedis({ url, namespace: fresh(), rpm: 1, commandTimeout: "300 millis" })))
      expect(Exit.isFailure(build)).toBe(true)
      expect(String(Exit.isFailure(build) ? build.cause : "")).toContain("LimiterUnavailableError")
    }), 30_000)

  it.scopedLive("fallbackLocal: on local limits (divided by workers) with a warning while Redis is down, shared again once it is back", () =>
    Effect.gen(function* () {
      const own = yield* startRedis
      const logs = captureLogs()
      const ns = fresh()
      const store = yield* redisStore({
        url: own.url,
        namespace: ns,
        rpm: 8,
        workers: 2,
        onUnavailable: "fallbackLocal",
        retryInterval: "200 millis",
        commandTimeout: "300 millis"
      }).pipe(Effect.provide(logs.layer))
      expect((yield* store.admit(1)).waitMillis).toBe(0)
      yield* Effect.promise(() => own.kill())
      // Locally: 8 / 2 = 4 a minute.
      const local = yield* Effect.forEach([1, 2, 3, 4, 5], () => store.admit(1)).pipe(Effect.provide(logs.layer))
      expect(local.slice(0, 4).map((x) => x.waitMillis)).toEqual([0, 0, 0, 0])
      expect(local[4]!.at).toBe(local[0]!.at + 61_000)
      expect(logs.lines.some((l) => l.includes("going on with local rate-limit state (1/2 of the limits)"))).toBe(true)
      yield* Effect.promise(() => own.restart())
      yield* Effect.sleep("1500 millis") // the client reconnects, then the next call after retryInterval goes to Redis
      yield* store.admit(1).pipe(Effect.provide(logs.layer))
      yield* store.admit(1).pipe(Effect.provide(logs.layer))
      const keys = yield* admin(own.url, (client) => client.keys(`*${ns}*`))
      expect(keys.length).toBeGreaterThan(0)
      expect(logs.lines.some((l) => l.includes("answers again"))).toBe(true)
    }), 30_000)

  it.scopedLive("fallbackLocal with Redis down from the start: builds with a warning, runs locally, and goes shared once Redis is up", () =>
    Effect.gen(function* () {
      const own = yield* startRedis
      yield* Effect.promise(() => own.kill())
      const logs = captureLogs()
      const ns = fresh()
      const store = yield* redisStore({ url: own.url, namespace: ns, rpm: 8, workers: 2, onUnavailable: "fallbackLocal", retryInterval: "200 millis", commandTimeout: "300 millis" })
        .pipe(Effect.provide(logs.layer))
      expect(logs.lines.some((l) => l.includes("cannot be reached"))).toBe(true)
      expect((yield* store.admit(1)).waitMillis).toBe(0)
      yield* Effect.promise(() => own.restart())
      yield* Effect.sleep("2500 millis")
      yield* store.admit(1).pipe(Effect.provide(logs.layer))
      const keys = yield* admin(own.url, (client) => client.keys(`*${ns}*`))
      expect(keys.length).toBeGreaterThan(0)
    }), 30_000)

  it.scopedLive("fallbackLocal budget: a share of what was left, and what was spent meanwhile is added to Redis when it returns", () =>
    Effect.gen(function* () {
      const own = yield* startRedis
      const ns = fresh()
      const options = { url: own.url, namespace: ns, maxUsd: 0.02, workers: 2, onUnavailable: "fallbackLocal" as const, retryInterval: "200 millis" as const, commandTimeout: "300 millis" as const }
      const budget = yield* Budget.makeRedis(options).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      const r = yield* budget.reserve("gpt-4.1-mini", 1000, 1000) // $0.002 held in Redis
      yield* budget.settle(r, Option.some(2000))
      yield* Effect.promise(() => own.kill())
      // Left: $0.018, half of it ($0.009) for this process: four of $0.002, not five.
      const local = yield* Effect.forEach([1, 2, 3, 4, 5], () => Effect.either(budget.reserve("gpt-4.1-mini", 1000, 1000))).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      expect(local.map((e) => e._tag)).toEqual(["Right", "Right", "Right", "Right", "Left"])
      for (const e of local) if (e._tag === "Right") yield* budget.settle(e.right, Option.some(1000))
      // Redis comes back empty (no persistence): a loss, not a new budget. The process goes on with
      // its own record, and writes all it committed (2000 + 4000 spent) to the new record.
      yield* Effect.promise(() => own.restart())
      yield* Effect.sleep("1500 millis")
      yield* Effect.either(budget.reserve("gpt-4.1-mini", 10, 10)).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      const spent = yield* spentIn(own.url, ns)
      expect(spent).toBe(6000)
    }), 30_000)
})
