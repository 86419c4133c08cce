/**
 * Shepherd: a typed, Effect-based client for sending large numbers of concurrent requests to
 * OpenAI-compatible chat-completion APIs.
 *
 * @since 0.1.0
 */
export * as Batch from "./Batch.js"
export * as BatchApi from "./BatchApi.js"
export * as BatchApiError from "./BatchApiError.js"
export * as BatchApiSchema from "./BatchApiSchema.js"
export * as Budget from "./Budget.js"
export * as ChatClient from "./ChatClient.js"
export * as ChatError from "./ChatError.js"
export * as ChatSchema from "./ChatSchema.js"
export * as Json from "./Json.js"
export * as JsonParser from "./JsonParser.js"
export * as Metrics from "./Metrics.js"
export * as Pricing from "./Pricing.js"
export * as Rag from "./Rag.js"
export * as RateLimit from "./RateLimit.js"
export * as RetryPolicy from "./RetryPolicy.js"
export * as Sse from "./Sse.js"
export * as Structured from "./Structured.js"
