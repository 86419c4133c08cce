/**
 * The budget of a Batch API submission (`BatchApi.Options.maxUsd`): each batch file's worst case at
 * the batch price is held just before its batch is created, and replaced by what the batch's
 * answers cost once its results arrive. Batches an earlier run created count too (their hold is
 * taken whether it fits or not: they run anyway), so that a rerun does not spend the budget twice.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Batch from "../../Batch.js"
import { BudgetExceededError } from "../../ChatError.js"
import * as Pricing from "../../Pricing.js"
import * as Tokens from "../tokens.js"
import type { Item } from "./plan.js"

/** Money held for one range until its results arrive. */
export interface Hold {
  readonly amount: number
}

/** The submission's budget. */
export interface Ledger {
  /**
   * Holds the worst case of `items`; the refusal when it does not fit (or a model has no price).
   * `force`: held even above the limit (a batch that exists already), never refused.
   */
  readonly hold: (items: ReadonlyArray<Item>, force: boolean) => Effect.Effect<Hold, BudgetExceededError>
  /** Replaces a hold by the actual cost of the outcomes. */
  readonly settle: (hold: Hold, outcomes: ReadonlyArray<Batch.BatchOutcome>) => Effect.Effect<void>
  /** Gives a hold back (the batch was not created). */
  readonly release: (hold: Hold) => Effect.Effect<void>
}

/** The most `items` can cost at the batch price (prompt plus completion allowance); none when a model has no price. */
export const worstCase = (items: Iterable<{ readonly request: Batch.BatchRequest }>, prices: Pricing.PriceTable): Option.Option<number> => {
  let total = 0
  for (const { request } of items) {
    const body = request.body as { model: string; messages?: ReadonlyArray<never>; input?: never }
    const chat = body.messages !== undefined
    const prompt = chat ? Tokens.promptTokens(body.messages!) : Tokens.embeddingInputTokens(body.input!)
    const allowance = chat ? Tokens.completionAllowance(request.body as never) : 0
    const worst = Pricing.batchWorstCase(body.model, prompt, allowance, prices)
    if (Option.isNone(worst)) return Option.none()
    total += worst.value
  }
  return Option.some(total)
}

/** What the outcomes cost (answers without a price count nothing). */
const actualCost = (outcomes: ReadonlyArray<Batch.BatchOutcome>): number =>
  outcomes.reduce((sum, o) => sum + (o._tag === "Success" ? Option.getOrElse(o.costMicroUsd, () => 0) : 0), 0)

/** A ledger of `limitMicroUsd` micro-dollars at `prices`, in memory (one submission). */
export const make = (limitMicroUsd: number, prices: Pricing.PriceTable): Ledger => {
  let spent = 0
  let held = 0
  return {
    hold: (items, force) =>
      Effect.suspend(() => {
        const worst = worstCase(items, prices)
        const committed = spent + held
        if (Option.isNone(worst)) {
          if (force) return Effect.succeed({ amount: 0 })
          return Effect.fail(new BudgetExceededError({
            limitMicroUsd,
            committedMicroUsd: committed,
            requiredMicroUsd: 0,
            detail: "a model of the batch file has no known batch price; add it to the prices"
          }))
        }
        if (!force && committed + worst.value > limitMicroUsd) {
          return Effect.fail(new BudgetExceededError({ limitMicroUsd, committedMicroUsd: committed, requiredMicroUsd: worst.value }))
        }
        held += worst.value
        return Effect.succeed({ amount: worst.value })
      }),
    settle: (hold, outcomes) =>
      Effect.sync(() => {
        held -= hold.amount
        spent += actualCost(outcomes)
      }),
    release: (hold) => Effect.sync(() => { held -= hold.amount })
  }
}
