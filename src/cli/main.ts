#!/usr/bin/env node
/**
 * The `shepherd` command.
 * @internal
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { CliError } from "./error.js"

/** Exit codes: 0 done, 1 failed or stopped early, 2 bad usage or bad input (nothing done), 130 interrupted. */
let exitCode = 0

// `shepherd run` parses its own flags (src/cli/flags.ts): its help and its errors in one voice. Each
// side is loaded only when used: every process start pays for what it imports (the test suite starts
// a few hundred).
const program: Effect.Effect<void, unknown, NodeContext.NodeContext> = process.argv[2] === "run"
  ? Effect.flatMap(Effect.promise(() => import("./run.js")), (Run) => Run.main(process.argv.slice(3)))
  : Effect.flatMap(Effect.promise(() => import("./commands.js")), (Commands) => Commands.main(process.argv))

program.pipe(
  Effect.catchAll((error) => {
    exitCode = error instanceof CliError && error.exitCode !== undefined ? error.exitCode : 1
    // A CliError without words only sets the status: what happened was already printed (the summary).
    if (error instanceof CliError && error.detail === "") return Effect.void
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
