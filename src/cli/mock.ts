/**
 * `shepherd mock`: MockServer as a process of its own. The base URL is printed alone on the first
 * line of stdout (for scripts); the server runs until SIGINT or SIGTERM.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { parseDuration } from "./durationText.js"
import * as MockServer from "../testing/MockServer.js"
import * as ConfigErrors from "./configError.js"
import { CliError } from "./error.js"


const invalid = (e: unknown) => HelpDoc.p(e instanceof Error ? e.message : String(e))

/** `50ms` (fixed), `20ms..80ms` (uniform) or `lognormal:50ms:0.5` (median and sigma). */
export const parseLatency = (text: string): MockServer.Latency => {
  const range = /^(.+)\.\.(.+)$/.exec(text)
  if (range !== null) return { uniform: [parseDuration(range[1]!), parseDuration(range[2]!)] }
  const logNormal = /^lognormal:([^:]+):([\d.]+)$/.exec(text)
  if (logNormal !== null) return { logNormal: { median: parseDuration(logNormal[1]!), sigma: Number(logNormal[2]) } }
  return parseDuration(text)
}

export const parseFaults = (text: string, retryAfterSeconds: number): Array<MockServer.Fault> =>
  text.split(",").map((name) => name.trim()).filter((name) => name !== "").map((name): MockServer.Fault => {
    switch (name) {
      case "rate_limit":
        return { type: "rate_limit", retryAfterSeconds }
      case "server_error":
      case "bad_request":
      case "reset":
      case "hang":
      case "malformed_json":
      case "truncated_body":
      case "stream_stall":
      case "stream_disconnect":
      case "stream_error":
        return { type: name }
      default:
        throw new Error(`unknown fault ${JSON.stringify(name)}; choose from ${MockServer.FAULT_TYPES.join(", ")}`)
    }
  })

export const parseJsonContent = (text: string): MockServer.JsonContentOptions => {
  const flags = new Set(text.split(",").map((x) => x.trim()))
  for (const flag of flags) {
    if (!["clean", "fence", "prose", "trailing-comma", "truncate"].includes(flag)) {
      throw new Error(`unknown JSON content defect ${JSON.stringify(flag)}; choose from clean, fence, prose, trailing-comma, truncate`)
    }
  }
  return { fence: flags.has("fence"), prose: flags.has("prose"), trailingComma: flags.has("trailing-comma"), truncate: flags.has("truncate") }
}

/** `ok,server_error,rate_limit,quota`: the answers of the next file (or batch) endpoint requests, in order. */
export const parseBatchFaults = (text: string, retryAfterSeconds: number): Array<MockServer.BatchApiFault | "ok"> =>
  text.split(",").map((name) => name.trim()).filter((name) => name !== "").map((name): MockServer.BatchApiFault | "ok" => {
    switch (name) {
      case "ok":
        return "ok"
      case "rate_limit":
        return { type: "rate_limit", retryAfterSeconds }
      case "server_error":
      case "quota":
        return { type: name }
      default:
        throw new Error(`unknown Batch API fault ${JSON.stringify(name)}; choose from ok, server_error, rate_limit, quota`)
    }
  })

const durationFlag = (name: string, fallback: string, description: string) =>
  Options.text(name).pipe(Options.withDefault(fallback), Options.withDescription(description), Options.mapTryCatch(parseDuration, invalid))

const options = {
  port: Options.integer("port").pipe(Options.withDefault(0), Options.withDescription("TCP port; 0 picks a free one")),
  host: Options.text("host").pipe(Options.withDefault("127.0.0.1")),
  latency: Options.text("latency").pipe(
    Options.withDefault("0ms"),
    Options.withDescription("50ms fixed, 20ms..80ms uniform, or lognormal:50ms:0.5"),
    Options.mapTryCatch(parseLatency, invalid)
  ),
  seed: Options.integer("seed").pipe(Options.withDefault(1)),
  faultRate: Options.float("fault-rate").pipe(Options.withDefault(0), Options.withDescription("share of requests answered with a fault, 0 to 1")),
  faults: Options.text("faults").pipe(
    Options.withDefault("rate_limit,server_error"),
    Options.withDescription(`comma-separated: ${MockServer.FAULT_TYPES.join(", ")}`),
    Options.mapTryCatch((text) => { parseFaults(text, 1); return text }, invalid)
  ),
  retryAfter: Options.integer("retry-after").pipe(Options.withDefault(1), Options.withDescription("seconds, sent with rate_limit faults")),
  jsonContent: Options.text("json-content").pipe(
    Options.withDescription("answer with JSON content: clean, or defects fence,prose,trailing-comma,truncate"),
    Options.mapTryCatch(parseJsonContent, invalid),
    Options.optional
  ),
  apiKeyEnv: Options.text("api-key-env").pipe(Options.optional, Options.withDescription("require the bearer token held in this environment variable")),
  noValidate: Options.boolean("no-validate").pipe(Options.withDescription("accept request bodies without checking them")),
  rpm: Options.integer("rpm").pipe(Options.optional, Options.withDescription("requests per minute allowed; over it, 429 with retry-after")),
  tpm: Options.integer("tpm").pipe(Options.optional, Options.withDescription("tokens per minute allowed (prompt plus max_tokens)")),
  streamChunkChars: Options.integer("stream-chunk-chars").pipe(Options.withDefault(8), Options.withDescription("characters of content per streamed chunk")),
  streamInterval: Options.text("stream-interval").pipe(
    Options.withDefault("0ms"),
    Options.withDescription("delay between streamed chunks"),
    Options.mapTryCatch(parseDuration, invalid)
  ),
  batchValidating: durationFlag("batch-validating", "1s", "Batch API: time a batch stays validating"),
  batchPerRequest: durationFlag("batch-per-request", "10ms", "Batch API: time each request of a batch takes, one after another"),
  batchFinalizing: durationFlag("batch-finalizing", "1s", "Batch API: time finalizing (and cancelling) lasts"),
  batchWindow: durationFlag("batch-window", "24h", "Batch API: completion window; past it, unfinished requests expire"),
  batchFileFaults: Options.text("batch-file-faults").pipe(
    Options.withDefault(""),
    Options.withDescription("Batch API: answers of the next /v1/files requests, comma-separated: ok, server_error, rate_limit, quota"),
    Options.mapTryCatch((text) => { parseBatchFaults(text, 1); return text }, invalid)
  ),
  batchFaults: Options.text("batch-faults").pipe(
    Options.withDefault(""),
    Options.withDescription("Batch API: answers of the next /v1/batches requests, as --batch-file-faults"),
    Options.mapTryCatch((text) => { parseBatchFaults(text, 1); return text }, invalid)
  )
}

/** Option paths of the server and the flags they come from. */
const mockFlags: ReadonlyMap<string, string> = new Map([
  ["port", "--port"],
  ["host", "--host"],
  ["latency", "--latency"],
  ["seed", "--seed"],
  ["faultRate", "--fault-rate"],
  ["apiKey", "--api-key-env"],
  ["rpm", "--rpm"],
  ["tpm", "--tpm"],
  ["streaming.chunkChars", "--stream-chunk-chars"],
  ["streaming.interval", "--stream-interval"],
  ["batchApi.validating", "--batch-validating"],
  ["batchApi.perRequest", "--batch-per-request"],
  ["batchApi.finalizing", "--batch-finalizing"],
  ["batchApi.completionWindow", "--batch-window"]
])

export const mockCommand = Command.make("mock", options, (o) =>
  Effect.gen(function* () {
    const faults = parseFaults(o.faults, o.retryAfter)
    const apiKey = Option.flatMap(o.apiKeyEnv, (name) => Option.fromNullable(process.env[name]))
    if (Option.isSome(o.apiKeyEnv) && Option.isNone(apiKey)) {
      return yield* new CliError({ detail: `--api-key-env names ${o.apiKeyEnv.value}, which is not set: export it first` })
    }
    const server = yield* MockServer.make({
      port: o.port,
      host: o.host,
      latency: o.latency,
      seed: o.seed,
      faultRate: o.faultRate,
      faults,
      jsonContent: Option.getOrUndefined(o.jsonContent),
      apiKey: Option.getOrUndefined(apiKey),
      validate: !o.noValidate,
      rpm: Option.getOrUndefined(o.rpm),
      tpm: Option.getOrUndefined(o.tpm),
      streaming: { chunkChars: o.streamChunkChars, interval: o.streamInterval },
      batchApi: {
        validating: o.batchValidating,
        perRequest: o.batchPerRequest,
        finalizing: o.batchFinalizing,
        completionWindow: o.batchWindow,
        fileFaults: parseBatchFaults(o.batchFileFaults, o.retryAfter),
        batchFaults: parseBatchFaults(o.batchFaults, o.retryAfter)
      }
    }).pipe(Effect.mapError(ConfigErrors.toCliError(mockFlags)))
    yield* Console.log(server.url)
    yield* Console.error(`shepherd mock: listening on ${server.url} (Ctrl-C to stop)`)
    return yield* Effect.never
  }).pipe(Effect.scoped)
).pipe(Command.withDescription("Run the OpenAI-compatible mock server"))
