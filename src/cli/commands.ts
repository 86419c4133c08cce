/**
 * Every `shepherd` command but `run` (which parses its own flags: src/cli/flags.ts), through
 * `@effect/cli`. Loaded only for those commands: `@effect/cli` alone takes about 0.4 s to load, which
 * `shepherd run` does not pay.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import { VERSION } from "../internal/version.js"
import { batchesCommand } from "./batches.js"
import { demoCommand } from "./demo.js"
import { CliError } from "./error.js"
import { jsonCommand } from "./json.js"
import { mergeCommand } from "./merge.js"
import { mockCommand } from "./mock.js"

/** Listed in `shepherd --help`; `main.ts` hands `shepherd run ...` to `run.ts` before this is loaded. */
const runCommand = Command.make("run").pipe(
  Command.withDescription("Send an OpenAI Batch API input file (JSONL); write one output line per custom_id; rerun to resume (see shepherd run --help)")
)

const shepherd = Command.make("shepherd").pipe(
  Command.withDescription("Send many concurrent requests to OpenAI-compatible chat APIs"),
  Command.withSubcommands([runCommand, batchesCommand, mergeCommand, mockCommand, demoCommand, jsonCommand])
)

const cli = Command.run(shepherd, { name: "shepherd", version: VERSION })

/** Runs `argv` (the whole process.argv); @effect/cli's own usage errors (already printed) become exit 2. */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<void, unknown, NodeContext.NodeContext> =>
  Effect.catchIf(cli(argv), ValidationError.isValidationError, () => Effect.fail(new CliError({ detail: "", exitCode: 2 })))
