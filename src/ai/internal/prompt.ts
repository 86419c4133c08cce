/**
 * The `Prompt` of @effect/ai as chat-completions messages: system, user (text, images, audio, files),
 * assistant (text and tool calls) and tool results. What the chat-completions API cannot carry fails
 * with `MalformedInput` naming it, instead of being dropped silently.
 * @internal
 */
import * as AiError from "@effect/ai/AiError"
import type * as Prompt from "@effect/ai/Prompt"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import type * as ChatSchema from "../../ChatSchema.js"

const MODULE = "ShepherdLanguageModel"

/** A `MalformedInput` of the prompt mapping. */
export const malformedInput = (description: string): AiError.MalformedInput =>
  new AiError.MalformedInput({ module: MODULE, method: "prepareMessages", description })

/** An OpenAI file id (`file-...`) rather than base64 data. */
const isFileId = (data: string): boolean => /^file-[A-Za-z0-9_-]+$/.test(data)

/** A file's data as a URL the API accepts: the URL itself, or a `data:` URL of its bytes. */
const dataUrl = (data: string | Uint8Array | URL, mediaType: string): string =>
  data instanceof URL
    ? data.toString()
    : data instanceof Uint8Array
    ? `data:${mediaType};base64,${Encoding.encodeBase64(data)}`
    : /^(https?:|data:)/.test(data)
    ? data
    : `data:${mediaType};base64,${data}`

/** Base64 of a file's bytes (for `input_audio`), or why there is none (a URL). */
const base64Of = (data: string | Uint8Array | URL): Either.Either<string, string> =>
  data instanceof URL
    ? Either.left(data.toString())
    : data instanceof Uint8Array
    ? Either.right(Encoding.encodeBase64(data))
    : data.startsWith("data:")
    ? Either.right(data.slice(data.indexOf(",") + 1))
    : /^https?:/.test(data)
    ? Either.left(data)
    : Either.right(data)

const audioFormats: Readonly<Record<string, "wav" | "mp3">> = {
  "audio/wav": "wav",
  "audio/x-wav": "wav",
  "audio/wave": "wav",
  "audio/mpeg": "mp3",
  "audio/mp3": "mp3"
}

/** A user message's file part: an image, audio (wav, mp3) or any other file (by data or file id). */
export const filePart = (part: Prompt.FilePart): Either.Either<ChatSchema.UserContentPart, AiError.MalformedInput> => {
  const { data, mediaType } = part
  if (mediaType.startsWith("image/")) {
    return Either.right({ type: "image_url", image_url: { url: dataUrl(data, mediaType === "image/*" ? "image/jpeg" : mediaType) } })
  }
  if (mediaType.startsWith("audio/")) {
    const format = audioFormats[mediaType]
    if (format === undefined) return Either.left(malformedInput(`audio of type ${mediaType} cannot be sent to chat completions: only wav and mp3 can`))
    return Either.map(
      Either.mapLeft(base64Of(data), (url) => malformedInput(`audio must be sent as data, not as a URL (${url}): fetch it first`)),
      (base64): ChatSchema.UserContentPart => ({ type: "input_audio", input_audio: { data: base64, format } })
    )
  }
  if (typeof data === "string" && isFileId(data)) return Either.right({ type: "file", file: { file_id: data } })
  if (data instanceof URL || /^https?:/.test(typeof data === "string" ? data : "")) {
    return Either.left(malformedInput(`a ${mediaType} file must be sent as data or a file id, not as a URL (${String(data)}): chat completions does not fetch files`))
  }
  return Either.right({
    type: "file",
    file: { file_data: dataUrl(data, mediaType), ...(part.fileName === undefined ? {} : { filename: part.fileName }) }
  })
}

const userMessage = (message: Prompt.UserMessage): Either.Either<ChatSchema.UserMessage, AiError.MalformedInput> => {
  const [first, ...rest] = message.content
  if (first === undefined) return Either.right({ role: "user", content: "" })
  if (first.type === "text" && rest.length === 0) return Either.right({ role: "user", content: first.text })
  const parts: Array<ChatSchema.UserContentPart> = []
  for (const part of message.content) {
    if (part.type === "text") {
      parts.push({ type: "text", text: part.text })
      continue
    }
    const mapped = filePart(part)
    if (Either.isLeft(mapped)) return Either.left(mapped.left)
    parts.push(mapped.right)
  }
  return Either.right({ role: "user", content: parts as [ChatSchema.UserContentPart, ...Array<ChatSchema.UserContentPart>] })
}

/**
 * An assistant message: its text parts joined, its tool calls with their ids and arguments as JSON.
 * Reasoning, files and provider-executed tool results have no place in a chat-completions assistant
 * message and are left out.
 */
const assistantMessage = (message: Prompt.AssistantMessage): ChatSchema.AssistantMessage => {
  let text = ""
  const calls: Array<ChatSchema.FunctionToolCall> = []
  for (const part of message.content) {
    if (part.type === "text") text += part.text
    else if (part.type === "tool-call" && !part.providerExecuted) {
      calls.push({ id: part.id, type: "function", function: { name: part.name, arguments: JSON.stringify(part.params ?? {}) } })
    }
  }
  return {
    role: "assistant",
    content: text === "" && calls.length > 0 ? null : text,
    ...(calls.length === 0 ? {} : { tool_calls: calls })
  }
}

/** The result of a tool call as the tool message's text: a string as it is, anything else as JSON. */
const resultText = (result: unknown): string => typeof result === "string" ? result : JSON.stringify(result) ?? "null"

/** The prompt's messages in the chat-completions shape; `MalformedInput` for a part it cannot carry. */
export const toMessages = (prompt: Prompt.Prompt): Either.Either<Array<ChatSchema.ChatMessage>, AiError.MalformedInput> => {
  const messages: Array<ChatSchema.ChatMessage> = []
  for (const message of prompt.content) {
    switch (message.role) {
      case "system":
        messages.push({ role: "system", content: message.content })
        break
      case "user": {
        const mapped = userMessage(message)
        if (Either.isLeft(mapped)) return Either.left(mapped.left)
        messages.push(mapped.right)
        break
      }
      case "assistant":
        messages.push(assistantMessage(message))
        break
      case "tool":
        for (const part of message.content) messages.push({ role: "tool", tool_call_id: part.id, content: resultText(part.result) })
        break
    }
  }
  if (messages.length === 0) return Either.left(malformedInput("the prompt has no messages: chat completions needs at least one"))
  return Either.right(messages)
}
