/**
 * A spending limit shared by every call of a program: before a request is sent, its worst-case cost
 * (prompt tokens plus its completion allowance, at the model's prices) is reserved; after it, the
 * actual cost from the reported usage replaces the reservation. A request that cannot fit fails with
 * `BudgetExceededError` without being sent; requests already in flight complete.
 *
 * `ChatClient` uses the `Budget` service when it is in the context.
 *
 * @since 0.1.0
 */
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { BudgetExceededError, LimiterUnavailableError } from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import * as Internal from "./internal/budget.js"
import type * as Pipeline from "./internal/pipeline.js"
import * as Shared from "./internal/redis.js"
import * as Validate from "./internal/validate.js"
import * as Pricing from "./Pricing.js"
import type * as RateLimit from "./RateLimit.js"
import { randomBytes } from "node:crypto"

/**
 * Options of a budget: the most it may spend, and the prices it counts with.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** The limit, in US dollars: a finite number above 0. */
  readonly maxUsd: number
  /** Prices used for reservations and costs. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
}

/**
 * Money held for one request until it settles.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reservation {
  readonly model: string
  readonly amount: Pricing.MicroUsd
  /** The shared store's id for it (Redis budgets): unique per process and reservation. */
  readonly id?: string | undefined
}

/**
 * Spent, held and allowed, in micro-dollars.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly limitMicroUsd: Pricing.MicroUsd
  readonly spentMicroUsd: Pricing.MicroUsd
  readonly reservedMicroUsd: Pricing.MicroUsd
}

/**
 * The budget service: what `ChatClient` reserves before a call and settles after it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Holds the worst-case cost of a request, or fails when it does not fit (or the model has no price). */
  readonly reserve: (model: string, promptTokens: number, maxCompletionTokens: number) => Effect.Effect<Reservation, BudgetExceededError | LimiterUnavailableError>
  /** Replaces a reservation by what the request really cost (`Option.none()`: nothing was spent). */
  readonly settle: (reservation: Reservation, actual: Option.Option<Pricing.MicroUsd>) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<Snapshot>
  /** The prices this budget charges with. */
  readonly prices: Pricing.PriceTable
}

/**
 * The budget service. `ChatClient` uses it when the layer that builds the client has it, or else
 * when the call's own context has it (`Layer.merge(ChatClient.layer(), Budget.layer(...))` works too).
 *
 * @since 0.1.0
 * @category tags
 */
export class Budget extends Context.Tag("effect-shepherd/Budget")<Budget, Service>() {}

/** The token counts a cost is computed from. @since 0.2.0 @category costs */
export type Usage = Pick<ChatSchema.CompletionUsage, "prompt_tokens" | "completion_tokens" | "prompt_tokens_details">

/**
 * The cost of a call from the usage it reported (an embeddings call's `completion_tokens` is 0), in
 * micro-dollars at `prices`; none without usage or without a price for the model. The one cost rule:
 * the budget settles with it, the metrics count it, `Batch` reports it.
 *
 * @since 0.2.0
 * @category costs
 */
export const costOf: (model: string, usage: Usage | null | undefined, prices: Pricing.PriceTable) => Option.Option<Pricing.MicroUsd> =
  Internal.costOf

/**
 * The budget stage of `ChatClient`'s pipeline (docs/architecture.md): holds a call's worst case, then
 * settles what it cost once it ended: its usage's price; else its hold if answered; else, if sent,
 * its hold unless the server refused it (429 or another status); else nothing.
 *
 * @since 0.2.0
 * @category pipeline
 */
export const guard: Pipeline.Stage = Internal.guard

/**
 * Checks a budget's options (`maxUsd` a finite number above 0, every price finite and at least 0);
 * fails with a `ConfigError` naming the option, e.g. `["maxUsd"]` or `["prices", "my-model", "input"]`.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Options, path: ReadonlyArray<string> = []): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const maxUsd = yield* Validate.positiveNumber([...path, "maxUsd"], options.maxUsd)
    // Micro-dollars are counted exactly up to 2^53 (about 9 billion dollars).
    if (maxUsd * 1e6 > Number.MAX_SAFE_INTEGER) return yield* Effect.fail(Validate.invalid([...path, "maxUsd"], `must be at most 9000000000 (dollars), got ${maxUsd}`))
    if (options.prices === undefined) return
    const decoded = decodePrices(options.prices)
    if (Either.isLeft(decoded)) {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      const at = [...path, "prices", ...(issue?.path ?? []).map(String)]
      return yield* Effect.fail(Validate.invalid(at, `is not a price: ${issue?.message ?? "invalid"}`))
    }
  })

const decodePrices = Schema.decodeUnknownEither(Pricing.PriceTable, { errors: "first" })

/**
 * A budget in memory, for one process; fails with a `ConfigError` when an option is invalid (see {@link validateOptions}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.zipRight(validateOptions(options), Effect.sync(() => Internal.memory(Math.round(options.maxUsd * 1e6), options.prices ?? Pricing.defaultTable)))

/**
 * The budget as a layer; fails to build with a `ConfigError` naming an invalid option.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Budget, ConfigError.ConfigError> => Layer.effect(Budget, make(options))

/**
 * Options of a budget kept in Redis.
 *
 * @since 0.1.0
 * @category options
 */
export interface RedisOptions extends Options, RateLimit.StoreRedisOptions {
  /**
   * How long a reservation is held at most: one left by a process that died is given back after it.
   * Keep it above the longest a request can take (all its attempts). @default 15 minutes
   */
  readonly leaseDuration?: Duration.DurationInput | undefined
}

/**
 * A budget kept in Redis, shared by every process with the same base URL, API key and namespace:
 * reservations and settlements are Lua scripts, so that together the processes never commit more
 * than `maxUsd`. The spend stays in Redis after the processes end (a rerun continues the same
 * budget); choose a new namespace for a new budget.
 *
 * Each process also keeps its own record of what it spent and holds, and never passes `maxUsd` by
 * it, whatever Redis says.
 *
 * When Redis cannot be reached: `failClosed` refuses requests with `LimiterUnavailableError`;
 * `fallbackLocal` gives each process `1/workers` of what was left at its last contact with Redis,
 * and adds what it spent meanwhile to the shared total when Redis answers again. A settlement that
 * could not be written is kept and written with the next call that reaches Redis; a reservation
 * whose answer was lost (a stall, a timeout) is cancelled the same way.
 *
 * When Redis answers but the record is gone (FLUSHALL, a restart without persistence, eviction: the
 * record's epoch is missing or changed, or its spend is below what this process wrote), the loss is
 * reported, never taken for a new budget: `failClosed` refuses every later request with
 * `LimiterUnavailableError` (reason `lost`); `fallbackLocal` warns and goes on with this process's
 * own record (`1/workers` of what was left at its last contact). Either way the process adds what it
 * committed to the record Redis holds now, so that a process started later does not begin at zero.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRedis = (options: RedisOptions): Effect.Effect<Service, LimiterUnavailableError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    if (options.leaseDuration !== undefined) yield* Validate.positiveDuration(["leaseDuration"], options.leaseDuration)
    const limit = Math.round(options.maxUsd * 1e6)
    const prices = options.prices ?? Pricing.defaultTable
    const { prefix, workers } = yield* Shared.resolve(options)
    const fallback = options.onUnavailable === "fallbackLocal"
    const keys = [`${prefix}budget:totals`, `${prefix}budget:leases`, `${prefix}budget:amounts`]
    const leaseMillis = Math.max(1, Math.round(Duration.toMillis(options.leaseDuration ?? "15 minutes")))
    const connection = yield* Shared.connect(options, "budget")
    const initScript = Shared.script(Shared.INIT_BUDGET)
    const reserveScript = Shared.script(Shared.RESERVE)
    const settleScript = Shared.script(Shared.SETTLE_BUDGET)
    const rebuildScript = Shared.script(Shared.REBUILD_BUDGET)
    const call = <A>(run: (redis: Shared.Connection["redis"]) => Promise<A>) => connection.call("budget", run)
    const newEpoch = () => randomBytes(8).toString("hex")
    // Ids unique to this process: a reservation or settlement whose answer was lost is found by its id.
    const idPrefix = randomBytes(6).toString("hex")
    let seq = 0
    const nextId = () => `${idPrefix}:${(++seq).toString(36)}`

    /** The shared totals as last seen. */
    let lastSpent = 0
    let lastReserved = 0
    /** This process's own record: what it spent (written or not), holds, and of that has been granted. */
    let ownSpent = 0
    let ownReserved = 0
    let ownGranted = 0
    /** What Redis confirmed it took from this process: the record can hold no less. */
    let ownWritten = 0
    /** The record's epoch, read (or set) at the first contact. */
    let epoch: string | undefined
    /** Set when the record was found lost: the process no longer uses it. */
    let lost: LimiterUnavailableError | undefined
    /** Settlements Redis has not taken yet (a cancellation is one of 0). */
    const unwritten: Array<{ readonly id: string; readonly actual: number }> = []
    /** While on local state: the share of what was left, and what this process committed of it. */
    let localLimit: number | undefined
    let localCommitted = 0
    const localReservations = new WeakSet<Reservation>()
    /** Reservations made here and not settled yet (this process's own record holds them). */
    const mine = new WeakSet<Reservation>()

    const ensureEpoch: Effect.Effect<string, LimiterUnavailableError> = Effect.suspend(() =>
      epoch !== undefined ? Effect.succeed(epoch) : Effect.map(call((redis) => initScript(redis, keys, [newEpoch()]) as Promise<[string, number, number]>), ([e, spent, reserved]) => {
        epoch ??= e
        lastSpent = spent
        lastReserved = reserved
        return epoch
      }))

    /** Records the loss (once), tells it, and adds this process's commitments to whatever record Redis has now. */
    const declareLost = (spentSeen: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (lost !== undefined) return Effect.void
        const committed = ownSpent + ownGranted
        lost = new LimiterUnavailableError({
          store: "budget",
          location: connection.location,
          reason: "lost",
          detail: `the shared budget record was lost (FLUSHALL, a restart without persistence, eviction?): Redis holds ${
            Pricing.format(spentSeen)
          } spent where this process alone had written ${Pricing.format(ownWritten)}; this process has committed ${Pricing.format(committed)} of ${Pricing.format(limit)}`
        })
        // Everything this process committed goes into the rebuilt record at once.
        unwritten.length = 0
        return Effect.zipRight(
          Effect.logWarning(
            `shepherd: ${lost.detail}. ` +
              (fallback
                ? `Going on with this process's own record (1/${workers} of what was left at the last contact).`
                : "Refusing further requests (failClosed).")
          ),
          Effect.ignore(call((redis) => rebuildScript(redis, keys, [newEpoch(), committed])))
        )
      })

    /** Writes one settlement; false when the record turned out lost. */
    const writeSettlement = (id: string, actual: number): Effect.Effect<boolean, LimiterUnavailableError> =>
      Effect.flatMap(ensureEpoch, (e) =>
        Effect.flatMap(call((redis) => settleScript(redis, keys, [-1, id, actual, leaseMillis, e, ownWritten]) as Promise<[number, number, number]>), ([status, spent, reserved]) => {
          if (status === -1) return Effect.as(declareLost(spent), false)
          ownWritten += actual
          lastSpent = spent
          lastReserved = reserved
          return Effect.succeed(true)
        }))
    /**
     * Writes the settlements Redis missed; stops at the first failure. Each is taken off the list
     * before it is written (and put back if that fails), so that fibers flushing at the same time
     * never write one twice (and a repeat would count once: settlements are idempotent by id).
     */
    const flush: Effect.Effect<void, LimiterUnavailableError> = Effect.suspend(() => {
      const next = unwritten.shift()
      if (next === undefined || lost !== undefined) return Effect.void
      return Effect.zipRight(
        Effect.tapError(writeSettlement(next.id, next.actual), () => Effect.sync(() => { unwritten.unshift(next) })),
        flush
      )
    })
    const guard = yield* Shared.makeGuard(
      connection,
      options,
      "budget",
      Effect.zipRight(flush, Effect.sync(() => { if (lost === undefined) localLimit = undefined }))
    )
    const worstCase = Internal.worstCaseOf(prices, limit, () => Math.max(lastSpent + lastReserved, ownSpent + ownReserved))

    type SharedAnswer = Either.Either<Reservation, BudgetExceededError> | "lost"
    const sharedReserve = (model: string, worst: number, id: string): Effect.Effect<SharedAnswer, LimiterUnavailableError> =>
      Effect.suspend(() => {
        if (lost !== undefined) return Effect.succeed("lost" as const)
        return Effect.zipRight(
          flush,
          Effect.flatMap(ensureEpoch, (e) =>
            Effect.flatMap(
              // A reservation whose answer does not come back may still be made: it is cancelled by id.
              Effect.onError(
                call((redis) => reserveScript(redis, keys, [-1, worst, limit, leaseMillis, id, e, ownWritten]) as Promise<[number, number, number]>),
                () => Effect.sync(() => { unwritten.push({ id, actual: 0 }) })
              ),
              ([status, spent, reserved]): Effect.Effect<SharedAnswer, LimiterUnavailableError> => {
                if (status === -1) return Effect.as(declareLost(spent), "lost" as const)
                lastSpent = spent
                lastReserved = reserved
                if (status === 0) {
                  return Effect.succeed(Either.left(new BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: spent + reserved, requiredMicroUsd: worst })))
                }
                if (status === -2) return Effect.fail(new LimiterUnavailableError({ store: "budget", location: connection.location, detail: `the reservation id ${id} was already used` }))
                return Effect.succeed(Either.right<Reservation>({ model, amount: worst, id }))
              }
            ))
        )
      })
    // Its own id: the shared attempt's id may have been cancelled.
    const localReserve = (model: string, worst: number): Effect.Effect<Reservation, BudgetExceededError> =>
      Effect.suspend(() => {
        if (localLimit === undefined) {
          localLimit = Math.floor(Math.max(0, limit - lastSpent - lastReserved) / workers)
          localCommitted = 0
        }
        if (localCommitted + worst > localLimit) {
          return Effect.fail(new BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: limit - localLimit + localCommitted, requiredMicroUsd: worst }))
        }
        localCommitted += worst
        const reservation: Reservation = { model, amount: worst, id: nextId() }
        localReservations.add(reservation)
        return Effect.succeed(reservation)
      })
    /** After a loss: this process's own record, or a refusal. */
    const afterLoss = (model: string, worst: number): Effect.Effect<Reservation, BudgetExceededError | LimiterUnavailableError> =>
      fallback ? localReserve(model, worst) : Effect.suspend(() => Effect.fail(lost!))

    // A refusal by the budget, or a lost record, is an answer, not a failure of Redis: neither may
    // switch to local state as an outage does.
    const reserve: Service["reserve"] = (model, promptTokens, maxCompletionTokens) =>
      Effect.flatMap(worstCase(model, promptTokens, maxCompletionTokens), (worst) =>
        Effect.suspend(() => {
          // This process's own record first: it never passes the limit by itself, whatever Redis holds.
          if (ownSpent + ownReserved + worst > limit) {
            return Effect.fail(new BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: ownSpent + ownReserved, requiredMicroUsd: worst }))
          }
          ownReserved += worst
          const decided: Effect.Effect<Reservation, BudgetExceededError | LimiterUnavailableError> = lost !== undefined
            ? afterLoss(model, worst)
            : Effect.flatMap(
              guard.run(sharedReserve(model, worst, nextId()), Effect.either(localReserve(model, worst))),
              (result) => result === "lost" ? afterLoss(model, worst) : result
            )
          return Effect.onExit(decided, (exit) =>
            Effect.sync(() => {
              if (Exit.isSuccess(exit)) {
                mine.add(exit.value)
                ownGranted += worst
              } else ownReserved -= worst
            }))
        }))

    const settle: Service["settle"] = (reservation, actual) =>
      Effect.suspend(() => {
        const spent = Internal.settledAmount(reservation, actual)
        // Counted once, and only for reservations made here.
        if (mine.delete(reservation)) {
          ownReserved -= reservation.amount
          ownGranted -= reservation.amount
          ownSpent += spent
        }
        const id = reservation.id ?? nextId()
        if (localReservations.has(reservation)) {
          localCommitted += spent - reservation.amount
          // Written to Redis when it answers again (or with the next shared call).
          if (spent > 0 && lost === undefined) unwritten.push({ id, actual: spent })
          return Effect.void
        }
        if (lost !== undefined) return Effect.void
        return Effect.catchAll(Effect.asVoid(writeSettlement(id, spent)), () => Effect.sync(() => { unwritten.push({ id, actual: spent }) }))
      })

    const snapshot: Service["snapshot"] = Effect.suspend(() => {
      const own = { limitMicroUsd: limit, spentMicroUsd: ownSpent, reservedMicroUsd: ownReserved }
      if (lost !== undefined) return Effect.succeed({ ...own, spentMicroUsd: Math.max(lastSpent, ownSpent) })
      return Effect.map(
        Effect.either(call((redis) => redis.hmget(keys[0]!, "epoch", "spent", "reserved"))),
        (result) => {
          if (result._tag === "Right" && (epoch === undefined || result.right[0] === epoch)) {
            lastSpent = Number(result.right[1] ?? 0)
            lastReserved = Number(result.right[2] ?? 0)
          }
          const pending = unwritten.reduce((sum, { actual }) => sum + actual, 0)
          return { limitMicroUsd: limit, spentMicroUsd: Math.max(lastSpent + pending, ownSpent), reservedMicroUsd: Math.max(lastReserved, ownReserved) }
        }
      )
    })

    // The first contact reads (or sets) the record's epoch; without Redis (fallbackLocal) it waits.
    const first = yield* Effect.either(ensureEpoch)
    if (first._tag === "Left" && !fallback) return yield* Effect.fail(first.left)
    // What could not be written yet gets one more chance when the scope closes.
    yield* Effect.addFinalizer(() => Effect.ignore(flush))
    return { prices, reserve, settle, snapshot }
  })

/**
 * The budget in Redis as a layer (see `makeRedis`); fails to build when Redis cannot be reached and
 * `onUnavailable` is `failClosed` (the default), and with a `ConfigError` naming an invalid option
 * (`maxUsd`, `prices`, `leaseDuration`, `url`, `namespace`, `workers`, `commandTimeout`, ...).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<Budget, LimiterUnavailableError | ConfigError.ConfigError> => Layer.scoped(Budget, makeRedis(options))
