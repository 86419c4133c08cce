/**
 * The flags of `shepherd run` (one table: parsed and shown in `--help` from it) and its help text.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as ChatClient from "../ChatClient.js"
import * as RetryPolicy from "../RetryPolicy.js"
import * as ExitStatus from "./exitStatus.js"
import * as Flags from "./flags.js"

const seconds = (d: Duration.DurationInput) => `${Duration.toSeconds(Duration.decode(d))}s`

/** The flags of `shepherd run`: parsed and shown in `--help` from this one table. */
export const flags = {
  out: Flags.text("out", {
    required: "name the output file, e.g. --out results.jsonl",
    placeholder: "FILE",
    description: "output JSONL: one line per custom_id, appended as each completes; rerun with the same file to resume"
  }),
  baseUrl: Flags.text("base-url", { placeholder: "URL", description: "the API's base URL", defaultText: `OPENAI_BASE_URL, else ${ChatClient.DEFAULT_BASE_URL}` }),
  concurrency: Flags.integer("concurrency", { min: 1, default: 64, description: "requests in flight at most" }),
  rpm: Flags.integer("rpm", { min: 1, placeholder: "R", description: "requests per minute, at most", defaultText: "no limit", hint: "leave it out for no limit" }),
  tpm: Flags.integer("tpm", {
    min: 1,
    placeholder: "T",
    description: "tokens per minute (prompt plus max_tokens), at most",
    defaultText: "no limit",
    hint: "leave it out for no limit"
  }),
  maxRetries: Flags.integer("max-retries", { min: 0, placeholder: "K", description: "retries after the first attempt", defaultText: String(RetryPolicy.defaults.maxRetries) }),
  timeout: Flags.duration("timeout", { description: "deadline of one attempt", defaultText: seconds(ChatClient.defaults.timeout) }),
  budgetUsd: Flags.positiveNumber("budget-usd", { placeholder: "USD", description: "stop sending before the spend could pass this many US dollars", defaultText: "no budget" }),
  prices: Flags.existingFile("prices", { description: "JSON price table to add to the built-in one (see docs/cost.md)", defaultText: "the built-in table" }),
  apiKeyEnv: Flags.text("api-key-env", { placeholder: "NAME", description: "read the API key from this environment variable", defaultText: "OPENAI_API_KEY" }),
  skipInvalid: Flags.boolean("skip-invalid", { description: "report invalid lines, then send the valid ones; without it, one invalid line stops the run before anything is sent" }),
  noProgress: Flags.boolean("no-progress", { description: "no progress display on stderr" }),
  progressInterval: Flags.duration("progress-interval", { default: "5s", description: "how often a progress line is printed when stderr is not a terminal" }),
  summary: Flags.text("summary", { placeholder: "FILE", description: "also write the summary to this file, as JSON", defaultText: "none" }),
  metrics: Flags.text("metrics", { placeholder: "FILE", description: "write a snapshot of the shepherd_* metrics to this file, as JSON, at the end", defaultText: "none" }),
  grace: Flags.duration("grace", { default: "30s", description: "after Ctrl-C, how long requests in flight may take to finish" }),
  shard: Flags.custom("shard", {
    placeholder: "i/n",
    description: "send only the input lines whose number minus one, mod n, is i (0 <= i < n); merge the n outputs with `shepherd merge`",
    defaultText: "the whole input",
    parse: (text) => parseShard(text)
  }),
  redis: Flags.text("redis", {
    placeholder: "URL",
    description: "redis://host:port: share the rate limits, the 429 pause and the budget with every process using this Redis, API key and --namespace " +
      "(a URL with a password is better given in SHEPHERD_REDIS_URL: arguments show in the process list)",
    defaultText: "SHEPHERD_REDIS_URL when set, else none"
  }),
  redisUrlEnv: Flags.text("redis-url-env", {
    placeholder: "NAME",
    description: "read the Redis URL (password included) from this environment variable instead of --redis",
    defaultText: "SHEPHERD_REDIS_URL"
  }),
  namespace: Flags.text("namespace", { default: "default", placeholder: "NAME", description: "with --redis: the name of the shared limits and budget (a new name, a new budget)" }),
  via: Flags.custom("via", {
    placeholder: "HOW",
    description: "live: send each request now; batch-api: submit the file through the provider's Batch API (about half the price, " +
      "answers within 24 hours; see docs/batch-api.md); auto: live below --auto-threshold requests, else the Batch API",
    defaultText: "live",
    parse: (text) => parseVia(text)
  }),
  deadline: Flags.duration("deadline", {
    description: "with --via auto: at this time after the start, cancel the batches, collect what they answered and send the rest live",
    defaultText: "none"
  }),
  pollInterval: Flags.duration("poll-interval", { default: "30s", description: "with the Batch API: longest wait between two looks at a batch" }),
  maxRequestsPerFile: Flags.integer("max-requests-per-file", { min: 1, default: 50_000, description: "with the Batch API: requests per batch file at most" }),
  maxBytesPerFile: Flags.integer("max-bytes-per-file", { min: 1, default: 200 * 1024 * 1024, description: "with the Batch API: bytes per batch file at most" }),
  autoThreshold: Flags.integer("auto-threshold", { min: 1, default: 1000, description: "with --via auto: requests left to send from which the Batch API is used" }),
  cache: Flags.text("cache", {
    placeholder: "DIR|URL",
    description: "answer requests already answered from this response cache, a directory or redis://host:port (a rerun with a new --out sends " +
      "nothing the cache holds); errors, refusals and answers cut by max_tokens are not cached. Live sends only (see docs/cache.md)",
    defaultText: "none"
  }),
  deployments: Flags.existingFile("deployments", {
    description: "JSON file of deployments (base URL, apiKeyEnv: the variable holding the key, models, limits, priority) and fallbacks: " +
      "each request goes where it starts soonest, and falls back on failures (see docs/routing.md); replaces --base-url, --rpm and --tpm",
    defaultText: "one endpoint"
  }),
  redisFallback: Flags.boolean("redis-fallback", {
    description: "with --redis: when Redis cannot be reached, go on with local limits divided by the shard count (without it: stop sending; a rerun resumes)"
  })
}

/** The command, as its usage line and its parse errors start. */
export const USAGE = "shepherd run"

/** The positional argument: the input file. */
export const input: Flags.Positional = { name: "IN.jsonl", description: "the requests, one OpenAI Batch API input line each (chat completions or embeddings)" }

/** `shepherd run --help`: styled only for a terminal without NO_COLOR. */
export const helpText = (options: { readonly bold: boolean; readonly width?: number }): string =>
  Flags.help(flags, input, {
    usage: `${USAGE} IN.jsonl --out OUT.jsonl [options]`,
    description: "Sends every request of an OpenAI Batch API input file and writes one output line per custom_id, " +
      "appended as each completes. Rerun the same command to resume: ids with a final outcome are not sent again.",
    sections: [
      {
        heading: "Environment",
        rows: [
          ["OPENAI_API_KEY", "the API key (never a flag; see --api-key-env)"],
          ["OPENAI_BASE_URL", "the base URL when --base-url is not given"],
          ["OUT.batches.json", "with the Batch API: what was submitted for OUT (see shepherd batches status|cancel OUT)"],
          ["NO_COLOR", "plain help text even on a terminal"]
        ]
      },
      { heading: "Durations", rows: ["take a unit: 500ms, 30s, 2m, 1h (a bare number is refused)."] },
      { heading: "Exit status", rows: ExitStatus.rows }
    ]
  }, options)

/** How `shepherd run` sends: `--via`. */
export type Via = "live" | "batch-api" | "auto"

/** `live`, `batch-api` or `auto`. */
export const parseVia = (text: string): Via => {
  const via = text.trim()
  if (via === "live" || via === "batch-api" || via === "auto") return via
  throw new Error(`--via takes live, batch-api or auto, got ${JSON.stringify(text)}`)
}

/** `i/n` with 0 <= i < n. */
export const parseShard = (text: string): { readonly index: number; readonly count: number } => {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text)
  const index = Number(match?.[1])
  const count = Number(match?.[2])
  if (match === null || !(count >= 1) || !(index < count)) {
    throw new Error(`--shard takes i/n with 0 <= i < n (e.g. 0/4 for the first of four), got ${JSON.stringify(text)}`)
  }
  return { index, count }
}

/** What the handler reads: the input file and the flags' values. */
export type RunOptions = Flags.Parsed<typeof flags> & { readonly input: string }
