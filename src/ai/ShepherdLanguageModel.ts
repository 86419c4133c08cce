/**
 * Shepherd as an @effect/ai `LanguageModel`: programs written against `LanguageModel.generateText`,
 * `generateObject`, `streamText`, `Chat` and `ExecutionPlan` run over the `ChatClient` in the context,
 * so its limits, retries, budget, cache and router apply to them, against any OpenAI-compatible
 * `/chat/completions` server.
 *
 * ```ts
 * const program = LanguageModel.generateText({ prompt: "Where is order 42?" })
 * program.pipe(
 *   Effect.provide(ShepherdLanguageModel.layer({ model: "gpt-4.1-mini" })),
 *   Effect.provide(ChatClient.layerConfig())
 * )
 * ```
 *
 * - The prompt becomes chat messages (system; user text, images, audio and files; assistant text and
 *   tool calls; tool results), a `Toolkit` function tools with `tool_choice`.
 * - `generateObject` asks for `response_format: json_schema` (strict when the schema allows it, else
 *   `json_object` with the schema in a system message); the answer is recovered with `Json.parse`
 *   (fences, prose, repairs) before @effect/ai decodes it.
 * - The finish part's `metadata.shepherd` has the request id, attempts, status, latency, cost and, for
 *   JSON answers, how the JSON was recovered.
 * - Failures are `AiError`s whose `cause` is the `ChatError` (`ShepherdAiError.chatErrorOf`).
 *
 * @since 0.2.0
 */
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as AiModel from "@effect/ai/Model"
import type * as Response from "@effect/ai/Response"
import { addGenAIAnnotations } from "@effect/ai/Telemetry"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Span } from "effect/Tracer"
import * as ChatClient from "../ChatClient.js"
import type * as ChatSchema from "../ChatSchema.js"
import type * as Json from "../Json.js"
import * as Options from "./internal/options.js"
import { makeRequest } from "./internal/request.js"
import { makeResponse } from "./internal/response.js"
import { streamParts } from "./internal/stream.js"
import * as ShepherdAiError from "./ShepherdAiError.js"

/**
 * What Shepherd adds to a response's parts, under `metadata.shepherd`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ShepherdMetadata {
  /** The provider's `x-request-id` (whole answers only). */
  readonly requestId?: string | undefined
  /** Attempts made, the first included (whole answers only). */
  readonly attempts?: number | undefined
  /** The HTTP status of the answer (whole answers only). */
  readonly status?: number | undefined
  /** From sending the first attempt to the decoded answer (whole answers only). */
  readonly latencyMillis?: number | undefined
  /** What the call cost at `Pricing.defaultTable`, in micro-dollars; undefined for an unpriced model. */
  readonly costMicroUsd?: number | undefined
  /** How the JSON of a JSON answer was recovered (`strict`, `fenced`, `extracted`, `repaired`, `truncated`). */
  readonly recovery?: Json.Recovery | undefined
  /** The answer's text as the model wrote it, when its JSON was recovered. */
  readonly rawText?: string | undefined
  /** Set on a text part that is the model's refusal. */
  readonly refusal?: boolean | undefined
}

declare module "@effect/ai/Response" {
  export interface TextPartMetadata extends ProviderMetadata {
    readonly shepherd?: ShepherdMetadata | undefined
  }
  export interface FinishPartMetadata extends ProviderMetadata {
    readonly shepherd?: ShepherdMetadata | undefined
  }
}

/**
 * Request fields sent with every call of a model (`temperature`, `max_tokens`, `seed`, a provider's
 * own fields, ...). Overridden per call by {@link withConfigOverride}.
 *
 * @since 0.2.0
 * @category configuration
 */
export class Config extends Context.Tag("effect-shepherd/ai/ShepherdLanguageModel/Config")<Config, Config.Service>() {}

/**
 * @since 0.2.0
 * @category configuration
 */
export declare namespace Config {
  /**
   * Every chat-completions request field except those the prompt, the toolkit and the call decide
   * (`model`, `messages`, `response_format`, `tools`, `tool_choice`, `stream`, `stream_options`).
   *
   * @since 0.2.0
   * @category configuration
   */
  export interface Service extends Partial<Omit<Schema.Struct.Type<typeof ChatSchema.ChatCompletionRequestFields>, Options.Managed>> {
    readonly [key: string]: unknown
  }
}

/**
 * Options of {@link layer} and {@link make}.
 *
 * @since 0.2.0
 * @category options
 */
export interface LayerOptions {
  /** The model asked for (`model` of each request). */
  readonly model: string
  /** Request fields sent with every call. @default {} */
  readonly config?: Config.Service | undefined
}

/**
 * The `LanguageModel` service over the `ChatClient` in the context. Fails with a `ConfigError` naming
 * the option (`["model"]`, `["config", "temperature"]`) when an option is invalid.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: LayerOptions): Effect.Effect<LanguageModel.Service, ConfigError.ConfigError, ChatClient.ChatClient> =>
  Effect.gen(function* () {
    const { config, model } = yield* Options.languageModel(options)
    const client = yield* ChatClient.ChatClient
    const origin = (method: string) => ({ module: "ShepherdLanguageModel", method, url: `${client.options.baseUrl}/chat/completions` })
    const request = (providerOptions: LanguageModel.ProviderOptions) =>
      Effect.flatMap(Effect.serviceOption(Config), (override) =>
        makeRequest(model, override._tag === "Some" ? { ...config, ...override.value } : config, providerOptions))

    return yield* LanguageModel.make({
      generateText: (providerOptions) =>
        Effect.gen(function* () {
          const body = yield* request(providerOptions)
          annotateRequest(providerOptions.span, body)
          const result = yield* Effect.mapError(client.createWithMetadata(body), (error) => ShepherdAiError.fromChatError(error, origin("generateText")))
          const parts = yield* makeResponse(result, providerOptions.responseFormat.type === "json")
          annotateResponse(providerOptions.span, parts)
          return parts
        }),
      streamText: (providerOptions) =>
        Stream.unwrap(Effect.map(request(providerOptions), (body) => {
          annotateRequest(providerOptions.span, body)
          const chunks = client.stream({ ...body, stream_options: { include_usage: true } }).pipe(
            Stream.mapError((error) => ShepherdAiError.fromChatError(error, origin("streamText")))
          )
          return Stream.tap(streamParts(chunks), (part) => Effect.sync(() => annotateStreamPart(providerOptions.span, part)))
        }))
    })
  })

/**
 * {@link make} as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError, ChatClient.ChatClient> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))

/**
 * The model as an @effect/ai `Model` (provider `"shepherd"`), for `ExecutionPlan` steps and
 * `AiModel`-style provision. An invalid option is a defect here (`Model` layers cannot fail): check
 * options with {@link layer} first when they come from users.
 *
 * @since 0.2.0
 * @category models
 */
export const model = (
  name: string,
  config?: Config.Service
): AiModel.Model<"shepherd", LanguageModel.LanguageModel, ChatClient.ChatClient> =>
  AiModel.make("shepherd", Layer.orDie(layer({ model: name, config })))

/**
 * Runs an effect with other request fields for the calls it makes (they win over the layer's).
 *
 * @since 0.2.0
 * @category configuration
 */
export const withConfigOverride: {
  (config: Config.Service): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, config: Config.Service): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, overrides: Config.Service): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(Config), (current) =>
    Effect.provideService(self, Config, current._tag === "Some" ? { ...current.value, ...overrides } : overrides)))

// ---------------------------------------------------------------------------------------------
// Telemetry: the GenAI attributes @effect/ai's providers set on the call's span
// ---------------------------------------------------------------------------------------------

const annotateRequest = (span: Span, request: ChatSchema.ChatCompletionRequest): void =>
  addGenAIAnnotations(span, {
    system: "shepherd",
    operation: { name: "chat" },
    request: {
      model: request.model,
      temperature: request.temperature ?? undefined,
      topP: request.top_p ?? undefined,
      maxTokens: request.max_completion_tokens ?? request.max_tokens ?? undefined
    }
  })

const annotateResponse = (span: Span, parts: ReadonlyArray<Response.PartEncoded>): void => {
  for (const part of parts) annotateStreamPart(span, part as Response.StreamPartEncoded)
}

const annotateStreamPart = (span: Span, part: Response.StreamPartEncoded): void => {
  if (part.type === "response-metadata") addGenAIAnnotations(span, { response: { id: part.id, model: part.modelId } })
  if (part.type === "finish") {
    addGenAIAnnotations(span, {
      response: { finishReasons: [part.reason] },
      usage: { inputTokens: part.usage.inputTokens, outputTokens: part.usage.outputTokens }
    })
  }
}
