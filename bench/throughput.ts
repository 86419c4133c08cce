/**
 * bench/throughput: requests per second and client CPU per request at several concurrency levels,
 * Shepherd against raw undici and the official `openai` SDK with p-limit, same run, same mock server
 * (a separate process with fixed latency).
 *
 *   npm run build && node dist/bench/throughput.js [--latency 50] [--concurrency 1,10,20,50,200]
 *       [--requests 20000] [--seconds 8] [--rounds 3] [--clients shepherd,shepherd-platform,undici,openai]
 *
 * `shepherd` is `ChatClient.layer`'s default (its undici Agent called directly); `shepherd-platform` is
 * the same client with `transport: "platform"` (the Agent through @effect/platform's HttpClient).
 *
 * Each cell sends min(--requests, concurrency x (1000 / latency) x --seconds) requests after a warm-up
 * of `concurrency` requests; rounds are interleaved (every client once per round) and the table shows
 * medians, with the largest distance of a round from its median as the noise.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import OpenAI from "openai"
import pLimit from "p-limit"
import { Agent, request as undiciRequest } from "undici"
import * as ChatClient from "../src/ChatClient.js"
import type * as ChatSchema from "../src/ChatSchema.js"
import { flags, median, runPool, spreadPercent, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const latency = Number(args.get("latency") ?? 50)
const levels = (args.get("concurrency") ?? "1,10,20,50,200").split(",").map(Number)
const maxRequests = Number(args.get("requests") ?? 20_000)
const seconds = Number(args.get("seconds") ?? 8)
const rounds = Number(args.get("rounds") ?? 3)
const clients = (args.get("clients") ?? "shepherd,shepherd-platform,undici,openai").split(",")

const body: ChatSchema.ChatCompletionRequest = {
  model: "gpt-4.1-mini",
  messages: [
    { role: "system", content: "You are a support assistant for an online shop. Answer in one sentence." },
    { role: "user", content: "Where is my order 12345? It was due on Monday." }
  ],
  max_tokens: 64
}
const bodyText = JSON.stringify(body)

interface Cell {
  readonly rps: number
  readonly cpuMicros: number
  readonly failed: number
}

/** A client under test: `setup` builds it for a concurrency level, `send` makes one call. */
interface Contender {
  readonly name: string
  readonly setup: (url: string, concurrency: number) => Promise<{ run: (n: number) => Promise<number>; close: () => Promise<void> }>
}

/** Shepherd's `ChatClient.create` under `Effect.forEach({ concurrency })`, with either transport. */
const shepherdWith = (name: string, transport: ChatClient.Options["transport"], tracing = true): Contender => ({
  name,
  setup: async (url, concurrency) => {
    const runtime = ManagedRuntime.make(ChatClient.layer({ baseUrl: url, connections: Math.max(concurrency, 1), transport, tracing }).pipe(Layer.orDie))
    const run = (n: number) =>
      runtime.runPromise(
        Effect.flatMap(ChatClient.ChatClient, (chat) => {
          let failed = 0
          return Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            () => Effect.catchAll(Effect.asVoid(chat.create(body)), () => Effect.sync(() => { failed++ })),
            { concurrency, discard: true }
          ).pipe(Effect.map(() => failed))
        })
      )
    return { run, close: () => runtime.dispose() }
  }
})
const shepherd = shepherdWith("shepherd", "undici")
const shepherdPlatform = shepherdWith("shepherd-platform", "platform")
const shepherdUntraced = shepherdWith("shepherd-notrace", "undici", false)

const undici: Contender = {
  name: "undici",
  setup: async (url, concurrency) => {
    const agent = new Agent({ connections: Math.max(concurrency, 1), keepAliveTimeout: 30_000 })
    const target = `${url}/chat/completions`
    const headers = { "content-type": "application/json", authorization: "Bearer sk-bench" }
    const run = async (n: number) => {
      let failed = 0
      await runPool(n, concurrency, async () => {
        const res = await undiciRequest(target, { dispatcher: agent, method: "POST", headers, body: bodyText })
        const json = (await res.body.json()) as { choices?: unknown }
        if (res.statusCode !== 200 || json.choices === undefined) failed++
      })
      return failed
    }
    return { run, close: () => agent.destroy() }
  }
}

const openai: Contender = {
  name: "openai",
  setup: async (url, concurrency) => {
    const client = new OpenAI({ baseURL: url, apiKey: "sk-bench", maxRetries: 0 })
    const run = async (n: number) => {
      const limit = pLimit(concurrency)
      let failed = 0
      await Promise.all(
        Array.from({ length: n }, () =>
          limit(() =>
            client.chat.completions
              .create({ model: body.model, messages: [...body.messages] as Array<OpenAI.ChatCompletionMessageParam>, max_tokens: 64 })
              .catch(() => { failed++ })
          )
        )
      )
      return failed
    }
    return { run, close: async () => {} }
  }
}

const contenders = [shepherd, shepherdUntraced, shepherdPlatform, undici, openai].filter((c) => clients.includes(c.name))

const measure = async (contender: Contender, url: string, concurrency: number, n: number): Promise<Cell> => {
  const client = await contender.setup(url, concurrency)
  try {
    await client.run(concurrency) // warm-up: open the connections, JIT the path
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const failed = await client.run(n)
    const elapsed = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    return { rps: (n / elapsed) * 1000, cpuMicros: (cpu.user + cpu.system) / n, failed }
  } finally {
    await client.close()
  }
}

const main = async () => {
  const mock = await startMockProcess(["--latency", `${latency}ms`])
  console.log(`bench/throughput: mock server ${mock.url} (separate process), ${latency} ms latency, ${rounds} round(s), node ${process.version}\n`)
  const results = new Map<string, Array<Cell>>()
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const concurrency of levels) {
        const n = Math.min(maxRequests, Math.round(concurrency * (1000 / latency) * seconds))
        for (const contender of contenders) {
          const cell = await measure(contender, mock.url, concurrency, n)
          const key = `${contender.name}@${concurrency}`
          results.set(key, [...(results.get(key) ?? []), cell])
          process.stderr.write(`round ${round} ${key}: ${n} requests, ${cell.rps.toFixed(0)} req/s, ${cell.cpuMicros.toFixed(0)} us CPU/req, ${cell.failed} failed\n`)
        }
      }
    }
  } finally {
    await mock.stop()
  }

  const header = ["concurrency", "ideal req/s", ...contenders.flatMap((c) => [`${c.name} req/s`, `% ideal`, `CPU us/req`]), "shepherd/undici", "shepherd/openai", "noise"]
  console.log(`| ${header.join(" | ")} |`)
  console.log(`|${header.map(() => "---:").join("|")}|`)
  for (const concurrency of levels) {
    const ideal = concurrency * (1000 / latency)
    const row: Array<string> = [String(concurrency), ideal.toFixed(0)]
    const medians = new Map<string, number>()
    let noise = 0
    for (const contender of contenders) {
      const cells = results.get(`${contender.name}@${concurrency}`) ?? []
      const rps = median(cells.map((c) => c.rps))
      medians.set(contender.name, rps)
      noise = Math.max(noise, spreadPercent(cells.map((c) => c.rps)))
      row.push(rps.toFixed(0), `${((100 * rps) / ideal).toFixed(0)}%`, median(cells.map((c) => c.cpuMicros)).toFixed(0))
    }
    const ratio = (other: string) => {
      const a = medians.get("shepherd")
      const b = medians.get(other)
      return a === undefined || b === undefined ? "-" : `${(a / b).toFixed(2)}x`
    }
    row.push(ratio("undici"), ratio("openai"), `±${noise.toFixed(0)}%`)
    console.log(`| ${row.join(" | ")} |`)
  }
  const failed = [...results.values()].flat().reduce((s, c) => s + c.failed, 0)
  if (failed > 0) console.log(`\n${failed} request(s) failed during the run`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
