/**
 * `shepherd run IN.jsonl --out OUT.jsonl`: an OpenAI Batch API input file through the client, one
 * output line per `custom_id`, appended as each completes; rerun to resume.
 *
 * Order of work: check every input line (nothing is sent while one is bad, unless --skip-invalid);
 * read OUT for the ids already answered; send the rest with progress on stderr; write the summary.
 * A first SIGINT/SIGTERM stops sending and lets the requests in flight finish (up to --grace); a
 * second aborts them. Lines are written whole, each with one write call, so OUT never ends mid-line.
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import { SingleBar } from "cli-progress"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Batch from "../Batch.js"
import * as Budget from "../Budget.js"
import * as ChatClient from "../ChatClient.js"
import * as ChatError from "../ChatError.js"
import * as BatchFile from "../internal/batchFile.js"
import { parseDuration } from "../internal/durationText.js"
import { IdTable } from "../internal/idTable.js"
import * as Shared from "../internal/redis.js"
import * as Metrics from "../Metrics.js"
import * as Pricing from "../Pricing.js"
import * as RateLimit from "../RateLimit.js"
import { CliError } from "./error.js"
import * as RunStats from "./runStats.js"
import { testWindow } from "./testWindow.js"

const invalid = (e: unknown) => HelpDoc.p(e instanceof Error ? e.message : String(e))
const durationOption = (name: string, fallback: string, description: string) =>
  Options.text(name).pipe(Options.withDefault(fallback), Options.withDescription(description), Options.mapTryCatch(parseDuration, invalid))

const options = {
  out: Options.text("out").pipe(Options.withDescription("output JSONL: one line per custom_id, appended as each completes; rerun with the same file to resume")),
  baseUrl: Options.text("base-url").pipe(Options.optional, Options.withDescription("API base URL (default: OPENAI_BASE_URL, else https://api.openai.com/v1)")),
  concurrency: Options.integer("concurrency").pipe(Options.withDefault(64), Options.withDescription("requests in flight at most")),
  rpm: Options.integer("rpm").pipe(Options.optional, Options.withDescription("requests per minute, at most")),
  tpm: Options.integer("tpm").pipe(Options.optional, Options.withDescription("tokens per minute (prompt plus max_tokens), at most")),
  maxRetries: Options.integer("max-retries").pipe(Options.optional, Options.withDescription("retries after the first attempt (default 4)")),
  timeout: Options.text("timeout").pipe(
    Options.optional,
    Options.withDescription("deadline of one attempt, e.g. 60s (default 60s)"),
    Options.mapTryCatch((o) => Option.map(o, parseDuration), invalid)
  ),
  budgetUsd: Options.float("budget-usd").pipe(Options.optional, Options.withDescription("stop sending before the spend could pass this many US dollars")),
  prices: Options.file("prices", { exists: "yes" }).pipe(Options.optional, Options.withDescription("JSON price table to add to the built-in one (see docs/cost.md)")),
  apiKeyEnv: Options.text("api-key-env").pipe(Options.optional, Options.withDescription("read the API key from this environment variable (default OPENAI_API_KEY)")),
  skipInvalid: Options.boolean("skip-invalid").pipe(Options.withDescription("report invalid lines, then send the valid ones")),
  noProgress: Options.boolean("no-progress").pipe(Options.withDescription("no progress display on stderr")),
  progressInterval: durationOption("progress-interval", "5s", "how often a progress line is printed when stderr is not a terminal"),
  summary: Options.text("summary").pipe(Options.optional, Options.withDescription("also write the summary to this file, as JSON")),
  metrics: Options.text("metrics").pipe(Options.optional, Options.withDescription("write a snapshot of the shepherd_* metrics to this file, as JSON, at the end")),
  grace: durationOption("grace", "30s", "after Ctrl-C, how long requests in flight may take to finish"),
  shard: Options.text("shard").pipe(
    Options.optional,
    Options.withDescription("i/n: send only the input lines whose number minus one, mod n, is i (0 <= i < n); merge the n outputs with `shepherd merge`"),
    Options.mapTryCatch((o) => Option.map(o, parseShard), invalid)
  ),
  redis: Options.text("redis").pipe(
    Options.optional,
    Options.withDescription("redis://host:port: share the rate limits, the 429 pause and the budget with every process using this Redis, API key and --namespace")
  ),
  namespace: Options.text("namespace").pipe(Options.withDefault("default"), Options.withDescription("with --redis: the name of the shared limits and budget (a new name, a new budget)")),
  redisFallback: Options.boolean("redis-fallback").pipe(
    Options.withDescription("with --redis: when Redis cannot be reached, go on with local limits divided by the shard count (default: stop sending; a rerun resumes)")
  )
}

/** `i/n` with 0 <= i < n. */
export const parseShard = (text: string): { readonly index: number; readonly count: number } => {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text)
  const index = Number(match?.[1])
  const count = Number(match?.[2])
  if (match === null || !(count >= 1) || !(index < count)) {
    throw new Error(`--shard takes i/n with 0 <= i < n (e.g. 0/4 for the first of four), got ${JSON.stringify(text)}`)
  }
  return { index, count }
}

/** The command's arguments and options, as @effect/cli parses them. */
const commandConfig = { input: Args.file({ name: "IN.jsonl", exists: "yes" }), ...options }

interface Config {
  readonly input: string
  readonly out: string
  readonly concurrency: number
  readonly skipInvalid: boolean
  readonly noProgress: boolean
  readonly progressInterval: Duration.Duration
  readonly summary: Option.Option<string>
  readonly metrics: Option.Option<string>
  readonly grace: Duration.Duration
  readonly prices: Pricing.PriceTable
  /** Whether an input line (1-based number) belongs to this run's shard. */
  readonly inShard: (lineNumber: number) => boolean
}

/** The kind of a failure written to the output: `http_<status>` or the error code. */
const failureKind = (line: BatchFile.OutputLine): string | undefined =>
  line.error !== null ? line.error.code : line.response !== null && line.response.status_code >= 300 ? `http_${line.response.status_code}` : undefined

/** Checks every input line; reports the bad ones. Returns how many requests are valid and which lines to skip. */
const validate = (input: string, alreadyDone: IdTable, inShard: (lineNumber: number) => boolean) =>
  Effect.gen(function* () {
    const problems: Array<string> = []
    const skip = new Set<number>()
    const seen = new IdTable()
    let valid = 0
    let done = 0
    yield* BatchFile.forEachLine(input, (line) => {
        const parsed = BatchFile.parseInput(line.text)
        if (parsed === undefined) return
        if (Either.isLeft(parsed)) {
          problems.push(`${input}:${line.number}: ${parsed.left}`)
          skip.add(line.number)
          return
        }
        const id = parsed.right.custom_id
        const first = seen.add(id, line.number)
        if (first !== undefined) {
          problems.push(`${input}:${line.number}: custom_id ${JSON.stringify(id)} is already used on line ${first}`)
          skip.add(line.number)
          return
        }
        if (!inShard(line.number)) return
        valid++
        if (alreadyDone.has(id)) done++
      })
    return { problems, skip, valid, done }
  })

const rateLimitedCount = Effect.map(Metric.value(Metrics.rateLimited), (state) => state.count)

/** Sends what is left and writes each outcome; resolves when every request has ended or the run was stopped. */
const send = (
  config: Config,
  skip: ReadonlySet<number>,
  done: IdTable,
  stats: RunStats.RunStats,
  stopping: () => boolean,
  onRefused: (error: ChatError.BudgetExceededError | ChatError.LimiterUnavailableError) => void
) =>
  Effect.gen(function* () {
    const fd = yield* Effect.acquireRelease(
      Effect.try({ try: () => Fs.openSync(config.out, "a"), catch: (e) => new BatchFile.FileError({ path: config.out, detail: String(e) }) }),
      (fd) => Effect.sync(() => Fs.closeSync(fd))
    )
    const runId = Math.random().toString(36).slice(2, 10)
    const requests = BatchFile.readLines(config.input).pipe(
      Stream.filterMap((line) => {
        if (skip.has(line.number) || !config.inShard(line.number)) return Option.none()
        const parsed = BatchFile.parseInput(line.text)
        if (parsed === undefined || Either.isLeft(parsed) || done.has(parsed.right.custom_id)) return Option.none()
        return Option.some(parsed.right)
      })
    )
    yield* Batch.run(requests, { concurrency: config.concurrency, prices: config.prices, stopWhen: Effect.sync(stopping) }).pipe(
      Stream.runForEachChunk((chunk) =>
        Effect.try({
          try: () => {
            let text = ""
            for (const outcome of chunk) {
              if (outcome._tag === "Failure" && ChatError.stopsSending(outcome.error)) {
                // Refused unsent (budget spent, shared limits unreachable): no line, so that a rerun sends it.
                onRefused(outcome.error)
                continue
              }
              const line = BatchFile.outputLine(outcome, `batch_req_${runId}_${outcome.index.toString(36)}`)
              text += JSON.stringify(line) + "\n"
              stats.record(outcome, failureKind(line), BatchFile.isFinal(line))
            }
            // One write per chunk of outcomes: whole lines only, in the OS's hands when it returns.
            if (text !== "") Fs.writeSync(fd, text)
          },
          catch: (e) => new BatchFile.FileError({ path: config.out, detail: `could not write: ${String(e)}` })
        })
      )
    )
  }).pipe(Effect.scoped)

/** The progress display: a bar when stderr is a terminal, else a line every `interval`. */
const showProgress = (stats: RunStats.RunStats, interval: Duration.Duration) =>
  Effect.gen(function* () {
    if (process.stderr.isTTY === true) {
      const bar = new SingleBar({
        stream: process.stderr,
        format: "{bar} {value}/{total} | {rate} req/s | ETA {eta} | {tokens} tokens | {cost} | {errors} errors",
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50
      })
      const payload = (now: number) => {
        const p = RunStats.progress(stats, now)
        return { rate: p.rate.toFixed(1), eta: Number.isFinite(p.etaSeconds) ? `${Math.round(p.etaSeconds)}s` : "?", tokens: p.tokens, cost: p.cost, errors: p.errors }
      }
      const start = yield* Clock.currentTimeMillis
      bar.start(stats.total, stats.alreadyDone, payload(start))
      return yield* Effect.forever(
        Effect.zipRight(
          Effect.sleep("200 millis"),
          Effect.map(Clock.currentTimeMillis, (now) => bar.update(stats.alreadyDone + stats.written, payload(now)))
        )
      ).pipe(Effect.ensuring(Effect.sync(() => {
        bar.update(stats.alreadyDone + stats.written)
        bar.stop()
      })))
    }
    return yield* Effect.forever(
      Effect.zipRight(Effect.sleep(interval), Effect.flatMap(Clock.currentTimeMillis, (now) => Console.error(RunStats.progressLine(stats, now))))
    )
  })

const handler = (o: Command.Command.ParseConfig<typeof commandConfig>) =>
  Effect.gen(function* () {
    if (o.concurrency < 1) return yield* new CliError({ detail: `--concurrency must be at least 1, got ${o.concurrency}`, exitCode: 2 })
    if (Option.isSome(o.budgetUsd) && !(o.budgetUsd.value > 0)) {
      return yield* new CliError({ detail: `--budget-usd must be a positive number of dollars, got ${o.budgetUsd.value}`, exitCode: 2 })
    }
    const keyVariable = Option.getOrElse(o.apiKeyEnv, () => "OPENAI_API_KEY")
    const keyText = process.env[keyVariable]
    if (Option.isSome(o.apiKeyEnv) && (keyText === undefined || keyText.trim() === "")) {
      return yield* new CliError({ detail: `--api-key-env names ${keyVariable}, which is not set: export it first`, exitCode: 2 })
    }
    let prices = Pricing.defaultTable
    if (Option.isSome(o.prices)) {
      const decoded = Pricing.decodeTable(Fs.readFileSync(o.prices.value, "utf8"))
      if (Either.isLeft(decoded)) {
        return yield* new CliError({ detail: `${o.prices.value} is not a price table: ${decoded.left.message.split("\n").slice(0, 6).join(" ")}`, exitCode: 2 })
      }
      prices = Pricing.withPrices(decoded.right)
    }
    const config: Config = {
      input: o.input,
      out: o.out,
      concurrency: o.concurrency,
      skipInvalid: o.skipInvalid,
      noProgress: o.noProgress,
      progressInterval: o.progressInterval,
      summary: o.summary,
      metrics: o.metrics,
      grace: o.grace,
      prices,
      inShard: Option.match(o.shard, {
        onNone: () => () => true,
        onSome: ({ count, index }) => (lineNumber: number) => (lineNumber - 1) % count === index
      })
    }
    if (Option.isNone(o.redis) && o.redisFallback) {
      return yield* new CliError({ detail: "--redis-fallback needs --redis", exitCode: 2 })
    }
    const namespaceProblem = Shared.namespaceProblem(o.namespace)
    if (namespaceProblem !== undefined) return yield* new CliError({ detail: `--namespace: ${namespaceProblem}`, exitCode: 2 })

    // 1. What OUT already holds, then every input line checked before anything is sent.
    const previous = yield* BatchFile.scanOutput(config.out)
    const checked = yield* validate(config.input, previous.ids, config.inShard)
    if (checked.problems.length > 0) {
      for (const problem of checked.problems) yield* Console.error(problem)
      if (!config.skipInvalid) {
        return yield* new CliError({
          detail: `${checked.problems.length} invalid line${checked.problems.length === 1 ? "" : "s"} in ${config.input} (listed above); nothing was sent. ` +
            `Fix them, or pass --skip-invalid to send the ${checked.valid} valid requests.`,
          exitCode: 2
        })
      }
      yield* Console.error(`shepherd run: skipping ${checked.problems.length} invalid lines (--skip-invalid)`)
    }
    if (checked.valid === 0) {
      return yield* new CliError({ detail: `${config.input} holds no valid requests${Option.isSome(o.shard) ? " for this shard" : ""}`, exitCode: 2 })
    }
    if (previous.needsRewrite) yield* BatchFile.rewriteOutput(config.out, previous.keep)
    if (checked.done > 0) {
      yield* Console.error(
        `shepherd run: resuming: ${checked.done} of ${checked.valid} requests already have a final outcome in ${config.out}` +
          (previous.dropped > 0 ? ` (${previous.dropped} earlier lines to be sent again were removed)` : "")
      )
    }

    // 2. The client: the key only from the environment; limits and budget in Redis with --redis.
    const apiKey = keyText === undefined || keyText.trim() === "" ? undefined : Redacted.make(keyText)
    const baseUrl = Option.getOrUndefined(Option.orElse(o.baseUrl, () => Option.fromNullable(process.env["OPENAI_BASE_URL"]).pipe(Option.filter((u) => u.trim() !== ""))))
    const limits = { rpm: Option.getOrUndefined(o.rpm), tpm: Option.getOrUndefined(o.tpm), window: yield* testWindow }
    const clientLayer = ChatClient.layer({
      apiKey,
      baseUrl,
      timeout: Option.getOrUndefined(o.timeout),
      retry: Option.match(o.maxRetries, { onNone: () => ({}), onSome: (maxRetries) => ({ maxRetries }) }),
      limits
    })
    const shared = Option.map(o.redis, (url) => ({
      url,
      namespace: o.namespace,
      baseUrl: baseUrl ?? ChatClient.DEFAULT_BASE_URL,
      apiKey,
      workers: Option.match(o.shard, { onNone: () => 1, onSome: (s) => s.count }),
      onUnavailable: o.redisFallback ? "fallbackLocal" as const : "failClosed" as const
    }))
    const budgetLayer = Option.map(o.budgetUsd, (maxUsd) =>
      Option.match(shared, { onNone: () => Budget.layer({ maxUsd, prices }), onSome: (redis) => Budget.layerRedis({ ...redis, maxUsd, prices }) }))
    const limiterLayer = Option.map(shared, (redis) => RateLimit.layerRedis({ ...redis, ...limits }))
    const layer = clientLayer.pipe(
      Layer.provide(Option.getOrElse(budgetLayer, () => Layer.empty)),
      Layer.provide(Option.getOrElse(limiterLayer, () => Layer.empty))
    )

    // 3. Send, with progress; a first signal stops sending, a second aborts what is in flight.
    const stats = new RunStats.RunStats(yield* Clock.currentTimeMillis)
    stats.shard = Option.getOrUndefined(Option.map(o.shard, (s) => `${s.index}/${s.count}`))
    stats.total = checked.valid
    stats.alreadyDone = checked.done
    stats.invalid = checked.problems.length
    const rateLimitedBefore = yield* rateLimitedCount
    let stopping = false
    const stopRequested = yield* Deferred.make<void>()
    const abortRequested = yield* Deferred.make<void>()
    const onStop = (reason: RunStats.StopReason) => {
      if (stats.stoppedBy === undefined) stats.stoppedBy = reason
      stopping = true
    }
    let limiterFailure: ChatError.LimiterUnavailableError | undefined
    const onRefused = (error: ChatError.BudgetExceededError | ChatError.LimiterUnavailableError) => {
      if (error._tag === "BudgetExceededError") {
        stats.budgetRefused++
        onStop("budget")
      } else {
        stats.limiterRefused++
        limiterFailure ??= error
        onStop("limiter")
      }
    }
    let signals = 0
    const onSignal = () => {
      signals++
      Effect.runFork(Deferred.succeed(signals === 1 ? stopRequested : abortRequested, undefined))
    }

    const finished = yield* Deferred.make<RunStats.Summary, unknown>()
    const supervise = Effect.gen(function* () {
      const worker = yield* Effect.fork(send(config, checked.skip, previous.ids, stats, () => stopping, onRefused).pipe(Effect.provide(layer)))
      const progressFiber = config.noProgress ? undefined : yield* Effect.fork(showProgress(stats, config.progressInterval))
      const stopper = yield* Effect.fork(Effect.gen(function* () {
        yield* Deferred.await(stopRequested)
        onStop("interrupted")
        yield* Console.error(
          `\nshepherd run: stopping: no new requests; waiting up to ${Duration.format(config.grace)} for those in flight (Ctrl-C again to abort them)`
        )
        yield* Effect.race(Effect.sleep(config.grace), Deferred.await(abortRequested))
        stats.stoppedBy = "aborted"
        yield* Fiber.interrupt(worker)
      }))
      const exit = yield* Fiber.await(worker)
      yield* Fiber.interrupt(stopper)
      if (progressFiber !== undefined) yield* Fiber.interrupt(progressFiber)
      const now = yield* Clock.currentTimeMillis
      const result = RunStats.summary(stats, config.input, config.out, now, (yield* rateLimitedCount) - rateLimitedBefore)
      yield* Console.error(RunStats.summaryText(result))
      if (Option.isSome(config.summary)) {
        yield* Effect.try({
          try: () => Fs.writeFileSync(config.summary.pipe(Option.getOrThrow), JSON.stringify(result, null, 2) + "\n"),
          catch: (e) => new BatchFile.FileError({ path: Option.getOrThrow(config.summary), detail: String(e) })
        })
      }
      if (Option.isSome(config.metrics)) {
        const path = config.metrics.value
        const metrics = yield* Metrics.snapshot
        yield* Effect.try({
          try: () => Fs.writeFileSync(path, JSON.stringify({ takenAt: new Date(now).toISOString(), metrics }, null, 2) + "\n"),
          catch: (e) => new BatchFile.FileError({ path, detail: String(e) })
        })
      }
      if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return yield* Effect.failCause(exit.cause)
      return result
    })

    yield* Effect.acquireRelease(
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
    yield* Effect.forkDaemon(Effect.flatMap(Effect.exit(supervise), (exit) => Deferred.done(finished, exit)))
    // The runtime interrupts this fiber on the first signal; it then still waits for the summary.
    const result = yield* Deferred.await(finished).pipe(Effect.onInterrupt(() => Effect.ignore(Deferred.await(finished))))
    if (result.stoppedBy === "budget") {
      return yield* new CliError({
        detail: `stopped by the budget of ${Pricing.format(Math.round(Option.getOrThrow(o.budgetUsd) * 1e6))}: ` +
          `${result.remaining} requests were not sent. Rerun with a larger --budget-usd to send them.`
      })
    }
    if (result.stoppedBy === "limiter") {
      return yield* new CliError({
        detail: `stopped: the shared limits at ${limiterFailure?.location ?? "Redis"} could not be reached (${limiterFailure?.detail ?? "unknown"}): ` +
          `${result.remaining} requests were not sent. Rerun the same command when Redis is back to send them ` +
          `(or add --redis-fallback to go on with local limits divided by the shard count).`
      })
    }
    if (result.stoppedBy !== null) return yield* Effect.interrupt
  }).pipe(Effect.scoped)

export const runCommand = Command.make("run", commandConfig, handler).pipe(
  Command.withDescription("Send an OpenAI Batch API input file (JSONL); write one output line per custom_id; rerun to resume")
)
