/**
 * The mock server's option checks (`MockServer.validateOptions`).
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Validate from "../../internal/validate.js"
import type { BatchApiOptions, Options } from "../MockServer.js"
import * as Faults from "./faults.js"

/** Checks every option (defaults filled in): a `ConfigError` naming the first bad one. */
export const validateOptions = (o: Options): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    yield* Validate.between(["port"], o.port, 0, 65535)
    yield* Validate.nonNegativeInt(["port"], o.port)
    yield* Validate.nonEmptyString(["host"], o.host)
    const latency = o.latency as unknown
    if (typeof latency === "object" && latency !== null && "uniform" in latency) {
      const range = (latency as { uniform: unknown }).uniform
      if (!Array.isArray(range) || range.length !== 2) return yield* Effect.fail(Validate.invalid(["latency", "uniform"], "must be [low, high]"))
      const low = yield* Validate.nonNegativeDuration(["latency", "uniform", "0"], range[0])
      const high = yield* Validate.nonNegativeDuration(["latency", "uniform", "1"], range[1])
      if (Duration.greaterThan(low, high)) return yield* Effect.fail(Validate.invalid(["latency", "uniform"], "must be [low, high] with low <= high"))
    } else if (typeof latency === "object" && latency !== null && "logNormal" in latency) {
      const ln = (latency as { logNormal: { median?: unknown; sigma?: unknown } }).logNormal
      yield* Validate.positiveDuration(["latency", "logNormal", "median"], ln?.median)
      yield* Validate.nonNegative(["latency", "logNormal", "sigma"], ln?.sigma)
    } else {
      yield* Validate.nonNegativeDuration(["latency"], latency)
    }
    if (!(typeof o.seed === "number" && Number.isFinite(o.seed))) return yield* Effect.fail(Validate.invalid(["seed"], `must be a finite number, got ${String(o.seed)}`))
    yield* Validate.between(["faultRate"], o.faultRate, 0, 1)
    if (!Array.isArray(o.faults)) return yield* Effect.fail(Validate.invalid(["faults"], "must be an array of faults"))
    for (const [i, fault] of o.faults.entries()) yield* Faults.checkFault(["faults", String(i)], fault)
    if (o.faultRate > 0 && o.faults.length === 0) return yield* Effect.fail(Validate.invalid(["faults"], "must hold at least one fault when faultRate is above 0"))
    if (!Array.isArray(o.script)) return yield* Effect.fail(Validate.invalid(["script"], `must be an array of faults and "ok"`))
    for (const [i, step] of o.script.entries()) if (step !== "ok") yield* Faults.checkFault(["script", String(i)], step)
    if (o.apiKey !== undefined) yield* Validate.apiKey(["apiKey"], o.apiKey, "the mock server's apiKey")
    yield* Validate.boolean(["validate"], o.validate)
    yield* Validate.positiveInt(["journalLimit"], o.journalLimit)
    if (o.rpm !== undefined) yield* Validate.positiveInt(["rpm"], o.rpm)
    if (o.tpm !== undefined) yield* Validate.positiveInt(["tpm"], o.tpm)
    if (typeof o.streaming !== "object" || o.streaming === null) return yield* Effect.fail(Validate.invalid(["streaming"], "must be an object"))
    if (o.streaming.chunkChars !== undefined) yield* Validate.positiveInt(["streaming", "chunkChars"], o.streaming.chunkChars)
    if (o.streaming.interval !== undefined) yield* Validate.nonNegativeDuration(["streaming", "interval"], o.streaming.interval)
    yield* validateBatchApi(o.batchApi)
  })

/** Checks the Batch API's options. */
const validateBatchApi = (b: BatchApiOptions) =>
  Effect.gen(function* () {
    if (typeof b !== "object" || b === null) return yield* Effect.fail(Validate.invalid(["batchApi"], "must be an object"))
    for (const key of ["validating", "finalizing"] as const) if (b[key] !== undefined) yield* Validate.nonNegativeDuration(["batchApi", key], b[key])
    for (const key of ["perRequest", "completionWindow"] as const) if (b[key] !== undefined) yield* Validate.positiveDuration(["batchApi", key], b[key])
    for (const key of ["maxRequestsPerFile", "maxFileBytes"] as const) if (b[key] !== undefined) yield* Validate.positiveInt(["batchApi", key], b[key])
    for (const key of ["fileFaults", "batchFaults"] as const) {
      for (const [i, fault] of (b[key] ?? []).entries()) {
        if (fault !== "ok" && !["server_error", "rate_limit", "quota"].includes((fault as { type?: unknown })?.type as string)) {
          return yield* Effect.fail(Validate.invalid(["batchApi", key, String(i)], `must be "ok" or a fault of type server_error, rate_limit or quota`))
        }
      }
    }
  })

