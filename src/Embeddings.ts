/**
 * Many texts to embedding vectors, in as few requests as the provider's limits allow: texts are
 * packed into requests of up to 2,048 inputs and 300,000 tokens (OpenAI's limits, configurable),
 * asked for as base64 (5.3 characters a value instead of 10 to 20, no numbers to parse), and sent
 * concurrently through the `ChatClient` in the context, so its rate limits, budget, retries and
 * cache apply.
 *
 * ```ts
 * const vectors = yield* Embeddings.embedMany(texts, { model: "text-embedding-3-small" })
 * // vectors[i] is the Float32Array of texts[i]
 * ```
 *
 * @since 0.2.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ChatClient from "./ChatClient.js"
import * as ChatError from "./ChatError.js"
import * as ChatSchema from "./ChatSchema.js"
import * as Internal from "./internal/embeddings.js"
import * as Tokens from "./internal/tokens.js"
import * as Validate from "./internal/validate.js"

/**
 * What one request may hold. The defaults are OpenAI's published limits for its embedding models.
 *
 * @since 0.2.0
 * @category options
 */
export interface Limits {
  /** Texts in one request. @default 2048 */
  readonly maxInputsPerRequest: number
  /** Tokens in one text; a longer text fails alone (`EmbeddingInputError`), unsent. @default 8192 */
  readonly maxTokensPerInput: number
  /** Tokens in one request, its texts together. @default 300000 */
  readonly maxTokensPerRequest: number
}

/**
 * OpenAI's limits: 2,048 inputs and 300,000 tokens per request, 8,192 tokens per input.
 *
 * @since 0.2.0
 * @category options
 */
export const defaultLimits: Limits = { maxInputsPerRequest: 2048, maxTokensPerInput: 8192, maxTokensPerRequest: 300_000 }

/**
 * Options of `embedMany` and `stream`.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** The embedding model, e.g. `"text-embedding-3-small"`. */
  readonly model: string
  /** Length of each vector, for models that can shorten theirs (text-embedding-3). @default the model's own */
  readonly dimensions?: number | undefined
  /** The end-user id sent with each request. @default none */
  readonly user?: string | undefined
  /** How vectors travel: `"base64"` (float32 bytes, smaller and faster to parse) or `"float"` (JSON numbers). @default "base64" */
  readonly encodingFormat?: "base64" | "float" | undefined
  /** Requests in flight at once (each up to `maxInputsPerRequest` texts). @default 4 */
  readonly concurrency?: number | undefined
  /** Per-request limits; see {@link Limits}. @default defaultLimits */
  readonly limits?: Partial<Limits> | undefined
  /**
   * Tokens of a text, for the limits. @default cl100k_base (gpt-tokenizer), the encoding of OpenAI's
   * embedding models; with it, a text of at most `maxTokensPerRequest / maxInputsPerRequest` UTF-8 bytes
   * (146 by default) is charged its byte count, which bounds its tokens, and is not tokenized.
   */
  readonly countTokens?: ((text: string) => number) | undefined
}

/**
 * A text refused before anything was sent: empty (the API refuses empty input), or longer than
 * `maxTokensPerInput`. It fails alone; the texts packed around it are sent.
 *
 * @since 0.2.0
 * @category errors
 */
export class EmbeddingInputError extends Schema.TaggedError<EmbeddingInputError>()("EmbeddingInputError", {
  reason: Schema.Literal("empty", "too_long"),
  /** The limit it passed, for `too_long`. */
  limit: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return this.reason === "empty"
      ? "the text is empty, which the embeddings API refuses; drop it or give it content"
      : `the text has more than ${this.limit} tokens (maxTokensPerInput); split it into parts and embed each`
  }
}

/**
 * Why one text has no vector: refused before sending, or its request's final `ChatError`.
 *
 * @since 0.2.0
 * @category models
 */
export type TextError = ChatError.ChatError | EmbeddingInputError

/**
 * `TextError` as a `Schema`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TextError: Schema.Schema<TextError, Schema.Schema.Encoded<typeof ChatError.ChatError> | Schema.Schema.Encoded<typeof EmbeddingInputError>> =
  Schema.Union(ChatError.ChatError, EmbeddingInputError)

/**
 * One text's outcome from `stream`: its vector, or why it has none; `index` is its place in the input.
 *
 * @since 0.2.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Embedded"; readonly index: number; readonly embedding: Float32Array }
  | { readonly _tag: "Failed"; readonly index: number; readonly error: TextError }

/**
 * Some texts of an `embedMany` call have no vector. `failures` names each by its index, with its
 * error; `embeddings` holds every vector that was paid for (`null` for the failed texts), in input
 * order, so that nothing needs sending again but the failures.
 *
 * @since 0.2.0
 * @category errors
 */
export class EmbeddingsError extends Schema.TaggedError<EmbeddingsError>()("EmbeddingsError", {
  failures: Schema.Array(Schema.Struct({ index: Schema.Number, error: TextError })),
  embeddings: Schema.Array(Schema.NullOr(ChatSchema.Float32ArrayFromBase64))
}) {
  override get message(): string {
    const first = this.failures[0]
    const more = this.failures.length > 1 ? ` (and ${this.failures.length - 1} more; see .failures)` : ""
    return `${this.failures.length} of ${this.embeddings.length} texts have no embedding; ` +
      `text ${first?.index}: ${first?.error.message}${more}. The others' vectors are in .embeddings.`
  }
}

/**
 * Checks the options and fills in the defaults: `model` a non-empty string; `dimensions`,
 * `concurrency` and every limit a whole number of at least 1; `encodingFormat` `"base64"` or
 * `"float"`. Fails with a `ConfigError` naming the option (`["limits", "maxInputsPerRequest"]`).
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Options): Effect.Effect<Internal.Resolved, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const limits = { ...defaultLimits, ...withoutUndefined(options.limits ?? {}) }
    const count = options.countTokens
    return {
      model: yield* Validate.nonEmptyString(["model"], options.model),
      dimensions: options.dimensions === undefined ? undefined : yield* Validate.positiveInt(["dimensions"], options.dimensions),
      user: options.user,
      encodingFormat: yield* Validate.oneOf(["encodingFormat"], options.encodingFormat ?? "base64", ["base64", "float"] as const),
      concurrency: yield* Validate.positiveInt(["concurrency"], options.concurrency ?? 4),
      maxInputsPerRequest: yield* Validate.positiveInt(["limits", "maxInputsPerRequest"], limits.maxInputsPerRequest),
      maxTokensPerInput: yield* Validate.positiveInt(["limits", "maxTokensPerInput"], limits.maxTokensPerInput),
      maxTokensPerRequest: yield* Validate.positiveInt(["limits", "maxTokensPerRequest"], limits.maxTokensPerRequest),
      countTokens: count === undefined ? Tokens.embeddingTokensWithin : (text: string) => count(text),
      bytesBoundTokens: count === undefined
    }
  })

const withoutUndefined = <A extends object>(a: A): Partial<A> =>
  Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) as Partial<A>

/** The texts as a stream; a lone string is one text (a string is also an Iterable of its characters). */
const toStream = <E, R>(texts: Stream.Stream<string, E, R> | Iterable<string>): Stream.Stream<string, E, R> =>
  typeof texts === "string"
    ? Stream.make(texts)
    : Stream.StreamTypeId in (texts as object)
    ? (texts as Stream.Stream<string, E, R>)
    : Stream.fromIterable(texts as Iterable<string>)

const refuse = (reason: "empty" | "too_long", limit?: number) => new EmbeddingInputError({ reason, limit })

/**
 * Embeds texts read from a stream, for inputs larger than memory: one outcome per text, in input
 * order. Texts are packed into requests as {@link embedMany} packs them; at most `concurrency`
 * requests are in flight and a few more held, so memory does not grow with the input. A request is
 * sent once it is full or the input has ended. A failed request fails only its own texts; after a
 * refusal every later request would meet too (the budget is spent, the shared limits cannot be
 * reached, the key is refused) the later texts fail with it, unsent. A failing input fails the stream.
 *
 * @since 0.2.0
 * @category running
 */
export const stream = <E = never, R = never>(
  texts: Stream.Stream<string, E, R> | Iterable<string>,
  options: Options
): Stream.Stream<Outcome, E | ConfigError.ConfigError, ChatClient.ChatClient | R> =>
  Stream.unwrap(
    Effect.map(Effect.zip(validateOptions(options), ChatClient.ChatClient), ([resolved, chat]) =>
      toStream(texts).pipe(
        Stream.pipeThroughChannel(Internal.pack<E>(resolved, refuse)),
        // In order, each request's outcomes held until those before it are out: at most `concurrency`
        // requests' outcomes wait (bench/embeddings).
        Stream.mapEffect(Internal.sender(chat, resolved), { concurrency: resolved.concurrency }),
        Stream.mapConcat((outcomes) => outcomes)
      ))
  )

/**
 * One `Float32Array` per text, in input order, whether the answer came as base64 (the default) or as
 * JSON numbers. `texts` is an array or any `Iterable` (a lone string is one text). Texts are packed into as few requests as `limits` allow and sent `concurrency` at a
 * time through the `ChatClient` in the context. When some texts have no vector (refused before
 * sending, or their request failed after its retries) it fails with `EmbeddingsError`, which names
 * each of them and carries every vector obtained. Fails with a `ConfigError` for an invalid option.
 *
 * @since 0.2.0
 * @category running
 */
export const embedMany = (
  texts: Iterable<string>,
  options: Options
): Effect.Effect<Array<Float32Array>, EmbeddingsError | ConfigError.ConfigError, ChatClient.ChatClient> =>
  Effect.flatMap(
    Stream.runFold(stream(texts, options), { vectors: [] as Array<Float32Array | null>, failures: [] as Array<{ index: number; error: TextError }> }, (acc, outcome) => {
      if (outcome._tag === "Embedded") acc.vectors.push(outcome.embedding)
      else {
        acc.vectors.push(null)
        acc.failures.push({ index: outcome.index, error: outcome.error })
      }
      return acc
    }),
    ({ failures, vectors }) =>
      failures.length === 0
        ? Either.right(vectors as Array<Float32Array>)
        : Either.left(new EmbeddingsError({ failures, embeddings: vectors }))
  )
