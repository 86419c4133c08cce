/**
 * The usage each endpoint reports, in the one shape costs and metrics read (`Budget.Usage`).
 * @internal
 */
import type * as ChatSchema from "../ChatSchema.js"
import type * as Pipeline from "./pipeline.js"

/** A completion's usage, when it reported one. */
export const ofCompletion = (completion: ChatSchema.ChatCompletion): ChatSchema.CompletionUsage | undefined => completion.usage ?? undefined

/** An embeddings response's usage: its prompt tokens, and no completion tokens. */
export const ofEmbeddings = (response: ChatSchema.EmbeddingResponse): Pipeline.Usage => ({
  prompt_tokens: response.usage.prompt_tokens,
  completion_tokens: 0
})
