/**
 * Token counts for TPM limits and estimates, with gpt-tokenizer (o200k_base, the encoding of the
 * gpt-4o and gpt-4.1 families; other models' counts differ by a few percent, which the limiter
 * reconciles from the usage each response reports).
 * @internal
 */
import { createRequire } from "node:module"
import type * as ChatSchema from "../ChatSchema.js"

type Tokenizer = typeof import("gpt-tokenizer")
let tokenizer: Tokenizer | undefined

/**
 * Text encoded as plain text: a special token's spelling in user text (`<|endoftext|>`) counts as its
 * characters, as the API counts it, where gpt-tokenizer's default throws.
 */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() }

/**
 * Tokens in `text`. The tokenizer is loaded on first use, synchronously (its CommonJS build): its
 * tables add about 70 MB of resident memory, which a client without a TPM limit or a budget never
 * needs (bench/batch-memory).
 */
export const countTokens = (text: string): number => gptTokenizer().countTokens(text, PLAIN_TEXT)

/** gpt-tokenizer's default (o200k_base) encoding, loaded on first use as `countTokens` says. */
export const gptTokenizer = (): Tokenizer => {
  tokenizer ??= createRequire(import.meta.url)("gpt-tokenizer") as Tokenizer
  return tokenizer
}

let embeddingTokenizer: Tokenizer | undefined

/**
 * Tokens in `text` as OpenAI's embedding models count them (cl100k_base, the encoding of
 * text-embedding-3 and ada-002), or `false` once past `limit` (the count stops there). Loaded on first
 * use, as {@link countTokens}.
 */
export const embeddingTokensWithin = (text: string, limit: number): number | false => {
  embeddingTokenizer ??= createRequire(import.meta.url)("gpt-tokenizer/encoding/cl100k_base") as Tokenizer
  return embeddingTokenizer.isWithinTokenLimit(text, limit, PLAIN_TEXT)
}

/** The text of a message's content, parts joined. */
export const contentText = (content: ChatSchema.ChatMessage["content"]): string => {
  if (content === undefined || content === null) return ""
  if (typeof content === "string") return content
  let text = ""
  for (const part of content) {
    if (part.type === "text") text += part.text
    else if (part.type === "refusal") text += part.refusal
  }
  return text
}

/** Prompt tokens as OpenAI counts a chat: 3 to prime the reply, 4 per message (role and separators), the content, 1 per name. */
export const promptTokens = (messages: ReadonlyArray<ChatSchema.ChatMessage>): number => {
  let total = 3
  for (const message of messages) {
    total += 4 + countTokens(contentText(message.content))
    if ("name" in message && message.name !== undefined) total += 1
  }
  return total
}

/** Completion tokens reserved for a request that sets no max_tokens; reconciled from usage afterwards. */
export const DEFAULT_COMPLETION_RESERVE = 256

/** The completion tokens a request may use: its allowance for each of its `n` choices. */
export const completionAllowance = (request: ChatSchema.ChatCompletionRequest): number =>
  (request.max_completion_tokens ?? request.max_tokens ?? DEFAULT_COMPLETION_RESERVE) * (request.n ?? 1)

/** Tokens of an embeddings input: text is counted, token arrays are their length. */
export const embeddingInputTokens = (input: ChatSchema.EmbeddingRequest["input"]): number => {
  if (typeof input === "string") return countTokens(input)
  let total = 0
  for (const item of input) {
    if (typeof item === "string") total += countTokens(item)
    else if (typeof item === "number") total += 1
    else total += item.length
  }
  return total
}

