/**
 * The budget stage and the budget's cost rules: what a request may cost at worst (held before it is
 * sent), what a call that ended costs (settled after it), in one place for every endpoint.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { Reservation, Service } from "../Budget.js"
import * as ChatError from "../ChatError.js"
import * as Pricing from "../Pricing.js"
import * as ErrorRules from "./errorRules.js"
import type * as Pipeline from "./pipeline.js"

/** The cost of a call from the usage it reported; none without usage or without a price for `model`. */
export const costOf = (model: string, usage: Pipeline.Usage | null | undefined, prices: Pricing.PriceTable): Option.Option<Pricing.MicroUsd> =>
  usage === undefined || usage === null ? Option.none() : Pricing.cost(model, usage, prices)

/** The worst case of a request at `prices`, or the error when its model has no price or it cannot be counted. */
export const worstCaseOf = (prices: Pricing.PriceTable, limit: number, committed: () => number) =>
  (model: string, promptTokens: number, maxCompletionTokens: number): Effect.Effect<Pricing.MicroUsd, ChatError.BudgetExceededError> => {
    const worst = Pricing.worstCase(model, promptTokens, maxCompletionTokens, prices)
    // Pricing gives only whole, finite, non-negative amounts; checked again here because one NaN in
    // the totals would make every later comparison false and switch the budget off.
    if (Option.isSome(worst) && Pricing.isMicroUsd(worst.value)) return Effect.succeed(worst.value)
    const priced = Option.isSome(Pricing.priceOf(model, prices))
    return Effect.fail(new ChatError.BudgetExceededError({
      limitMicroUsd: limit,
      committedMicroUsd: committed(),
      requiredMicroUsd: 0,
      detail: priced
        ? `the worst-case cost of a request for model ${JSON.stringify(model)} cannot be counted (prompt tokens ${promptTokens}, completion allowance ${maxCompletionTokens}): it was not sent`
        : `no price is known for model ${JSON.stringify(model)}: add it with Pricing.withPrices (or a prices file) so that its cost can be counted`
    }))
  }

/** What a settlement adds to the spend: the actual cost when it is a whole, finite, non-negative amount, else the hold. */
export const settledAmount = (reservation: Reservation, actual: Option.Option<Pricing.MicroUsd>): Pricing.MicroUsd =>
  Option.match(actual, {
    onNone: () => 0,
    onSome: (amount) => (Pricing.isMicroUsd(amount) ? amount : reservation.amount)
  })

/** A budget in memory, for one process: `limit` micro-dollars at `prices` (options already checked). */
export const memory = (limit: Pricing.MicroUsd, prices: Pricing.PriceTable): Service => {
  let spent = 0
  let reserved = 0
  const worstCase = worstCaseOf(prices, limit, () => spent + reserved)
  return {
    prices,
    reserve: (model, promptTokens, maxCompletionTokens) =>
      Effect.flatMap(worstCase(model, promptTokens, maxCompletionTokens), (worst) => {
        if (spent + reserved + worst > limit) {
          return Effect.fail(new ChatError.BudgetExceededError({ limitMicroUsd: limit, committedMicroUsd: spent + reserved, requiredMicroUsd: worst }))
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
}

/**
 * What a call that ended settles, the one rule for every endpoint: the cost of the usage it reported
 * (its hold when that cannot be priced); else its hold when it was answered (a stream that sent a
 * chunk was billed); else, if an attempt was sent, its hold unless the server refused it (a 429 or
 * another status: not billed; a failure in transit may have been); else nothing (never sent: every
 * attempt refused by the limiter, or interrupted while waiting).
 */
export const charge = <A, R>(
  call: Pipeline.Call<A, R>,
  reservation: Reservation,
  end: Pipeline.End<A>,
  sent: boolean,
  prices: Pricing.PriceTable
): Option.Option<Pricing.MicroUsd> => {
  const usage = end.received === undefined ? undefined : call.endpoint.usage(end.received.value)
  if (usage !== undefined) return Option.orElse(costOf(call.model, usage, prices), () => Option.some(reservation.amount))
  if (end.received !== undefined || Exit.isSuccess(end.exit)) return Option.some(reservation.amount)
  if (!sent) return Option.none()
  const error = Cause.failureOption(end.exit.cause)
  return Option.isSome(error) && ErrorRules.isRefusal(error.value) ? Option.none() : Option.some(reservation.amount)
}

/**
 * The budget stage: with a budget in the call, hold the call's worst case before anything is sent
 * (a call that cannot fit fails with `BudgetExceededError`, unsent), then settle what it cost
 * ({@link charge}) once it ended. Without one, the call passes through untouched.
 */
export const guard: Pipeline.Stage = (next) => (call) => {
  const budget = call.budget
  if (budget === undefined) return next(call)
  return Effect.flatMap(budget.reserve(call.model, call.tokens.prompt, call.tokens.allowance), (reservation) => {
    let sent = false
    const outer = call.onSent
    const onSent = () => {
      sent = true
      outer()
    }
    return call.endpoint.onEnd(next({ ...call, onSent }), (end) => budget.settle(reservation, charge(call, reservation, end, sent, budget.prices)))
  })
}
