/**
 * Issue 13, the Redis items, against real redis-servers on loopback ports: a budget record lost
 * (FLUSHALL, a restart without persistence) is detected and never taken for a new budget (A.4);
 * calls refused unsent by the shared limiter, or caught by a Redis stall, leave nothing charged or
 * held (A.5); a refused Redis password is named as such, and the URL can come from the environment
 * (C.11). The `shepherd run` tests run the built CLI (npx tsc -p tsconfig.build.json first).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Budget, ChatClient, ChatError, Pricing, RateLimit } from "../../src/index.js"
import { MockServer } from "../../src/testing/index.js"
import { inputLines, type Line, readOut, startCommand, tmp, writeInput } from "../cliHelpers.js"
import { sharedRun } from "../helpers.js"
import { admin, redisAvailable, startRedis, startRedisWith } from "../redisServer.js"

const available = redisAvailable("Redis issue-13")
const KEY = "sk-test-hostile-redis-0123456789SECRET"
let counter = 0
const fresh = () => `h${process.pid}-${++counter}`
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hi" }], max_tokens: 10 }
const quiet = Logger.remove(Logger.defaultLogger)

/** A namespace's budget totals in Redis (zeros when there are none). */
const totalsIn = (url: string, ns: string) =>
  admin(url, async (client) => {
    const [key] = await client.keys(`*${ns}*budget:totals`)
    const all = key === undefined ? {} : await client.hgetall(key)
    return { spent: Number(all["spent"] ?? 0), reserved: Number(all["reserved"] ?? 0) }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.causeOption(exit).pipe(Option.flatMap((c) => Option.fromNullable(c._tag === "Fail" ? c.error : undefined)))) : undefined

/** Captures log lines. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => { lines.push(Array.isArray(message) ? message.join(" ") : String(message)) })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

// gpt-4.1-mini: $0.40 / $1.60 per million tokens; 1000 + 1000 tokens = $0.002 worst case.
const WORST = 2000

describe.runIf(available)("13.A.4 a Redis budget that loses its record", () => {
  it.scopedLive("13.A.4 after FLUSHALL, failClosed refuses with LimiterUnavailableError (reason lost) instead of starting again from zero, and a later process starts from what this one committed", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const ns = fresh()
      const options = { url: redis.url, namespace: ns, maxUsd: 0.01, commandTimeout: "1 second" as const }
      const budget = yield* Budget.makeRedis(options)
      for (let i = 0; i < 3; i++) yield* budget.settle(yield* budget.reserve("gpt-4.1-mini", 1000, 1000), Option.some(WORST))
      yield* admin(redis.url, (client) => client.flushall())
      const logs = captureLogs()
      const refused = yield* Effect.either(budget.reserve("gpt-4.1-mini", 1000, 1000)).pipe(Effect.provide(logs.layer))
      expect(Either.isLeft(refused)).toBe(true)
      const error = Either.isLeft(refused) ? refused.left : undefined
      expect(error?._tag).toBe("LimiterUnavailableError")
      expect(error?._tag === "LimiterUnavailableError" && error.reason).toBe("lost")
      expect(error?.message).toContain("was lost")
      expect(error?.message).toContain("FLUSHALL")
      expect(logs.lines.some((l) => l.includes("shared budget record was lost"))).toBe(true)
      // It stays refused (the shared total is unknown), and Redis now holds what this process committed.
      expect((yield* Effect.either(budget.reserve("gpt-4.1-mini", 10, 10)))._tag).toBe("Left")
      expect((yield* totalsIn(redis.url, ns)).spent).toBe(3 * WORST)
      // A process started later continues from there: two more of $0.002 fit in $0.01, not five.
      const later = yield* Budget.makeRedis(options)
      const tries = yield* Effect.forEach([1, 2, 3], () => Effect.either(later.reserve("gpt-4.1-mini", 1000, 1000)))
      expect(tries.map((t) => t._tag)).toEqual(["Right", "Right", "Left"])
    }), 30_000)

  it.scopedLive("13.A.4 a restart without persistence, fallbackLocal: warns and goes on with the process's own record, which never passes maxUsd", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const ns = fresh()
      const logs = captureLogs()
      const budget = yield* Budget.makeRedis({
        url: redis.url,
        namespace: ns,
        maxUsd: 0.01,
        onUnavailable: "fallbackLocal",
        retryInterval: "200 millis",
        commandTimeout: "300 millis"
      }).pipe(Effect.provide(logs.layer))
      for (let i = 0; i < 3; i++) yield* budget.settle(yield* budget.reserve("gpt-4.1-mini", 1000, 1000), Option.some(WORST))
      yield* Effect.promise(() => redis.kill())
      yield* Effect.promise(() => redis.restart())
      yield* Effect.sleep("1500 millis") // the client reconnects
      const after = yield* Effect.forEach([1, 2, 3, 4, 5, 6], () => Effect.either(budget.reserve("gpt-4.1-mini", 1000, 1000))).pipe(Effect.provide(logs.layer))
      // $0.006 spent, $0.004 left: two more, then BudgetExceededError; not five more from a record reset to zero.
      expect(after.map((t) => t._tag)).toEqual(["Right", "Right", "Left", "Left", "Left", "Left"])
      expect(after.slice(2).every((t) => t._tag === "Left" && t.left._tag === "BudgetExceededError")).toBe(true)
      expect(logs.lines.some((l) => l.includes("shared budget record was lost") && l.includes("own record"))).toBe(true)
      expect(logs.lines.some((l) => l.includes("answers again"))).toBe(false)
    }), 30_000)

  it.scopedLive("13.A.4 property: whatever Redis loses (FLUSHALL, the spend lowered, another process's spending), a process never commits more than maxUsd by its own record", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const op = FastCheck.oneof(
        { weight: 5, arbitrary: FastCheck.record({ kind: FastCheck.constant("reserve" as const), tokens: FastCheck.integer({ min: 100, max: 2000 }) }) },
        { weight: 3, arbitrary: FastCheck.record({ kind: FastCheck.constant("settle" as const), pick: FastCheck.nat(), share: FastCheck.double({ min: 0, max: 1, noNaN: true }) }) },
        { weight: 1, arbitrary: FastCheck.record({ kind: FastCheck.constant("other" as const), tokens: FastCheck.integer({ min: 100, max: 2000 }) }) },
        { weight: 1, arbitrary: FastCheck.record({ kind: FastCheck.constant("flushall" as const) }) },
        { weight: 1, arbitrary: FastCheck.record({ kind: FastCheck.constant("lower" as const) }) }
      )
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(FastCheck.boolean(), FastCheck.array(op, { minLength: 10, maxLength: 50 }), async (fallback, ops) => {
            const ns = fresh()
            const limit = 10_000
            const program = Effect.gen(function* () {
              const options = { url: redis.url, namespace: ns, maxUsd: limit / 1e6, onUnavailable: fallback ? "fallbackLocal" as const : "failClosed" as const }
              const budget = yield* Budget.makeRedis(options)
              const other = yield* Budget.makeRedis(options)
              const held: Array<Budget.Reservation> = []
              let settled = 0
              for (const o of ops) {
                if (o.kind === "reserve") {
                  const r = yield* Effect.either(budget.reserve("gpt-4.1-mini", o.tokens, o.tokens))
                  if (Either.isRight(r)) held.push(r.right)
                } else if (o.kind === "settle" && held.length > 0) {
                  const [r] = held.splice(o.pick % held.length, 1)
                  const actual = Math.floor(r!.amount * o.share)
                  settled += actual
                  yield* budget.settle(r!, Option.some(actual))
                } else if (o.kind === "other") {
                  const r = yield* Effect.either(other.reserve("gpt-4.1-mini", o.tokens, o.tokens))
                  if (Either.isRight(r)) yield* other.settle(r.right, Option.some(r.right.amount))
                } else if (o.kind === "flushall") {
                  yield* admin(redis.url, (client) => client.flushall())
                } else if (o.kind === "lower") {
                  yield* admin(redis.url, async (client) => {
                    const [key] = await client.keys(`*${ns}*budget:totals`)
                    if (key !== undefined) await client.hset(key, "spent", 0)
                  })
                }
                // Its own record: what it settled plus what it holds.
                const own = settled + held.reduce((sum, r) => sum + r.amount, 0)
                if (own > limit) return false
              }
              return true
            }).pipe(Effect.scoped, Effect.provide(quiet))
            return Effect.runPromise(program)
          }),
          { numRuns: 30 }
        )
      )
    }), 120_000)
})

describe.runIf(available)("13.A.5 nothing charged or held for calls that were not sent", () => {
  it.scopedLive("13.A.5 a request refused unsent by the shared limiter (its Redis down, failClosed) leaves the Redis budget as it was: nothing spent, nothing reserved", () =>
    Effect.gen(function* () {
      const budgetRedis = yield* startRedis
      const limiterRedis = yield* startRedis
      const mock = yield* MockServer.make({ latency: "1 millis" })
      const ns = fresh()
      const identity = { namespace: ns, baseUrl: mock.url, apiKey: Redacted.make(KEY), commandTimeout: "300 millis" as const }
      const context = yield* Layer.build(
        ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY) }).pipe(
          Layer.provideMerge(Budget.layerRedis({ url: budgetRedis.url, ...identity, maxUsd: 1 })),
          Layer.provide(RateLimit.layerRedis({ url: limiterRedis.url, ...identity, rpm: 1000 }))
        )
      )
      const chat = Context.get(context, ChatClient.ChatClient)
      const first = yield* chat.create(request)
      const cost = Option.getOrThrow(Pricing.cost(request.model, first.usage!))
      expect(yield* totalsIn(budgetRedis.url, ns)).toEqual({ spent: cost, reserved: 0 })
      yield* Effect.promise(() => limiterRedis.kill())
      const refused = failureOf(yield* Effect.exit(chat.create(request)))
      expect(refused?._tag).toBe("LimiterUnavailableError")
      const streamed = failureOf(yield* Effect.exit(Stream.runDrain(chat.stream(request))))
      expect(streamed?._tag).toBe("LimiterUnavailableError")
      expect((yield* mock.stats).requests).toBe(1)
      // Not their worst case: nothing, since nothing was sent.
      expect(yield* totalsIn(budgetRedis.url, ns)).toEqual({ spent: cost, reserved: 0 })
      const snapshot = yield* Context.get(context, Budget.Budget).snapshot
      expect(snapshot.spentMicroUsd).toBe(cost)
      expect(snapshot.reservedMicroUsd).toBe(0)
    }), 30_000)

  it.scopedLive("13.A.5 a reservation whose answer a Redis stall swallowed (Redis made it, the caller saw a failure) is cancelled once Redis answers: nothing stays reserved", () =>
    Effect.gen(function* () {
      const redis = yield* startRedis
      const ns = fresh()
      const budget = yield* Budget.makeRedis({ url: redis.url, namespace: ns, maxUsd: 1, commandTimeout: "250 millis" })
      const kept = yield* budget.reserve("gpt-4.1-mini", 10, 10)
      redis.stall()
      // Sent, unanswered in time: the caller is told it failed; Redis makes them when it wakes.
      for (let i = 0; i < 2; i++) expect((yield* Effect.either(budget.reserve("gpt-4.1-mini", 10, 10)))._tag).toBe("Left")
      redis.resume()
      yield* Effect.sleep("200 millis")
      // The next call reaching Redis cancels them first.
      const next = yield* budget.reserve("gpt-4.1-mini", 10, 10)
      expect(yield* totalsIn(redis.url, ns)).toEqual({ spent: 0, reserved: kept.amount + next.amount })
      yield* budget.settle(kept, Option.none())
      yield* budget.settle(next, Option.none())
      expect(yield* totalsIn(redis.url, ns)).toEqual({ spent: 0, reserved: 0 })
    }), 30_000)

  it.scopedLive("13.A.5 calls that reserved before the limiter's Redis stalled, and were refused unsent because of it, are released: nothing stays reserved, and the spend is what was sent", () =>
    Effect.gen(function* () {
      const budgetRedis = yield* startRedis
      const limiterRedis = yield* startRedis
      const mock = yield* MockServer.make({ latency: "30 millis" })
      const ns = fresh()
      const identity = { namespace: ns, baseUrl: mock.url, apiKey: Redacted.make(KEY), commandTimeout: "250 millis" as const }
      const context = yield* Layer.build(
        ChatClient.layer({ baseUrl: mock.url, apiKey: Redacted.make(KEY), retry: { maxRetries: 0 } }).pipe(
          Layer.provideMerge(Budget.layerRedis({ url: budgetRedis.url, ...identity, maxUsd: 1 })),
          Layer.provide(RateLimit.layerRedis({ url: limiterRedis.url, ...identity, rpm: 100_000 }))
        )
      )
      const chat = Context.get(context, ChatClient.ChatClient)
      let spent = 0
      let answered = 0
      let refused = 0
      const one = Effect.flatMap(Effect.either(chat.create(request)), (result) =>
        Effect.sync(() => {
          if (Either.isRight(result)) {
            answered++
            spent += Option.getOrThrow(Pricing.cost(request.model, result.right.usage!))
          } else if (result.left._tag === "LimiterUnavailableError") refused++
        }))
      // Calls keep starting while the limiter's Redis stalls: each reserves, then waits for the limiter in vain.
      const worker = Effect.forEach(Array.from({ length: 10 }, (_, i) => i), () => one, { discard: true })
      const calls = yield* Effect.fork(Effect.all(Array.from({ length: 6 }, () => worker), { concurrency: "unbounded", discard: true }))
      yield* Effect.sleep("100 millis")
      limiterRedis.stall()
      yield* Effect.sleep("800 millis")
      limiterRedis.resume()
      yield* calls.await
      expect(refused).toBeGreaterThan(0)
      expect(answered + refused).toBe(60)
      expect((yield* mock.stats).requests).toBe(answered)
      expect(yield* totalsIn(budgetRedis.url, ns)).toEqual({ spent, reserved: 0 })
    }), 60_000)
})

describe.runIf(available)("13.C.11 a refused Redis password", () => {
  it.scopedLive("13.C.11 a wrong or missing password fails the layer with LimiterUnavailableError (reason password, 'refused the password'), not 'not connected', also with fallbackLocal; the password is never in it", () =>
    Effect.gen(function* () {
      const redis = yield* startRedisWith({ password: "hunter2-right" })
      const wrong = `redis://:hunter2-wrong@127.0.0.1:${redis.port}`
      const none = `redis://127.0.0.1:${redis.port}`
      for (const [url, answer, onUnavailable] of [
        [wrong, "WRONGPASS", "failClosed"],
        [none, "NOAUTH", "failClosed"],
        [wrong, "WRONGPASS", "fallbackLocal"]
      ] as const) {
        const builds: ReadonlyArray<Effect.Effect<unknown, ChatError.LimiterUnavailableError | ConfigError.ConfigError, Scope.Scope>> = [
          Layer.build(Budget.layerRedis({ url, namespace: fresh(), maxUsd: 1, onUnavailable, commandTimeout: "500 millis" })),
          Layer.build(RateLimit.layerRedis({ url, namespace: fresh(), rpm: 10, onUnavailable, commandTimeout: "500 millis" }))
        ]
        for (const build of builds) {
          const error = failureOf(yield* Effect.exit(Effect.provide(build, quiet)))
          expect(error).toBeInstanceOf(ChatError.LimiterUnavailableError)
          const e = error as ChatError.LimiterUnavailableError
          expect(e.reason).toBe("password")
          expect(e.detail).toContain(answer)
          expect(e.message).toContain("refused the password")
          expect(e.message).not.toContain("not connected")
          expect(JSON.stringify(e) + e.message).not.toContain("hunter2")
        }
      }
      // The right password works.
      const budget = yield* Budget.makeRedis({ url: redis.url, namespace: fresh(), maxUsd: 1 })
      expect((yield* Effect.either(budget.reserve("gpt-4.1-mini", 10, 10)))._tag).toBe("Right")
    }), 30_000)
})

const readIfThere = (path: string) => (Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : "")

/** What an output line cost, from the usage the server reported. */
const costOfLine = (line: Line): number => {
  const body = line.response?.body as { model?: string; usage?: { prompt_tokens: number; completion_tokens?: number } } | undefined
  if (body?.model === undefined || body.usage === undefined) return 0
  return Option.getOrElse(Pricing.cost(body.model, { prompt_tokens: body.usage.prompt_tokens, completion_tokens: body.usage.completion_tokens ?? 0 }), () => 0)
}

describe.runIf(available)("13.A.4 / 13.C.11 shepherd run with Redis", { concurrent: true }, () => {
  for (const fallback of [false, true]) {
    it.scopedLive(`13.A.4 shepherd run --budget-usd 0.01 --redis${fallback ? " --redis-fallback" : ""}: FLUSHALL mid-run no longer lets it spend past $0.01 (it spent $0.0297 before): ${fallback ? "it stops at its own record" : "failing closed it stops, saying the record was lost"}`, () =>
      Effect.gen(function* () {
        const redis = yield* startRedis
        const mock = yield* MockServer.make({ latency: "15 millis" })
        const dir = tmp()
        // max_tokens 20: the answers use all of it, so what is spent is close to what is reserved.
        const input = writeInput(dir, inputLines(700, 20))
        const out = Path.join(dir, "out.jsonl")
        const run = startCommand("run", [input, "--out", out, "--redis", redis.url, "--namespace", "lost", "--budget-usd", "0.01", "--concurrency", "4", "--no-progress", ...(fallback ? ["--redis-fallback"] : [])], {
          OPENAI_BASE_URL: mock.url
        })
        const exited = yield* Effect.fork(run.ended)
        // Every time the shared record reaches $0.004, it is wiped, as FLUSHALL or a restart without persistence would.
        let wipes = 0
        const watch = Effect.gen(function* () {
          while (run.child.exitCode === null && run.child.signalCode === null) {
            const spent = yield* totalsIn(redis.url, "lost")
            if (spent.spent >= 4000) {
              yield* admin(redis.url, (client) => client.flushall())
              wipes++
            }
            yield* Effect.sleep("10 millis")
          }
        })
        yield* watch
        const ended = yield* Fiber.join(exited)
        expect(wipes).toBeGreaterThan(0)
        const lines = readOut(out)
        const spent = lines.reduce((sum, line) => sum + costOfLine(line), 0)
        expect(spent).toBeLessThanOrEqual(10_000)
        expect(lines.length).toBeLessThan(700) // it stopped
        expect((yield* mock.stats).requests).toBe(lines.length) // nothing sent without a line
        expect(ended.code, ended.stderr).toBe(1)
        expect(ended.stderr).toContain("shared budget record was lost")
        if (fallback) {
          expect(ended.stderr).toContain("own record")
          expect(ended.stderr).toContain("stopped by the budget")
        } else {
          expect(ended.stderr).toContain("stopped: the shared budget at")
          expect(ended.stderr).toContain("was lost")
          expect(ended.stderr).toContain("new --namespace")
        }
      }), 120_000)
  }

  // One after another: these share a server and count what it received.
  describe("13.C.11 the Redis URL from SHEPHERD_REDIS_URL or --redis-url-env NAME; a refused password", { sequential: true }, () => {
    const password = "pw-Secret-4711"
    const setup = sharedRun(Effect.gen(function* () {
      const redis = yield* startRedisWith({ password })
      const mock = yield* MockServer.make({ latency: "1 millis" })
      const dir = tmp()
      return { redis, mock, dir, input: writeInput(dir, inputLines(6)) }
    }))
    let n = 0
    const runWith = (args: ReadonlyArray<string>, env: Record<string, string>) => {
      const { dir, input, mock } = setup()
      const at = ++n
      const summary = Path.join(dir, `summary.${at}.json`)
      return Effect.map(
        startCommand("run", [input, "--out", Path.join(dir, `out.${at}.jsonl`), "--summary", summary, "--no-progress", "--rpm", "600", "--budget-usd", "1", ...args], { OPENAI_BASE_URL: mock.url, ...env }).ended,
        (ended) => ({ ...ended, summary: readIfThere(summary), out: readIfThere(Path.join(dir, `out.${at}.jsonl`)) })
      )
    }
    /** The password is in nothing the run printed or wrote. */
    const expectSecret = (ended: { stderr: string; stdout: string; summary: string; out: string }) => {
      for (const text of [ended.stderr, ended.stdout, ended.summary, ended.out]) expect(text).not.toContain(password)
    }

    it.scopedLive("SHEPHERD_REDIS_URL: shared state is used, all 6 sent, and the password is never printed", () =>
      Effect.gen(function* () {
        const { mock, redis } = setup()
        const before = (yield* mock.stats).requests
        const fromDefault = yield* runWith(["--namespace", "env-default"], { SHEPHERD_REDIS_URL: redis.url })
        expect(fromDefault.code, fromDefault.stderr).toBe(0)
        expectSecret(fromDefault)
        expect((yield* admin(redis.url, (client) => client.keys("*env-default*budget:totals"))).length).toBe(1)
        expect((yield* mock.stats).requests - before).toBe(6)
      }))

    it.scopedLive("--redis-url-env NAME: a variable of one's own; shared state is used, all 6 sent, and the password is never printed", () =>
      Effect.gen(function* () {
        const { mock, redis } = setup()
        const before = (yield* mock.stats).requests
        const fromNamed = yield* runWith(["--namespace", "env-named", "--redis-url-env", "MY_REDIS"], { MY_REDIS: redis.url })
        expect(fromNamed.code, fromNamed.stderr).toBe(0)
        expectSecret(fromNamed)
        expect((yield* admin(redis.url, (client) => client.keys("*env-named*rl:*"))).length).toBeGreaterThan(0)
        expect((yield* mock.stats).requests - before).toBe(6)
      }))

    it.scopedLive("a named variable that is not set, or both ways at once: usage errors (exit 2), nothing sent", () =>
      Effect.gen(function* () {
        const { mock, redis } = setup()
        const before = (yield* mock.stats).requests
        const [unset, both] = yield* Effect.all([
          runWith(["--redis-url-env", "NOT_SET_ANYWHERE"], {}),
          runWith(["--redis", redis.url, "--redis-url-env", "MY_REDIS"], { MY_REDIS: redis.url })
        ], { concurrency: "unbounded" })
        expect(unset!.code).toBe(2)
        expect(unset!.stderr).toContain("--redis-url-env names NOT_SET_ANYWHERE, which is not set")
        expect(both!.code).toBe(2)
        expect(both!.stderr).toContain("not both")
        expect((yield* mock.stats).requests).toBe(before)
      }))

    it.scopedLive("a wrong password, and none (also with --redis-fallback): exit 2 naming the refusal, not 'not connected'; nothing sent; the password not printed", () =>
      Effect.gen(function* () {
        const { mock, redis } = setup()
        const before = (yield* mock.stats).requests
        const wrong = `redis://:wrong-${password}@127.0.0.1:${redis.port}`
        const cases = [
          [wrong, "WRONGPASS", []],
          [wrong, "WRONGPASS", ["--redis-fallback"]],
          [`redis://127.0.0.1:${redis.port}`, "NOAUTH", []]
        ] as const
        const results = yield* Effect.all(cases.map(([url, , extra]) => runWith(["--namespace", "env-wrong", ...extra], { SHEPHERD_REDIS_URL: url })), { concurrency: "unbounded" })
        results.forEach((refused, i) => {
          expect(refused.code, refused.stderr).toBe(2)
          expect(refused.stderr).toContain("refused the password")
          expect(refused.stderr).toContain(cases[i]![1])
          expect(refused.stderr).toContain("SHEPHERD_REDIS_URL")
          expect(refused.stderr).not.toContain("not connected")
          expectSecret(refused)
        })
        expect((yield* mock.stats).requests).toBe(before)
      }))

    it.scopedLive("--redis with a password still works, with a warning that it shows in the process list", () =>
      Effect.gen(function* () {
        const onCommandLine = yield* runWith(["--namespace", "argv", "--redis", setup().redis.url], {})
        expect(onCommandLine.code, onCommandLine.stderr).toBe(0)
        expect(onCommandLine.stderr).toContain("shows in the process list")
        expectSecret(onCommandLine)
      }))
  })
})
