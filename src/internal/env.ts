/**
 * The API's identity from the environment, read one way by the client and by the shared limits
 * (whose Redis keys are derived from it): a blank variable counts as unset.
 * @internal
 */
import * as Config from "effect/Config"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

/** The OpenAI API; the only base URL for which an API key is required. */
export const DEFAULT_BASE_URL = "https://api.openai.com/v1"

/** `OPENAI_API_KEY`, unless unset or blank. */
export const apiKey: Config.Config<Option.Option<Redacted.Redacted<string>>> = Config.option(Config.redacted("OPENAI_API_KEY")).pipe(
  Config.map(Option.filter((key) => Redacted.value(key).trim() !== ""))
)

/** `OPENAI_BASE_URL`, unless unset or blank. */
export const baseUrl: Config.Config<Option.Option<string>> = Config.option(Config.string("OPENAI_BASE_URL")).pipe(
  Config.map(Option.filter((url) => url.trim() !== ""))
)
