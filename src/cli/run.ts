/**
 * `shepherd run IN.jsonl --out OUT.jsonl`: an OpenAI Batch API input file through the client, one
 * output line per `custom_id`, appended as each completes; rerun to resume.
 *
 * Order of work: read the configuration (flags and environment, `runConfig`); build the client
 * (`runLayers`), so that a configuration error stops the run before anything is read; check every
 * input line and read OUT for the ids already answered (`runInput`; nothing is sent while a line is
 * bad, unless --skip-invalid); send the rest with progress on stderr and write the summary
 * (`runSupervisor`); exit as the run ended (`runOutcome`). Lines are written whole, each with one
 * write call, so OUT never ends mid-line.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import * as Flags from "./flags.js"
import * as RunConfig from "./runConfig.js"
import { flags, helpText, input, type RunOptions, USAGE } from "./runFlags.js"
import * as RunInput from "./runInput.js"
import * as RunLayers from "./runLayers.js"
import * as RunBatchApi from "./runBatchApi.js"
import * as RunOutcome from "./runOutcome.js"
import * as RunSupervisor from "./runSupervisor.js"


const handler = (o: RunOptions) =>
  Effect.gen(function* () {
    const config = yield* RunConfig.read(o)
    const via = Option.getOrElse(o.via, () => "live" as const)
    if (Option.isSome(o.deadline) && via !== "auto") return yield* new CliError({ detail: "--deadline goes with --via auto", exitCode: ExitStatus.USAGE })
    if (via === "batch-api") return yield* RunBatchApi.run(config, o, yield* RunInput.plan(config))
    const client = yield* RunLayers.build(config)
    const plan = yield* RunInput.plan(config)
    // --via auto: the Batch API from --auto-threshold requests left to send, or while OUT has batches
    // (a rerun collects them rather than send their requests live too). After a deadline, the live
    // run gets what the batches left of --budget-usd.
    const live = (plan: RunInput.Plan, spentMicroUsd = 0) =>
      Effect.gen(function* () {
        const left = Option.map(config.budgetUsd, (usd) => Math.max(1e-6, usd - spentMicroUsd / 1e6))
        const built = spentMicroUsd > 0 && Option.isSome(left) ? yield* RunLayers.build({ ...config, budgetUsd: left }) : client
        return yield* Effect.flatMap(RunSupervisor.run(config, built, plan), (outcome) => RunOutcome.exit(config, outcome))
      })
    if (via === "auto" && (plan.checked.valid - plan.checked.done >= o.autoThreshold || (yield* RunBatchApi.hasBatches(config.out)))) {
      return yield* RunBatchApi.run(config, o, plan, Option.getOrUndefined(Option.map(o.deadline, (after) => ({ after, live }))))
    }
    return yield* live(plan)
  }).pipe(Effect.scoped)

/** `shepherd run ARGS`: parses them from the flag table (help, or one line and exit 2), then runs. */
export const main = (args: ReadonlyArray<string>) =>
  Effect.suspend(() => {
    const request = Flags.parse(flags, input, args, USAGE)
    if (Either.isLeft(request)) return new CliError({ detail: request.left, exitCode: ExitStatus.USAGE })
    if (request.right._tag === "Help") {
      return Effect.sync(() => {
        process.stdout.write(helpText({ bold: Flags.styled(process.stdout), width: process.stdout.columns }))
      })
    }
    return handler({ ...request.right.flags, input: request.right.input })
  })
