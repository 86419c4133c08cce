#!/usr/bin/env node
/**
 * The `shepherd` command.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { VERSION } from "../internal/version.js"
import { demoCommand } from "./demo.js"
import { CliError } from "./error.js"
import { jsonCommand } from "./json.js"
import { mergeCommand } from "./merge.js"
import { mockCommand } from "./mock.js"
import { runCommand } from "./run.js"

const shepherd = Command.make("shepherd").pipe(
  Command.withDescription("Send many concurrent requests to OpenAI-compatible chat APIs"),
  Command.withSubcommands([runCommand, mergeCommand, mockCommand, demoCommand, jsonCommand])
)

const cli = Command.run(shepherd, { name: "shepherd", version: VERSION })

/** Exit codes: 0 done, 1 failed or stopped early, 2 bad usage or bad input (nothing done), 130 interrupted. */
let exitCode = 0

cli(process.argv).pipe(
  Effect.catchAll((error) => {
    if (ValidationError.isValidationError(error)) {
      exitCode = 2
      return Effect.void
    }
    exitCode = error instanceof CliError && error.exitCode !== undefined ? error.exitCode : 1
    return Console.error(`shepherd: ${error instanceof Error ? error.message : String(error)}`)
  }),
  // Warnings (e.g. shared limits falling back to local ones) go to stderr: stdout is for results.
  Effect.provide(Layer.merge(NodeContext.layer, Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: false })))),
  NodeRuntime.runMain({
    disableErrorReporting: false,
    teardown: (exit, onExit) =>
      onExit(Exit.isSuccess(exit) ? exitCode : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  })
)
