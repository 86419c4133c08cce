/**
 * Requests through the provider's Batch API (`/v1/files` + `/v1/batches`, about half the price of
 * live calls, answered within 24 hours), with the same outcomes as `Batch.run`, resumable.
 *
 * `submit` splits the requests into batch files (one endpoint per file, within `maxRequestsPerFile`
 * and `maxBytesPerFile`), uploads each, creates a batch per file, polls it with backoff, downloads
 * its output and error files and emits one `Batch.BatchOutcome` per request that has a final answer.
 * Every step is recorded in the `BatchApiStore` before and after it runs, so that a crash at any
 * moment and a rerun with the same store never upload a file twice nor create a second batch for
 * the same requests: the rerun finds what the crashed run made (files by name, batches by their
 * input file) and continues from there. Requests a batch did not finish (expired, cancelled, answered
 * 429 or 5xx or with a resendable error code, or in neither file) get no outcome; the next `submit`
 * of the same requests with the same store sends them again, in a new range.
 *
 * ```ts
 * const outcomes = BatchApi.submit(requests, { apiKey: Redacted.make(key), runId: "eval-2026-09" }).pipe(
 *   Stream.runCollect,
 *   Effect.provide([BatchApi.layerFile("eval.batches.json"), FetchHttpClient.layer])
 * )
 * ```
 *
 * @since 0.2.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type * as Batch from "./Batch.js"
import type * as BatchApiError from "./BatchApiError.js"
import type * as BatchApiSchema from "./BatchApiSchema.js"
import * as Budget from "./internal/batchApi/budget.js"
import * as Http from "./internal/batchApi/http.js"
import * as Plan from "./internal/batchApi/plan.js"
import * as Run from "./internal/batchApi/run.js"
import * as State from "./internal/batchApi/state.js"
import * as Validate from "./internal/validate.js"
import * as Pricing from "./Pricing.js"

/**
 * What `submit` reports as it goes: a file uploaded (or found again), a batch created (or found
 * again), each poll's status and `request_counts`, each batch's end with the ids it left unfinished,
 * and each file whose batch was not created (`NotSubmitted`: the budget, or the submission closed).
 * @since 0.2.0
 * @category events
 */
export type Event = Run.Event

/**
 * The submission state: per input range, its file and batch ids, its step and its batch's status.
 * The file store writes it as JSON (`version: 1`).
 * @since 0.2.0
 * @category state
 */
export const SubmissionState = State.SubmissionState
/**
 * The type of {@link SubmissionState}.
 *
 * @since 0.2.0
 * @category state
 */
export type SubmissionState = State.SubmissionState

/**
 * One range of the state (one batch file and its batch).
 * @since 0.2.0
 * @category state
 */
export type RangeState = State.RangeState

/**
 * Where the submission state is kept. `layerMemory` for tests and one-process runs, `layerFile` to
 * survive a crash.
 * @since 0.2.0
 * @category store
 */
export class BatchApiStore extends Context.Tag("effect-shepherd/BatchApiStore")<BatchApiStore, State.Store>() {}

/**
 * A store in memory (lost with the process).
 * @since 0.2.0
 * @category store
 */
export const layerMemory: Layer.Layer<BatchApiStore> = Layer.sync(BatchApiStore, State.memory)

/**
 * A store in a JSON file at `path` (created on the first save), replaced atomically on each save:
 * temporary file, fsync, rename, fsync of the directory. It never holds the API key.
 * @since 0.2.0
 * @category store
 */
export const layerFile = (path: string): Layer.Layer<BatchApiStore> => Layer.succeed(BatchApiStore, State.file(path))

/**
 * Options of `submit` and `cancel`. Every default is in {@link defaults}.
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** The API key (env `OPENAI_API_KEY` in the command line). Never written to the state or an error. */
  readonly apiKey: Redacted.Redacted<string>
  /** The provider's base URL, ending in `/v1`. @default "https://api.openai.com/v1" */
  readonly baseUrl?: string | undefined
  /** Names the run in file names and batch metadata; a store that already holds a run keeps its own. @default "shepherd" */
  readonly runId?: string | undefined
  /** Requests per batch file at most (OpenAI: 50,000). @default 50000 */
  readonly maxRequestsPerFile?: number | undefined
  /** Bytes per batch file at most (OpenAI: 200 MB). @default 209715200 */
  readonly maxBytesPerFile?: number | undefined
  /** Batch files uploaded and polled at the same time. @default 4 */
  readonly concurrency?: number | undefined
  /** First wait between two polls of a batch; doubles each poll up to `pollInterval`. @default "5 seconds" */
  readonly initialPollInterval?: Duration.DurationInput | undefined
  /** Longest wait between two polls. @default "30 seconds" */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Retries of each call after a 5xx, a 429 (not a quota refusal) or a transport failure. @default 4 */
  readonly maxRetries?: number | undefined
  /** First backoff of a retry; doubles each attempt, full jitter (a `retry-after` wins). @default "1 second" */
  readonly initialRetryDelay?: Duration.DurationInput | undefined
  /** Longest `retry-after` honoured; a longer one fails the call. @default "60 seconds" */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /** Deadline of one call, download included. @default "10 minutes" */
  readonly timeout?: Duration.DurationInput | undefined
  /** Prices for the outcomes' costs, at the Batch API price (`Pricing.batchCost`). @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
  /** Headers added to every call (e.g. `OpenAI-Organization`). @default {} */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Metadata added to every batch (up to 14 pairs: Shepherd adds `shepherd_run` and `shepherd_range`). @default {} */
  readonly metadata?: BatchApiSchema.Metadata | undefined
  /**
   * Only collect: poll and download the batches the store already holds, upload and create nothing.
   * @default false
   */
  readonly collectOnly?: boolean | undefined
  /**
   * The most the submission may commit, in US dollars: each batch file's worst case at the batch
   * price (`Pricing.batchWorstCase` of its prompts and completion allowances) is held just before
   * its batch is created and replaced by what its answers cost when they arrive. A file that does
   * not fit is not created: its requests get `Failure` outcomes with `BudgetExceededError` (and a
   * `NotSubmitted` event); the other files go on. Batches an earlier run created count first.
   * @default none (no limit)
   */
  readonly maxUsd?: number | undefined
  /**
   * Requests already answered elsewhere (e.g. the final lines of an output file): a range with no
   * batch yet whose every request is answered is not submitted. Batches that exist are collected.
   * @default none
   */
  readonly answered?: ((customId: string) => boolean) | undefined
  /**
   * When this effect completes, the submission winds down: no batch is created any more (ranges
   * not created get a `NotSubmitted` event and no outcome), every batch not ended is cancelled (one
   * whose create was in flight as soon as it returns), and the stream ends once they have ended and
   * what they answered is emitted. What `shepherd run --via auto --deadline` does at its deadline.
   * @default never
   */
  readonly cancelWhen?: Effect.Effect<void> | undefined
  /** Called with each event, in order. @default none */
  readonly onEvent?: ((event: Event) => Effect.Effect<void>) | undefined
}

/**
 * The defaults of {@link Options}.
 * @since 0.2.0
 * @category options
 */
export const defaults = {
  baseUrl: "https://api.openai.com/v1",
  runId: "shepherd",
  maxRequestsPerFile: 50_000,
  maxBytesPerFile: 200 * 1024 * 1024,
  concurrency: 4,
  initialPollInterval: "5 seconds",
  pollInterval: "30 seconds",
  maxRetries: 4,
  initialRetryDelay: "1 second",
  maxRetryAfter: "60 seconds",
  timeout: "10 minutes"
} as const

/** The options checked, with their defaults: a `ConfigError` naming the wrong one. */
const resolve = (options: Options) =>
  Effect.gen(function* () {
    const pick = <K extends keyof typeof defaults>(key: K): Options[K] | (typeof defaults)[K] => options[key] ?? defaults[key]
    const baseUrl = yield* Validate.url(["baseUrl"], pick("baseUrl"), ["http:", "https:"], "https://api.openai.com/v1")
    const runId = yield* Validate.nonEmptyString(["runId"], pick("runId"))
    const initialPoll = yield* Validate.positiveDuration(["initialPollInterval"], pick("initialPollInterval"))
    const poll = yield* Validate.positiveDuration(["pollInterval"], pick("pollInterval"))
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      yield* Validate.headerName(["headers", name], name)
      yield* Validate.headerValue(["headers", name], value)
    }
    const metadata = options.metadata ?? {}
    if (Object.keys(metadata).length > 14) return yield* Effect.fail(Validate.invalid(["metadata"], "holds more than 14 pairs (a batch takes 16; Shepherd adds 2)"))
    const maxUsd = options.maxUsd === undefined ? undefined : yield* Validate.positiveNumber(["maxUsd"], options.maxUsd)
    return {
      maxMicroUsd: maxUsd === undefined ? undefined : Math.round(maxUsd * 1e6),
      baseUrl: baseUrl.href.replace(/\/+$/, ""),
      runId: Plan.safeRunId(runId),
      maxRequests: yield* Validate.positiveInt(["maxRequestsPerFile"], pick("maxRequestsPerFile")),
      maxBytes: yield* Validate.positiveInt(["maxBytesPerFile"], pick("maxBytesPerFile")),
      concurrency: yield* Validate.positiveInt(["concurrency"], pick("concurrency")),
      initialPollMillis: Duration.toMillis(initialPoll),
      maxPollMillis: Math.max(Duration.toMillis(initialPoll), Duration.toMillis(poll)),
      maxRetries: yield* Validate.nonNegativeInt(["maxRetries"], pick("maxRetries")),
      initialDelayMillis: Duration.toMillis(yield* Validate.nonNegativeDuration(["initialRetryDelay"], pick("initialRetryDelay"))),
      maxRetryAfterMillis: Duration.toMillis(yield* Validate.nonNegativeDuration(["maxRetryAfter"], pick("maxRetryAfter"))),
      timeoutMillis: Duration.toMillis(yield* Validate.positiveDuration(["timeout"], pick("timeout"))),
      metadata
    }
  })

const makeProvider = (options: Options, r: Effect.Effect.Success<ReturnType<typeof resolve>>) =>
  Effect.map(HttpClient.HttpClient, (client) =>
    Http.make(client, {
      baseUrl: r.baseUrl,
      apiKey: options.apiKey,
      headers: options.headers ?? {},
      maxRetries: r.maxRetries,
      initialDelayMillis: r.initialDelayMillis,
      maxRetryAfterMillis: r.maxRetryAfterMillis,
      timeoutMillis: r.timeoutMillis
    }))

const toStream = <R, E, Q>(requests: Stream.Stream<R, E, Q> | Iterable<R>): Stream.Stream<R, E, Q> =>
  Stream.StreamTypeId in (requests as object) ? (requests as Stream.Stream<R, E, Q>) : Stream.fromIterable(requests as Iterable<R>)

/**
 * The ranges to run: the input's files, and for each file already delivered with unfinished ids, a
 * file of those (recursively); delivered files with none left are skipped. A file whose batch an
 * earlier run saw refused for the account's quota or its enqueued-token limit (`QuotaError`: a
 * condition that changes) is sent again whole, as a retry of that file; one refused for its lines
 * or its size is not (the same file would be refused again). Without `reopen` (collecting only) no
 * retry is made, but one an earlier run made is followed.
 */
const pending = (ledger: Run.Ledger, range: Plan.Planned, reopen: boolean): Array<Plan.Planned> => {
  const state = ledger.get(range.key)
  if (state?.step === "ended" && state.status === "failed" && Run.failedError(range, state)._tag === "QuotaError") {
    const retry = Plan.planned(range.items, ledger.runId, range.key)
    if (reopen || ledger.get(retry.key) !== undefined) return pending(ledger, retry, reopen)
  }
  if (state?.step !== "delivered") return [range]
  const unfinished = new Set(state.unfinished ?? [])
  if (unfinished.size === 0) return []
  const items = range.items.filter((it) => unfinished.has(it.request.custom_id))
  return items.length === 0 ? [] : pending(ledger, Plan.planned(items, ledger.runId, range.key), reopen)
}

/**
 * Submits `requests` as provider batches and emits one outcome per request with a final answer, as
 * each batch's files are downloaded (the order of the batches' ends). Costs are at the Batch API
 * price; `attempts` is 1 and `latencyMillis` 0 (a batch's requests have no timing of their own).
 *
 * A rerun with the same store continues the run: what was already delivered is not emitted again,
 * batches still running are polled, and requests a batch left unfinished (expired, cancelled,
 * answered 429 or 5xx, in neither file) are sent in a new batch. With `maxUsd`, a file the budget
 * cannot hold is not created (its requests get `BudgetExceededError` outcomes); with `cancelWhen`,
 * the submission winds down when it completes.
 * A batch the provider refused (`failed`) fails the stream with `InvalidLinesError` (line numbers and
 * `custom_id`s), `TooManyRequestsError` or `QuotaError` after the other batches' outcomes (a rerun
 * sends the requests of a batch refused for quota or enqueued tokens again, in a new batch); so does
 * a call that failed after its retries (`ProviderError`). Interrupting the stream stops polling and
 * leaves the batches running on the provider: the next `submit` picks them up.
 * @since 0.2.0
 * @category submit
 */
export const submit = <E = never, Q = never>(
  requests: Stream.Stream<Batch.BatchRequest, E, Q> | Iterable<Batch.BatchRequest>,
  options: Options
): Stream.Stream<Batch.BatchOutcome, BatchApiError.BatchApiError | ConfigError.ConfigError | E, BatchApiStore | HttpClient.HttpClient | Q> =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const r = yield* resolve(options)
    const store = yield* BatchApiStore
    const provider = yield* makeProvider(options, r)
    const all = yield* Stream.runCollect(toStream(requests))
    const items = Array.from(all, (request, index) => Plan.item(request, index))
    yield* Either.match(Plan.checkUnique(items), { onLeft: Effect.fail, onRight: () => Effect.void })
    const groups = yield* Either.match(Plan.split(items, { maxRequests: r.maxRequests, maxBytes: r.maxBytes }), { onLeft: Effect.fail, onRight: Effect.succeed })
    const ledger = yield* Run.ledger(store, r.runId)
    const prices = options.prices ?? Pricing.defaultTable
    const closing = yield* Deferred.make<void>()
    if (options.cancelWhen !== undefined) yield* Effect.forkScoped(Effect.zipRight(options.cancelWhen, Deferred.succeed(closing, undefined)))
    const context: Run.Context = {
      provider,
      ledger,
      prices,
      initialPollMillis: r.initialPollMillis,
      maxPollMillis: r.maxPollMillis,
      metadata: r.metadata,
      emit: options.onEvent ?? (() => Effect.void),
      answered: options.answered ?? (() => false),
      budget: r.maxMicroUsd === undefined ? undefined : Budget.make(r.maxMicroUsd, prices),
      closing
    }
    // Collecting only sends nothing: a refused batch is reported, not sent again.
    const planned = groups.flatMap((group) => pending(ledger, Plan.planned(group, ledger.runId), options.collectOnly !== true))
    const ranges = options.collectOnly === true
      ? planned.filter((range) => {
        const step = ledger.get(range.key)?.step
        return step === "created" || step === "ended"
      })
      : planned
    let firstError: BatchApiError.BatchApiError | undefined
    const perRange = (range: Plan.Planned): Stream.Stream<Batch.BatchOutcome | Run.Result> =>
      Stream.unwrap(Effect.match(Run.runRange(context, range), {
        onFailure: (error) => {
          firstError ??= error
          return Stream.empty
        },
        // The range's result follows its outcomes, as the mark that they have all been taken.
        onSuccess: (result) => Stream.fromIterable<Batch.BatchOutcome | Run.Result>([...result.outcomes, result])
      }))
    return Stream.fromIterable(ranges).pipe(
      Stream.flatMap(perRange, { concurrency: r.concurrency }),
      // One element per pull, so that a range is recorded delivered only when the consumer asks for
      // what follows its last outcome (not when the outcomes merely sit in a buffer).
      Stream.rechunk(1),
      Stream.mapEffect((item) => "outcomes" in item ? Effect.as(Run.delivered(context, item), Option.none()) : Effect.succeed(Option.some(item))),
      Stream.filterMap(identity),
      Stream.concat(Stream.fromEffect(Effect.suspend(() => (firstError === undefined ? Effect.void : Effect.fail(firstError)))).pipe(Stream.drain))
    )
  }))

/**
 * The state a store holds (none before the first submit): what `shepherd batches status` shows.
 * @since 0.2.0
 * @category state
 */
export const state: Effect.Effect<SubmissionState | undefined, BatchApiError.StoreError, BatchApiStore> = Effect.flatMap(BatchApiStore, (store) => store.load)

/**
 * Asks the provider to cancel every batch of the store's state that has not ended. The results the
 * batches already produced are still delivered by the next `submit` (their requests not run are sent
 * again). Returns the batches as the provider answered (`cancelling`, or already final).
 * @since 0.2.0
 * @category submit
 */
export const cancel = (
  options: Options
): Effect.Effect<ReadonlyArray<BatchApiSchema.Batch>, BatchApiError.BatchApiError | ConfigError.ConfigError, BatchApiStore | HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const r = yield* resolve(options)
    const provider = yield* makeProvider(options, r)
    const saved = yield* state
    const running = Object.values(saved?.ranges ?? {}).filter((range) => range.step === "created" && range.batchId !== undefined)
    return yield* Effect.forEach(running, (range) => provider.cancel(range.batchId!), { concurrency: r.concurrency })
  })
