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
import { BudgetExceededError, LimiterUnavailableError } from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import * as Internal from "./internal/budget.js"
import * as BudgetRedis from "./internal/budgetRedis.js"
import type * as Pipeline from "./internal/pipeline.js"
import * as Validate from "./internal/validate.js"
import * as Pricing from "./Pricing.js"
import type * as RateLimit from "./RateLimit.js"

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
  BudgetRedis.make(options, validateOptions)

/**
 * The budget in Redis as a layer (see `makeRedis`); fails to build when Redis cannot be reached and
 * `onUnavailable` is `failClosed` (the default), and with a `ConfigError` naming an invalid option
 * (`maxUsd`, `prices`, `leaseDuration`, `url`, `namespace`, `workers`, `commandTimeout`, ...).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<Budget, LimiterUnavailableError | ConfigError.ConfigError> => Layer.scoped(Budget, makeRedis(options))
