/**
 * `shepherd batches status OUT` and `shepherd batches cancel OUT`: what `shepherd run --via batch-api`
 * submitted for OUT (its state file, `OUT.batches.json`), where each batch stands, and cancelling them.
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as BatchApi from "../BatchApi.js"
import * as BatchApiSchema from "../BatchApiSchema.js"
import * as Http from "../internal/batchApi/http.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import { statePath } from "./runBatchApi.js"

const out = Args.text({ name: "OUT.jsonl" }).pipe(Args.withDescription("the output file of the run (its state is OUT.jsonl.batches.json)"))
const baseUrl = Options.text("base-url").pipe(Options.optional, Options.withDescription("the API's base URL (else OPENAI_BASE_URL, else https://api.openai.com/v1)"))
const apiKeyEnv = Options.text("api-key-env").pipe(Options.withDefault("OPENAI_API_KEY"), Options.withDescription("read the API key from this environment variable"))

interface Common {
  readonly out: string
  readonly baseUrl: Option.Option<string>
  readonly apiKeyEnv: string
}

/** The saved state of OUT; a usage error when nothing was submitted for it. */
const loadState = (o: Common) =>
  Effect.flatMap(Effect.provide(BatchApi.state, BatchApi.layerFile(statePath(o.out))), (state) =>
    state === undefined
      ? Effect.fail(new CliError({ detail: `no batches were submitted for ${o.out} (there is no ${statePath(o.out)})`, exitCode: ExitStatus.USAGE }))
      : Effect.succeed(state))

const settings = (o: Common) => {
  const key = process.env[o.apiKeyEnv]
  if (key === undefined || key.trim() === "") return undefined
  const url = Option.getOrElse(Option.orElse(o.baseUrl, () => Option.fromNullable(process.env["OPENAI_BASE_URL"])), () => BatchApi.defaults.baseUrl)
  return { apiKey: Redacted.make(key), baseUrl: url }
}

const counts = (c: BatchApiSchema.RequestCounts | undefined) => (c === undefined ? "-" : `${c.completed} done, ${c.failed} failed of ${c.total}`)

const statusCommand = Command.make("status", { out, baseUrl, apiKeyEnv }, (o) =>
  Effect.gen(function* () {
    const state = yield* loadState(o)
    const s = settings(o)
    const provider = s === undefined
      ? undefined
      : Http.make(yield* HttpClient.HttpClient, { ...s, headers: {}, maxRetries: 2, initialDelayMillis: 500, maxRetryAfterMillis: 10_000, timeoutMillis: 30_000 })
    yield* Console.log(`${o.out}: run ${state.runId}, ${Object.keys(state.ranges).length} batch files (state in ${statePath(o.out)})`)
    for (const range of Object.values(state.ranges)) {
      let status = range.status ?? "-"
      let requestCounts = range.requestCounts
      if (provider !== undefined && range.step === "created" && range.batchId !== undefined) {
        const batch = yield* Effect.either(provider.retrieve(range.batchId))
        if (batch._tag === "Right") {
          status = batch.right.status
          requestCounts = batch.right.request_counts
        }
      }
      const unfinished = range.unfinished === undefined || range.unfinished.length === 0 ? "" : `, ${range.unfinished.length} unfinished (a rerun submits them)`
      yield* Console.log(
        `  ${range.key}: lines ${range.first + 1}-${range.last + 1} (${range.requests} requests), step ${range.step}, ` +
          `batch ${range.batchId ?? "-"} ${status}, ${counts(requestCounts)}${unfinished}`
      )
    }
    if (s === undefined) yield* Console.log(`  (statuses as last seen: set ${o.apiKeyEnv} to ask the provider)`)
  }).pipe(Effect.provide(FetchHttpClient.layer))
).pipe(Command.withDescription("What was submitted for OUT through the Batch API, and where each batch stands"))

const cancelCommand = Command.make("cancel", { out, baseUrl, apiKeyEnv }, (o) =>
  Effect.gen(function* () {
    yield* loadState(o)
    const s = settings(o)
    if (s === undefined) return yield* new CliError({ detail: `cancelling needs the API key: set ${o.apiKeyEnv}`, exitCode: ExitStatus.USAGE })
    const batches = yield* BatchApi.cancel(s).pipe(
      Effect.provide([BatchApi.layerFile(statePath(o.out)), FetchHttpClient.layer]),
      Effect.mapError((e) => new CliError({ detail: e.message }))
    )
    for (const batch of batches) yield* Console.log(`${batch.id}: ${batch.status}`)
    yield* Console.log(
      batches.length === 0
        ? `no batch of ${o.out} is running`
        : `asked to cancel ${batches.length} batch${batches.length === 1 ? "" : "es"}: rerun the same shepherd run to collect what they answered and submit the rest`
    )
  })
).pipe(Command.withDescription("Cancel the batches still running for OUT (what they answered is still collected by a rerun)"))

/** `shepherd batches status|cancel OUT`. */
export const batchesCommand = Command.make("batches").pipe(
  Command.withDescription("The Batch API submissions of an output file: status, cancel"),
  Command.withSubcommands([statusCommand, cancelCommand])
)
