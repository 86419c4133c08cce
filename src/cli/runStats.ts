/**
 * What `shepherd run` counts as outcomes arrive, in constant memory: counts by outcome, tokens, cost,
 * retries and a latency histogram; and how it is shown (progress lines, the summary).
 * @internal
 */
import type * as Batch from "../Batch.js"
import * as Pricing from "../Pricing.js"

/**
 * Latencies in logarithmic buckets 2% wide: p50/p95 to within 2% whatever the count, in a fixed
 * 1,024 slots (1 ms to beyond an hour).
 */
export class LatencyHistogram {
  private readonly counts = new Float64Array(1024)
  private total = 0
  private maxSeen = 0
  private static readonly base = Math.log(1.02)

  add(millis: number): void {
    const index = millis < 1 ? 0 : Math.min(1023, 1 + Math.floor(Math.log(millis) / LatencyHistogram.base))
    this.counts[index]!++
    this.total++
    if (millis > this.maxSeen) this.maxSeen = millis
  }

  get count(): number {
    return this.total
  }

  get max(): number {
    return this.maxSeen
  }

  /** The `q` quantile (0..1): the upper edge of its bucket, never above the largest value seen; 0 when empty. */
  quantile(q: number): number {
    if (this.total === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(this.maxSeen, i === 0 ? 1 : Math.exp(i * LatencyHistogram.base))
    }
    return this.maxSeen
  }
}

/**
 * Why a run stopped sending before every request had an outcome: the budget, the shared limits in
 * Redis, the key refused, the server unreachable, the output file that could not be written, another
 * file error, a signal.
 */
export type StopReason = "budget" | "limiter" | "key" | "unreachable" | "output" | "file" | "interrupted" | "aborted"

/** The running counts. */
export class RunStats {
  /** Valid requests in the input. */
  total = 0
  /** Invalid lines skipped (`--skip-invalid`). */
  invalid = 0
  /** Requests with a final outcome in the output before this run. */
  alreadyDone = 0
  /** Outcomes written by this run. */
  written = 0
  succeeded = 0
  /** Failures written, by kind: an HTTP status (`http_400`) or an error code (`timeout_attempt`). */
  readonly failed = new Map<string, number>()
  promptTokens = 0
  completionTokens = 0
  costMicroUsd = 0
  /** Successes whose model has no known price (their cost is not in `costMicroUsd`). */
  unpriced = 0
  /** Attempts beyond the first, over all outcomes. */
  retries = 0
  readonly latency = new LatencyHistogram()
  stoppedBy: StopReason | undefined = undefined
  /** Requests the budget refused (not sent, no line written: a rerun sends them). */
  budgetRefused = 0
  /** Requests refused because the shared limits (Redis) could not be reached (not sent, no line). */
  limiterRefused = 0
  /** Requests the provider refused for the key, or not sent after it did (no line). */
  keyRefused = 0
  /** Requests that never reached the server (refused, DNS, TLS, connect timeout) or were not sent after that (no line). */
  unreachable = 0
  /** The stop's reason in words (which URL, which error), for the summary. */
  stopDetail: string | undefined = undefined
  /** Failures written that a rerun sends again, by kind (`http_503`, `timeout_attempt`). */
  readonly unfinished = new Map<string, number>()
  /** `i/n` when this run is one shard of the input. */
  shard: string | undefined = undefined
  /** Why the output file could not be written (the run stopped: `stoppedBy` "output"). */
  outputError: string | undefined = undefined
  /** Answers received that could not be written (a rerun sends them again). */
  unwritten = 0
  /** With `--cache`: answers the cache gave, and what they cost when they were paid for. */
  cache: { hits: number; savedMicroUsd: number } | undefined = undefined

  constructor(readonly startedAtMillis: number) {}

  /** Outcomes written that a rerun keeps (not worth sending again). */
  finalWritten = 0

  /** Counts an outcome that was written; `kind` is its failure kind (undefined for a success). */
  record(outcome: Batch.BatchOutcome, kind: string | undefined, final: boolean): void {
    this.written++
    if (final) this.finalWritten++
    this.retries += Math.max(0, outcome.attempts - 1)
    this.latency.add(outcome.latencyMillis)
    if (outcome._tag === "Success") {
      this.succeeded++
      this.promptTokens += outcome.usage.promptTokens
      this.completionTokens += outcome.usage.completionTokens
      if (outcome.costMicroUsd._tag === "Some") this.costMicroUsd += outcome.costMicroUsd.value
      else this.unpriced++
      if (outcome.cached !== undefined && this.cache !== undefined) {
        this.cache.hits++
        if (outcome.cached.savedMicroUsd._tag === "Some") this.cache.savedMicroUsd += outcome.cached.savedMicroUsd.value
      }
    } else if (kind !== undefined) {
      this.failed.set(kind, (this.failed.get(kind) ?? 0) + 1)
      if (!final) this.unfinished.set(kind, (this.unfinished.get(kind) ?? 0) + 1)
    }
  }

  get failedCount(): number {
    let n = 0
    for (const count of this.failed.values()) n += count
    return n
  }

  /** Requests of the input that still have no final outcome (unsent, or failed in a way worth retrying). */
  get remaining(): number {
    return this.total - this.alreadyDone - this.finalWritten
  }
}

const seconds = (millis: number) => millis / 1000

/** Seconds as people read them, with a unit: `45s`, `3m05s`, `1h02m`; `?` when unknown. */
export const duration = (totalSeconds: number): string => {
  if (!Number.isFinite(totalSeconds)) return "?"
  const s = Math.max(0, Math.round(totalSeconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`
}

const tokens = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(n))

/** The figures a progress display shows. */
export interface Progress {
  readonly done: number
  readonly total: number
  readonly rate: number
  readonly etaSeconds: number
  readonly tokens: string
  readonly cost: string
  readonly errors: number
}

export const progress = (stats: RunStats, nowMillis: number): Progress => {
  const elapsed = seconds(nowMillis - stats.startedAtMillis)
  const rate = elapsed > 0 ? stats.written / elapsed : 0
  const toSend = stats.total - stats.alreadyDone
  return {
    done: stats.alreadyDone + stats.written,
    total: stats.total,
    rate,
    etaSeconds: rate > 0 ? (toSend - stats.written) / rate : Number.POSITIVE_INFINITY,
    tokens: tokens(stats.promptTokens + stats.completionTokens),
    cost: Pricing.format(stats.costMicroUsd),
    errors: stats.failedCount
  }
}

/** One plain progress line (stderr is not a terminal). */
export const progressLine = (stats: RunStats, nowMillis: number): string => {
  const p = progress(stats, nowMillis)
  const percent = p.total === 0 ? 100 : (100 * p.done) / p.total
  return `progress: ${p.done}/${p.total} (${percent.toFixed(1)}%) ${p.rate.toFixed(1)} req/s, ETA ${duration(p.etaSeconds)}, ` +
    `${p.tokens} tokens, ${p.cost}, ${p.errors} errors`
}

/** The summary as JSON (`--summary FILE`). */
export interface Summary {
  readonly input: string
  readonly output: string
  readonly total: number
  readonly invalidSkipped: number
  readonly alreadyDone: number
  readonly written: number
  readonly succeeded: number
  readonly failed: Readonly<Record<string, number>>
  /** Requests of the input still without a final outcome (a rerun sends them). */
  readonly remaining: number
  readonly stoppedBy: StopReason | null
  readonly budgetRefused: number
  readonly limiterRefused: number
  /** Requests refused for the key (401, or a 403 about the key), or not sent after that. */
  readonly keyRefused: number
  /** Requests that never reached the server, or were not sent once it proved unreachable. */
  readonly unreachable: number
  /** Why the run stopped, in words (which URL, which error); null when it did not stop early. */
  readonly stopDetail: string | null
  /** Failures written that a rerun sends again, by kind. */
  readonly unfinished: Readonly<Record<string, number>>
  /** `i/n` when the run was one shard of the input (`--shard`), else null. */
  readonly shard: string | null
  /** Why the output file could not be written, else null. */
  readonly outputError: string | null
  /** Answers received that could not be written to the output file. */
  readonly unwritten: number
  readonly elapsedSeconds: number
  readonly requestsPerSecond: number
  readonly latencyMillis: { readonly p50: number; readonly p95: number; readonly max: number }
  readonly tokens: { readonly prompt: number; readonly completion: number }
  readonly costMicroUsd: number
  readonly costUsd: string
  readonly unpriced: number
  readonly retries: number
  readonly rateLimited: number
  /** With `--cache`: answers the cache gave (nothing sent) and what they saved; else null. */
  readonly cache: { readonly hits: number; readonly savedMicroUsd: number; readonly savedUsd: string } | null
}

export const summary = (stats: RunStats, input: string, output: string, nowMillis: number, rateLimited: number): Summary => {
  const elapsed = seconds(nowMillis - stats.startedAtMillis)
  return {
    input,
    output,
    total: stats.total,
    invalidSkipped: stats.invalid,
    alreadyDone: stats.alreadyDone,
    written: stats.written,
    succeeded: stats.succeeded,
    failed: Object.fromEntries([...stats.failed.entries()].sort()),
    remaining: stats.remaining,
    stoppedBy: stats.stoppedBy ?? null,
    budgetRefused: stats.budgetRefused,
    limiterRefused: stats.limiterRefused,
    keyRefused: stats.keyRefused,
    unreachable: stats.unreachable,
    stopDetail: stats.stopDetail ?? null,
    unfinished: Object.fromEntries([...stats.unfinished.entries()].sort()),
    shard: stats.shard ?? null,
    outputError: stats.outputError ?? null,
    unwritten: stats.unwritten,
    elapsedSeconds: Math.round(elapsed * 1000) / 1000,
    requestsPerSecond: elapsed > 0 ? Math.round((stats.written / elapsed) * 10) / 10 : 0,
    latencyMillis: {
      p50: Math.round(stats.latency.quantile(0.5)),
      p95: Math.round(stats.latency.quantile(0.95)),
      max: Math.round(stats.latency.max)
    },
    tokens: { prompt: stats.promptTokens, completion: stats.completionTokens },
    costMicroUsd: stats.costMicroUsd,
    costUsd: Pricing.format(stats.costMicroUsd),
    unpriced: stats.unpriced,
    retries: stats.retries,
    rateLimited,
    cache: stats.cache === undefined ? null : { ...stats.cache, savedUsd: Pricing.format(stats.cache.savedMicroUsd) }
  }
}

/** The summary for people (stderr). */
export const summaryText = (s: Summary): string => {
  const failed = Object.entries(s.failed).map(([kind, n]) => `${kind} ${n}`).join(", ")
  const lines = [
    `shepherd run${s.shard === null ? "" : ` (shard ${s.shard})`}: ${s.written} outcomes written to ${s.output} in ${duration(s.elapsedSeconds)} (${s.requestsPerSecond} req/s)`,
    `  succeeded ${s.succeeded}, failed ${s.written - s.succeeded}${failed === "" ? "" : ` (${failed})`}` +
      (s.alreadyDone > 0 ? `, already answered ${s.alreadyDone}` : "") +
      (s.invalidSkipped > 0 ? `, invalid lines skipped ${s.invalidSkipped}` : ""),
    `  latency p50 ${s.latencyMillis.p50} ms, p95 ${s.latencyMillis.p95} ms, max ${s.latencyMillis.max} ms; retries ${s.retries}, 429s ${s.rateLimited}`,
    `  tokens ${s.tokens.prompt} in, ${s.tokens.completion} out; cost ${s.costUsd}` +
      (s.unpriced > 0 ? ` (plus ${s.unpriced} answers from models without a known price)` : "")
  ]
  if (s.cache !== null) lines.push(`  cache: ${s.cache.hits} answered from the cache (nothing sent), ${s.cache.savedUsd} saved`)
  if (s.remaining > 0) lines.push(`  ${s.remaining} requests have no final outcome: ${unfinishedWhy(s)}. Rerun the same command to send them.`)
  return lines.join("\n")
}

/** Why the requests that have no line were not sent (or refused), from the reason the run stopped. */
const stopText = (s: Summary): string => {
  const detail = s.stopDetail ?? undefined
  switch (s.stoppedBy) {
    case "budget":
      return `not sent: ${detail ?? "the budget was reached"}`
    case "limiter":
      return `not sent: ${detail ?? "the shared limits in Redis could not be reached"}`
    case "key":
      return `refused or not sent: ${detail ?? "the API refused the key"}`
    case "unreachable":
      return `not sent: ${detail ?? "the server could not be reached"}`
    case "output":
      return `not sent: ${s.output} could not be written (${s.outputError ?? detail ?? "unknown error"}; ${s.unwritten} answer${s.unwritten === 1 ? " was" : "s were"} received but not written)`
    case "file":
      return `not sent: the run stopped on an error: ${detail ?? "unknown"}`
    case "interrupted":
    case "aborted":
      return "not sent: the run was interrupted"
    case null:
      return s.unreachable > 0 ? "not sent: the server could not be reached" : "not sent"
  }
}

/** Why requests are left without a final outcome, from what actually happened. */
export const unfinishedWhy = (s: Summary): string => {
  const kinds = Object.entries(s.unfinished)
  const retryable = kinds.reduce((sum, [, count]) => sum + count, 0)
  const parts: Array<string> = []
  if (s.remaining - retryable > 0) parts.push(`${s.remaining - retryable} ${stopText(s)}`)
  if (retryable > 0) parts.push(`${retryable} failed in a way worth retrying (${kinds.map(([kind, count]) => `${kind} ${count}`).join(", ")})`)
  return parts.join("; ")
}
