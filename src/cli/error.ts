import * as Schema from "effect/Schema"

/**
 * A command-line mistake or stop the user can act on; printed as one line. Exit code 1 unless
 * `exitCode` says otherwise (2: bad input, nothing was done). @internal
 */
export class CliError extends Schema.TaggedError<CliError>()("CliError", {
  detail: Schema.String,
  exitCode: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return this.detail
  }
}
