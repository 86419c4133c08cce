/**
 * bench/ratelimit: a mock server enforcing OpenAI-style limits (a separate process), and the same
 * batch sent by Shepherd with the limits configured, Shepherd with none (its adaptive pacing from the
 * x-ratelimit-* headers and the shared pause after a 429), and the official `openai` SDK with p-limit
 * (its built-in retries). The server counts the 429s it sends.
 *
 *   npm run build && node dist/bench/ratelimit.js [--rpm 600] [--rpm-requests 2000] [--tpm 40000]
 *       [--tpm-requests 600] [--concurrency 50] [--latency 50] [--clients shepherd-limits,shepherd-adaptive,openai]
 *
 * Each request asks for max_tokens 100 with a prompt of about 30 tokens, so 40,000 TPM allows about
 * 300 requests a minute; the TPM run sends fewer requests to keep its length near the RPM run's.
 *
 * With `--behaviours`, it runs instead Shepherd with no limits configured against a server that
 * enforces a steady RPM and describes it four ways (bench/ratelimitServer: exact OpenAI headers, no
 * rate headers, headers that disagree with its real bucket, remaining counts that lag), and prints
 * the 429s and the share of the server's allowance used:
 *
 *   node dist/bench/ratelimit.js --behaviours [--rpm 6000] [--requests 10000] [--concurrency 50] [--latency 50]
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import OpenAI from "openai"
import pLimit from "p-limit"
import * as ChatClient from "../src/ChatClient.js"
import type * as ChatSchema from "../src/ChatSchema.js"
import * as Tokens from "../src/internal/tokens.js"
import type * as RateLimit from "../src/RateLimit.js"
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { flags, startMockProcess } from "./lib.js"
import { type Behaviour, behaviours } from "./ratelimitServer.js"

const args = flags(process.argv.slice(2))
const rpm = Number(args.get("rpm") ?? 600)
const tpm = Number(args.get("tpm") ?? 40_000)
const rpmRequests = Number(args.get("rpm-requests") ?? 2000)
const tpmRequests = Number(args.get("tpm-requests") ?? 600)
const concurrency = Number(args.get("concurrency") ?? 50)
const latency = Number(args.get("latency") ?? 50)
const clients = (args.get("clients") ?? "shepherd-limits,shepherd-adaptive,openai").split(",")

const requestFor = (i: number): ChatSchema.ChatCompletionRequest => ({
  model: "gpt-4.1-mini",
  messages: [
    { role: "system", content: "You are a support assistant for an online shop. Answer in one sentence." },
    { role: "user", content: `Customer ${i}: where is my order ${10_000 + i}?` }
  ],
  max_tokens: 100
})

interface Row {
  readonly client: string
  readonly requests: number
  readonly succeeded: number
  readonly seconds: number
  readonly received429: number
}

const stats = async (url: string) => (await (await fetch(url.replace(/\/v1$/, "/_mock/stats"))).json()) as { rateLimited: number; requests: number }
const reset = (url: string) => fetch(url.replace(/\/v1$/, "/_mock/reset"), { method: "POST" })

const runShepherd = async (url: string, n: number, limits: RateLimit.Options): Promise<number> => {
  const runtime = ManagedRuntime.make(ChatClient.layer({ baseUrl: url, connections: concurrency, limits }).pipe(Layer.orDie))
  try {
    return await runtime.runPromise(
      Effect.flatMap(ChatClient.ChatClient, (chat) => {
        let ok = 0
        return Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => Effect.match(chat.create(requestFor(i)), { onFailure: () => undefined, onSuccess: () => { ok++ } }),
          { concurrency, discard: true }
        ).pipe(Effect.map(() => ok))
      })
    )
  } finally {
    await runtime.dispose()
  }
}

const runOpenAI = async (url: string, n: number): Promise<number> => {
  const client = new OpenAI({ baseURL: url, apiKey: "sk-bench" })
  const limit = pLimit(concurrency)
  let ok = 0
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      limit(async () => {
        const r = requestFor(i)
        try {
          await client.chat.completions.create({ model: r.model, messages: [...r.messages] as Array<OpenAI.ChatCompletionMessageParam>, max_tokens: 100 })
          ok++
        } catch {
          // counted as not succeeded
        }
      })
    )
  )
  return ok
}

const scenario = async (label: string, serverArgs: ReadonlyArray<string>, n: number, limits: RateLimit.Options) => {
  const mock = await startMockProcess(["--latency", `${latency}ms`, ...serverArgs])
  const rows: Array<Row> = []
  try {
    const contenders: Array<[string, () => Promise<number>]> = [
      ["shepherd-limits", () => runShepherd(mock.url, n, limits)],
      ["shepherd-adaptive", () => runShepherd(mock.url, n, {})],
      ["openai", () => runOpenAI(mock.url, n)]
    ]
    for (const [name, run] of contenders) {
      if (!clients.includes(name)) continue
      await reset(mock.url)
      const t0 = performance.now()
      const succeeded = await run()
      const seconds = (performance.now() - t0) / 1000
      const s = await stats(mock.url)
      rows.push({ client: name, requests: n, succeeded, seconds, received429: s.rateLimited })
      process.stderr.write(`${label} ${name}: ${succeeded}/${n} in ${seconds.toFixed(1)} s, ${s.rateLimited} 429s\n`)
    }
  } finally {
    await mock.stop()
  }
  return rows
}

const printRows = (title: string, rows: ReadonlyArray<Row>, limitPerMinute: number, unitsPerRequest: number) => {
  console.log(`\n${title}\n`)
  console.log("| client | requests | succeeded | 429s received | 429s % | seconds | achieved per min | % of limit | % of server allowance |")
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  for (const r of rows) {
    const perMinute = ((r.succeeded * unitsPerRequest) / r.seconds) * 60
    // What the server's bucket lets through in that time: a full bucket, plus its refill.
    const allowance = limitPerMinute * (1 + r.seconds / 60)
    console.log(
      `| ${r.client} | ${r.requests} | ${r.succeeded} | ${r.received429} | ${((100 * r.received429) / r.requests).toFixed(1)}% | ${r.seconds.toFixed(1)} | ${perMinute.toFixed(0)} | ${((100 * perMinute) / limitPerMinute).toFixed(0)}% | ${((100 * r.succeeded * unitsPerRequest) / allowance).toFixed(0)}% |`
    )
  }
}

/** Starts bench/ratelimitServer with `behaviour` in its own process. */
const startBehaviour = async (behaviour: Behaviour, rpm: number) => {
  const file = fileURLToPath(new URL("./ratelimitServer.js", import.meta.url))
  const child = spawn(process.execPath, [file, "--behaviour", behaviour, "--rpm", String(rpm), "--latency", String(latency)], { stdio: ["ignore", "pipe", "inherit"] })
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`ratelimitServer exited with ${code} before listening`)))
    createInterface({ input: child.stdout! }).once("line", resolve)
  })
  const stop = () => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })
  return { url, stop }
}

const BEHAVIOUR_TEXT: Record<Behaviour, string> = {
  openai: "exact OpenAI `x-ratelimit-*` headers",
  none: "no rate headers: 429 + `retry-after-ms` / `retry-after` only",
  disagree: "headers describe a bucket twice the real one",
  lagging: "headers as they were 2 s earlier (lagging remaining)"
}

const runBehaviours = async () => {
  const limit = Number(args.get("rpm") ?? 6000)
  const n = Number(args.get("requests") ?? 10_000)
  console.log(`bench/ratelimit --behaviours: ${n} requests, Shepherd with no limits configured (defaults: adaptive pacing, shared pause, 4 retries), concurrency ${concurrency}, server ${limit} RPM (bucket of ${limit}) in its own process, ${latency} ms latency, node ${process.version}`)
  console.log("\n| server behaviour | requests | succeeded | 429s | 429s % of requests | seconds | % of server allowance used |")
  console.log("|---|---:|---:|---:|---:|---:|---:|")
  for (const behaviour of behaviours) {
    const server = await startBehaviour(behaviour, limit)
    try {
      const t0 = performance.now()
      const succeeded = await runShepherd(server.url, n, {})
      const seconds = (performance.now() - t0) / 1000
      const s = await stats(server.url)
      const allowance = limit * (1 + seconds / 60)
      console.log(`| ${BEHAVIOUR_TEXT[behaviour]} | ${n} | ${succeeded} | ${s.rateLimited} | ${((100 * s.rateLimited) / n).toFixed(2)}% | ${seconds.toFixed(1)} | ${((100 * succeeded) / allowance).toFixed(0)}% |`)
    } finally {
      await server.stop()
    }
  }
}

const main = async () => {
  if (args.has("behaviours")) return runBehaviours()
  console.log(`bench/ratelimit: mock server in its own process, ${latency} ms latency, concurrency ${concurrency}, node ${process.version}`)
  const rpmRows = await scenario("rpm", ["--rpm", String(rpm)], rpmRequests, { rpm })
  printRows(`${rpmRequests} requests against ${rpm} RPM ("achieved" is requests per minute)`, rpmRows, rpm, 1)
  // Tokens the server charges per request: prompt plus max_tokens (the mock counts as the client does).
  const tokensOf = (request: ChatSchema.ChatCompletionRequest) => Tokens.promptTokens(request.messages) + Tokens.completionAllowance(request)
  const tokensPerRequest = Array.from({ length: tpmRequests }, (_, i) => tokensOf(requestFor(i))).reduce((a, b) => a + b, 0) / tpmRequests
  const tpmRows = await scenario("tpm", ["--tpm", String(tpm)], tpmRequests, { tpm })
  printRows(`${tpmRequests} requests against ${tpm} TPM ("achieved" is tokens per minute, ${tokensPerRequest.toFixed(1)} tokens a request)`, tpmRows, tpm, tokensPerRequest)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
