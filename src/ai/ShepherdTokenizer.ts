/**
 * The `Tokenizer` of @effect/ai with gpt-tokenizer, the tokenizer Shepherd counts TPM limits and budgets
 * with: `Tokenizer.tokenize(prompt)` gives the prompt's tokens as the model's chat template encodes
 * them, and `Tokenizer.truncate(prompt, n)` keeps the newest messages that fit in `n` tokens.
 *
 * The encoding is o200k_base (the gpt-4o, gpt-4.1, gpt-5 and o-series models), with the chat template
 * gpt-tokenizer knows for `model`, or gpt-4o's for a model it does not know (other families' counts
 * differ by a few percent). gpt-tokenizer's tables (about 70 MB) are loaded on the first call.
 *
 * ```ts
 * const tokens = yield* Tokenizer.Tokenizer.pipe(Effect.flatMap((t) => t.tokenize("How long is this?")))
 * // with Effect.provide(ShepherdTokenizer.layer({ model: "gpt-4.1-mini" }))
 * ```
 *
 * @since 0.2.0
 */
import * as AiError from "@effect/ai/AiError"
import type * as Prompt from "@effect/ai/Prompt"
import * as Tokenizer from "@effect/ai/Tokenizer"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Options from "./internal/options.js"
import { gptTokenizer } from "../internal/tokens.js"

type ChatMessage = { readonly role: "system" | "user" | "assistant"; readonly content: string }

/** The text of each part, as the model reads it: text and reasoning as written, calls and results as JSON. */
const chatOf = (prompt: Prompt.Prompt): Array<ChatMessage> => {
  const chat: Array<ChatMessage> = []
  for (const message of prompt.content) {
    const role = message.role === "tool" ? "assistant" : message.role
    if (message.role === "system") {
      chat.push({ role, content: message.content })
      continue
    }
    for (const part of message.content) {
      if (part.type === "text" || part.type === "reasoning") chat.push({ role, content: part.text })
      else if (part.type === "tool-call") chat.push({ role, content: `${part.name}(${JSON.stringify(part.params)})` })
      else if (part.type === "tool-result") chat.push({ role, content: JSON.stringify(part.result) ?? "null" })
    }
  }
  return chat
}

/** The model's chat template when gpt-tokenizer knows it, else gpt-4o's. */
const encodeChat = (chat: Array<ChatMessage>, model: string): Array<number> => {
  const encoding = gptTokenizer()
  type Model = Parameters<typeof encoding.encodeChat>[1]
  try {
    return encoding.encodeChat(chat, model as Model)
  } catch {
    return encoding.encodeChat(chat, "gpt-4o")
  }
}

/**
 * The tokenizer for `model`. Fails with a `ConfigError` at `["model"]` for a blank model name.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: { readonly model: string }): Effect.Effect<Tokenizer.Service, ConfigError.ConfigError> =>
  Effect.map(Options.tokenizer(options), (model) =>
    Tokenizer.make({
      tokenize: (prompt) =>
        Effect.try({
          try: () => encodeChat(chatOf(prompt), model),
          catch: (cause) => new AiError.UnknownError({ module: "ShepherdTokenizer", method: "tokenize", description: "gpt-tokenizer could not encode the prompt", cause })
        })
    }))

/**
 * {@link make} as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: { readonly model: string }): Layer.Layer<Tokenizer.Tokenizer, ConfigError.ConfigError> =>
  Layer.effect(Tokenizer.Tokenizer, make(options))
