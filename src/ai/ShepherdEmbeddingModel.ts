/**
 * Shepherd as an @effect/ai `EmbeddingModel`: `embed` and `embedMany` over `Embeddings.embedMany`,
 * so the texts embedded together (`embedMany`, or `embed` calls made in one `Effect.forEach` with
 * `batching: true`) are packed into as few `/embeddings` requests as the provider's limits allow
 * (2,048 inputs, 300,000 tokens), asked for as base64, and sent through the `ChatClient` in the
 * context: its limits, budget, retries and cache apply.
 *
 * ```ts
 * const embeddings = yield* EmbeddingModel.EmbeddingModel
 * const vector = yield* embeddings.embed("Where is my parcel?")
 * // with Effect.provide(ShepherdEmbeddingModel.layer({ model: "text-embedding-3-small", dimensions: 256 }))
 * ```
 *
 * @since 0.2.0
 */
import * as AiError from "@effect/ai/AiError"
import * as EmbeddingModel from "@effect/ai/EmbeddingModel"
import * as AiModel from "@effect/ai/Model"
import * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChatClient from "../ChatClient.js"
import * as Embeddings from "../Embeddings.js"
import * as ShepherdAiError from "./ShepherdAiError.js"

/**
 * Options of {@link layer} and {@link make}: those of `Embeddings.embedMany` (`model`, `dimensions`,
 * `encodingFormat`, `concurrency`, `limits`, ...), and a cache.
 *
 * @since 0.2.0
 * @category options
 */
export interface LayerOptions extends Embeddings.Options {
  /** Keep vectors already computed, per input text. @default undefined (no cache) */
  readonly cache?: { readonly capacity: number; readonly timeToLive: Duration.DurationInput } | undefined
}

/**
 * An `Embeddings.EmbeddingsError` as an `AiError`: when a request failed, the `AiError` of its
 * `ChatError` (see `ShepherdAiError`); when a text was refused before sending (empty, too long),
 * `MalformedInput`. The `EmbeddingsError` (every failed text, every vector obtained) is the cause of
 * the latter; the `ChatError` of the former.
 */
const toAiError = (error: Embeddings.EmbeddingsError, url: string): AiError.AiError => {
  const failed = error.failures.find((f) => f.error._tag !== "EmbeddingInputError")?.error
  if (failed !== undefined && failed._tag !== "EmbeddingInputError") {
    return ShepherdAiError.fromChatError(failed, { module: "ShepherdEmbeddingModel", method: "embedMany", url })
  }
  return new AiError.MalformedInput({ module: "ShepherdEmbeddingModel", method: "embedMany", description: error.message, cause: error })
}

/**
 * The `EmbeddingModel` service over the `ChatClient` in the context. Fails with a `ConfigError`
 * naming the option (`["model"]`, `["dimensions"]`, `["limits", "maxInputsPerRequest"]`) when one is
 * invalid. Texts that get no vector fail the batch they were embedded with (as @effect/ai's batched
 * models do) with an `AiError` whose cause is the `ChatError`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: LayerOptions): Effect.Effect<EmbeddingModel.Service, ConfigError.ConfigError, ChatClient.ChatClient> =>
  Effect.gen(function* () {
    const { cache, ...embeddingOptions } = options
    yield* Embeddings.validateOptions(embeddingOptions)
    const client = yield* ChatClient.ChatClient
    const url = `${client.options.baseUrl}/embeddings`
    return yield* EmbeddingModel.make({
      ...(cache === undefined ? {} : { cache }),
      embedMany: (input) =>
        Embeddings.embedMany(input, embeddingOptions).pipe(
          Effect.map((vectors) => vectors.map((vector, index) => ({ index, embeddings: Array.from(vector) }))),
          // The options were checked when the layer was built.
          Effect.catchIf(ConfigError.isConfigError, Effect.die),
          Effect.mapError((error) => toAiError(error, url)),
          Effect.provideService(ChatClient.ChatClient, client)
        )
    })
  })

/**
 * {@link make} as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<EmbeddingModel.EmbeddingModel, ConfigError.ConfigError, ChatClient.ChatClient> =>
  Layer.effect(EmbeddingModel.EmbeddingModel, make(options))

/**
 * The model as an @effect/ai `Model` (provider `"shepherd"`), for `ExecutionPlan` steps. An invalid
 * option is a defect here (`Model` layers cannot fail).
 *
 * @since 0.2.0
 * @category models
 */
export const model = (
  name: string,
  options: Omit<LayerOptions, "model"> = {}
): AiModel.Model<"shepherd", EmbeddingModel.EmbeddingModel, ChatClient.ChatClient> =>
  AiModel.make("shepherd", Layer.orDie(layer({ ...options, model: name })))
