#!/usr/bin/env node
/**
 * The `shepherd` command.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { VERSION } from "../internal/version.js"
import { demoCommand } from "./demo.js"
import { mockCommand } from "./mock.js"

const shepherd = Command.make("shepherd").pipe(
  Command.withDescription("Send many concurrent requests to OpenAI-compatible chat APIs"),
  Command.withSubcommands([mockCommand, demoCommand])
)

const cli = Command.run(shepherd, { name: "shepherd", version: VERSION })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain({ disableErrorReporting: false }))
