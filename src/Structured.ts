/**
 * Answers decoded with a `Schema`: ask for JSON, recover it leniently, decode it, and when it does not
 * decode, show the model its answer and the decode error and ask again.
 *
 * ```ts
 * const Order = Schema.Struct({ id: Schema.Number, status: Schema.Literal("shipped", "late") })
 * const { value } = yield* Structured.generate(Order, { model: "gpt-4.1-mini", messages })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as JSONSchema from "effect/JSONSchema"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ChatClient from "./ChatClient.js"
import type * as ChatError from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import * as Json from "./Json.js"
import * as JsonParser from "./JsonParser.js"
import * as ResponseCache from "./ResponseCache.js"

/**
 * How JSON is asked for.
 *
 * @since 0.1.0
 * @category options
 */
export type Mode =
  /** `response_format: json_schema` with the Schema's JSON Schema (strict decoding on the provider). */
  | "json_schema"
  /** `response_format: json_object`, with the JSON Schema in a system message. */
  | "json_object"
  /** No `response_format` (for providers without it): the JSON Schema in a system message. */
  | "instruction"

/**
 * Options of {@link generate} and {@link stream}. Every default is in {@link defaults}.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Re-asks after an answer that does not parse or decode. @default 2 */
  readonly maxRepairs: number
  /** @default "json_schema" */
  readonly mode: Mode
  /** Name of the schema sent in `json_schema` mode. @default "response" */
  readonly name: string
  /** Ask the provider to enforce the schema strictly (json_schema mode). @default false */
  readonly strict: boolean
}

/**
 * The default options: two re-asks, `json_schema` mode, schema name `response`, not strict.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults: Options = { maxRepairs: 2, mode: "json_schema", name: "response", strict: false }

/**
 * A decoded answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface StructuredResult<A> {
  readonly value: A
  /** Requests made (1 + re-asks). */
  readonly attempts: number
  /** Token usage summed over all of them. */
  readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number; readonly total_tokens: number }
  /** How the JSON of the accepted answer was recovered. */
  readonly recovery: Json.Recovery
}

/**
 * No answer decoded, after every re-ask.
 *
 * @since 0.1.0
 * @category errors
 */
export class StructuredOutputError extends Schema.TaggedError<StructuredOutputError>()("StructuredOutputError", {
  /** The last answer's text. */
  rawText: Schema.String,
  /** Why it was refused: the JSON error or the Schema's issues. */
  issues: Schema.String,
  attempts: Schema.Number,
  /** Tokens over all the requests made (they were billed though no answer was accepted). */
  usage: Schema.optional(Schema.Struct({ prompt_tokens: Schema.Number, completion_tokens: Schema.Number, total_tokens: Schema.Number }))
}) {
  override get message(): string {
    return `the model's answer did not match the schema after ${this.attempts} attempt(s): ${this.issues}. ` +
      `Raise maxRepairs, simplify the schema, or use a model that supports json_schema.`
  }
}

const instruction = (jsonSchema: unknown): ChatSchema.ChatMessage => ({
  role: "system",
  content: `Answer with one JSON value only, no prose and no code fence, matching this JSON Schema:\n${JSON.stringify(jsonSchema)}`
})

/**
 * Asks for an answer matching `schema` and decodes it. Parsing uses the `JsonParser` service when the
 * context has one (large answers off the event loop), else `Json.parse` inline. A truncated answer
 * (closing brackets had to be added) counts as a failure and is asked again. With a `ResponseCache`,
 * an answer is written to it only once accepted, and an entry whose answer is refused is removed.
 *
 * @since 0.1.0
 * @category generation
 */
export const generate = <A, I>(
  schema: Schema.Schema<A, I>,
  request: ChatSchema.ChatCompletionRequest,
  options: Partial<Options> = {}
): Effect.Effect<StructuredResult<A>, ChatError.ChatError | StructuredOutputError, ChatClient.ChatClient> =>
  Effect.gen(function* () {
    const o = { ...defaults, ...options }
    const chat = yield* ChatClient.ChatClient
    const parser = yield* Effect.serviceOption(JsonParser.JsonParser)
    const parse = Option.match(parser, { onNone: () => (text: string) => Json.parse(text), onSome: (p) => p.parse })
    const decode = Schema.decodeUnknownEither(schema)
    const asked = structuredRequest(schema, request, o)
    let messages: Array<ChatSchema.ChatMessage> = [...asked.messages]
    const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }

    for (let attempt = 1; ; attempt++) {
      // Held: an answer refused below is never written to a ResponseCache (nor replayed from it).
      const { accept, reject, value: completion } = yield* ResponseCache.hold(chat.create({ ...asked, messages }))
      usage.prompt_tokens += completion.usage?.prompt_tokens ?? 0
      usage.completion_tokens += completion.usage?.completion_tokens ?? 0
      usage.total_tokens += completion.usage?.total_tokens ?? 0
      const text = completion.choices[0]?.message.content ?? ""
      const parsed = yield* Effect.either(parse(text))
      let problem: string
      if (Either.isLeft(parsed)) problem = `it is not JSON (${parsed.left.reason}: ${parsed.left.detail})`
      else if (parsed.right.recovery === "truncated") problem = "the JSON is cut off before its end"
      else {
        const decoded = decode(parsed.right.value)
        if (Either.isRight(decoded)) {
          yield* accept
          return { value: decoded.right, attempts: attempt, usage, recovery: parsed.right.recovery }
        }
        problem = `it does not match the schema:\n${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
      }
      yield* reject
      if (attempt > o.maxRepairs) return yield* new StructuredOutputError({ rawText: text, issues: problem, attempts: attempt, usage: { ...usage } })
      messages = [
        ...messages,
        { role: "assistant", content: text },
        { role: "user", content: `Your answer cannot be used: ${problem}\nAnswer again with the corrected JSON only.` }
      ]
    }
  })

/**
 * What `stream` emits: partial values while the answer grows, then the decoded value.
 *
 * @since 0.1.0
 * @category models
 */
export type StreamEvent<A> =
  /**
   * The JSON of the answer so far, its open strings, arrays and objects closed (not checked against
   * the schema). An object key appears once its value has begun: a key cut mid-way is left out.
   */
  | { readonly _tag: "Partial"; readonly value: unknown; readonly text: string }
  /** The whole answer, decoded. */
  | { readonly _tag: "Done"; readonly value: A; readonly text: string; readonly usage: ChatSchema.CompletionUsage | undefined }

/** The request `generate` sends for `schema`: its `response_format`, or the schema in a system message. */
const structuredRequest = <A, I>(
  schema: Schema.Schema<A, I>,
  request: ChatSchema.ChatCompletionRequest,
  o: Options
): ChatSchema.ChatCompletionRequest => {
  // Without "$schema": providers' strict modes reject keywords they do not list.
  const { $schema: _, ...jsonSchema } = JSONSchema.make(schema) as unknown as Record<string, unknown>
  const format: Partial<ChatSchema.ChatCompletionRequest> =
    o.mode === "json_schema"
      ? { response_format: { type: "json_schema", json_schema: { name: o.name, schema: jsonSchema, strict: o.strict } } }
      : o.mode === "json_object"
      ? { response_format: { type: "json_object" } }
      : {}
  return { ...request, ...format, messages: o.mode === "json_schema" ? [...request.messages] : [instruction(jsonSchema), ...request.messages] }
}

/**
 * Streams an answer matching `schema`: a `Partial` each time the JSON of the text so far (closed
 * where it is cut) gives a new value, then `Done` with the decoded value. The prefix is parsed with
 * `Json.parsePrefixEither`, which closes open strings and brackets and leaves out a key whose value
 * has not begun; parsing stops being attempted for a prefix
 * longer than `maxPartialBytes` (the final value is still parsed). An answer that does not decode
 * fails with `StructuredOutputError` (streams are not re-asked; `generate` is).
 *
 * @since 0.1.0
 * @category generation
 */
export const stream = <A, I>(
  schema: Schema.Schema<A, I>,
  request: ChatSchema.ChatCompletionRequest,
  options: Partial<Options> & { readonly maxPartialBytes?: number } = {}
): Stream.Stream<StreamEvent<A>, ChatError.ChatError | StructuredOutputError, ChatClient.ChatClient> =>
  Stream.unwrap(Effect.map(ChatClient.ChatClient, (chat) => {
    const o = { ...defaults, ...options }
    const maxPartial = options.maxPartialBytes ?? 64 * 1024
    const decode = Schema.decodeUnknownEither(schema)
    let text = ""
    let last = ""
    let usage: ChatSchema.CompletionUsage | undefined
    const partials = chat.stream(structuredRequest(schema, request, o)).pipe(
      Stream.mapEffect((chunk) => {
        if (chunk.usage !== undefined && chunk.usage !== null) usage = chunk.usage
        const piece = chunk.choices.find((c) => c.index === 0)?.delta.content
        if (typeof piece !== "string" || piece === "" || text.length + piece.length > maxPartial) {
          if (typeof piece === "string") text += piece
          return Effect.succeed(Option.none<StreamEvent<A>>())
        }
        text += piece
        // A key still being written is left out until its value begins (never `"keyw": null`).
        const parsed = Json.parsePrefixEither(text)
        if (Either.isLeft(parsed)) return Effect.succeed(Option.none<StreamEvent<A>>())
        const shown = JSON.stringify(parsed.right.value)
        if (shown === last) return Effect.succeed(Option.none<StreamEvent<A>>())
        last = shown
        return Effect.succeed(Option.some<StreamEvent<A>>({ _tag: "Partial", value: parsed.right.value, text }))
      }),
      Stream.filterMap((event) => event)
    )
    const done = Stream.fromEffect(Effect.gen(function* () {
      const fail = (issues: string) => new StructuredOutputError({ rawText: text, issues, attempts: 1, ...(usage === undefined ? {} : { usage: { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens, total_tokens: usage.total_tokens } }) })
      const parsed = yield* Effect.either(Json.parse(text))
      if (Either.isLeft(parsed)) return yield* fail(`it is not JSON (${parsed.left.reason}: ${parsed.left.detail})`)
      if (parsed.right.recovery === "truncated") return yield* fail("it was cut off before its end (raise max_tokens)")
      const decoded = decode(parsed.right.value)
      if (Either.isLeft(decoded)) return yield* fail(`it does not match the schema:\n${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`)
      return { _tag: "Done", value: decoded.right, text, usage } satisfies StreamEvent<A>
    }))
    return Stream.concat(partials, done)
  }))
