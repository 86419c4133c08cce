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
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { BudgetExceededError, type LimiterUnavailableError } from "./ChatError.js"
import * as Shared from "./internal/redis.js"
import * as Validate from "./internal/validate.js"
import * as Pricing from "./Pricing.js"

export interface Options {
  /** The limit, in US dollars: a finite number above 0. */
  readonly maxUsd: number
  /** Prices used for reservations and costs. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
}

/** Money held for one request until it settles. */
export interface Reservation {
  readonly model: string
  readonly amount: Pricing.MicroUsd
  /** The shared store's number for it (Redis budgets). */
  readonly id?: number | undefined
}

/** Spent, held and allowed, in micro-dollars. */
export interface Snapshot {
  readonly limitMicroUsd: Pricing.MicroUsd
  readonly spentMicroUsd: Pricing.MicroUsd
  readonly reservedMicroUsd: Pricing.MicroUsd
}

export interface Service {
  /** Holds the worst-case cost of a request, or fails when it does not fit (or the model has no price). */
  readonly reserve: (model: string, promptTokens: number, maxCompletionTokens: number) => Effect.Effect<Reservation, BudgetExceededError | LimiterUnavailableError>
  /** Replaces a reservation by what the request really cost (`Option.none()`: nothing was spent). */
  readonly settle: (reservation: Reservation, actual: Option.Option<Pricing.MicroUsd>) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<Snapshot>
  /** The prices this budget charges with. */
  readonly prices: Pricing.PriceTable
}

export class Budget extends Context.Tag("effect-shepherd/Budget")<Budget, Service>() {}

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

/** The worst case of a request at `prices`, or the error when its model has no price or it cannot be counted. */
const worstCaseOf = (prices: Pricing.PriceTable, limit: number, committed: () => number) =>
  (model: string, promptTokens: number, maxCompletionTokens: number): Effect.Effect<Pricing.MicroUsd, BudgetExceededError> => {
    const worst = Pricing.worstCase(model, promptTokens, maxCompletionTokens, prices)
    // Pricing gives only whole, finite, non-negative amounts; checked again here because one NaN in
    // the totals would make every later comparison false and switch the budget off.
    if (Option.isSome(worst) && Pricing.isMicroUsd(worst.value)) return Effect.succeed(worst.value)
    const priced = Option.isSome(Pricing.priceOf(model, prices))
    return Effect.fail(new BudgetExceededError({
      limitMicroUsd: limit,
      committedMicroUsd: committed(),
      requiredMicroUsd: 0,
      detail: priced
        ? `the worst-case cost of a request for model ${JSON.stringify(model)} cannot be counted (prompt tokens ${promptTokens}, completion allowance ${maxCompletionTokens}): it was not sent`
        : `no price is known for model ${JSON.stringify(model)}: add it with Pricing.withPrices (or a prices file) so that its cost can be counted`
    }))
  }

/** What a settlement adds to the spend: the actual cost when it is a whole, finite, non-negative amount, else the hold. */
const settledAmount = (reservation: Reservation, actual: Option.Option<Pricing.MicroUsd>): Pricing.MicroUsd =>
  Option.match(actual, {
    onNone: () => 0,
    onSome: (amount) => (Pricing.isMicroUsd(amount) ? amount : reservation.amount)
  })

/** A budget in memory, for one process; fails with a `ConfigError` when an option is invalid (see {@link validateOptions}). */
export const make = (options: Options): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.zipRight(validateOptions(options), Effect.sync((): Service => {
    const limit = Math.round(options.maxUsd * 1e6)
    const prices = options.prices ?? Pricing.defaultTable
    let spent = 0
    let reserved = 0
    const worstCase = worstCaseOf(prices, limit, () => spent + reserved)
    return {
      prices,
      reserve: (model, promptTokens, maxCompletionTokens) =>
        Effect.flatMap(worstCase(model, promptTokens, maxCompletionTokens), (worst) => {
          if (spent + reserved + worst > limit) {
            return Effect.fail(new BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: spent + reserved, requiredMicroUsd: worst }))
          }
          reserved += worst
          return Effect.succeed({ model, amount: worst })
        }),
      settle: (reservation, actual) =>
        Effect.sync(() => {
          reserved -= reservation.amount
          spent += settledAmount(reservation, actual)
        }),
      snapshot: Effect.sync(() => ({ limitMicroUsd: limit, spentMicroUsd: spent, reservedMicroUsd: reserved }))
    }
  }))

/** The budget as a layer; fails to build with a `ConfigError` naming an invalid option. */
export const layer = (options: Options): Layer.Layer<Budget, ConfigError.ConfigError> => Layer.effect(Budget, make(options))

/** Options of a budget kept in Redis. */
export interface RedisOptions extends Options, Shared.RedisOptions {
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
 * When Redis cannot be reached: `failClosed` refuses requests with `LimiterUnavailableError`;
 * `fallbackLocal` gives each process `1/workers` of what was left at its last contact with Redis,
 * and adds what it spent meanwhile to the shared total when Redis answers again. A settlement that
 * could not be written is kept and written with the next call that reaches Redis.
 */
export const makeRedis = (options: RedisOptions): Effect.Effect<Service, LimiterUnavailableError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    if (options.leaseDuration !== undefined) yield* Validate.positiveDuration(["leaseDuration"], options.leaseDuration)
    const limit = Math.round(options.maxUsd * 1e6)
    const prices = options.prices ?? Pricing.defaultTable
    const { prefix, workers } = yield* Shared.resolve(options)
    const keys = [`${prefix}budget:totals`, `${prefix}budget:leases`, `${prefix}budget:amounts`]
    const leaseMillis = Math.max(1, Math.round(Duration.toMillis(options.leaseDuration ?? "15 minutes")))
    const connection = yield* Shared.connect(options, "budget")
    const reserveScript = Shared.script(Shared.RESERVE)
    const settleScript = Shared.script(Shared.SETTLE_BUDGET)
    const call = <A>(run: (redis: Shared.Connection["redis"]) => Promise<A>) => connection.call("budget", run)

    /** The shared totals as last seen. */
    let lastSpent = 0
    let lastReserved = 0
    /** Settlements Redis has not taken yet: [reservation id (0: none), micro-dollars spent]. */
    const unwritten: Array<readonly [number, number]> = []
    /** While on local state: the share of what was left, and what this process committed of it. */
    let localLimit: number | undefined
    let localCommitted = 0
    const localReservations = new WeakSet<Reservation>()

    const writeSettlement = (id: number, actual: number) =>
      Effect.map(call((redis) => settleScript(redis, keys, [id, actual]) as Promise<[number, number]>), ([spent, reserved]) => {
        lastSpent = spent
        lastReserved = reserved
      })
    /**
     * Writes the settlements Redis missed; stops at the first failure. Each is taken off the list
     * before it is written (and put back if that fails), so that fibers flushing at the same time
     * never write one twice.
     */
    const flush: Effect.Effect<void, LimiterUnavailableError> = Effect.suspend(() => {
      const next = unwritten.shift()
      if (next === undefined) return Effect.void
      return Effect.zipRight(
        Effect.tapError(writeSettlement(next[0], next[1]), () => Effect.sync(() => { unwritten.unshift(next) })),
        flush
      )
    })
    const guard = yield* Shared.makeGuard(connection, options, "budget", Effect.zipRight(flush, Effect.sync(() => { localLimit = undefined })))
    const worstCase = worstCaseOf(prices, limit, () => lastSpent + lastReserved)

    const sharedReserve = (model: string, worst: number): Effect.Effect<Reservation, LimiterUnavailableError | BudgetExceededError> =>
      Effect.zipRight(
        flush,
        Effect.flatMap(call((redis) => reserveScript(redis, keys, [-1, worst, limit, leaseMillis]) as Promise<[number, number, number]>), ([id, spent, reserved]) => {
          lastSpent = spent
          lastReserved = reserved
          return id === 0
            ? Effect.fail(new BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: spent + reserved, requiredMicroUsd: worst }))
            : Effect.succeed<Reservation>({ model, amount: worst, id })
        })
      )
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
        const reservation: Reservation = { model, amount: worst }
        localReservations.add(reservation)
        return Effect.succeed(reservation)
      })

    // A refusal by the budget is an answer, not a failure of Redis: it must not switch to local state.
    const reserve: Service["reserve"] = (model, promptTokens, maxCompletionTokens) =>
      Effect.flatMap(worstCase(model, promptTokens, maxCompletionTokens), (worst) =>
        Effect.flatten(guard.run(
          Effect.either(sharedReserve(model, worst)).pipe(
            Effect.flatMap((result) =>
              Either.isLeft(result) && result.left._tag === "LimiterUnavailableError" ? Effect.fail(result.left) : Effect.succeed(result as Either.Either<Reservation, BudgetExceededError>)
            )
          ),
          Effect.either(localReserve(model, worst))
        )))

    const settle: Service["settle"] = (reservation, actual) =>
      Effect.suspend(() => {
        const spent = settledAmount(reservation, actual)
        if (localReservations.has(reservation)) {
          localCommitted += spent - reservation.amount
          // Written to Redis when it answers again (or with the next shared call).
          if (spent > 0) unwritten.push([0, spent])
          return Effect.void
        }
        return Effect.catchAll(writeSettlement(reservation.id ?? 0, spent), () => Effect.sync(() => { unwritten.push([reservation.id ?? 0, spent]) }))
      })

    const snapshot: Service["snapshot"] = Effect.map(
      Effect.either(call((redis) => redis.hmget(keys[0]!, "spent", "reserved"))),
      (result) => {
        if (result._tag === "Right") {
          lastSpent = Number(result.right[0] ?? 0)
          lastReserved = Number(result.right[1] ?? 0)
        }
        const pending = unwritten.reduce((sum, [, spent]) => sum + spent, 0)
        return { limitMicroUsd: limit, spentMicroUsd: lastSpent + pending, reservedMicroUsd: lastReserved }
      }
    )

    // What could not be written yet gets one more chance when the scope closes.
    yield* Effect.addFinalizer(() => Effect.ignore(flush))
    return { prices, reserve, settle, snapshot }
  })

/**
 * The budget in Redis as a layer (see `makeRedis`); fails to build when Redis cannot be reached and
 * `onUnavailable` is `failClosed` (the default), and with a `ConfigError` naming an invalid option
 * (`maxUsd`, `prices`, `leaseDuration`, `url`, `namespace`, `workers`, `commandTimeout`, ...).
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<Budget, LimiterUnavailableError | ConfigError.ConfigError> => Layer.scoped(Budget, makeRedis(options))
