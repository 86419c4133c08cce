/**
 * `shepherd run --via batch-api`: the checked input submitted through the provider's Batch API
 * (`BatchApi.submit`), its state in `OUT.batches.json`, each outcome written to OUT with the same
 * line as a live run. A rerun continues: nothing is uploaded or created twice, batches still running
 * are polled, ids a batch left unfinished are submitted again. Ctrl-C stops polling and leaves the
 * batches running.
 * @internal
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Path from "node:path"
import type * as Batch from "../Batch.js"
import type * as ChatError from "../ChatError.js"
import * as BatchApi from "../BatchApi.js"
import * as Pricing from "../Pricing.js"
import * as BatchFile from "./batchFile.js"
import * as ConfigErrors from "./configError.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import * as OutputFile from "./outputFile.js"
import type { RunConfig } from "./runConfig.js"
import type { Plan } from "./runInput.js"
import * as RunStats from "./runStats.js"

/** The Batch API flags of `shepherd run`. */
export interface BatchApiFlags {
  readonly pollInterval: Duration.Duration
  readonly maxRequestsPerFile: number
  readonly maxBytesPerFile: number
}

/** The state file of OUT. */
export const statePath = (out: string): string => `${out}.batches.json`

/** Whether OUT's state file holds a batch that may exist (created, or its create begun); an unreadable one counts. */
export const hasBatches = (out: string): Effect.Effect<boolean> =>
  Effect.provide(BatchApi.state, BatchApi.layerFile(statePath(out))).pipe(
    Effect.map((state) => Object.values(state?.ranges ?? {}).some((r) => r.step === "creating" || r.step === "created" || r.step === "ended")),
    Effect.orElseSucceed(() => true)
  )

/** The run id of OUT: its name and a hash of its absolute path (the same OUT, the same id). */
export const runIdOf = (out: string): string => {
  const name = Path.basename(out).replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40)
  return `${name || "out"}-${createHash("sha256").update(Path.resolve(out)).digest("hex").slice(0, 8)}`
}

/** Option paths of `BatchApi` and the flags they come from. */
const batchFlags: ReadonlyMap<string, string> = new Map([
  ["baseUrl", "--base-url (or OPENAI_BASE_URL)"],
  ["maxRequestsPerFile", "--max-requests-per-file"],
  ["maxBytesPerFile", "--max-bytes-per-file"],
  ["pollInterval", "--poll-interval"],
  ["maxRetries", "--max-retries"]
])

/** The key, which the Batch API cannot do without. */
export const requireKey = (config: RunConfig): Effect.Effect<Redacted.Redacted<string>, CliError> =>
  config.client.apiKey === undefined
    ? Effect.fail(new CliError({ detail: `the Batch API needs an API key: set ${config.keyVariable}`, exitCode: ExitStatus.USAGE }))
    : Effect.succeed(config.client.apiKey)

/** Every valid request of the input, in order (ranges are keyed by content: the same input, the same ranges). */
const readRequests = (config: RunConfig, plan: Plan) =>
  BatchFile.readLines(config.input).pipe(
    Stream.filterMap((line) => {
      if (plan.checked.skip.has(line.number)) return Option.none()
      const parsed = BatchFile.parseInput(line.text)
      return parsed === undefined || Either.isLeft(parsed) ? Option.none() : Option.some(parsed.right)
    }),
    Stream.runCollect,
    Effect.map((chunk) => Array.from(chunk))
  )

/** What the same answer would have cost live. */
const liveCost = (outcome: Batch.BatchOutcome, prices: Pricing.PriceTable): number => {
  if (outcome._tag !== "Success") return 0
  const model = outcome.url === "/v1/embeddings" ? outcome.embeddings.model : outcome.completion.model
  const usage = { prompt_tokens: outcome.usage.promptTokens, completion_tokens: outcome.usage.completionTokens }
  return Option.getOrElse(Pricing.cost(model, usage, prices), () => 0)
}

/** Progress from the submission's events: lines (a redrawn line on a terminal). */
const progress = (config: RunConfig) => {
  const tty = process.stderr.isTTY === true
  const last = new Map<string, string>()
  const say = (text: string) => Effect.sync(() => { process.stderr.write(tty ? `\r\x1b[2K${text}\n` : `${text}\n`) })
  return (event: BatchApi.Event): Effect.Effect<void> => {
    // A batch that ended without completing, or a file not submitted, is reported even without progress.
    if (config.noProgress && !(event._tag === "Ended" && event.status !== "completed") && event._tag !== "NotSubmitted") return Effect.void
    switch (event._tag) {
      case "Uploaded":
        return say(`shepherd run: batch file ${event.range} ${event.reused ? "found uploaded" : "uploaded"} (${event.fileId})`)
      case "Created":
        return say(`shepherd run: batch ${event.batchId} ${event.reused ? "found" : "created"} for ${event.range}`)
      case "Progress": {
        const c = event.requestCounts
        const text = `batch ${event.batchId}: ${event.status} ${c === undefined ? "" : `${c.completed + c.failed}/${c.total}`}`
        if (tty) return Effect.sync(() => { process.stderr.write(`\r\x1b[2K${text}`) })
        if (last.get(event.batchId) === text) return Effect.void
        last.set(event.batchId, text)
        return say(`shepherd run: ${text}`)
      }
      case "Ended":
        return say(`shepherd run: batch ${event.batchId} ${event.status}` +
          (event.unfinished.length === 0 ? "" : `: ${event.unfinished.length} requests unfinished (a rerun submits them again)`))
      case "NotSubmitted":
        return say(`shepherd run: batch file ${event.range} (${event.requests} requests) not submitted: ${event.detail}`)
    }
  }
}

/** A stop of the submission, in words and exit status. */
const failure = (error: unknown): CliError =>
  ConfigError.isConfigError(error)
    ? new CliError({ detail: ConfigErrors.describe(error, batchFlags), exitCode: ExitStatus.USAGE })
    : new CliError({ detail: `${error instanceof Error ? error.message : String(error)}. Rerun the same command to continue.`, exitCode: ExitStatus.UNFINISHED })

/** SIGINT and SIGTERM, for the scope: the first one stops polling. */
const onSignal = (stop: Deferred.Deferred<void>) => {
  const handler = () => Effect.runFork(Deferred.succeed(stop, undefined))
  return Effect.acquireRelease(
    Effect.sync(() => {
      process.on("SIGINT", handler)
      process.on("SIGTERM", handler)
    }),
    () => Effect.sync(() => {
      process.off("SIGINT", handler)
      process.off("SIGTERM", handler)
    })
  )
}

/** The options of `submit` and `cancel` for this run. */
const submitOptions = (config: RunConfig, flags: BatchApiFlags, apiKey: Redacted.Redacted<string>): BatchApi.Options => ({
  apiKey,
  baseUrl: config.client.baseUrl,
  runId: runIdOf(config.out),
  maxRequestsPerFile: flags.maxRequestsPerFile,
  maxBytesPerFile: flags.maxBytesPerFile,
  initialPollInterval: Duration.min(Duration.seconds(5), flags.pollInterval),
  pollInterval: flags.pollInterval,
  ...(config.client.retry?.maxRetries === undefined ? {} : { maxRetries: config.client.retry.maxRetries }),
  prices: config.prices,
  onEvent: progress(config)
})

const provideStore = (config: RunConfig) => Effect.provide([BatchApi.layerFile(statePath(config.out)), FetchHttpClient.layer])

/** What one batch-api run shares between its phases and its summary. */
interface Shared {
  readonly config: RunConfig
  readonly plan: Plan
  readonly options: BatchApi.Options
  readonly stats: RunStats.RunStats
  liveMicro: number
}

/**
 * Submits (with `cancelWhen`: winding down when it completes), writes each outcome not yet final in
 * OUT, and counts; ids written final join `plan.previous.ids` (for a live phase after it). Requests
 * the budget refused get no line (a rerun sends them) and stop the run with the reason.
 */
const submitAndWrite = (s: Shared, cancelWhen: Effect.Effect<void> | undefined) =>
  Effect.gen(function* () {
    const { config, plan } = s
    const requests = yield* readRequests(config, plan)
    const writer = yield* OutputFile.open(config.out)
    const runId = runIdOf(config.out)
    const refused = (error: ChatError.ChatError) => {
      if (error._tag !== "BudgetExceededError") return
      s.stats.budgetRefused++
      s.stats.stoppedBy = "budget"
      s.stats.stopDetail = `${error.detail === undefined ? "the worst case of a batch file at the batch price is above what is left of --budget-usd" : error.detail}: its batch was not created`
    }
    yield* BatchApi.submit(requests, {
      ...s.options,
      ...(Option.isSome(config.budgetUsd) ? { maxUsd: config.budgetUsd.value } : {}),
      answered: (id) => plan.previous.ids.has(id),
      ...(cancelWhen === undefined ? {} : { cancelWhen })
    }).pipe(
      Stream.filter((o) => !plan.previous.ids.has(o.custom_id)),
      Stream.runForEachChunk((chunk) =>
        Effect.zipRight(
          OutputFile.writeOutcomes(writer, chunk, (o) => `batch_req_${runId}_${o.index.toString(36)}`, s.stats, refused),
          Effect.sync(() => {
            for (const o of chunk) {
              s.liveMicro += liveCost(o, config.prices)
              if (o._tag === "Failure" && o.attempts === 0) continue
              if (BatchFile.isFinal(BatchFile.outputLine(o, ""))) plan.previous.ids.add(o.custom_id, 0)
            }
          })
        )
      ),
      provideStore(config)
    )
  }).pipe(Effect.scoped)

/** The summary's Batch API lines: the cost live against batch, and what to do about batches left running. */
const batchLines = (config: RunConfig, stats: RunStats.RunStats, liveMicro: number, interrupted: boolean): string => {
  const lines = [`  at the Batch API price: ${Pricing.format(stats.costMicroUsd)} (live it would have cost ${Pricing.format(liveMicro)}); state in ${statePath(config.out)}`]
  if (interrupted) {
    lines.push(`  the batches keep running on the provider: rerun the same command to collect them, or \`shepherd batches cancel ${config.out}\` to cancel them`)
  }
  return lines.join("\n")
}

/** `--via auto --deadline`: when to give up on the batches, and the live run of what they left. */
export interface Deadline {
  readonly after: Duration.Duration
  /** The live run of `plan`, with what the batches spent (micro-dollars) taken from the budget. */
  readonly live: (plan: Plan, spentMicroUsd: number) => Effect.Effect<void, unknown, Scope.Scope>
}

/**
 * The submission to its end or a stop (signal). With a deadline, the submission winds down at it
 * (no new batch; the running ones cancelled, what they answered collected) and ends when they
 * have: only then may the rest go live, so that no request is both in a batch and sent live.
 * Whether the deadline was reached.
 */
const phases = (s: Shared, stop: Deferred.Deferred<void>, deadline: Deadline | undefined) => {
  const stopped = Effect.as(Deferred.await(stop), Exit.interrupt(FiberId.none))
  return Effect.gen(function* () {
    let late = false
    const cancelWhen = deadline === undefined ? undefined : Effect.sleep(deadline.after).pipe(
      Effect.zipRight(Effect.sync(() => { late = true })),
      Effect.zipRight(Console.error(`shepherd run: deadline reached: no new batch; cancelling the running ones, collecting what they answered, then sending the rest live`))
    )
    const exit = yield* Effect.raceFirst(Effect.exit(submitAndWrite(s, cancelWhen)), stopped)
    return { exit, late }
  })
}

/** The summary on stderr (and `--summary`). */
const report = (s: Shared, result: { readonly exit: Exit.Exit<void, unknown>; readonly late: boolean }) =>
  Effect.gen(function* () {
    const { config, stats } = s
    const interrupted = Exit.isInterrupted(result.exit)
    if (interrupted) stats.stoppedBy = "interrupted"
    const summary = RunStats.summary(stats, config.input, config.out, yield* Clock.currentTimeMillis, 0)
    yield* Console.error(`${RunStats.summaryText(summary)}\n${batchLines(config, stats, s.liveMicro, interrupted)}`)
    if (Option.isSome(config.summary)) {
      yield* OutputFile.writeReport(config.summary.value, JSON.stringify({ ...summary, via: "batch-api", liveCostUsd: Pricing.format(s.liveMicro) }, null, 2) + "\n").pipe(
        Effect.mapError((e) => new CliError({ detail: e.message }))
      )
    }
    return { ...result, summary }
  })

/** The whole batch-api run: submission, summary, exit status (with a deadline: then the live run of the rest). */
export const run = (config: RunConfig, flags: BatchApiFlags, plan: Plan, deadline?: Deadline): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    if (Option.isSome(config.shard)) return yield* new CliError({ detail: "--shard is for live runs: the Batch API takes the whole file", exitCode: ExitStatus.USAGE })
    if (Option.isSome(config.redis)) return yield* new CliError({ detail: "--redis is for live runs: the Batch API has no shared limits", exitCode: ExitStatus.USAGE })
    const apiKey = yield* requireKey(config)
    const stats = new RunStats.RunStats(yield* Clock.currentTimeMillis)
    stats.total = plan.checked.valid
    stats.alreadyDone = plan.checked.done
    stats.invalid = plan.checked.problems.length
    const s: Shared = { config, plan, options: submitOptions(config, flags, apiKey), stats, liveMicro: 0 }
    const stop = yield* Deferred.make<void>()
    yield* onSignal(stop)
    const finished = yield* Deferred.make<{ readonly exit: Exit.Exit<void, unknown>; readonly late: boolean; readonly summary: RunStats.Summary }, CliError>()
    // On a daemon fiber, summary included: the runtime interrupts this one on the first signal.
    yield* Effect.forkDaemon(Effect.flatMap(Effect.exit(Effect.flatMap(phases(s, stop, deadline), (result) => report(s, result))), (exit) => Deferred.done(finished, exit)))
    const { exit, late, summary } = yield* Deferred.await(finished).pipe(Effect.onInterrupt(() => Effect.ignore(Deferred.await(finished))))
    const interrupted = Exit.isInterrupted(exit)
    if (interrupted) return yield* Effect.interrupt
    if (Exit.isFailure(exit)) return yield* failure(Cause.squash(exit.cause))
    if (late && deadline !== undefined && summary.remaining > 0) {
      return yield* deadline.live({ previous: plan.previous, checked: { ...plan.checked, done: plan.checked.done + stats.finalWritten } }, stats.costMicroUsd)
    }
    if (summary.remaining > 0) return yield* new CliError({ detail: "", exitCode: ExitStatus.UNFINISHED })
  })
