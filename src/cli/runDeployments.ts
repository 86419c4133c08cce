/**
 * `shepherd run --deployments FILE.json`: the router's deployments from a file, checked against its
 * Schema before anything is built or sent. Keys are never written in the file: each deployment names
 * the environment variable that holds its key (`apiKeyEnv`). Every mistake is a usage error (exit 2)
 * naming the file and the path inside it (`deployments.1.limits.rpm`). After the run, the summary
 * has a row per deployment (`rows`).
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Pricing from "../Pricing.js"
import * as Router from "../Router.js"
import { parseDuration } from "./durationText.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"

const PositiveInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
const Name = Schema.String.pipe(Schema.minLength(1))
/** A duration with a unit, as the flags take it (`5s`, `2m`). */
const DurationText = Schema.String.pipe(Schema.filter((text) => {
  try {
    parseDuration(text)
    return true
  } catch (e) {
    return (e as Error).message
  }
}))

/** One deployment as the file gives it. */
const Deployment = Schema.Struct({
  name: Name,
  baseUrl: Name,
  /** The environment variable holding its key; none for a server that needs no key. */
  apiKeyEnv: Schema.optional(Name),
  models: Schema.Union(Schema.Array(Name).pipe(Schema.minItems(1)), Schema.Record({ key: Name, value: Name })),
  limits: Schema.optional(Schema.Struct({ rpm: Schema.optional(PositiveInt), tpm: Schema.optional(PositiveInt), maxInFlight: Schema.optional(PositiveInt) })),
  priority: Schema.optional(Schema.Number),
  maxRetries: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))),
  headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

/**
 * The file: the deployments, and the router's fallbacks, causes, context windows and cooldown.
 *
 * @since 0.2.0
 * @category schemas
 */
export const DeploymentsFile = Schema.Struct({
  deployments: Schema.Array(Deployment).pipe(Schema.minItems(1)),
  fallbacks: Schema.optional(Schema.Record({ key: Name, value: Schema.Array(Name) })),
  fallbackOn: Schema.optional(Schema.Array(Schema.Literal(...Router.FALLBACK_CAUSES))),
  contextWindows: Schema.optional(Schema.Record({ key: Name, value: PositiveInt })),
  cooldown: Schema.optional(Schema.Struct({ failures: Schema.optional(PositiveInt), initial: Schema.optional(DurationText), max: Schema.optional(DurationText) }))
})

const decode = Schema.decodeUnknownEither(DeploymentsFile, { errors: "first", onExcessProperty: "error" })

const usage = (file: string, detail: string) => new CliError({ detail: `--deployments ${file}: ${detail}`, exitCode: ExitStatus.USAGE })

/** Header names that carry a key. */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|api-key|x-api-key)$/i

/** A key written in the file is refused before anything else is read: it would sit on disk. */
const keyInFile = (raw: unknown): string | undefined => {
  const list = (raw as { deployments?: unknown } | null)?.deployments
  if (!Array.isArray(list)) return undefined
  const at = list.findIndex((d) => typeof d === "object" && d !== null && "apiKey" in d)
  if (at >= 0) return `deployments.${at}.apiKey: keys are never written in the file; put the key in an environment variable and name it with apiKeyEnv`
  for (const [i, d] of list.entries()) {
    const headers = (d as { headers?: unknown } | null)?.headers
    if (typeof headers !== "object" || headers === null) continue
    const name = Object.keys(headers).find((h) => CREDENTIAL_HEADER.test(h))
    if (name !== undefined) return `deployments.${i}.headers.${name}: keys are never written in the file; put the key in an environment variable and name it with apiKeyEnv`
  }
  return undefined
}

/** Where JSON.parse stopped (` at position N`), without the text it quotes. */
const jsonPosition = (e: unknown): string => {
  const match = /position (\d+)/.exec(e instanceof Error ? e.message : "")
  return match === null ? "" : ` (at position ${match[1]})`
}

/**
 * Reads the file into router options: each `apiKeyEnv` read from the environment (it must be set),
 * `window` (test-only) added to every deployment's limits.
 */
export const read = (file: string, window: import("effect/Duration").Duration | undefined): Effect.Effect<Router.Options, CliError> =>
  Effect.gen(function* () {
    const raw = yield* Effect.try({
      try: () => JSON.parse(Fs.readFileSync(file, "utf8")) as unknown,
      // JSON.parse's message quotes the text around the fault, which may be a key written in the file.
      catch: (e) => usage(file, `not readable as JSON${jsonPosition(e)}: check its syntax`)
    })
    const inFile = keyInFile(raw)
    if (inFile !== undefined) return yield* usage(file, inFile)
    const decoded = decode(raw)
    if (Either.isLeft(decoded)) {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      const path = (issue?.path ?? []).map(String).join(".")
      return yield* usage(file, `${path === "" ? "" : `${path}: `}${issue?.message ?? "invalid"}`)
    }
    const f = decoded.right
    const deployments: Array<Router.Deployment> = []
    for (const [i, d] of f.deployments.entries()) {
      let apiKey: Redacted.Redacted<string> | undefined
      if (d.apiKeyEnv !== undefined) {
        const text = process.env[d.apiKeyEnv]
        if (text === undefined || text.trim() === "") return yield* usage(file, `deployments.${i}.apiKeyEnv names ${d.apiKeyEnv}, which is not set: export it first`)
        apiKey = Redacted.make(text)
      }
      deployments.push({
        name: d.name,
        baseUrl: d.baseUrl,
        apiKey,
        models: d.models,
        limits: { ...d.limits, window },
        priority: d.priority,
        retry: d.maxRetries === undefined ? undefined : { maxRetries: d.maxRetries },
        headers: d.headers
      })
    }
    const cooldown = f.cooldown
    return {
      deployments,
      fallbacks: f.fallbacks,
      fallbackOn: f.fallbackOn,
      contextWindows: f.contextWindows,
      cooldown: cooldown === undefined ? undefined : {
        failures: cooldown.failures,
        initial: cooldown.initial === undefined ? undefined : parseDuration(cooldown.initial),
        max: cooldown.max === undefined ? undefined : parseDuration(cooldown.max)
      } as Partial<Router.CooldownOptions>
    }
  })

/** The summary's rows, one per deployment: requests, 429s, cooldowns, cost. */
export const rows = (stats: ReadonlyArray<Router.DeploymentStats>): string => {
  if (stats.length === 0) return ""
  const width = Math.max(10, ...stats.map((s) => s.deployment.length))
  const head = `  ${"deployment".padEnd(width)}  requests  succeeded  429s  cooldowns  cost`
  return [head, ...stats.map((s) =>
    `  ${s.deployment.padEnd(width)}  ${String(s.requests).padStart(8)}  ${String(s.succeeded).padStart(9)}  ${String(s.rateLimited).padStart(4)}  ${String(s.cooldowns).padStart(9)}  ${Pricing.format(Math.round(s.costUsd * 1e6))}`
  )].join("\n")
}
