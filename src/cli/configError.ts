/**
 * A `ConfigError` from a layer the command line built, as the one-line usage error (exit 2, nothing
 * sent) that names the flag or variable the user wrote instead of the option path.
 * @internal
 */
import * as ConfigError from "effect/ConfigError"
import { CliError } from "./error.js"

/** Option paths (joined with ".") of `shepherd run` and the flag or variable each comes from. */
export const runFlags: ReadonlyMap<string, string> = new Map([
  ["baseUrl", "--base-url (or OPENAI_BASE_URL)"],
  ["timeout", "--timeout"],
  ["limits.rpm", "--rpm"],
  ["limits.tpm", "--tpm"],
  ["retry.maxRetries", "--max-retries"],
  ["maxUsd", "--budget-usd"],
  ["url", "--redis"],
  ["namespace", "--namespace"],
  ["workers", "--shard"]
])

/** The error's message, the option path replaced by the flag when there is one. */
export const describe = (error: ConfigError.ConfigError, flags: ReadonlyMap<string, string>): string => {
  switch (error._op) {
    case "InvalidData":
    case "MissingData":
    case "SourceUnavailable":
    case "Unsupported": {
      const path = error.path.join(".")
      const flag = flags.get(path)
      if (flag === undefined) return error.message
      // Validate writes "<path> must be ...": the flag takes the path's place.
      return error.message.startsWith(`${path} `) ? `${flag} ${error.message.slice(path.length + 1)}` : `${flag}: ${error.message}`
    }
    case "And":
    case "Or":
      return `${describe(error.left, flags)}; ${describe(error.right, flags)}`
  }
}

/** `error` as a usage error when it is a `ConfigError`; anything else unchanged. */
export const toCliError = (flags: ReadonlyMap<string, string>) => <E>(error: E): E | CliError =>
  ConfigError.isConfigError(error) ? new CliError({ detail: describe(error, flags), exitCode: 2 }) : error
