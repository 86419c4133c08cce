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
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Path from "node:path"
import type * as Batch from "../Batch.js"
import * as BatchApi from "../BatchApi.js"
import * as Tokens from "../internal/tokens.js"
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

/** The most the requests not yet answered can cost at the batch price; none when a model has no price. */
export const worstCase = (requests: ReadonlyArray<Batch.BatchRequest>, prices: Pricing.PriceTable): Option.Option<number> => {
  let total = 0
  for (const request of requests) {
    const body = request.body as { model: string; messages?: ReadonlyArray<never>; input?: never }
    const chat = body.messages !== undefined
    const prompt = chat ? Tokens.promptTokens(body.messages!) : Tokens.embeddingInputTokens(body.input!)
    const allowance = chat ? Tokens.completionAllowance(request.body as never) : 0
    const worst = Pricing.batchWorstCase(body.model, prompt, allowance, prices)
    if (Option.isNone(worst)) return Option.none()
    total += worst.value
  }
  return Option.some(total)
}

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
    // A batch that ended without completing is reported even without progress.
    if (config.noProgress && !(event._tag === "Ended" && event.status !== "completed")) return Effect.void
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

/** Submits, writes each outcome, and counts; ends when every range ended or a stop was asked. */
const submitAndWrite = (config: RunConfig, flags: BatchApiFlags, plan: Plan, apiKey: Redacted.Redacted<string>, stats: RunStats.RunStats, live: { micro: number }) =>
  Effect.gen(function* () {
    const requests = yield* readRequests(config, plan)
    const pending = requests.filter((r) => !plan.previous.ids.has(r.custom_id))
    if (Option.isSome(config.budgetUsd)) {
      const limit = Math.round(config.budgetUsd.value * 1e6)
      const worst = worstCase(pending, config.prices)
      if (Option.isNone(worst) || worst.value > limit) {
        stats.stoppedBy = "budget"
        stats.stopDetail = Option.isNone(worst)
          ? "a model has no known price, so the worst case of the batch files cannot be held within --budget-usd"
          : `the worst case of the batch files at the batch price (${Pricing.format(worst.value)}) is above the budget`
        return
      }
    }
    const writer = yield* OutputFile.open(config.out)
    const runId = runIdOf(config.out)
    const outcomes = BatchApi.submit(requests, {
      apiKey,
      baseUrl: config.client.baseUrl,
      runId,
      maxRequestsPerFile: flags.maxRequestsPerFile,
      maxBytesPerFile: flags.maxBytesPerFile,
      initialPollInterval: Duration.min(Duration.seconds(5), flags.pollInterval),
      pollInterval: flags.pollInterval,
      ...(config.client.retry?.maxRetries === undefined ? {} : { maxRetries: config.client.retry.maxRetries }),
      prices: config.prices,
      onEvent: progress(config)
    })
    yield* outcomes.pipe(
      Stream.filter((o) => !plan.previous.ids.has(o.custom_id)),
      Stream.tap((o) => Effect.sync(() => { live.micro += liveCost(o, config.prices) })),
      Stream.runForEachChunk((chunk) => OutputFile.writeOutcomes(writer, chunk, (o) => `batch_req_${runId}_${o.index.toString(36)}`, stats, () => {})),
      Effect.provide([BatchApi.layerFile(statePath(config.out)), FetchHttpClient.layer])
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

/** The whole batch-api run: submission, summary, exit status. */
export const run = (config: RunConfig, flags: BatchApiFlags, plan: Plan): Effect.Effect<void, CliError, Scope.Scope> =>
  Effect.gen(function* () {
    if (Option.isSome(config.shard)) return yield* new CliError({ detail: "--shard is for live runs: the Batch API takes the whole file", exitCode: ExitStatus.USAGE })
    if (Option.isSome(config.redis)) return yield* new CliError({ detail: "--redis is for live runs: the Batch API has no shared limits", exitCode: ExitStatus.USAGE })
    const apiKey = yield* requireKey(config)
    const stats = new RunStats.RunStats(yield* Clock.currentTimeMillis)
    stats.total = plan.checked.valid
    stats.alreadyDone = plan.checked.done
    stats.invalid = plan.checked.problems.length
    const live = { micro: 0 }
    const stop = yield* Deferred.make<void>()
    yield* onSignal(stop)
    const finished = yield* Deferred.make<Exit.Exit<void, unknown>>()
    yield* Effect.forkDaemon(
      Effect.raceFirst(Effect.exit(submitAndWrite(config, flags, plan, apiKey, stats, live)), Effect.as(Deferred.await(stop), Exit.interrupt(undefined as never))).pipe(
        Effect.flatMap((exit) => Deferred.succeed(finished, exit))
      )
    )
    // The runtime interrupts this fiber on the first signal: it still waits for the summary.
    const exit = yield* Deferred.await(finished).pipe(Effect.onInterrupt(() => Effect.ignore(Deferred.await(finished))))
    const interrupted = Exit.isInterrupted(exit)
    if (interrupted) stats.stoppedBy = "interrupted"
    const now = yield* Clock.currentTimeMillis
    const summary = RunStats.summary(stats, config.input, config.out, now, 0)
    yield* Console.error(`${RunStats.summaryText(summary)}\n${batchLines(config, stats, live.micro, interrupted)}`)
    if (Option.isSome(config.summary)) {
      yield* OutputFile.writeReport(config.summary.value, JSON.stringify({ ...summary, via: "batch-api", liveCostUsd: Pricing.format(live.micro) }, null, 2) + "\n").pipe(
        Effect.mapError((e) => new CliError({ detail: e.message }))
      )
    }
    if (interrupted) return yield* Effect.interrupt
    if (Exit.isFailure(exit)) return yield* failure(Cause.squash(exit.cause))
    if (summary.remaining > 0) return yield* new CliError({ detail: "", exitCode: ExitStatus.UNFINISHED })
  })

