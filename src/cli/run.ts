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
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
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
import * as BatchFile from "./batchFile.js"
import { IdTable } from "./idTable.js"
import * as Shared from "../internal/redis.js"
import * as Metrics from "../Metrics.js"
import * as Pricing from "../Pricing.js"
import * as ConfigErrors from "./configError.js"
import * as RateLimit from "../RateLimit.js"
import * as RetryPolicy from "../RetryPolicy.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import * as Flags from "./flags.js"
import * as OutputFile from "./outputFile.js"
import * as Progress from "./progress.js"
import * as RunStats from "./runStats.js"
import { testWindow } from "./testWindow.js"

const seconds = (d: Duration.DurationInput) => `${Duration.toSeconds(Duration.decode(d))}s`

/** The flags of `shepherd run`: parsed and shown in `--help` from this one table. */
const flags = {
  out: Flags.text("out", {
    required: "name the output file, e.g. --out results.jsonl",
    placeholder: "FILE",
    description: "output JSONL: one line per custom_id, appended as each completes; rerun with the same file to resume"
  }),
  baseUrl: Flags.text("base-url", { placeholder: "URL", description: "the API's base URL", defaultText: `OPENAI_BASE_URL, else ${ChatClient.DEFAULT_BASE_URL}` }),
  concurrency: Flags.integer("concurrency", { min: 1, default: 64, description: "requests in flight at most" }),
  rpm: Flags.integer("rpm", { min: 1, placeholder: "R", description: "requests per minute, at most", defaultText: "no limit", hint: "leave it out for no limit" }),
  tpm: Flags.integer("tpm", {
    min: 1,
    placeholder: "T",
    description: "tokens per minute (prompt plus max_tokens), at most",
    defaultText: "no limit",
    hint: "leave it out for no limit"
  }),
  maxRetries: Flags.integer("max-retries", { min: 0, placeholder: "K", description: "retries after the first attempt", defaultText: String(RetryPolicy.defaults.maxRetries) }),
  timeout: Flags.duration("timeout", { description: "deadline of one attempt", defaultText: seconds(ChatClient.defaults.timeout) }),
  budgetUsd: Flags.positiveNumber("budget-usd", { placeholder: "USD", description: "stop sending before the spend could pass this many US dollars", defaultText: "no budget" }),
  prices: Flags.existingFile("prices", { description: "JSON price table to add to the built-in one (see docs/cost.md)", defaultText: "the built-in table" }),
  apiKeyEnv: Flags.text("api-key-env", { placeholder: "NAME", description: "read the API key from this environment variable", defaultText: "OPENAI_API_KEY" }),
  skipInvalid: Flags.boolean("skip-invalid", { description: "report invalid lines, then send the valid ones; without it, one invalid line stops the run before anything is sent" }),
  noProgress: Flags.boolean("no-progress", { description: "no progress display on stderr" }),
  progressInterval: Flags.duration("progress-interval", { default: "5s", description: "how often a progress line is printed when stderr is not a terminal" }),
  summary: Flags.text("summary", { placeholder: "FILE", description: "also write the summary to this file, as JSON", defaultText: "none" }),
  metrics: Flags.text("metrics", { placeholder: "FILE", description: "write a snapshot of the shepherd_* metrics to this file, as JSON, at the end", defaultText: "none" }),
  grace: Flags.duration("grace", { default: "30s", description: "after Ctrl-C, how long requests in flight may take to finish" }),
  shard: Flags.custom("shard", {
    placeholder: "i/n",
    description: "send only the input lines whose number minus one, mod n, is i (0 <= i < n); merge the n outputs with `shepherd merge`",
    defaultText: "the whole input",
    parse: (text) => parseShard(text)
  }),
  redis: Flags.text("redis", {
    placeholder: "URL",
    description: "redis://host:port: share the rate limits, the 429 pause and the budget with every process using this Redis, API key and --namespace " +
      "(a URL with a password is better given in SHEPHERD_REDIS_URL: arguments show in the process list)",
    defaultText: "SHEPHERD_REDIS_URL when set, else none"
  }),
  redisUrlEnv: Flags.text("redis-url-env", {
    placeholder: "NAME",
    description: "read the Redis URL (password included) from this environment variable instead of --redis",
    defaultText: "SHEPHERD_REDIS_URL"
  }),
  namespace: Flags.text("namespace", { default: "default", placeholder: "NAME", description: "with --redis: the name of the shared limits and budget (a new name, a new budget)" }),
  redisFallback: Flags.boolean("redis-fallback", {
    description: "with --redis: when Redis cannot be reached, go on with local limits divided by the shard count (without it: stop sending; a rerun resumes)"
  })
}

const USAGE = "shepherd run"
const input: Flags.Positional = { name: "IN.jsonl", description: "the requests, one OpenAI Batch API input line each (chat completions or embeddings)" }

/** `shepherd run --help`: styled only for a terminal without NO_COLOR. */
export const helpText = (options: { readonly bold: boolean; readonly width?: number }): string =>
  Flags.help(flags, input, {
    usage: `${USAGE} IN.jsonl --out OUT.jsonl [options]`,
    description: "Sends every request of an OpenAI Batch API input file and writes one output line per custom_id, " +
      "appended as each completes. Rerun the same command to resume: ids with a final outcome are not sent again.",
    sections: [
      {
        heading: "Environment",
        rows: [
          ["OPENAI_API_KEY", "the API key (never a flag; see --api-key-env)"],
          ["OPENAI_BASE_URL", "the base URL when --base-url is not given"],
          ["NO_COLOR", "plain help text even on a terminal"]
        ]
      },
      { heading: "Durations", rows: ["take a unit: 500ms, 30s, 2m, 1h (a bare number is refused)."] },
      { heading: "Exit status", rows: ExitStatus.rows }
    ]
  }, options)

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

/** What the handler reads: the input file and the flags' values. */
type RunOptions = Flags.Parsed<typeof flags> & { readonly input: string }

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
  onRefused: (error: ChatError.ChatError, unsent: boolean) => void
) =>
  Effect.gen(function* () {
    const writer = yield* OutputFile.open(config.out)
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
      // One write per chunk of outcomes: whole lines only; a failed write stops the run.
      Stream.runForEachChunk((chunk) => OutputFile.writeOutcomes(writer, chunk, (o) => `batch_req_${runId}_${o.index.toString(36)}`, stats, onRefused))
    )
  }).pipe(Effect.scoped)

const handler = (o: RunOptions) =>
  Effect.gen(function* () {
    const keyVariable = Option.getOrElse(o.apiKeyEnv, () => "OPENAI_API_KEY")
    const keyText = process.env[keyVariable]
    if (Option.isSome(o.apiKeyEnv) && (keyText === undefined || keyText.trim() === "")) {
      return yield* new CliError({ detail: `--api-key-env names ${keyVariable}, which is not set: export it first`, exitCode: ExitStatus.USAGE })
    }
    let prices = Pricing.defaultTable
    if (Option.isSome(o.prices)) {
      const decoded = Pricing.decodeTable(Fs.readFileSync(o.prices.value, "utf8"))
      if (Either.isLeft(decoded)) {
        return yield* new CliError({ detail: `${o.prices.value} is not a price table: ${decoded.left.message.split("\n").slice(0, 6).join(" ")}`, exitCode: ExitStatus.USAGE })
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
    // The Redis URL: --redis, else the variable --redis-url-env names (default SHEPHERD_REDIS_URL), out of the process list.
    const redisVariable = Option.getOrElse(o.redisUrlEnv, () => "SHEPHERD_REDIS_URL")
    const redisText = process.env[redisVariable]?.trim() ?? ""
    if (Option.isSome(o.redis) && Option.isSome(o.redisUrlEnv)) {
      return yield* new CliError({ detail: "give the Redis URL with --redis or with --redis-url-env, not both", exitCode: ExitStatus.USAGE })
    }
    if (Option.isSome(o.redisUrlEnv) && redisText === "") {
      return yield* new CliError({ detail: `--redis-url-env names ${redisVariable}, which is not set: export it first`, exitCode: ExitStatus.USAGE })
    }
    const redisUrl = Option.orElse(o.redis, () => (redisText === "" ? Option.none() : Option.some(redisText)))
    const redisSource = Option.isSome(o.redis) ? "--redis" : `the environment variable ${redisVariable}`
    if (Option.isNone(redisUrl) && o.redisFallback) {
      return yield* new CliError({ detail: `--redis-fallback needs --redis (or the Redis URL in ${redisVariable})`, exitCode: ExitStatus.USAGE })
    }
    if (Option.isSome(o.redis) && URL.canParse(o.redis.value) && new URL(o.redis.value).password !== "") {
      yield* Console.error("shepherd run: warning: the password in --redis shows in the process list; give the URL in SHEPHERD_REDIS_URL (or --redis-url-env NAME) instead")
    }
    const namespaceProblem = Shared.namespaceProblem(o.namespace)
    if (namespaceProblem !== undefined) return yield* new CliError({ detail: `--namespace: ${namespaceProblem}`, exitCode: ExitStatus.USAGE })

    // 1. The client, built before anything is read or sent, so that a configuration error (no key for
    //    the default URL, a bad base URL, Redis unreachable) stops the run here: the key only from the
    //    environment; limits and budget in Redis with --redis.
    const apiKey = keyText === undefined || keyText.trim() === "" ? undefined : Redacted.make(keyText)
    const baseUrlFromEnv = Option.isNone(o.baseUrl) && process.env["OPENAI_BASE_URL"] !== undefined && process.env["OPENAI_BASE_URL"].trim() !== ""
    const baseUrl = Option.getOrUndefined(Option.orElse(o.baseUrl, () => Option.fromNullable(process.env["OPENAI_BASE_URL"]).pipe(Option.filter((u) => u.trim() !== ""))))
    const limits = { rpm: Option.getOrUndefined(o.rpm), tpm: Option.getOrUndefined(o.tpm), window: yield* testWindow }
    const clientOptions: ChatClient.Overrides = {
      apiKey,
      baseUrl,
      timeout: Option.getOrUndefined(o.timeout),
      retry: Option.match(o.maxRetries, { onNone: () => ({}), onSome: (maxRetries) => ({ maxRetries }) }),
      limits
    }
    const clientLayer = ChatClient.layer(clientOptions)
    const shared = Option.map(redisUrl, (url) => ({
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
    const client = yield* Layer.build(layer).pipe(
      Effect.catchTags({
        ConfigError: (error: ConfigError.ConfigError) =>
          new CliError({ detail: configProblem(error, keyVariable, baseUrlFromEnv), exitCode: ExitStatus.USAGE }),
        LimiterUnavailableError: (error: ChatError.LimiterUnavailableError) =>
          error.reason === "password"
            // A refused Redis password is a configuration error, found before anything is sent.
            ? new CliError({ detail: `${error.message} It was read from ${redisSource}; nothing was sent.`, exitCode: ExitStatus.USAGE })
            : new CliError({ detail: `${limiterProblem(error)}: nothing was sent. ${LIMITER_ADVICE}`, exitCode: ExitStatus.UNFINISHED })
      })
    )
    const apiUrl = baseUrl ?? ChatClient.DEFAULT_BASE_URL

    // 2. What OUT already holds, then every input line checked before anything is sent.
    const previous = yield* OutputFile.prepare(config)
    const checked = yield* validate(config.input, previous.ids, config.inShard)
    if (checked.problems.length > 0) {
      for (const problem of checked.problems) yield* Console.error(problem)
      if (!config.skipInvalid) {
        return yield* new CliError({
          detail: `${checked.problems.length} invalid line${checked.problems.length === 1 ? "" : "s"} in ${config.input} (listed above); nothing was sent. ` +
            `Fix them, or pass --skip-invalid to send the ${checked.valid} valid requests.`,
          exitCode: ExitStatus.USAGE
        })
      }
      yield* Console.error(`shepherd run: skipping ${checked.problems.length} invalid lines (--skip-invalid)`)
    }
    if (checked.valid === 0) {
      return yield* new CliError({ detail: `${config.input} holds no valid requests${Option.isSome(o.shard) ? " for this shard" : ""}`, exitCode: ExitStatus.USAGE })
    }
    if (previous.needsRewrite) yield* BatchFile.repairOutput(config.out, previous)
    if (checked.done > 0) {
      yield* Console.error(
        `shepherd run: resuming: ${checked.done} of ${checked.valid} requests already have a final outcome in ${config.out}` +
          (previous.dropped > 0 ? ` (${previous.dropped} earlier lines to be sent again were removed)` : "")
      )
    }

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
    const onStop = (reason: RunStats.StopReason, detail?: string) => {
      if (stats.stoppedBy === undefined) {
        stats.stoppedBy = reason
        stats.stopDetail = detail
      }
      stopping = true
    }
    let limiterFailure: ChatError.LimiterUnavailableError | undefined
    let keyFailure: ChatError.ApiError | undefined
    let unreachableFailure: ChatError.TransportError | ChatError.TimeoutError | undefined
    /** A request with no line: refused, or not sent (`unsent`) because the batch had stopped. */
    const onRefused = (error: ChatError.ChatError, unsent: boolean) => {
      if (error._tag === "BudgetExceededError") {
        stats.budgetRefused++
        onStop("budget", "the budget was reached")
      } else if (error._tag === "LimiterUnavailableError") {
        stats.limiterRefused++
        limiterFailure ??= error
        onStop("limiter", limiterProblem(error))
      } else if (ChatError.isKeyRefusal(error)) {
        stats.keyRefused++
        keyFailure ??= error
        onStop("key", keyProblem(error, apiUrl))
      } else if (ChatError.isUnreachable(error)) {
        stats.unreachable++
        unreachableFailure ??= error
        // One that used its retries is not yet a stop: the batch stops after a short run of them,
        // and sends none of the requests after it.
        if (unsent) onStop("unreachable", unreachableProblem(error, apiUrl))
      }
    }
    // On a terminal, Ctrl-C echoes "^C" where the cursor is: the notice starts over it.
    const overEcho = process.stderr.isTTY === true ? "\r" : ""
    let signals = 0
    const onSignal = () => {
      signals++
      Effect.runFork(Deferred.succeed(signals === 1 ? stopRequested : abortRequested, undefined))
    }

    const finished = yield* Deferred.make<RunStats.Summary, unknown>()
    const supervise = Effect.gen(function* () {
      const worker = yield* Effect.fork(send(config, checked.skip, previous.ids, stats, () => stopping, onRefused).pipe(Effect.provide(client)))
      const display = config.noProgress ? Progress.none : yield* Progress.start(stats, config.progressInterval)
      const stopper = yield* Effect.fork(Effect.gen(function* () {
        yield* Deferred.await(stopRequested)
        onStop("interrupted")
        // The bar first: it redraws its line, so nothing may be written under it.
        yield* display.stop
        yield* Console.error(
          `${overEcho}shepherd run: stopping: no new requests; waiting up to ${Duration.format(config.grace)} for those in flight (Ctrl-C again to abort them)`
        )
        const aborted = yield* Effect.raceFirst(Effect.as(Effect.sleep(config.grace), false), Effect.as(Deferred.await(abortRequested), true))
        yield* Console.error(
          aborted
            ? `${overEcho}shepherd run: aborting the requests in flight (a rerun sends them)`
            : `shepherd run: aborting the requests still in flight after ${Duration.format(config.grace)} (a rerun sends them)`
        )
        stats.stoppedBy = "aborted"
        yield* Fiber.interrupt(worker)
      }))
      const exit = yield* Fiber.await(worker)
      yield* Fiber.interrupt(stopper)
      yield* display.stop
      if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) {
        const error = Cause.squash(exit.cause)
        onStop("file", error instanceof Error ? error.message : String(error))
      }
      if (stats.stoppedBy === undefined && unreachableFailure !== undefined && stats.remaining > 0 && stats.written === 0) {
        // Every request sent failed to reach the server, and the batch ran out of inputs before it stopped.
        onStop("unreachable", unreachableProblem(unreachableFailure, apiUrl))
      }
      const now = yield* Clock.currentTimeMillis
      const result = RunStats.summary(stats, config.input, config.out, now, (yield* rateLimitedCount) - rateLimitedBefore)
      yield* Console.error(RunStats.summaryText(result))
      // After a failed run, a report that cannot be written (the same full disk) is a note: the run's error is the cause.
      const report = (path: string, text: string) =>
        OutputFile.writeReport(path, text).pipe(
          Effect.catchAll((e) => (Exit.isFailure(exit) && !Exit.isInterrupted(exit) ? Console.error(`shepherd run: ${e.message}`) : Effect.fail(e)))
        )
      if (Option.isSome(config.summary)) yield* report(config.summary.value, JSON.stringify(result, null, 2) + "\n")
      if (Option.isSome(config.metrics)) {
        const metrics = yield* Metrics.snapshot
        yield* report(config.metrics.value, JSON.stringify({ takenAt: new Date(now).toISOString(), metrics }, null, 2) + "\n")
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
    const result = yield* Deferred.await(finished).pipe(
      Effect.onInterrupt(() => Effect.ignore(Deferred.await(finished))),
      // A refused Redis password is found before anything is sent: a configuration error.
      Effect.catchIf(
        (e): e is ChatError.LimiterUnavailableError => e instanceof ChatError.LimiterUnavailableError && e.reason === "password",
        (e) => new CliError({ detail: `${e.message} It was read from ${redisSource}; nothing was sent.`, exitCode: ExitStatus.USAGE })
      )
    )
    const notSent = `${result.remaining} request${result.remaining === 1 ? " has" : "s have"} no final outcome`
    if (result.stoppedBy === "budget") {
      return yield* new CliError({
        detail: `stopped by the budget of ${Pricing.format(Math.round(Option.getOrThrow(o.budgetUsd) * 1e6))}: ` +
          `${result.remaining} requests were not sent. Rerun with a larger --budget-usd to send them.`
      })
    }
    if (result.stoppedBy === "limiter" && limiterFailure?.reason === "lost") {
      return yield* new CliError({
        detail: `stopped: the shared budget at ${limiterFailure.location} was lost (${limiterFailure.detail}): ${result.remaining} requests were not sent. ` +
          `What the other processes spent is unknown: make Redis keep its data (persistence, maxmemory-policy noeviction), then rerun ` +
          `with a new --namespace and a --budget-usd for what is left (or add --redis-fallback to go on with each process's own record).`
      })
    }
    if (result.stoppedBy === "limiter" && limiterFailure?.reason === "password") {
      return yield* new CliError({
        detail: `stopped: Redis at ${limiterFailure.location} refused the password (${limiterFailure.detail}): ${result.remaining} requests were not sent. ` +
          `Check the password in the Redis URL (${redisSource}), then rerun the same command to send them.`
      })
    }
    if (result.stoppedBy === "limiter") {
      return yield* new CliError({
        detail: `stopped: ${limiterFailure === undefined ? "the shared limits in Redis could not be reached" : limiterProblem(limiterFailure)}: ` +
          `${result.remaining} requests were not sent. ${LIMITER_ADVICE}`
      })
    }
    if (result.stoppedBy === "key" && keyFailure !== undefined) {
      return yield* new CliError({
        detail: `stopped: ${keyProblem(keyFailure, apiUrl)}: ${notSent} (no line was written for them). ` +
          `${keyFailure.status === 401 ? `Check ${keyVariable} (or --api-key-env) and that it belongs to ${apiUrl}` : "Check the key's permissions"}, then rerun the same command.`
      })
    }
    if (result.stoppedBy === "unreachable" && unreachableFailure !== undefined) {
      return yield* new CliError({
        detail: `stopped: ${unreachableProblem(unreachableFailure, apiUrl)}: ${notSent} (no line was written for them). ` +
          `Check --base-url${baseUrlFromEnv ? " (here from OPENAI_BASE_URL)" : ""} and the network, then rerun the same command.`
      })
    }
    if (result.stoppedBy === "interrupted" || result.stoppedBy === "aborted") return yield* Effect.interrupt
    // Requests left without a final outcome: the summary's last line says why; exit 1 so that scripts know.
    if (result.remaining > 0) return yield* new CliError({ detail: "", exitCode: ExitStatus.UNFINISHED })
  }).pipe(Effect.scoped)

const LIMITER_ADVICE = "Rerun the same command when Redis is back to send them (or add --redis-fallback to go on with local limits divided by the shard count)."

/** The shared limits' failure, in words, without the library's advice (the CLI names its own flag). */
const limiterProblem = (error: ChatError.LimiterUnavailableError): string =>
  `the shared ${error.store === "budget" ? "budget" : "rate limits"} at ${error.location} could not be reached (${error.detail.replace(/\.+$/, "")})`

const keyProblem = (error: ChatError.ApiError, url: string): string =>
  `${url} refused the API key (${error.status}${error.code === undefined ? "" : ` ${error.code}`}: ${error.detail.trim().replace(/\.+$/, "")})`

const unreachableProblem = (error: ChatError.TransportError | ChatError.TimeoutError, url: string): string =>
  error._tag === "TimeoutError"
    ? `${url} could not be reached (no connection within ${error.timeoutMillis} ms)`
    : `${url} could not be reached (${error.code === undefined ? "" : `${error.code}: `}${error.detail.trim().replace(/\.+$/, "")})`

/** A `ConfigError` from building the client, as one sentence naming the flag or variable to change. */
export const configProblem = (error: ConfigError.ConfigError, keyVariable: string, baseUrlFromEnv: boolean): string => {
  const first = (e: ConfigError.ConfigError): ConfigError.ConfigError => e._op === "And" || e._op === "Or" ? first(e.left) : e
  const e = first(error)
  if ("path" in e && e.path[0] === "OPENAI_API_KEY") {
    return `no API key: ${ChatClient.DEFAULT_BASE_URL} needs one. Set ${keyVariable}` +
      `${keyVariable === "OPENAI_API_KEY" ? " (or name another variable with --api-key-env)" : ""}, or pass --base-url for a server that needs none`
  }
  // The library names its option (limits.rpm, baseUrl); the user wrote a flag or a variable.
  return ConfigErrors.describe(e, new Map([
    ...ConfigErrors.runFlags,
    ["apiKey", keyVariable],
    ["baseUrl", baseUrlFromEnv ? "OPENAI_BASE_URL" : "--base-url"]
  ]))
}

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
