/**
 * Shepherd: a typed, Effect-based client for sending large numbers of concurrent requests to
 * OpenAI-compatible chat-completion APIs.
 *
 * @since 0.1.0
 */

/**
 * Many requests through one client, exactly one outcome per input (`Batch.run`, `Batch.runAll`).
 *
 * @since 0.1.0
 */
export * as Batch from "./Batch.js"
/**
 * Requests sent as provider batches (the Batch API, about half price), resumable, with the same outcomes as `Batch.run`.
 *
 * @since 0.2.0
 */
export * as BatchApi from "./BatchApi.js"

/**
 * The typed refusals of the provider's Batch API (file too large, invalid lines, quota, ...).
 *
 * @since 0.2.0
 */
export * as BatchApiError from "./BatchApiError.js"

/**
 * The Batch API's wire objects (File, Batch, lists) as Schemas.
 *
 * @since 0.2.0
 */
export * as BatchApiSchema from "./BatchApiSchema.js"

/**
 * A spending limit shared by every call of a program: worst-case costs reserved, actual costs settled.
 *
 * @since 0.1.0
 */
export * as Budget from "./Budget.js"

/**
 * The chat-completions client service and its layers.
 *
 * @since 0.1.0
 */
export * as ChatClient from "./ChatClient.js"

/**
 * The errors of a chat call, as `Schema.TaggedError`s.
 *
 * @since 0.1.0
 */
export * as ChatError from "./ChatError.js"

/**
 * Wire formats of the OpenAI-compatible chat-completions API, as `Schema`s.
 *
 * @since 0.1.0
 */
export * as ChatSchema from "./ChatSchema.js"

/**
 * Many texts to embedding vectors: packed into requests under the provider's limits, sent
 * concurrently through the ChatClient, one Float32Array per text in input order.
 *
 * @since 0.2.0
 */
export * as Embeddings from "./Embeddings.js"

/**
 * Lenient JSON for model output: the intended value of "almost JSON", or a typed reason.
 *
 * @since 0.1.0
 */
export * as Json from "./Json.js"

/**
 * `Json.parse` as a service that parses large documents in a worker pool.
 *
 * @since 0.1.0
 */
export * as JsonParser from "./JsonParser.js"

/**
 * The `Metric`s the client updates as it works, and a snapshot of them.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * What a call costs, in integer micro-dollars, from a table of model prices.
 *
 * @since 0.1.0
 */
export * as Pricing from "./Pricing.js"

/**
 * A small retrieval-augmented pipeline: analyse documents concurrently, answer from the best matches.
 *
 * @since 0.1.0
 */
export * as Rag from "./Rag.js"

/**
 * Client-side rate limits: requests and tokens per minute, requests in flight, pauses after a 429.
 *
 * @since 0.1.0
 */
export * as RateLimit from "./RateLimit.js"

/**
 * A cache of answers as a pipeline stage: reruns answered without sending or paying (memory, files, Redis).
 *
 * @since 0.2.0
 */
export * as ResponseCache from "./ResponseCache.js"

/**
 * When a failed chat call is tried again, and after how long.
 *
 * @since 0.1.0
 */
export * as RetryPolicy from "./RetryPolicy.js"

/**
 * Many keys, endpoints and models behind one client (`ChatClient.layerRouter`): options, routes, metrics.
 *
 * @since 0.2.0
 */
export * as Router from "./Router.js"

/**
 * Server-sent events (`text/event-stream`) decoded from a stream of bytes.
 *
 * @since 0.1.0
 */
export * as Sse from "./Sse.js"

/**
 * Answers decoded with a `Schema`: JSON asked for, recovered leniently, decoded, re-asked on failure.
 *
 * @since 0.1.0
 */
export * as Structured from "./Structured.js"
