/**
 * One range through the Batch API, step by step, each step recorded in the store before and after:
 * upload (or find the upload a crashed run made), hold its worst case in the budget, create (or find
 * its batch), poll until final, download both files and map their lines. A rerun starts at the step
 * the state names. Once the submission closes (`closing`), no batch is created any more and every
 * batch not ended is cancelled, also one whose create was in flight, once it returns.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Batch from "../../Batch.js"
import * as BatchApiSchema from "../../BatchApiSchema.js"
import type * as ChatError from "../../ChatError.js"
import { type BatchApiError, InvalidLinesError, ProviderError, QuotaError, type StoreError, TooManyRequestsError } from "../../BatchApiError.js"
import type * as Pricing from "../../Pricing.js"
import type * as Budget from "./budget.js"
import type { Provider } from "./http.js"
import * as Outcomes from "./outcomes.js"
import { content, type Planned } from "./plan.js"
import type { RangeState, Store, SubmissionState } from "./state.js"

/** What a submission reports as it goes (`BatchApi.Event`). */
export type Event =
  | { readonly _tag: "Uploaded"; readonly range: string; readonly fileId: string; readonly reused: boolean }
  | { readonly _tag: "Created"; readonly range: string; readonly batchId: string; readonly reused: boolean }
  | {
    readonly _tag: "Progress"
    readonly range: string
    readonly batchId: string
    readonly status: BatchApiSchema.BatchStatus
    readonly requestCounts: BatchApiSchema.RequestCounts | undefined
  }
  | {
    readonly _tag: "Ended"
    readonly range: string
    readonly batchId: string
    readonly status: BatchApiSchema.BatchStatus
    readonly requestCounts: BatchApiSchema.RequestCounts | undefined
    /** The `custom_id`s without an outcome (sent again by the next submit). */
    readonly unfinished: ReadonlyArray<string>
  }
  | {
    /**
     * A range whose batch was not created: the budget cannot hold its worst case (its requests get
     * `BudgetExceededError` outcomes), or the submission closed first (no outcome).
     */
    readonly _tag: "NotSubmitted"
    readonly range: string
    readonly reason: "budget" | "closed"
    readonly requests: number
    readonly detail: string
  }

/** The state, kept in memory and saved whole after each change (one change at a time). */
export interface Ledger {
  readonly runId: string
  readonly get: (key: string) => RangeState | undefined
  readonly put: (range: RangeState) => Effect.Effect<void, StoreError>
}

/** A ledger over `store`, from the state it holds (or an empty one for `runId`). */
export const ledger = (store: Store, runId: string): Effect.Effect<Ledger, StoreError> =>
  Effect.gen(function* () {
    const loaded = yield* store.load
    // A store keeps one run: its own id wins, so that a rerun names its batches as the first run did.
    let state: SubmissionState = loaded ?? { version: 1, runId, ranges: {} }
    const lock = yield* Effect.makeSemaphore(1)
    return {
      runId: state.runId,
      get: (key) => state.ranges[key],
      put: (range) =>
        // Uninterruptible: an interrupted run still finishes the write it started.
        lock.withPermits(1)(Effect.uninterruptible(Effect.suspend(() => {
          state = { ...state, ranges: { ...state.ranges, [range.key]: range } }
          return store.save(state)
        })))
    }
  })

/** How ranges are run. */
export interface Context {
  readonly provider: Provider
  readonly ledger: Ledger
  readonly prices: Pricing.PriceTable
  readonly initialPollMillis: number
  readonly maxPollMillis: number
  readonly metadata: BatchApiSchema.Metadata
  readonly emit: (event: Event) => Effect.Effect<void>
  /** Requests answered elsewhere: a range with no batch yet whose every request is, is not submitted. */
  readonly answered: (customId: string) => boolean
  /** The budget; none: no limit. */
  readonly budget: Budget.Ledger | undefined
  /** Done once the submission winds down: no new batch, the running ones cancelled. */
  readonly closing: Deferred.Deferred<void>
}

/** A range's result: its outcomes and the ids left without one. */
export interface Result {
  readonly key: string
  readonly outcomes: ReadonlyArray<Batch.BatchOutcome>
  readonly unfinished: ReadonlyArray<string>
  /** Whether the range's batch exists (else the range is not marked delivered: a rerun submits it). */
  readonly submitted: boolean
}

const fresh = (range: Planned, now: number): RangeState => ({
  key: range.key,
  first: range.items[0]!.index,
  last: range.items[range.items.length - 1]!.index,
  requests: range.items.length,
  bytes: range.bytes,
  sha256: range.sha256,
  endpoint: range.endpoint,
  filename: range.filename,
  ...(range.retryOf === undefined ? {} : { retryOf: range.retryOf }),
  step: "uploading",
  updatedAtMillis: now
})

const record = (c: Context, state: RangeState, change: Partial<RangeState>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const next: RangeState = { ...state, ...change, updatedAtMillis: now }
    return Effect.as(c.ledger.put(next), next)
  })

/** Upload, unless a crashed run's upload is found under the range's file name. */
const uploadStep = (c: Context, range: Planned, state: RangeState, crashed: boolean) =>
  Effect.gen(function* () {
    const intent = crashed ? state : yield* record(c, state, { step: "uploading" })
    const found = crashed ? yield* c.provider.findFile(range.filename, range.bytes) : Option.none()
    const file = Option.isSome(found) ? found.value : yield* c.provider.upload(range.filename, content(range))
    yield* c.emit({ _tag: "Uploaded", range: range.key, fileId: file.id, reused: Option.isSome(found) })
    return yield* record(c, intent, { step: "uploaded", fileId: file.id })
  })

const metadataOf = (c: Context, range: Planned) => ({ ...c.metadata, shepherd_run: c.ledger.runId, shepherd_range: range.key })

/** The batch a crashed run may have created (its state says `creating`), recorded when found. */
const findCreated = (c: Context, range: Planned, state: RangeState) =>
  Effect.gen(function* () {
    const found = yield* c.provider.findBatch(state.fileId!, metadataOf(c, range))
    if (Option.isNone(found)) return Option.none<RangeState>()
    yield* c.emit({ _tag: "Created", range: range.key, batchId: found.value.id, reused: true })
    return Option.some(yield* record(c, state, { step: "created", batchId: found.value.id, status: found.value.status }))
  })

/** Create the batch (its intent recorded first). */
const createStep = (c: Context, range: Planned, state: RangeState) =>
  Effect.gen(function* () {
    const intent = state.step === "creating" ? state : yield* record(c, state, { step: "creating" })
    const batch = yield* c.provider.create({ input_file_id: state.fileId!, endpoint: range.endpoint, completion_window: "24h", metadata: metadataOf(c, range) })
    yield* c.emit({ _tag: "Created", range: range.key, batchId: batch.id, reused: false })
    return yield* record(c, intent, { step: "created", batchId: batch.id, status: batch.status })
  })

/** Asks the provider to cancel a batch once the submission closed (a refusal is left to the polls: the batch may have ended). */
const cancelOnClose = (c: Context, batchId: string, status: BatchApiSchema.BatchStatus) =>
  status === "cancelling" || BatchApiSchema.FINAL_STATUSES.has(status) ? Effect.void : Effect.ignore(c.provider.cancel(batchId))

/**
 * Poll until the batch is final, backing off from `initialPollMillis` to `maxPollMillis`; once the
 * submission closes, cancel the batch (once) and poll on until it ends.
 */
const pollStep = (c: Context, range: Planned, state: RangeState) => {
  const loop = (current: RangeState, delay: number, cancelled: boolean): Effect.Effect<readonly [RangeState, BatchApiSchema.Batch], BatchApiError> =>
    Effect.gen(function* () {
      const batch = yield* c.provider.retrieve(current.batchId!)
      const counts = batch.request_counts
      yield* c.emit({ _tag: "Progress", range: range.key, batchId: batch.id, status: batch.status, requestCounts: counts })
      const final = BatchApiSchema.FINAL_STATUSES.has(batch.status)
      const changed = batch.status !== current.status
      const next = final
        ? yield* record(c, current, {
          step: "ended",
          status: batch.status,
          ...(counts === undefined ? {} : { requestCounts: counts }),
          outputFileId: batch.output_file_id ?? null,
          errorFileId: batch.error_file_id ?? null,
          ...(batch.errors?.data === undefined ? {} : { errors: batch.errors.data })
        })
        : changed
        ? yield* record(c, current, { status: batch.status, ...(counts === undefined ? {} : { requestCounts: counts }) })
        : current
      if (final) return [next, batch] as const
      const closed = yield* Deferred.isDone(c.closing)
      if (closed && !cancelled) yield* cancelOnClose(c, batch.id, batch.status)
      // Until the cancel is asked, the close wakes the wait.
      const wait = Effect.sleep(Duration.millis(delay))
      yield* closed ? wait : Effect.raceFirst(wait, Deferred.await(c.closing))
      return yield* loop(next, Math.min(c.maxPollMillis, delay * 2), closed)
    })
  return loop(state, c.initialPollMillis, false)
}

/** The typed error of a `failed` batch, from its `errors`. */
export const failedError = (range: Planned, state: RangeState): BatchApiError => {
  const errors = state.errors ?? []
  const batchId = state.batchId
  const quota = errors.find((e) => e.code !== undefined && /quota|token_limit|billing/.test(e.code))
  if (quota !== undefined) return new QuotaError({ code: quota.code, batchId, detail: quota.message ?? "refused" })
  const tooMany = errors.find((e) => e.code === "too_many_requests" || e.code === "batch_too_large")
  if (tooMany !== undefined) return new TooManyRequestsError({ requests: range.items.length, batchId, detail: tooMany.message ?? "too many requests" })
  if (errors.length === 0) {
    return new ProviderError({ operation: "batch", status: undefined, code: "batch_failed", detail: `the batch ${batchId ?? ""} failed without a reason`, attempts: 1 })
  }
  return new InvalidLinesError({
    batchId,
    errors: errors.map((e) => {
      const it = e.line === undefined || e.line === null ? undefined : range.items[e.line - 1]
      return {
        ...(e.line === undefined || e.line === null ? {} : { line: e.line }),
        ...(it === undefined ? {} : { index: it.index, custom_id: it.request.custom_id }),
        ...(e.code === undefined ? {} : { code: e.code }),
        message: e.message ?? "refused",
        ...(e.param === undefined || e.param === null ? {} : { param: e.param })
      }
    })
  })
}

/** Downloads the output and error files of an ended batch and maps them to outcomes. */
const downloadStep = (c: Context, range: Planned, state: RangeState) =>
  Effect.gen(function* () {
    if (state.status === "failed") return yield* Effect.fail(failedError(range, state))
    const output = state.outputFileId ? yield* c.provider.content(state.outputFileId) : undefined
    const errors = state.errorFileId ? yield* c.provider.content(state.errorFileId) : undefined
    const mapped = Outcomes.map(range.items, output, errors, c.prices, 0)
    yield* c.emit({ _tag: "Ended", range: range.key, batchId: state.batchId!, status: state.status!, requestCounts: state.requestCounts, unfinished: mapped.unfinished })
    return { key: range.key, outcomes: mapped.outcomes, unfinished: mapped.unfinished, submitted: true }
  })

/** A range whose batch is not created: no outcome, or the budget's refusal for each request. */
const notSubmitted = (c: Context, range: Planned, reason: "budget" | "closed", detail: string, refusal?: ChatError.BudgetExceededError) =>
  Effect.as(c.emit({ _tag: "NotSubmitted", range: range.key, reason, requests: range.items.length, detail }), {
    key: range.key,
    outcomes: refusal === undefined ? [] : range.items.map((it): Batch.BatchOutcome => ({
      _tag: "Failure",
      custom_id: it.request.custom_id,
      index: it.index,
      attempts: 0,
      latencyMillis: 0,
      error: refusal
    })),
    unfinished: range.items.map((it) => it.request.custom_id),
    submitted: false
  })

const CLOSED = "the submission closed (deadline or stop) before its batch was created"

/**
 * A range with no batch yet to a created batch: skipped when every request is answered elsewhere;
 * its worst case held in the budget; uploaded; created unless the submission closed meanwhile.
 * Right: the created state and the hold; Left: the range's result without a batch.
 */
const startBatch = (c: Context, range: Planned, saved: RangeState | undefined, state: RangeState) =>
  Effect.gen(function* () {
    if (range.items.every((it) => c.answered(it.request.custom_id))) {
      return Either.left<Result>({ key: range.key, outcomes: [], unfinished: [], submitted: false })
    }
    if (yield* Deferred.isDone(c.closing)) return Either.left(yield* notSubmitted(c, range, "closed", CLOSED))
    const held = c.budget === undefined ? undefined : yield* Effect.either(c.budget.hold(range.items, false))
    if (held !== undefined && Either.isLeft(held)) return Either.left(yield* notSubmitted(c, range, "budget", held.left.message, held.left))
    const hold = held === undefined ? undefined : held.right
    // A saved `uploading` is a crashed run's intent: its upload may exist.
    const uploaded = state.step === "uploading" ? yield* uploadStep(c, range, state, saved !== undefined) : state
    // Checked again just before the create: the close may have come during the upload.
    if (yield* Deferred.isDone(c.closing)) {
      if (hold !== undefined) yield* c.budget!.release(hold)
      return Either.left(yield* notSubmitted(c, range, "closed", CLOSED))
    }
    return Either.right([yield* createStep(c, range, uploaded), hold] as const)
  })

/** Runs a range from wherever its state stands to its outcomes (not yet marked delivered). */
export const runRange = (c: Context, range: Planned): Effect.Effect<Result, BatchApiError> =>
  Effect.gen(function* () {
    const saved = c.ledger.get(range.key)
    let state = saved ?? fresh(range, yield* Clock.currentTimeMillis)
    // A saved `creating` is a crashed run's intent: its batch may exist.
    if (state.step === "creating") state = Option.getOrElse(yield* findCreated(c, range, state), () => state)
    let hold: Budget.Hold | undefined
    if (state.step === "uploading" || state.step === "uploaded" || state.step === "creating") {
      const started = yield* startBatch(c, range, saved, state)
      if (Either.isLeft(started)) return started.left
      ;[state, hold] = started.right
    } else if (c.budget !== undefined) {
      // A batch an earlier run created runs anyway: it counts, whether it fits or not.
      hold = yield* Effect.orDie(c.budget.hold(range.items, true))
    }
    if (state.step === "created") state = (yield* pollStep(c, range, state))[0]
    // A batch the provider refused costs nothing: its hold goes back before its refusal is raised.
    if (state.status === "failed" && hold !== undefined) {
      yield* c.budget!.release(hold)
      hold = undefined
    }
    const result = yield* downloadStep(c, range, state)
    if (hold !== undefined) yield* c.budget!.settle(hold, result.outcomes)
    return result
  })

/** Marks a range delivered once its outcomes were emitted, with the ids it left unfinished. */
export const delivered = (c: Context, result: Result): Effect.Effect<void, StoreError> => {
  const state = c.ledger.get(result.key)
  return state === undefined || !result.submitted ? Effect.void : Effect.asVoid(record(c, state, { step: "delivered", unfinished: result.unfinished }))
}
