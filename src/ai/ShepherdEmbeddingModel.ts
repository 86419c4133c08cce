/**
 * Shepherd as an @effect/ai `EmbeddingModel`: `EmbeddingModel.embed` and `embedMany` over the
 * `ChatClient` in the context (`POST /embeddings`, through its limits, budget and retries). The texts
 * embedded together (`embedMany`, or `embed` calls made in one `Effect.forEach` with `batching: true`)
 * go out as one request of up to `maxBatchSize` inputs.
 *
 * ```ts
 * const vector = yield* EmbeddingModel.embed("Where is my parcel?")
 * // with Effect.provide(ShepherdEmbeddingModel.layer({ model: "text-embedding-3-small", dimensions: 256 }))
 * ```
 *
 * @since 0.2.0
 */
import * as EmbeddingModel from "@effect/ai/EmbeddingModel"
import * as AiModel from "@effect/ai/Model"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChatClient from "../ChatClient.js"
import * as Options from "./internal/options.js"
import * as ShepherdAiError from "./ShepherdAiError.js"

/**
 * Options of {@link layer} and {@link make}.
 *
 * @since 0.2.0
 * @category options
 */
export interface LayerOptions {
  /** The embedding model (`model` of each request), e.g. `"text-embedding-3-small"`. */
  readonly model: string
  /** Length of the vectors asked for (`dimensions`); the model's own when left out. @default undefined */
  readonly dimensions?: number | undefined
  /** Most inputs in one request (the API takes at most 2048). @default 2048 */
  readonly maxBatchSize?: number | undefined
  /** Keep vectors already computed, per input text. @default undefined (no cache) */
  readonly cache?: { readonly capacity: number; readonly timeToLive: Duration.DurationInput } | undefined
}

/**
 * The `EmbeddingModel` service over the `ChatClient` in the context. Fails with a `ConfigError` naming
 * the option (`["model"]`, `["dimensions"]`, `["maxBatchSize"]`) when one is invalid. A failed request
 * fails every input of its batch with an `AiError` whose cause is the `ChatError`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: LayerOptions): Effect.Effect<EmbeddingModel.Service, ConfigError.ConfigError, ChatClient.ChatClient> =>
  Effect.gen(function* () {
    const { dimensions, maxBatchSize, model } = yield* Options.embeddingModel(options)
    const client = yield* ChatClient.ChatClient
    const origin = { module: "ShepherdEmbeddingModel", method: "embedMany", url: `${client.options.baseUrl}/embeddings` }
    return yield* EmbeddingModel.make({
      maxBatchSize,
      ...(options.cache === undefined ? {} : { cache: options.cache }),
      embedMany: (input) =>
        client.embed({ model, input: [...input], ...(dimensions === undefined ? {} : { dimensions }) }).pipe(
          Effect.map((response) => response.data.map(({ embedding, index }) => ({ index, embeddings: [...embedding] }))),
          Effect.mapError((error) => ShepherdAiError.fromChatError(error, origin))
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
