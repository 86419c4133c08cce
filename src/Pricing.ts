/**
 * What a call costs, in integer micro-dollars (1 USD = 1,000,000): no floating-point drift however
 * many calls are added up. Prices are per 1M tokens; an unknown model has no price (`Option.none()`),
 * never a guess.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as ChatSchema from "./ChatSchema.js"

/**
 * Micro-dollars: an integer number of millionths of a US dollar.
 *
 * @since 0.1.0
 * @category models
 */
export type MicroUsd = number

/**
 * Prices of one model, in USD per 1M tokens, with where they come from.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ModelPrice = Schema.Struct({
  /** Prompt tokens. */
  input: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Completion tokens (reasoning tokens included, as providers bill them). */
  output: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Prompt tokens served from the provider's cache (`prompt_tokens_details.cached_tokens`), when priced apart. */
  cachedInput: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** Batch API prompt tokens, when the provider prices them apart. @default half of `input` @since 0.2.0 */
  batchInput: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** Batch API completion tokens. @default half of `output` @since 0.2.0 */
  batchOutput: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** Batch API cached prompt tokens. @default half of `cachedInput` @since 0.2.0 */
  batchCachedInput: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** Where the price was read. */
  source: Schema.String,
  /** When it was read (YYYY-MM-DD). */
  asOf: Schema.String
})
/**
 * The type of the {@link ModelPrice} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ModelPrice = typeof ModelPrice.Type

/**
 * A price table: model name to price.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PriceTable = Schema.Record({ key: Schema.String, value: ModelPrice })
/**
 * The type of the {@link PriceTable} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type PriceTable = typeof PriceTable.Type

/**
 * The built-in table. Output prices of gpt-4.1, claude-sonnet-4.5, gemini-2.5-flash and
 * deepseek-v3.2 are the seed's; the others are the providers' list prices as of the date given.
 * Override or extend it with {@link withPrices} or a JSON file ({@link decodeTable}).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTable: PriceTable = {
  "gpt-4.1": { input: 2.0, output: 8.0, cachedInput: 0.5, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "gpt-4.1-mini": { input: 0.4, output: 1.6, cachedInput: 0.1, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "gpt-4o": { input: 2.5, output: 10.0, cachedInput: 1.25, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "gpt-4o-mini": { input: 0.15, output: 0.6, cachedInput: 0.075, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "claude-sonnet-4.5": { input: 3.0, output: 15.0, cachedInput: 0.3, source: "anthropic.com/pricing", asOf: "2025-11-01" },
  "gemini-2.5-flash": { input: 0.3, output: 2.5, cachedInput: 0.03, source: "ai.google.dev/gemini-api/docs/pricing", asOf: "2025-11-01" },
  "text-embedding-3-small": { input: 0.02, output: 0, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "text-embedding-3-large": { input: 0.13, output: 0, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "text-embedding-ada-002": { input: 0.1, output: 0, source: "openai.com/api/pricing", asOf: "2025-11-01" },
  "deepseek-v3.2": { input: 0.28, output: 0.42, cachedInput: 0.028, source: "api-docs.deepseek.com/quick_start/pricing", asOf: "2025-11-01" }
}

/**
 * The table with `prices` added (they win over entries of the same name).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withPrices = (prices: PriceTable, table: PriceTable = defaultTable): PriceTable => ({ ...table, ...prices })

/**
 * Reads a price table from JSON (a file's contents), checking every entry.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeTable = Schema.decodeUnknownEither(Schema.parseJson(PriceTable))

/**
 * The entries of a table as a `Map`: only the table's own entries count, so that a model named
 * `constructor`, `__proto__` or `toString` finds no price instead of an `Object.prototype` member.
 * Built once per table object.
 */
const indexes = new WeakMap<PriceTable, ReadonlyMap<string, ModelPrice>>()
const indexOf = (table: PriceTable): ReadonlyMap<string, ModelPrice> => {
  let index = indexes.get(table)
  if (index === undefined) {
    index = new Map(Object.entries(table))
    indexes.set(table, index)
  }
  return index
}

/**
 * The price of `model`: an exact entry, else the longest entry that prefixes it followed by `-` (a
 * dated snapshot such as `gpt-4.1-2025-04-14` is priced as `gpt-4.1`; `gpt-4.1-mini` has its own entry).
 * Only the table's own entries are read.
 *
 * @since 0.1.0
 * @category pricing
 */
export const priceOf = (model: string, table: PriceTable = defaultTable): Option.Option<ModelPrice> => {
  const index = indexOf(table)
  const exact = index.get(model)
  if (exact !== undefined) return Option.some(exact)
  if (!/-\d{4}-\d{2}-\d{2}$/.test(model)) return Option.none()
  let best: string | undefined
  for (const name of index.keys()) {
    if (model.startsWith(`${name}-`) && /^-\d{4}-\d{2}-\d{2}$/.test(model.slice(name.length)) && (best === undefined || name.length > best.length)) best = name
  }
  return best === undefined ? Option.none() : Option.fromNullable(index.get(best))
}

/** Tokens at a price per 1M tokens, in micro-dollars, rounded up (a partial micro-dollar is charged). */
const micro = (tokens: number, usdPerMillion: number): MicroUsd => Math.ceil(tokens * usdPerMillion - 1e-9)

/** A token count that can be priced: a finite number of at least 0. */
const countable = (tokens: number): boolean => typeof tokens === "number" && Number.isFinite(tokens) && tokens >= 0

/**
 * Whether `amount` is a cost the budget can add up: a whole number of micro-dollars, at least 0, exact in a double.
 *
 * @since 0.2.0
 * @category validation
 */
export const isMicroUsd = (amount: number): boolean => Number.isSafeInteger(amount) && amount >= 0

/** `amount` when it is a cost the budget can add up, else none (a price or a count no budget may take). */
const checked = (amount: number): Option.Option<MicroUsd> => (isMicroUsd(amount) ? Option.some(amount) : Option.none())

/**
 * The cost of a call from its reported usage: a whole, finite, non-negative number of micro-dollars,
 * or none when the model has no price or the usage cannot be priced (a token count that is negative,
 * not finite or not a number, as a misbehaving server may report).
 *
 * @since 0.1.0
 * @category pricing
 */
export const cost = (
  model: string,
  usage: Pick<ChatSchema.CompletionUsage, "prompt_tokens" | "completion_tokens" | "prompt_tokens_details">,
  table: PriceTable = defaultTable
): Option.Option<MicroUsd> =>
  Option.flatMap(priceOf(model, table), (price) => {
    const cachedTokens = usage.prompt_tokens_details?.cached_tokens ?? 0
    if (!countable(usage.prompt_tokens) || !countable(usage.completion_tokens) || !countable(cachedTokens)) return Option.none()
    const cached = Math.min(usage.prompt_tokens, cachedTokens)
    const cachedPrice = price.cachedInput ?? price.input
    return checked(micro(usage.prompt_tokens - cached, price.input) + micro(cached, cachedPrice) + micro(usage.completion_tokens, price.output))
  })

/**
 * The most a call can cost: its prompt tokens plus its completion allowance, all at full price. None
 * when the model has no price or a count cannot be priced (as {@link cost}).
 *
 * @since 0.1.0
 * @category pricing
 */
export const worstCase = (model: string, promptTokens: number, maxCompletionTokens: number, table: PriceTable = defaultTable): Option.Option<MicroUsd> =>
  Option.flatMap(priceOf(model, table), (price) =>
    countable(promptTokens) && countable(maxCompletionTokens)
      ? checked(micro(promptTokens, price.input) + micro(maxCompletionTokens, price.output))
      : Option.none())

/**
 * Micro-dollars as dollars for people: `$0.001234`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (amount: MicroUsd): string => `$${(amount / 1e6).toFixed(6)}`

/**
 * The Batch API price of `model`: the entry's `batchInput`, `batchOutput` and `batchCachedInput` where
 * the table gives them, else half the live prices (OpenAI's Batch API discount).
 * @since 0.2.0
 * @category batch
 */
export const batchPriceOf = (model: string, table: PriceTable = defaultTable): Option.Option<ModelPrice> =>
  Option.map(priceOf(model, table), (price): ModelPrice => {
    const cachedInput = price.batchCachedInput ?? (price.cachedInput === undefined ? undefined : price.cachedInput / 2)
    return {
      input: price.batchInput ?? price.input / 2,
      output: price.batchOutput ?? price.output / 2,
      ...(cachedInput === undefined ? {} : { cachedInput }),
      source: price.source,
      asOf: price.asOf
    }
  })

/**
 * {@link cost} at the Batch API price ({@link batchPriceOf}).
 * @since 0.2.0
 * @category batch
 */
export const batchCost = (
  model: string,
  usage: Pick<ChatSchema.CompletionUsage, "prompt_tokens" | "completion_tokens" | "prompt_tokens_details">,
  table: PriceTable = defaultTable
): Option.Option<MicroUsd> => Option.flatMap(batchPriceOf(model, table), (price) => cost(model, usage, { [model]: price }))

/**
 * {@link worstCase} at the Batch API price ({@link batchPriceOf}).
 * @since 0.2.0
 * @category batch
 */
export const batchWorstCase = (model: string, promptTokens: number, maxCompletionTokens: number, table: PriceTable = defaultTable): Option.Option<MicroUsd> =>
  Option.flatMap(batchPriceOf(model, table), (price) => worstCase(model, promptTokens, maxCompletionTokens, { [model]: price }))
