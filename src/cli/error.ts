import * as Schema from "effect/Schema"

/** A command-line mistake the user can fix; printed as one line, exit code 1. @internal */
export class CliError extends Schema.TaggedError<CliError>()("CliError", { detail: Schema.String }) {
  override get message(): string {
    return this.detail
  }
}
