/**
 * bench/scaling: limits shared by several processes through Redis.
 *
 * 1. What the Redis store costs: one process sending requests as fast as a 0 ms mock answers, with
 *    an rpm limit that never binds, so that every request goes through the limiter: the memory store,
 *    the Redis store (one Lua admission per request, plus a correction of its tokens when there is a
 *    tpm limit), and raw undici for reference.
 * 2. What sharing buys: P processes each send N requests (one shard of one input file) against a mock
 *    server enforcing R requests per minute: `shepherd run --shard i/P --redis URL --rpm R`;
 *    `shepherd run --shard i/P --rpm R/P` (the limit split by hand, no Redis); and the official
 *    `openai` SDK with `p-limit` in each process (its own retries, no shared limit).
 * 3. The same with uneven work (one process has half of the requests, each process its own file):
 *    a limit split by hand leaves the big process at R/P while the others are done.
 *
 *   npm run build && node dist/bench/scaling.js [--processes 4] [--requests 500] [--rpm 600]
 *       [--latency 20] [--concurrency 64] [--overhead-requests 20000] [--rounds 3]
 *       [--clients shepherd-redis,shepherd-split,openai] [--parts overhead,shared,uneven]
 *
 * Needs `redis-server` on PATH (Debian: apt-get install redis-server); it is started on a free
 * loopback port and stopped at the end.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import OpenAI from "openai"
import pLimit from "p-limit"
import { spawn, type ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Agent, request as undiciRequest } from "undici"
import * as ChatClient from "../src/ChatClient.js"
import type * as ChatSchema from "../src/ChatSchema.js"
import * as RateLimit from "../src/RateLimit.js"
import { flags, median, runPool, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const cli = fileURLToPath(new URL("../bin/shepherd.js", import.meta.url))
const self = fileURLToPath(import.meta.url)

const requestFor = (i: number): ChatSchema.ChatCompletionRequest => ({
  model: "gpt-4.1-mini",
  messages: [{ role: "user", content: `Customer ${i}: where is my order ${10_000 + i}?` }],
  max_tokens: 20
})

// ---- worker mode: one process of the openai peer ----------------------------------------------

const openaiWorker = async () => {
  const url = args.get("url")!
  const from = Number(args.get("from"))
  const count = Number(args.get("count"))
  const concurrency = Number(args.get("concurrency") ?? 64)
  const client = new OpenAI({ baseURL: url, apiKey: "sk-bench" })
  const limit = pLimit(concurrency)
  let ok = 0
  await Promise.all(Array.from({ length: count }, (_, k) =>
    limit(async () => {
      const r = requestFor(from + k)
      try {
        await client.chat.completions.create({ model: r.model, messages: [...r.messages] as Array<OpenAI.ChatCompletionMessageParam>, max_tokens: 20 })
        ok++
      } catch {
        // not succeeded
      }
    })
  ))
  process.stdout.write(`${ok}\n`)
}

// ---- helpers ------------------------------------------------------------------------------------

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

const startRedis = async (): Promise<{ url: string; stop: () => void }> => {
  const port = await freePort()
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" })
  await new Promise<void>((resolve, reject) => {
    child.once("error", (e) => reject(new Error(`redis-server could not be started (${e.message}): install it (apt-get install redis-server)`)))
    const deadline = Date.now() + 10_000
    const attempt = () => {
      const socket = Net.connect(port, "127.0.0.1")
      socket.once("connect", () => {
        socket.destroy()
        resolve()
      })
      socket.once("error", () => {
        socket.destroy()
        if (Date.now() > deadline) reject(new Error("redis-server did not start"))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill("SIGTERM") }
}

const exited = (child: ChildProcess): Promise<{ code: number | null; stdout: string }> =>
  new Promise((resolve) => {
    let stdout = ""
    child.stdout?.setEncoding("utf8").on("data", (c: string) => { stdout += c })
    child.once("exit", (code) => resolve({ code, stdout }))
  })

const stats = async (url: string) => (await (await fetch(url.replace(/\/v1$/, "/_mock/stats"))).json()) as { rateLimited: number; requests: number }
const reset = (url: string) => fetch(url.replace(/\/v1$/, "/_mock/reset"), { method: "POST" })

// ---- part 1: overhead ---------------------------------------------------------------------------

const overhead = async (redisUrl: string) => {
  const n = Number(args.get("overhead-requests") ?? 20_000)
  const rounds = Number(args.get("rounds") ?? 3)
  const concurrency = 64
  const mock = await startMockProcess(["--latency", "0ms"])
  const limits = { rpm: 1_000_000_000 }
  const runShepherd = async (limiter: Layer.Layer<RateLimit.RateLimit, unknown>) => {
    const runtime = ManagedRuntime.make(ChatClient.layer({ baseUrl: mock.url, connections: concurrency, tracing: false }).pipe(Layer.provide(limiter), Layer.orDie))
    try {
      await runtime.runPromise(Effect.void) // build first: connecting to Redis is not part of the run
      const cpu = process.cpuUsage()
      const t0 = performance.now()
      await runtime.runPromise(Effect.flatMap(ChatClient.ChatClient, (chat) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => chat.create(requestFor(i)), { concurrency, discard: true })))
      const seconds = (performance.now() - t0) / 1000
      const used = process.cpuUsage(cpu)
      return { rate: n / seconds, cpuMicros: (used.user + used.system) / n }
    } finally {
      await runtime.dispose()
    }
  }
  const runUndici = async () => {
    const agent = new Agent({ connections: concurrency })
    const body = JSON.stringify(requestFor(0))
    const cpu = process.cpuUsage()
    const t0 = performance.now()
    await runPool(n, concurrency, async () => {
      const r = await undiciRequest(`${mock.url}/chat/completions`, { method: "POST", body, headers: { "content-type": "application/json" }, dispatcher: agent })
      await r.body.json()
    })
    const seconds = (performance.now() - t0) / 1000
    const used = process.cpuUsage(cpu)
    await agent.close()
    return { rate: n / seconds, cpuMicros: (used.user + used.system) / n }
  }
  const contenders: Array<[string, () => Promise<{ rate: number; cpuMicros: number }>]> = [
    ["shepherd, memory store", () => runShepherd(RateLimit.layer(limits))],
    ["shepherd, Redis store", () => runShepherd(RateLimit.layerRedis({ ...limits, url: redisUrl, namespace: `bench-${Date.now()}` }))],
    // With a tpm limit each answer's real tokens are written back: a second round trip.
    ["shepherd, Redis store, rpm + tpm", () => runShepherd(RateLimit.layerRedis({ ...limits, tpm: 1_000_000_000_000, url: redisUrl, namespace: `bench-${Date.now()}` }))],
    ["raw undici (no limiter)", runUndici]
  ]
  const results = new Map<string, Array<{ rate: number; cpuMicros: number }>>()
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [name, run] of contenders) {
        const r = await run()
        results.set(name, [...(results.get(name) ?? []), r])
        process.stderr.write(`overhead round ${round + 1} ${name}: ${r.rate.toFixed(0)} req/s, ${r.cpuMicros.toFixed(0)} us CPU/req\n`)
      }
    }
  } finally {
    await mock.stop()
  }
  const memory = median(results.get("shepherd, memory store")!.map((r) => r.rate))
  console.log(`\n1. Limiter overhead: ${n} requests, concurrency ${concurrency}, mock at 0 ms in its own process, rpm limit that never binds; medians of ${rounds} rounds\n`)
  console.log("| client | req/s | CPU us/req (this process) | vs memory store |")
  console.log("|---|---:|---:|---:|")
  for (const [name] of contenders) {
    const rs = results.get(name)!
    const rate = median(rs.map((r) => r.rate))
    console.log(`| ${name} | ${rate.toFixed(0)} | ${median(rs.map((r) => r.cpuMicros)).toFixed(0)} | ${(rate / memory).toFixed(2)}x |`)
  }
}

// ---- part 2: shared limits ----------------------------------------------------------------------

/**
 * P processes against one server enforcing `rpm`. `sizes[i]` requests go to process i: with `even`
 * they are the shards of one input file (`--shard i/P`), as a user splits one job; otherwise each
 * process has its own file, as independent jobs sharing one key do.
 */
const shared = async (redisUrl: string, kind: "even" | "uneven") => {
  const processes = Number(args.get("processes") ?? 4)
  const perProcess = Number(args.get("requests") ?? 500)
  const rpm = Number(args.get("rpm") ?? 600)
  const latency = Number(args.get("latency") ?? 20)
  const concurrency = Number(args.get("concurrency") ?? 64)
  const clients = (args.get("clients") ?? "shepherd-redis,shepherd-split,openai").split(",")
  const total = processes * perProcess
  // Uneven: the first process has half of the work, the others share the rest.
  const sizes = Array.from({ length: processes }, (_, i) =>
    kind === "even" ? perProcess : i === 0 ? Math.ceil(total / 2) : Math.floor(total / 2 / (processes - 1)) + (i <= (total / 2) % (processes - 1) ? 1 : 0))
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0))
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-scaling-"))
  const line = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: requestFor(i) })
  const input = Path.join(dir, "in.jsonl")
  Fs.writeFileSync(input, Array.from({ length: total }, (_, i) => line(i)).join("\n") + "\n")
  for (let p = 0; p < processes; p++) {
    Fs.writeFileSync(Path.join(dir, `in.${p}.jsonl`), Array.from({ length: sizes[p]! }, (_, k) => line(starts[p]! + k)).join("\n") + "\n")
  }
  const inputOf = (i: number) => (kind === "even" ? [input, "--shard", `${i}/${processes}`] : [Path.join(dir, `in.${i}.jsonl`)])
  const mock = await startMockProcess(["--latency", `${latency}ms`, "--rpm", String(rpm)])
  const env = { ...process.env, OPENAI_BASE_URL: mock.url, OPENAI_API_KEY: "sk-bench" }

  const runCli = async (name: string, extra: ReadonlyArray<string>) => {
    const children = Array.from({ length: processes }, (_, i) =>
      spawn(process.execPath, [cli, "run", ...inputOf(i), "--out", Path.join(dir, `${name}.${i}.jsonl`), "--no-progress", "--concurrency", String(concurrency), ...extra], {
        env,
        stdio: ["ignore", "pipe", "ignore"]
      }))
    await Promise.all(children.map(exited))
    let ok = 0
    for (let i = 0; i < processes; i++) {
      for (const text of Fs.readFileSync(Path.join(dir, `${name}.${i}.jsonl`), "utf8").split("\n")) {
        if (text.includes('"status_code":200')) ok++
      }
    }
    return ok
  }
  const runOpenAI = async () => {
    const children = Array.from({ length: processes }, (_, i) =>
      spawn(process.execPath, [self, "--worker", "openai", "--url", mock.url, "--from", String(starts[i]), "--count", String(sizes[i]), "--concurrency", String(concurrency)], {
        env,
        stdio: ["ignore", "pipe", "inherit"]
      }))
    const ends = await Promise.all(children.map(exited))
    return ends.reduce((sum, e) => sum + Number(e.stdout.trim() || 0), 0)
  }
  const how = kind === "even" ? `--shard i/${processes}` : "IN.i"
  const contenders: Array<[string, string, () => Promise<number>]> = [
    // One namespace for all the processes of a run (they share its limits).
    ["shepherd-redis", `shepherd run ${how} --redis URL --rpm ${rpm}`, () => runCli("redis", ["--redis", redisUrl, "--namespace", `bench-${Date.now()}`, "--rpm", String(rpm)])],
    ["shepherd-split", `shepherd run ${how} --rpm ${Math.floor(rpm / processes)} (split by hand, no Redis)`, () => runCli("split", ["--rpm", String(Math.floor(rpm / processes))])],
    ["openai", `openai + p-limit(${concurrency}) per process`, runOpenAI]
  ]
  const rows: Array<string> = []
  try {
    for (const [key, label, run] of contenders) {
      if (!clients.includes(key)) continue
      await reset(mock.url)
      const t0 = performance.now()
      const ok = await run()
      const seconds = (performance.now() - t0) / 1000
      const s = await stats(mock.url)
      const perMinute = (ok / seconds) * 60
      process.stderr.write(`${kind} ${key}: ${ok}/${total} in ${seconds.toFixed(1)} s, ${s.rateLimited} 429s\n`)
      rows.push(`| ${label} | ${total} | ${ok} | ${s.rateLimited} | ${seconds.toFixed(1)} | ${ok === total ? perMinute.toFixed(0) : "-"} | ${ok === total ? `${((100 * perMinute) / rpm).toFixed(0)}%` : "-"} |`)
    }
  } finally {
    await mock.stop()
    Fs.rmSync(dir, { recursive: true, force: true })
  }
  const title = kind === "even"
    ? `${processes} processes x ${perProcess} requests (shards of one file)`
    : `${processes} processes with uneven work: ${sizes.join(" / ")} requests (a file each)`
  console.log(`\n${kind === "even" ? 2 : 3}. ${title}, against a server enforcing ${rpm} RPM (a bucket that starts full), ${latency} ms latency\n`)
  console.log("| client | requests | succeeded | 429s sent by the server | seconds | requests per min | % of the limit |")
  console.log("|---|---:|---:|---:|---:|---:|---:|")
  for (const row of rows) console.log(row)
}

const main = async () => {
  if (args.get("worker") === "openai") return openaiWorker()
  const parts = (args.get("parts") ?? "overhead,shared,uneven").split(",")
  console.log(`bench/scaling: node ${process.version}, ${Os.cpus().length} cores`)
  const redis = await startRedis()
  try {
    if (parts.includes("overhead")) await overhead(redis.url)
    if (parts.includes("shared")) await shared(redis.url, "even")
    if (parts.includes("uneven")) await shared(redis.url, "uneven")
  } finally {
    redis.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
