/**
 * The mock server's state: its options, journal, counters, script, rate-limit buckets and timers,
 * and the one writer of whole JSON answers (which counts each status sent).
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Http from "node:http"
import type { Fault, JournalEntry, Options } from "../MockServer.js"
import * as BatchApiMock from "./batchApi.js"
import * as Content from "./content.js"
import * as Limits from "./limits.js"

/** The counters, as `Stats` reports them. */
export interface Counters {
  requests: number
  byStatus: Record<string, number>
  faults: Record<string, number>
  hungUp: number
  rateLimited: number
}

const noCounters = (): Counters => ({ requests: 0, byStatus: {}, faults: {}, hungUp: 0, rateLimited: 0 })

/** One server's mutable state. */
export class State {
  /** The answers of the next POST requests ("ok" for a normal answer). */
  script: Array<Fault | "ok">
  journal: Array<JournalEntry> = []
  seq = 0
  stats: Counters = noCounters()
  limits: Limits.Limits
  /** Pending delays (latency, stream intervals), cleared when the server closes. */
  readonly timers = new Set<NodeJS.Timeout>()
  readonly random: () => number
  readonly sampleLatency: () => number
  /** `/v1/files` and `/v1/batches`, on the wall clock. */
  readonly batchApi: BatchApiMock.BatchApi

  constructor(readonly config: Options) {
    this.batchApi = BatchApiMock.make(config.batchApi)
    this.script = [...config.script]
    this.random = Content.mulberry32(config.seed)
    this.sampleLatency = Content.latencySampler(config.latency, this.random)
    this.limits = Limits.make(config.rpm, config.tpm, Duration.toMillis(config.window))
  }

  /** Clears the journal and the counters, refills the rate-limit buckets, forgets the Batch API's files and batches. */
  reset(): void {
    this.batchApi.reset()
    this.journal = []
    this.stats = noCounters()
    this.limits = Limits.make(this.config.rpm, this.config.tpm, Duration.toMillis(this.config.window))
  }

  /** The scripted answer if one is left, else a random fault at `faultRate`, else none. */
  nextFault(): Fault | undefined {
    const scripted = this.script.shift()
    if (scripted !== undefined) return scripted === "ok" ? undefined : scripted
    if (this.config.faultRate > 0 && this.config.faults.length > 0 && this.random() < this.config.faultRate) {
      return this.config.faults[Math.floor(this.random() * this.config.faults.length)]
    }
    return undefined
  }

  /** Records the status of an answer about to be sent. */
  countStatus(entry: JournalEntry, status: number): void {
    entry.status = status
    this.stats.byStatus[status] = (this.stats.byStatus[status] ?? 0) + 1
  }

  /** Records the fault an answer carries. */
  countFault(entry: JournalEntry, type: Fault["type"]): void {
    entry.fault = type
    this.stats.faults[type] = (this.stats.faults[type] ?? 0) + 1
  }

  /** Runs `f` after `millis`, unless the server closes first. */
  later(millis: number, f: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      f()
    }, millis)
    this.timers.add(timer)
  }
}

/** Sends a whole answer (JSON unless `headers` say otherwise) with its request id, and counts its status. */
export const send = (state: State, entry: JournalEntry, res: Http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void => {
  state.countStatus(entry, status)
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "x-request-id": `req_mock_${entry.seq}`,
    ...headers
  })
  res.end(body)
}
