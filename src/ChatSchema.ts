/**
 * Wire formats of the OpenAI-compatible chat-completions API, as `Schema`s.
 *
 * Requests and responses are plain JSON objects (the `Type` and the `Encoded` side of every schema
 * here are the same, except for an embedding vector sent as base64, which decodes to a
 * `Float32Array`), so a request can be sent with `JSON.stringify` and a response decoded without
 * transformation. Fields a provider adds that are not listed here are kept: requests carry an index
 * signature, and responses are decoded with `onExcessProperty: "preserve"`.
 *
 * Checked against `CreateChatCompletionRequest`, `CreateChatCompletionResponse` and `ErrorResponse` of
 * the OpenAI OpenAPI document by test/ChatSchema.test.ts.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as EmbeddingVectors from "./internal/embeddingVectors.js"

const Finite = Schema.Number.pipe(Schema.finite())
const nullable = <S extends Schema.Schema.Any>(schema: S) => Schema.optional(Schema.NullOr(schema))

/**
 * A JSON object whose shape the API does not constrain (function parameters, a JSON Schema).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

// ---------------------------------------------------------------------------------------------
// Request content parts
// ---------------------------------------------------------------------------------------------

/**
 * `{ type: "text", text }`
 *
 * @since 0.1.0
 * @category schemas
 */
export const TextContentPart = Schema.Struct({
  type: Schema.Literal("text"),
  text: Schema.String
})
/**
 * The type of the {@link TextContentPart} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type TextContentPart = typeof TextContentPart.Type

/**
 * `{ type: "image_url", image_url: { url, detail? } }`
 *
 * @since 0.1.0
 * @category schemas
 */
export const ImageContentPart = Schema.Struct({
  type: Schema.Literal("image_url"),
  image_url: Schema.Struct({
    url: Schema.String,
    detail: Schema.optional(Schema.Literal("auto", "low", "high"))
  })
})
/**
 * The type of the {@link ImageContentPart} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ImageContentPart = typeof ImageContentPart.Type

/**
 * `{ type: "input_audio", input_audio: { data, format } }` (base64 audio)
 *
 * @since 0.1.0
 * @category schemas
 */
export const AudioContentPart = Schema.Struct({
  type: Schema.Literal("input_audio"),
  input_audio: Schema.Struct({ data: Schema.String, format: Schema.Literal("wav", "mp3") })
})
/**
 * The type of the {@link AudioContentPart} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type AudioContentPart = typeof AudioContentPart.Type

/**
 * `{ type: "file", file: { file_id?, file_data?, filename? } }`
 *
 * @since 0.1.0
 * @category schemas
 */
export const FileContentPart = Schema.Struct({
  type: Schema.Literal("file"),
  file: Schema.Struct({
    file_id: Schema.optional(Schema.String),
    file_data: Schema.optional(Schema.String),
    filename: Schema.optional(Schema.String)
  })
})
/**
 * The type of the {@link FileContentPart} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type FileContentPart = typeof FileContentPart.Type

/**
 * `{ type: "refusal", refusal }`, in an assistant message sent back to the model.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RefusalContentPart = Schema.Struct({
  type: Schema.Literal("refusal"),
  refusal: Schema.String
})
/**
 * The type of the {@link RefusalContentPart} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type RefusalContentPart = typeof RefusalContentPart.Type

/**
 * A user message's content part.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UserContentPart = Schema.Union(TextContentPart, ImageContentPart, AudioContentPart, FileContentPart)
/**
 * The type of the {@link UserContentPart} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type UserContentPart = typeof UserContentPart.Type

const textContent = Schema.Union(Schema.String, Schema.NonEmptyArray(TextContentPart))

// ---------------------------------------------------------------------------------------------
// Tool calls
// ---------------------------------------------------------------------------------------------

/**
 * A function call the model asked for: `arguments` is the JSON text the model wrote.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FunctionToolCall = Schema.Struct({
  id: Schema.String,
  type: Schema.Literal("function"),
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
})
/**
 * The type of the {@link FunctionToolCall} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type FunctionToolCall = typeof FunctionToolCall.Type

/**
 * A call of a custom (free-form input) tool.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CustomToolCall = Schema.Struct({
  id: Schema.String,
  type: Schema.Literal("custom"),
  custom: Schema.Struct({ name: Schema.String, input: Schema.String })
})
/**
 * The type of the {@link CustomToolCall} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type CustomToolCall = typeof CustomToolCall.Type

/**
 * Any tool call.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolCall = Schema.Union(FunctionToolCall, CustomToolCall)
/**
 * The type of the {@link ToolCall} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ToolCall = typeof ToolCall.Type

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/**
 * `role: "system"`
 *
 * @since 0.1.0
 * @category schemas
 */
export const SystemMessage = Schema.Struct({
  role: Schema.Literal("system"),
  content: textContent,
  name: Schema.optional(Schema.String)
})
/**
 * The type of the {@link SystemMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type SystemMessage = typeof SystemMessage.Type

/**
 * `role: "developer"` (replaces system for reasoning models).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DeveloperMessage = Schema.Struct({
  role: Schema.Literal("developer"),
  content: textContent,
  name: Schema.optional(Schema.String)
})
/**
 * The type of the {@link DeveloperMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type DeveloperMessage = typeof DeveloperMessage.Type

/**
 * `role: "user"`: text, or parts (text, image, audio, file).
 *
 * @since 0.1.0
 * @category schemas
 */
export const UserMessage = Schema.Struct({
  role: Schema.Literal("user"),
  content: Schema.Union(Schema.String, Schema.NonEmptyArray(UserContentPart)),
  name: Schema.optional(Schema.String)
})
/**
 * The type of the {@link UserMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type UserMessage = typeof UserMessage.Type

/**
 * `role: "assistant"`: an earlier answer of the model, possibly with the tool calls it made.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AssistantMessage = Schema.Struct({
  role: Schema.Literal("assistant"),
  content: Schema.optional(
    Schema.NullOr(Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.Union(TextContentPart, RefusalContentPart))))
  ),
  refusal: nullable(Schema.String),
  name: Schema.optional(Schema.String),
  tool_calls: Schema.optional(Schema.Array(ToolCall))
})
/**
 * The type of the {@link AssistantMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type AssistantMessage = typeof AssistantMessage.Type

/**
 * `role: "tool"`: the result of a tool call, answering `tool_call_id`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolMessage = Schema.Struct({
  role: Schema.Literal("tool"),
  content: textContent,
  tool_call_id: Schema.String
})
/**
 * The type of the {@link ToolMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ToolMessage = typeof ToolMessage.Type

/**
 * Any message of a conversation.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatMessage = Schema.Union(SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage)
/**
 * The type of the {@link ChatMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatMessage = typeof ChatMessage.Type

// ---------------------------------------------------------------------------------------------
// Request options
// ---------------------------------------------------------------------------------------------

/**
 * `response_format`: free text, any JSON object, or JSON matching a JSON Schema.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ResponseFormat = Schema.Union(
  Schema.Struct({ type: Schema.Literal("text") }),
  Schema.Struct({ type: Schema.Literal("json_object") }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    json_schema: Schema.Struct({
      name: Schema.String,
      description: Schema.optional(Schema.String),
      schema: Schema.optional(JsonObject),
      strict: nullable(Schema.Boolean)
    })
  })
)
/**
 * The type of the {@link ResponseFormat} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * A function tool the model may call.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FunctionTool = Schema.Struct({
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String,
    description: Schema.optional(Schema.String),
    parameters: Schema.optional(JsonObject),
    strict: nullable(Schema.Boolean)
  })
})
/**
 * The type of the {@link FunctionTool} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type FunctionTool = typeof FunctionTool.Type

/**
 * `tool_choice`: a mode, or one named function.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolChoice = Schema.Union(
  Schema.Literal("none", "auto", "required"),
  Schema.Struct({ type: Schema.Literal("function"), function: Schema.Struct({ name: Schema.String }) })
)
/**
 * The type of the {@link ToolChoice} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ToolChoice = typeof ToolChoice.Type

/**
 * `stream_options` (used with `stream: true`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StreamOptions = Schema.Struct({
  include_usage: Schema.optional(Schema.Boolean)
})
/**
 * The type of the {@link StreamOptions} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type StreamOptions = typeof StreamOptions.Type

/**
 * The named fields of a chat-completion request; see {@link ChatCompletionRequest}.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatCompletionRequestFields = {
  model: Schema.String,
  // An array with at least one message (not a non-empty tuple type: a message list built in a
  // variable must be accepted as it is).
  messages: Schema.Array(ChatMessage).pipe(Schema.minItems(1)),
  temperature: nullable(Finite.pipe(Schema.between(0, 2))),
  top_p: nullable(Finite.pipe(Schema.between(0, 1))),
  max_tokens: nullable(Schema.Int),
  max_completion_tokens: nullable(Schema.Int),
  n: nullable(Schema.Int.pipe(Schema.between(1, 128))),
  stop: nullable(Schema.Union(Schema.String, Schema.Array(Schema.String).pipe(Schema.minItems(1), Schema.maxItems(4)))),
  seed: nullable(Schema.Int),
  user: Schema.optional(Schema.String),
  frequency_penalty: nullable(Finite.pipe(Schema.between(-2, 2))),
  presence_penalty: nullable(Finite.pipe(Schema.between(-2, 2))),
  logprobs: nullable(Schema.Boolean),
  top_logprobs: Schema.optional(Schema.Int.pipe(Schema.between(0, 20))),
  response_format: Schema.optional(ResponseFormat),
  tools: Schema.optional(Schema.Array(FunctionTool)),
  tool_choice: Schema.optional(ToolChoice),
  parallel_tool_calls: Schema.optional(Schema.Boolean),
  stream: nullable(Schema.Boolean),
  stream_options: nullable(StreamOptions)
}

/**
 * A chat-completion request. Every field the API documents that Shepherd uses is typed; any other
 * field (`reasoning_effort`, a provider's own `top_k`, ...) is accepted and sent untouched.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatCompletionRequest = Schema.Struct(
  ChatCompletionRequestFields,
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
/**
 * The type of the {@link ChatCompletionRequest} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

/**
 * Token counts of one call. Providers that omit the details objects are accepted.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CompletionUsage = Schema.Struct({
  prompt_tokens: Schema.Number,
  completion_tokens: Schema.Number,
  total_tokens: Schema.Number,
  prompt_tokens_details: nullable(
    Schema.Struct({
      cached_tokens: Schema.optional(Schema.Number),
      audio_tokens: Schema.optional(Schema.Number)
    })
  ),
  completion_tokens_details: nullable(
    Schema.Struct({
      reasoning_tokens: Schema.optional(Schema.Number),
      audio_tokens: Schema.optional(Schema.Number),
      accepted_prediction_tokens: Schema.optional(Schema.Number),
      rejected_prediction_tokens: Schema.optional(Schema.Number)
    })
  )
})
/**
 * The type of the {@link CompletionUsage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type CompletionUsage = typeof CompletionUsage.Type

const TopLogprob = Schema.Struct({
  token: Schema.String,
  logprob: Schema.Number,
  bytes: Schema.NullOr(Schema.Array(Schema.Number))
})

/**
 * One token's log probability, with its alternatives.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenLogprob = Schema.Struct({
  ...TopLogprob.fields,
  top_logprobs: Schema.Array(TopLogprob)
})
/**
 * The type of the {@link TokenLogprob} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenLogprob = typeof TokenLogprob.Type

/**
 * The assistant's answer in a choice. `content` is null when the model only called tools.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ResponseMessage = Schema.Struct({
  role: Schema.Literal("assistant"),
  content: Schema.NullOr(Schema.String),
  refusal: nullable(Schema.String),
  tool_calls: nullable(Schema.Array(ToolCall))
})
/**
 * The type of the {@link ResponseMessage} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ResponseMessage = typeof ResponseMessage.Type

/**
 * The log probabilities of a choice's content and refusal tokens.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChoiceLogprobs = Schema.Struct({
  content: Schema.NullOr(Schema.Array(TokenLogprob)),
  refusal: nullable(Schema.Array(TokenLogprob))
})
/**
 * The type of the {@link ChoiceLogprobs} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChoiceLogprobs = typeof ChoiceLogprobs.Type

/**
 * One of the `n` answers. `finish_reason` is a string: providers add their own reasons.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Choice = Schema.Struct({
  index: Schema.Number,
  message: ResponseMessage,
  finish_reason: Schema.NullOr(Schema.String),
  logprobs: nullable(ChoiceLogprobs)
})
/**
 * The type of the {@link Choice} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type Choice = typeof Choice.Type

/**
 * A chat completion (`object: "chat.completion"`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatCompletion = Schema.Struct({
  id: Schema.String,
  object: Schema.String,
  created: Schema.Number,
  model: Schema.String,
  choices: Schema.Array(Choice),
  usage: nullable(CompletionUsage),
  system_fingerprint: nullable(Schema.String),
  service_tier: nullable(Schema.String)
})
/**
 * The type of the {@link ChatCompletion} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatCompletion = typeof ChatCompletion.Type

// ---------------------------------------------------------------------------------------------
// Streaming (`stream: true`): `chat.completion.chunk` events
// ---------------------------------------------------------------------------------------------

/**
 * A piece of a tool call: the first piece of each `index` has its id and name, later ones add to `arguments`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolCallChunk = Schema.Struct({
  index: Schema.Number,
  id: Schema.optional(Schema.String),
  type: Schema.optional(Schema.Literal("function")),
  function: Schema.optional(Schema.Struct({ name: Schema.optional(Schema.String), arguments: Schema.optional(Schema.String) }))
})
/**
 * The type of the {@link ToolCallChunk} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ToolCallChunk = typeof ToolCallChunk.Type

/**
 * What a chunk adds to a choice's message.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChunkDelta = Schema.Struct({
  role: Schema.optional(Schema.Literal("developer", "system", "user", "assistant", "tool")),
  content: nullable(Schema.String),
  refusal: nullable(Schema.String),
  tool_calls: Schema.optional(Schema.Array(ToolCallChunk))
})
/**
 * The type of the {@link ChunkDelta} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChunkDelta = typeof ChunkDelta.Type

/**
 * One choice's part of a chunk.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChunkChoice = Schema.Struct({
  index: Schema.Number,
  delta: ChunkDelta,
  finish_reason: Schema.NullOr(Schema.String),
  logprobs: nullable(ChoiceLogprobs)
})
/**
 * The type of the {@link ChunkChoice} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChunkChoice = typeof ChunkChoice.Type

/**
 * A streamed chunk (`object: "chat.completion.chunk"`). With `stream_options.include_usage`, every
 * chunk has `usage: null` and a last chunk with no choices carries the usage.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatCompletionChunk = Schema.Struct({
  id: Schema.String,
  object: Schema.String,
  created: Schema.Number,
  model: Schema.String,
  choices: Schema.Array(ChunkChoice),
  usage: nullable(CompletionUsage),
  system_fingerprint: nullable(Schema.String),
  service_tier: nullable(Schema.String)
})
/**
 * The type of the {@link ChatCompletionChunk} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatCompletionChunk = typeof ChatCompletionChunk.Type

type MutableChoice = {
  index: number
  content: string | null
  refusal: string | null
  toolCalls: Map<number, { id: string; name: string; arguments: string }>
  finish_reason: string | null
}

/**
 * Folds the chunks of one streamed completion into the `ChatCompletion` it stands for: each choice's
 * content and refusal joined, tool-call pieces joined by `index` (arguments concatenated), the last
 * finish reason, the usage of the usage chunk.
 *
 * @since 0.1.0
 * @category utils
 */
export const accumulate = (chunks: Iterable<ChatCompletionChunk>): ChatCompletion => {
  let head: ChatCompletionChunk | undefined
  let usage: CompletionUsage | undefined
  const choices = new Map<number, MutableChoice>()
  for (const chunk of chunks) {
    head ??= chunk
    if (chunk.usage !== undefined && chunk.usage !== null) usage = chunk.usage
    for (const c of chunk.choices) {
      let choice = choices.get(c.index)
      if (choice === undefined) {
        choice = { index: c.index, content: null, refusal: null, toolCalls: new Map(), finish_reason: null }
        choices.set(c.index, choice)
      }
      if (typeof c.delta.content === "string") choice.content = (choice.content ?? "") + c.delta.content
      if (typeof c.delta.refusal === "string") choice.refusal = (choice.refusal ?? "") + c.delta.refusal
      for (const piece of c.delta.tool_calls ?? []) {
        const call = choice.toolCalls.get(piece.index) ?? { id: "", name: "", arguments: "" }
        if (piece.id !== undefined) call.id = piece.id
        if (piece.function?.name !== undefined) call.name += piece.function.name
        if (piece.function?.arguments !== undefined) call.arguments += piece.function.arguments
        choice.toolCalls.set(piece.index, call)
      }
      if (c.finish_reason !== null) choice.finish_reason = c.finish_reason
    }
  }
  return {
    id: head?.id ?? "",
    object: "chat.completion",
    created: head?.created ?? 0,
    model: head?.model ?? "",
    choices: [...choices.values()].sort((a, b) => a.index - b.index).map((c): Choice => ({
      index: c.index,
      message: {
        role: "assistant",
        content: c.content,
        ...(c.refusal === null ? {} : { refusal: c.refusal }),
        ...(c.toolCalls.size === 0 ? {} : {
          tool_calls: [...c.toolCalls.entries()].sort(([a], [b]) => a - b).map(([, t]) => ({
            id: t.id,
            type: "function" as const,
            function: { name: t.name, arguments: t.arguments }
          }))
        })
      },
      finish_reason: c.finish_reason
    })),
    ...(usage === undefined ? {} : { usage }),
    ...(head?.system_fingerprint === undefined ? {} : { system_fingerprint: head.system_fingerprint }),
    ...(head?.service_tier === undefined ? {} : { service_tier: head.service_tier })
  }
}

/**
 * The body of an error answer: `{ error: { message, type, param, code } }`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorResponse = Schema.Struct({
  error: Schema.Struct({
    message: Schema.String,
    type: Schema.optional(Schema.NullOr(Schema.String)),
    param: Schema.optional(Schema.NullOr(Schema.String)),
    code: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Number)))
  })
})
/**
 * The type of the {@link ErrorResponse} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorResponse = typeof ErrorResponse.Type

// ---------------------------------------------------------------------------------------------
// Embeddings and models (served by MockServer; used by the batch runner)
// ---------------------------------------------------------------------------------------------

/**
 * An embeddings request.
 *
 * @since 0.1.0
 * @category schemas
 */
export const EmbeddingRequest = Schema.Struct({
  model: Schema.String,
  input: Schema.Union(
    Schema.String,
    Schema.Array(Schema.String).pipe(Schema.minItems(1), Schema.maxItems(2048)),
    Schema.Array(Schema.Int).pipe(Schema.minItems(1), Schema.maxItems(2048)),
    Schema.Array(Schema.NonEmptyArray(Schema.Int)).pipe(Schema.minItems(1), Schema.maxItems(2048))
  ),
  encoding_format: Schema.optional(Schema.Literal("float", "base64")),
  dimensions: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))),
  user: Schema.optional(Schema.String)
})
/**
 * The type of the {@link EmbeddingRequest} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type EmbeddingRequest = typeof EmbeddingRequest.Type

/**
 * A `Float32Array`, as a value (no transformation).
 *
 * @since 0.2.0
 * @category schemas
 */
export const Float32ArrayFromSelf: Schema.Schema<Float32Array> = Schema.declare(
  (u: unknown): u is Float32Array => u instanceof Float32Array,
  {
    identifier: "Float32Array",
    description: "a Float32Array",
    arbitrary: () => (fc) => fc.float32Array({ maxLength: 64 }),
    pretty: () => (vector) => `Float32Array(${vector.length})`,
    equivalence: () => (a, b) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]))
  }
)

/**
 * The base64 of little-endian float32 bytes (an embedding sent with `encoding_format: "base64"`) as
 * a `Float32Array`. Decoding fails for text that is not padded standard base64 or whose byte count
 * is not a multiple of 4; encoding gives the same base64 back.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Float32ArrayFromBase64: Schema.Schema<Float32Array, string> = Schema.transformOrFail(Schema.String, Float32ArrayFromSelf, {
  strict: true,
  decode: (text, _, ast) =>
    Either.match(EmbeddingVectors.decodeBase64(text), {
      onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, text, reason)),
      onRight: ParseResult.succeed
    }),
  encode: (vector) => ParseResult.succeed(EmbeddingVectors.encodeBase64(vector))
})

/**
 * One embedding vector: a number array when the request asked for `encoding_format: "float"` (or
 * nothing), a `Float32Array` when it asked for `"base64"`. Both index and iterate the same way;
 * `Float32Array.from(vector)` gives one type for both. Encodes back to what was sent.
 *
 * @since 0.2.0
 * @category schemas
 */
export const EmbeddingVector: Schema.Schema<ReadonlyArray<number> | Float32Array, ReadonlyArray<number> | string> = Schema.Union(
  Schema.Array(Schema.Number),
  Float32ArrayFromBase64
)

/**
 * An embeddings response. A vector sent as base64 decodes to a `Float32Array` (see
 * {@link EmbeddingVector}); `Schema.encode` gives the wire JSON back.
 *
 * @since 0.1.0
 * @category schemas
 */
export const EmbeddingResponse = Schema.Struct({
  object: Schema.Literal("list"),
  model: Schema.String,
  data: Schema.Array(
    Schema.Struct({ object: Schema.Literal("embedding"), index: Schema.Number, embedding: EmbeddingVector })
  ),
  usage: Schema.Struct({ prompt_tokens: Schema.Number, total_tokens: Schema.Number })
})
/**
 * The type of the {@link EmbeddingResponse} schema.
 *
 * @since 0.1.0
 * @category models
 */
export type EmbeddingResponse = typeof EmbeddingResponse.Type
/**
 * An embeddings response as JSON on the wire: each vector a number array or a base64 string.
 *
 * @since 0.2.0
 * @category models
 */
export type EmbeddingResponseEncoded = typeof EmbeddingResponse.Encoded
