/**
 * Checks of the options of `effect-shepherd/ai`'s layers, when a layer is built: a `ConfigError`
 * whose path names the option (`["model"]`, `["config", "temperature"]`).
 * @internal
 */
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"
import * as ChatSchema from "../../ChatSchema.js"
import * as Validate from "../../internal/validate.js"

/** Request fields a `config` may not set: they come from the prompt, the toolkit and the call. */
export type Managed = "model" | "messages" | "response_format" | "tools" | "tool_choice" | "stream" | "stream_options"

const MANAGED: ReadonlyArray<Managed> = ["model", "messages", "response_format", "tools", "tool_choice", "stream", "stream_options"]

const ConfigFields = Schema.Struct(Struct.omit(ChatSchema.ChatCompletionRequestFields, ...MANAGED))
const decodeConfig = Schema.decodeUnknownEither(ConfigFields, { errors: "first" })

/** The request fields of a `config`: an object, without the fields the call decides, each valid for the API. */
export const requestConfig = (path: Validate.Path, config: unknown): Either.Either<Readonly<Record<string, unknown>>, ConfigError.ConfigError> => {
  if (config === undefined) return Either.right({})
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    return Either.left(Validate.invalid(path, "must be an object of request fields"))
  }
  const managed = MANAGED.find((key) => key in config)
  if (managed !== undefined) {
    return Either.left(Validate.invalid([...path, managed], "is decided by the prompt, the toolkit or the call; leave it out of config"))
  }
  return Either.match(decodeConfig(config), {
    onLeft: (error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const at = [...path, ...(issue?.path ?? []).map(String)]
      return Either.left(Validate.invalid(at, `is not valid for the chat-completions API: ${issue?.message ?? error.message}`))
    },
    onRight: () => Either.right(config as Readonly<Record<string, unknown>>)
  })
}

/** The checked options of `ShepherdLanguageModel.layer`. */
export const languageModel = (options: { readonly model: unknown; readonly config?: unknown }) =>
  Effect.gen(function* () {
    const model = yield* Validate.nonEmptyString(["model"], options.model)
    const config = yield* requestConfig(["config"], options.config)
    return { model, config }
  })

/** The checked options of `ShepherdTokenizer.layer`. */
export const tokenizer = (options: { readonly model: unknown }): Either.Either<string, ConfigError.ConfigError> =>
  Validate.nonEmptyString(["model"], options.model)
