/**
 * The circuit breaker of one deployment, on explicit times: failed attempts in a row take it out
 * for a growing period (open), after which one probe is let through (half-open) and decides whether
 * it comes back (closed) or goes out again for twice as long. A refused key takes it out for good.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import type { ChatError } from "../../ChatError.js"
import { keyRefused } from "./causes.js"

/** The breaker's settings, in ms. */
export interface Settings {
  readonly failures: number
  readonly initialMillis: number
  readonly maxMillis: number
}

/** What an attempt's end says of the deployment. */
export type Verdict = "up" | "down" | "keyRefused" | "neither"

/** What the breaker lets an attempt do: go, go as the probe, or not go. */
export type Gate = "go" | "probe" | "refused"

/** How long callers wait before asking again while a probe is out, at most (ms). */
const PROBE_RECHECK_MILLIS = 1_000

/** What an attempt's exit says of the deployment that answered it. */
export const verdictOf = (exit: Exit.Exit<unknown, ChatError>): Verdict => {
  if (Exit.isSuccess(exit)) return "up"
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") return "neither"
  const error = failure.value
  switch (error._tag) {
    case "ApiError":
      if (keyRefused(error)) return "keyRefused"
      return error.status >= 500 ? "down" : "up"
    case "RateLimitError":
      // A 429 says the deployment is busy, not that it works: it neither opens nor closes the breaker
      // (a server alternating 503 and 429 would otherwise never be taken out).
      return "neither"
    case "TransportError":
      return error.code === "RESPONSE_TOO_LARGE" || error.code === "EVENT_TOO_LARGE" ? "up" : "down"
    case "TimeoutError":
      return error.phase === "connect" || error.phase === "attempt" ? "down" : "neither"
    case "ResponseDecodeError":
      // Answering 200 with something that is not an answer, fast: it would win every choice.
      return "down"
    default:
      return "neither"
  }
}

/** One deployment's breaker. */
export class Breaker {
  private state: "closed" | "open" | "halfOpen" | "out" = "closed"
  private failures = 0
  private openings = 0
  private until = 0
  private probing = false
  /** Why it is out for the run, once it is. */
  reason: string | undefined

  constructor(private readonly settings: Settings) {}

  /** The earliest time a request could be sent to it (epoch ms); Infinity once it is out for the run. */
  availableAt(now: number): number {
    switch (this.state) {
      case "closed":
        return now
      case "out":
        return Number.POSITIVE_INFINITY
      case "open":
        return Math.max(now, this.until)
      case "halfOpen":
        return this.probing ? now + Math.min(PROBE_RECHECK_MILLIS, this.settings.initialMillis) : now
    }
  }

  /** The end of the current cooldown (epoch ms), for messages. */
  get cooldownUntil(): number {
    return this.until
  }

  /** Asked as an attempt is about to be sent. */
  gate(now: number): Gate {
    switch (this.state) {
      case "closed":
        return "go"
      case "out":
        return "refused"
      case "open":
        if (now < this.until) return "refused"
        this.state = "halfOpen"
        this.probing = true
        return "probe"
      case "halfOpen":
        if (this.probing) return "refused"
        this.probing = true
        return "probe"
    }
  }

  /**
   * Records how an attempt ended; says whether the deployment just went out (`"opened"`: a cooldown
   * began; `"out"`: for the run).
   */
  record(verdict: Verdict, probe: boolean, now: number): "opened" | "out" | undefined {
    if (probe) this.probing = false
    if (this.state === "out") return undefined
    switch (verdict) {
      case "up":
        this.state = "closed"
        this.failures = 0
        this.openings = 0
        return undefined
      case "keyRefused":
        this.state = "out"
        return "out"
      case "neither":
        return undefined
      case "down":
        // Attempts that were in flight when it went out do not lengthen the cooldown.
        if (this.state === "open") return undefined
        if (this.state === "closed" && ++this.failures < this.settings.failures) return undefined
        this.state = "open"
        this.failures = 0
        this.until = now + Math.min(this.settings.maxMillis, this.settings.initialMillis * Math.pow(2, this.openings))
        this.openings++
        return "opened"
    }
  }
}
