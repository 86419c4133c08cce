/**
 * The adaptive pace: when the next request may start, from what the server's answers said. Two parts,
 * and a request starts when both allow it:
 *
 * - Header buckets. The server's `x-ratelimit-limit-*`, `-remaining-*` and `-reset-*` headers
 *   describe its request and token buckets; each admission reserves from the client's copy, so
 *   requests arrive as the buckets refill. Whatever the headers say, a bucket never refills faster
 *   than `limit` per minute (what a per-minute limit means) and never holds more than `limit`, and a
 *   429 empties it (the server has just said it was empty).
 * - An AIMD request rate, for servers whose headers are missing, lag, or describe another bucket
 *   than the one they enforce. Unset (no pacing) until 429s arrive; then set just under the rate the
 *   server was delivering (over its latest successes). Later 429s lower it: in a burst (a quarter of
 *   the answers or more) by `BETA` or to the delivered rate; in a trickle, by twice their share, at
 *   most once per `TRICKLE_ANSWERS` answers. 429s for requests already under way at the last cut are
 *   the same overshoot and count once. Each success adds back a step: the cut within
 *   `RECOVERY_SUCCESSES` successes up to the rate the server let through, then `PLATEAU` times slower
 *   (probing for more). This is how TCP's congestion control finds a link's rate; the gates keep a
 *   server that refuses a few percent at random from driving the rate down to nothing.
 *
 * Every method takes the time explicitly, so the algorithm is tested on plain numbers. The model of
 * the server's headers sits here too: `parseResetDuration` reads their reset durations, and
 * `ServerPace.observe` their counters.
 * @internal
 */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Reads OpenAI's reset durations (`x-ratelimit-reset-*`): `1s`, `6m0s`, `20ms`, `1.5s`, `1h2m3s`, in
 * ms. Undefined when unreadable.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseResetDuration = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  let total = 0
  let rest = trimmed
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest)
    if (match === null) return undefined
    total += Number(match[1]) * UNITS[match[2]!]!
    rest = rest.slice(match[0].length)
  }
  return total
}

/**
 * Multiplicative decrease on a 429 despite pacing. 0.7 as CUBIC's: the sawtooth averages ~85% of the limit.
 *
 * @since 0.2.0
 * @category constants
 */
export const BETA = 0.7
/**
 * Successes to win back one decrease (bench/ratelimit --behaviours, test/limitsPace.test.ts).
 *
 * @since 0.2.0
 * @category constants
 */
export const RECOVERY_SUCCESSES = 150
/**
 * The slowest AIMD rate: one request a minute (per ms).
 *
 * @since 0.2.0
 * @category constants
 */
export const MIN_RATE = 1 / 60_000
/** The delivered rate is measured over the latest this many successes (older ones, e.g. a slow warm-up, are forgotten). */
const SAMPLE = 64
/** Successes needed before the delivered rate is trusted as an estimate. */
const MIN_SAMPLE = 8
/**
 * A 429 sets or lowers the rate only when the answers since the last decrease number
 * `RECOVERY_SUCCESSES` (a whole recovery), or `BURST_ANSWERS` of which `BURST_SHARE` were 429s (a rate
 * far above the server's). A server that answers 429 at random, whatever the rate (a few percent of
 * overload refusals), then costs one decrease per recovery and cannot drive the rate down to nothing.
 */
const BURST_ANSWERS = 20
const TRICKLE_ANSWERS = 50
const BURST_SHARE = 0.25
/** Past the rate of the last decrease, the rate grows this many times slower: it probes, as CUBIC's plateau does. */
const PLATEAU = 4
/** A per-minute limit. */
const MINUTE = 60_000

/** One of the server's buckets as its headers describe it: `level` units left at `at`, refilled at `rate` per ms. */
interface Bucket {
  level: number
  rate: number
  at: number
  limit: number
}

/**
 * When a request may start, and whether the pace behind that is slower than the caller accepts.
 *
 * @since 0.2.0
 * @category models
 */
export interface Plan {
  /** Earliest start (same clock as `now`). */
  readonly at: number
  /**
   * Set when some part of the pace makes the request wait longer than `maxWaitMillis` and its own
   * gap between two requests is longer than that too (a slow pace, not a long queue): the wait it
   * asks for, in ms.
   */
  readonly tooSlowMillis: number | undefined
}

const headerNumber = (headers: Readonly<Record<string, string | undefined>>, name: string): number | undefined => {
  const value = headers[name]
  if (value === undefined || value.trim() === "") return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

const levelAt = (bucket: Bucket, now: number): number => Math.min(bucket.limit, bucket.level + Math.max(0, now - bucket.at) * bucket.rate)

/** The AIMD rate's state. */
interface Aimd {
  /** Requests per ms; undefined: not pacing. */
  rate: number | undefined
  /** Earliest start of the next request. */
  next: number
  /** What one success adds to `rate` (below `ceiling`; past it, `step / PLATEAU`). */
  step: number
  /** The rate when it last fell: the server refused at about this rate. */
  ceiling: number
  /** When the rate last fell; a 429 for a request started before then is the same overshoot. */
  lastDecrease: number
  /** The times of the latest `SAMPLE` successes (a ring), since the last decrease: the rate the server delivered. */
  readonly successes: Array<number>
  delivered: number
  /** Answers, and 429s among them, to requests started since the last decrease. */
  answered: number
  limited: number
}

/**
 * The adaptive pace of one limiter: the server's header buckets and the AIMD rate (see the module's
 * comment). Reset durations are read with `parse` (`parseResetDuration` unless a test gives another).
 *
 * @since 0.2.0
 * @category models
 */
export class ServerPace {
  private requests: Bucket | undefined
  private tokens: Bucket | undefined
  private readonly aimd: Aimd = { rate: undefined, next: 0, step: 0, ceiling: 0, lastDecrease: Number.NEGATIVE_INFINITY, successes: [], delivered: 0, answered: 0, limited: 0 }

  /** @param parse reads a reset duration (`1s`, `6m0s`) into ms */
  constructor(private readonly parse: (text: string | undefined) => number | undefined = parseResetDuration) {}

  /** Whether the server reports token limits. */
  get countsTokens(): boolean {
    return this.tokens !== undefined
  }

  /** The AIMD rate in requests per minute (undefined: not pacing), for tests and metrics. */
  get aimdPerMinute(): number | undefined {
    return this.aimd.rate === undefined ? undefined : this.aimd.rate * MINUTE
  }

  /** The refill rate of the request bucket in units per minute (undefined: none), for tests. */
  bucketPerMinute(kind: "requests" | "tokens"): number | undefined {
    const bucket = kind === "requests" ? this.requests : this.tokens
    return bucket === undefined ? undefined : bucket.rate * MINUTE
  }

  /**
   * When a request of `tokens` arriving at `now` may start; reserves nothing. A header bucket whose
   * own pace is slower than `maxWaitMillis` is forgotten (its headers describe no per-minute limit
   * this caller can wait for: the next answer tells again).
   */
  plan(tokens: number, now: number, maxWaitMillis: number = Number.POSITIVE_INFINITY): Plan {
    let at = now
    let tooSlowMillis: number | undefined
    const consider = (start: number, gap: number): boolean => {
      at = Math.max(at, start)
      if (start - now > maxWaitMillis && gap > maxWaitMillis) {
        tooSlowMillis = Math.max(tooSlowMillis ?? 0, start - now)
        return true
      }
      return false
    }
    const bucketStart = (bucket: Bucket, cost: number) => {
      const level = levelAt(bucket, now)
      return level >= cost ? now : now + Math.ceil((cost - level) / bucket.rate)
    }
    if (this.requests !== undefined && consider(bucketStart(this.requests, 1), 1 / this.requests.rate)) this.requests = undefined
    if (this.tokens !== undefined && tokens > 0 && consider(bucketStart(this.tokens, tokens), tokens / this.tokens.rate)) this.tokens = undefined
    const rate = this.aimd.rate
    if (rate !== undefined) consider(Math.max(now, Math.ceil(this.aimd.next)), 1 / rate)
    return { at, tooSlowMillis }
  }

  /** Takes a request of `tokens` starting at `at` (planned at `now`) from the buckets and the AIMD rate. */
  reserve(tokens: number, now: number, at: number): void {
    for (const [bucket, cost] of [[this.requests, 1], [this.tokens, tokens]] as const) {
      if (bucket === undefined || cost <= 0) continue
      bucket.level = levelAt(bucket, now) - cost
      bucket.at = now
    }
    const a = this.aimd
    if (a.rate !== undefined) a.next = Math.max(a.next, at) + 1 / a.rate
  }

  /** A request started at `startedAt` was answered with success. */
  succeeded(startedAt: number, now: number): void {
    const a = this.aimd
    a.successes[a.delivered % SAMPLE] = now
    a.delivered++
    if (startedAt >= a.lastDecrease) a.answered++
    if (a.rate !== undefined) a.rate += a.rate < a.ceiling ? a.step : a.step / PLATEAU
  }

  /** A request started at `startedAt` was answered 429 at `now`. */
  rateLimited(startedAt: number, now: number): void {
    for (const bucket of [this.requests, this.tokens]) {
      if (bucket === undefined) continue
      bucket.level = Math.min(levelAt(bucket, now), 0)
      bucket.at = now
    }
    const a = this.aimd
    if (startedAt < a.lastDecrease) return
    a.answered++
    a.limited++
    const burst = a.answered >= BURST_ANSWERS && a.limited >= BURST_SHARE * a.answered
    if (a.rate === undefined ? a.answered < BURST_ANSWERS || a.limited < 2 : a.answered < TRICKLE_ANSWERS && !burst) return
    const delivered = this.deliveredRate(now)
    const share = a.limited / a.answered
    if (a.rate === undefined) {
      // Nothing delivered yet: nothing to go by but the server's pause.
      if (delivered === undefined) return
      a.ceiling = delivered
      a.rate = BETA * delivered
    } else if (burst) {
      // Far above the server's rate: down by BETA at least, to what it delivered when that is lower, by BETA^2 at most.
      a.ceiling = a.rate * (1 - share)
      a.rate = Math.min(BETA * a.rate, Math.max(delivered ?? 0, BETA * BETA * a.rate))
    } else {
      // A trickle: the rate the server let through is about rate x (1 - share); go under it by twice the share.
      a.ceiling = a.rate * (1 - share)
      a.rate = a.rate * Math.max(BETA, 1 - 2 * share)
    }
    a.rate = Math.max(a.rate, MIN_RATE)
    a.step = (Math.max(a.ceiling - a.rate, a.rate * (1 / BETA - 1)) / RECOVERY_SUCCESSES)
    a.next = Math.max(a.next, now)
    a.lastDecrease = now
    a.delivered = 0
    a.answered = 0
    a.limited = 0
  }

  /** Successes per ms over the latest ones (up to `SAMPLE`) since the last decrease, up to `now`. */
  private deliveredRate(now: number): number | undefined {
    const a = this.aimd
    const n = Math.min(a.delivered, SAMPLE)
    if (n < MIN_SAMPLE) return undefined
    // The ring's oldest entry: the next to be overwritten once it is full.
    const oldest = a.successes[a.delivered <= SAMPLE ? 0 : a.delivered % SAMPLE]!
    return n / Math.max(1, now - oldest)
  }

  /**
   * Reads the server's counters into the buckets. The level is only ever lowered from a header (the
   * client's own reservations are already in it; the header adds what others spent), and requests
   * still outstanding are taken off what the server says is left: some of them it has not seen yet.
   */
  observe(headers: Readonly<Record<string, string | undefined>>, pendingRequests: number, pendingTokens: number, now: number): void {
    this.requests = this.observeOne(this.requests, headers, "requests", pendingRequests, now)
    this.tokens = this.observeOne(this.tokens, headers, "tokens", pendingTokens, now)
  }

  private observeOne(
    current: Bucket | undefined,
    headers: Readonly<Record<string, string | undefined>>,
    kind: "requests" | "tokens",
    pending: number,
    now: number
  ): Bucket | undefined {
    const remaining = headerNumber(headers, `x-ratelimit-remaining-${kind}`)
    const limit = headerNumber(headers, `x-ratelimit-limit-${kind}`)
    if (remaining === undefined || limit === undefined || !(limit > 0)) return current
    const reset = this.parse(headers[`x-ratelimit-reset-${kind}`])
    const perMinute = limit / MINUTE
    // A reset shorter than the headers allow, or none, does not speed the refill past limit a minute.
    const told = reset !== undefined && reset > 0 && limit > remaining ? (limit - remaining) / reset : perMinute
    const rate = Math.min(told, perMinute)
    const level = Math.min(limit, remaining) - pending
    if (current === undefined) return { level, rate, at: now, limit }
    current.level = Math.min(levelAt(current, now), level)
    current.rate = rate
    current.limit = limit
    current.at = now
    return current
  }
}
