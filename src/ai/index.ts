/**
 * Shepherd as an @effect/ai provider (`effect-shepherd/ai`): @effect/ai's `LanguageModel`,
 * `EmbeddingModel` and `Tokenizer` over Shepherd's `ChatClient`. Needs `@effect/ai` (^0.37, the
 * Effect 3.x line), an optional peer dependency that only this entry point imports.
 *
 * @since 0.2.0
 */

/**
 * `ChatError`s as @effect/ai's `AiError`s (the `ChatError` kept as the cause), and back.
 *
 * @since 0.2.0
 */
export * as ShepherdAiError from "./ShepherdAiError.js"

/**
 * The `EmbeddingModel` of @effect/ai over the `ChatClient` in the context, several texts per request.
 *
 * @since 0.2.0
 */
export * as ShepherdEmbeddingModel from "./ShepherdEmbeddingModel.js"

/**
 * The `LanguageModel` of @effect/ai over the `ChatClient` in the context (`layer`, `model`).
 *
 * @since 0.2.0
 */
export * as ShepherdLanguageModel from "./ShepherdLanguageModel.js"

/**
 * The `Tokenizer` of @effect/ai with gpt-tokenizer.
 *
 * @since 0.2.0
 */
export * as ShepherdTokenizer from "./ShepherdTokenizer.js"
