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
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { BudgetExceededError } from "./ChatError.js"
import * as Pricing from "./Pricing.js"

export interface Options {
  /** The limit, in US dollars. */
  readonly maxUsd: number
  /** Prices used for reservations and costs. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
}

/** Money held for one request until it settles. */
export interface Reservation {
  readonly model: string
  readonly amount: Pricing.MicroUsd
}

/** Spent, held and allowed, in micro-dollars. */
export interface Snapshot {
  readonly limitMicroUsd: Pricing.MicroUsd
  readonly spentMicroUsd: Pricing.MicroUsd
  readonly reservedMicroUsd: Pricing.MicroUsd
}

export interface Service {
  /** Holds the worst-case cost of a request, or fails when it does not fit (or the model has no price). */
  readonly reserve: (model: string, promptTokens: number, maxCompletionTokens: number) => Effect.Effect<Reservation, BudgetExceededError>
  /** Replaces a reservation by what the request really cost (`Option.none()`: nothing was spent). */
  readonly settle: (reservation: Reservation, actual: Option.Option<Pricing.MicroUsd>) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<Snapshot>
  /** The prices this budget charges with. */
  readonly prices: Pricing.PriceTable
}

export class Budget extends Context.Tag("effect-shepherd/Budget")<Budget, Service>() {}

/** A budget in memory, for one process. */
export const make = (options: Options): Effect.Effect<Service> =>
  Effect.sync(() => {
    const limit = Math.round(options.maxUsd * 1e6)
    const prices = options.prices ?? Pricing.defaultTable
    let spent = 0
    let reserved = 0
    return {
      prices,
      reserve: (model, promptTokens, maxCompletionTokens) =>
        Effect.suspend(() => {
          const worst = Pricing.worstCase(model, promptTokens, maxCompletionTokens, prices)
          if (Option.isNone(worst)) {
            return Effect.fail(new BudgetExceededError({
              limitMicroUsd: limit,
              committedMicroUsd: spent + reserved,
              requiredMicroUsd: 0,
              detail: `no price is known for model "${model}": add it with Pricing.withPrices (or a prices file) so that its cost can be counted`
            }))
          }
          if (spent + reserved + worst.value > limit) {
            return Effect.fail(new BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: spent + reserved, requiredMicroUsd: worst.value }))
          }
          reserved += worst.value
          return Effect.succeed({ model, amount: worst.value })
        }),
      settle: (reservation, actual) =>
        Effect.sync(() => {
          reserved -= reservation.amount
          spent += Option.getOrElse(actual, () => 0)
        }),
      snapshot: Effect.sync(() => ({ limitMicroUsd: limit, spentMicroUsd: spent, reservedMicroUsd: reserved }))
    }
  })

/** The budget as a layer. */
export const layer = (options: Options): Layer.Layer<Budget> => Layer.effect(Budget, make(options))
