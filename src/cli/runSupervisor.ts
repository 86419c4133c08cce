/**
 * Supervising a `shepherd run`: sending what is left with progress on stderr, stopping on the
 * first refusal that would repeat (budget, shared limits, key, unreachable server), the signals (a
 * first SIGINT/SIGTERM stops sending and lets the requests in flight finish, up to --grace; a second
 * aborts them), and the summary and reports written at the end, however the run ended.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Batch from "../Batch.js"
import type * as ChatClient from "../ChatClient.js"
import * as ChatError from "../ChatError.js"
import * as ErrorRules from "../internal/errorRules.js"
import * as Metrics from "../Metrics.js"
import * as Router from "../Router.js"
import * as BatchFile from "./batchFile.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import * as OutputFile from "./outputFile.js"
import * as Progress from "./progress.js"
import type { RunConfig } from "./runConfig.js"
import * as RunDeployments from "./runDeployments.js"
import type { Plan } from "./runInput.js"
import { type Failures, keyProblem, limiterProblem, type Outcome, unreachableProblem } from "./runOutcome.js"
import * as RunStats from "./runStats.js"

/** The state a run shares between its sender, its stopper and its summary. */
interface Control {
  readonly stats: RunStats.RunStats
  readonly failures: Failures
  /** Set on the first stop: no new request is sent. */
  stopping: boolean
  readonly stopRequested: Deferred.Deferred<void>
  readonly abortRequested: Deferred.Deferred<void>
}

const rateLimitedCount = Effect.map(Metric.value(Metrics.rateLimited), (state) => state.count)

const makeControl = (plan: Plan, shard: RunConfig["shard"]) =>
  Effect.gen(function* () {
    const stats = new RunStats.RunStats(yield* Clock.currentTimeMillis)
    stats.shard = Option.getOrUndefined(Option.map(shard, (s) => `${s.index}/${s.count}`))
    stats.total = plan.checked.valid
    stats.alreadyDone = plan.checked.done
    stats.invalid = plan.checked.problems.length
    const control: Control = {
      stats,
      failures: { limiter: undefined, key: undefined, unreachable: undefined },
      stopping: false,
      stopRequested: yield* Deferred.make<void>(),
      abortRequested: yield* Deferred.make<void>()
    }
    return control
  })

/** Stops sending; the first reason given is the one the summary names. */
const stop = (control: Control, reason: RunStats.StopReason, detail?: string) => {
  if (control.stats.stoppedBy === undefined) {
    control.stats.stoppedBy = reason
    control.stats.stopDetail = detail
  }
  control.stopping = true
}

/** A request with no line: refused, or not sent (`unsent`) because the batch had stopped. */
const onRefused = (control: Control, apiUrl: string) => (error: ChatError.ChatError, unsent: boolean) => {
  const { failures, stats } = control
  if (error._tag === "BudgetExceededError") {
    stats.budgetRefused++
    stop(control, "budget", "the budget was reached")
  } else if (error._tag === "LimiterUnavailableError") {
    stats.limiterRefused++
    failures.limiter ??= error
    stop(control, "limiter", limiterProblem(error))
  } else if (ErrorRules.isKeyRefusal(error)) {
    stats.keyRefused++
    failures.key ??= error
    stop(control, "key", keyProblem(error, apiUrl))
  } else if (ErrorRules.isUnreachable(error)) {
    stats.unreachable++
    failures.unreachable ??= error
    // One that used its retries is not yet a stop: the batch stops after a short run of them,
    // and sends none of the requests after it.
    if (unsent) stop(control, "unreachable", unreachableProblem(error, apiUrl))
  }
}

/** Sends what is left and writes each outcome; resolves when every request has ended or the run was stopped. */
const send = (config: RunConfig, plan: Plan, control: Control) =>
  Effect.gen(function* () {
    const writer = yield* OutputFile.open(config.out)
    const runId = Math.random().toString(36).slice(2, 10)
    const { previous, checked } = plan
    const requests = BatchFile.readLines(config.input).pipe(
      Stream.filterMap((line) => {
        if (checked.skip.has(line.number) || !config.inShard(line.number)) return Option.none()
        const parsed = BatchFile.parseInput(line.text)
        if (parsed === undefined || Either.isLeft(parsed) || previous.ids.has(parsed.right.custom_id)) return Option.none()
        return Option.some(parsed.right)
      })
    )
    const refused = onRefused(control, config.apiUrl)
    yield* Batch.run(requests, { concurrency: config.concurrency, prices: config.prices, stopWhen: Effect.sync(() => control.stopping) }).pipe(
      // One write per chunk of outcomes: whole lines only; a failed write stops the run.
      Stream.runForEachChunk((chunk) => OutputFile.writeOutcomes(writer, chunk, (o) => `batch_req_${runId}_${o.index.toString(36)}`, control.stats, refused))
    )
  }).pipe(Effect.scoped)

// On a terminal, Ctrl-C echoes "^C" where the cursor is: the notice starts over it.
const overEcho = () => (process.stderr.isTTY === true ? "\r" : "")

/** After the first signal: no new requests; after the second, or after --grace, the worker is interrupted. */
const stopper = (config: RunConfig, control: Control, display: Progress.Display, worker: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function* () {
    yield* Deferred.await(control.stopRequested)
    stop(control, "interrupted")
    // The bar first: it redraws its line, so nothing may be written under it.
    yield* display.stop
    yield* Console.error(
      `${overEcho()}shepherd run: stopping: no new requests; waiting up to ${Duration.format(config.grace)} for those in flight (Ctrl-C again to abort them)`
    )
    const aborted = yield* Effect.raceFirst(Effect.as(Effect.sleep(config.grace), false), Effect.as(Deferred.await(control.abortRequested), true))
    yield* Console.error(
      aborted
        ? `${overEcho()}shepherd run: aborting the requests in flight (a rerun sends them)`
        : `shepherd run: aborting the requests still in flight after ${Duration.format(config.grace)} (a rerun sends them)`
    )
    control.stats.stoppedBy = "aborted"
    yield* Fiber.interrupt(worker)
  })

/** The summary on stderr, and the `--summary` and `--metrics` files; then the worker's failure, if any. */
const finish = (config: RunConfig, control: Control, exit: Exit.Exit<unknown, unknown>, rateLimitedBefore: number) =>
  Effect.gen(function* () {
    const { failures, stats } = control
    const failed = Exit.isFailure(exit) && !Exit.isInterrupted(exit)
    if (failed) {
      const error = Cause.squash(exit.cause)
      stop(control, "file", error instanceof Error ? error.message : String(error))
    }
    if (stats.stoppedBy === undefined && failures.unreachable !== undefined && stats.remaining > 0 && stats.written === 0) {
      // Every request sent failed to reach the server, and the batch ran out of inputs before it stopped.
      stop(control, "unreachable", unreachableProblem(failures.unreachable, config.apiUrl))
    }
    const now = yield* Clock.currentTimeMillis
    const base = RunStats.summary(stats, config.input, config.out, now, (yield* rateLimitedCount) - rateLimitedBefore)
    // With --deployments: a row per deployment (requests, 429s, cooldowns, cost).
    const deployments = Option.isSome(config.deployments) ? yield* Router.stats : undefined
    const result = deployments === undefined ? base : { ...base, deployments }
    yield* Console.error(RunStats.summaryText(result) + (deployments === undefined ? "" : "\n" + RunDeployments.rows(deployments)))
    // After a failed run, a report that cannot be written (the same full disk) is a note: the run's error is the cause.
    const report = (path: string, text: string) =>
      OutputFile.writeReport(path, text).pipe(Effect.catchAll((e) => (failed ? Console.error(`shepherd run: ${e.message}`) : Effect.fail(e))))
    if (Option.isSome(config.summary)) yield* report(config.summary.value, JSON.stringify(result, null, 2) + "\n")
    if (Option.isSome(config.metrics)) {
      const metrics = yield* Metrics.snapshot
      yield* report(config.metrics.value, JSON.stringify({ takenAt: new Date(now).toISOString(), metrics }, null, 2) + "\n")
    }
    if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return yield* Effect.failCause(exit.cause)
    return result
  })

/** Sends with progress and the stopper beside it; ends with the summary. */
const supervise = (config: RunConfig, client: Context.Context<ChatClient.ChatClient>, plan: Plan, control: Control) =>
  Effect.gen(function* () {
    const rateLimitedBefore = yield* rateLimitedCount
    const worker = yield* Effect.fork(send(config, plan, control).pipe(Effect.provide(client)))
    const display = config.noProgress ? Progress.none : yield* Progress.start(control.stats, config.progressInterval)
    const stopping = yield* Effect.fork(stopper(config, control, display, worker))
    const exit = yield* Fiber.await(worker)
    yield* Fiber.interrupt(stopping)
    yield* display.stop
    return yield* finish(config, control, exit, rateLimitedBefore)
  })

/** SIGINT and SIGTERM, for the scope: the first requests a stop, the second an abort. */
const handleSignals = (control: Control) => {
  let signals = 0
  const onSignal = () => {
    signals++
    Effect.runFork(Deferred.succeed(signals === 1 ? control.stopRequested : control.abortRequested, undefined))
  }
  return Effect.acquireRelease(
    Effect.sync(() => {
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
    }),
    () =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )
}

/**
 * Runs the plan with the client, to its summary, and says how it ended. The supervisor runs on its
 * own fiber: the runtime interrupts the main fiber on the first signal, which then still waits for
 * the summary.
 */
export const run = (config: RunConfig, client: Context.Context<ChatClient.ChatClient>, plan: Plan): Effect.Effect<Outcome, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const control = yield* makeControl(plan, config.shard)
    if (Option.isSome(config.cache)) control.stats.cache = { hits: 0, savedMicroUsd: 0 }
    const finished = yield* Deferred.make<RunStats.Summary, unknown>()
    yield* handleSignals(control)
    yield* Effect.forkDaemon(Effect.flatMap(Effect.exit(supervise(config, client, plan, control)), (exit) => Deferred.done(finished, exit)))
    const summary = yield* Deferred.await(finished).pipe(
      Effect.onInterrupt(() => Effect.ignore(Deferred.await(finished))),
      // A refused Redis password is found before anything is sent: a configuration error.
      Effect.catchIf(
        (e): e is ChatError.LimiterUnavailableError => e instanceof ChatError.LimiterUnavailableError && e.reason === "password",
        (e) => new CliError({ detail: `${e.message} It was read from ${config.redisSource}; nothing was sent.`, exitCode: ExitStatus.USAGE })
      )
    )
    return { summary, failures: control.failures }
  })
