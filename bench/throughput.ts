/**
 * bench/throughput: requests per second and client CPU per request at several concurrency levels,
 * Shepherd against raw undici and the official `openai` SDK with p-limit, same run, same mock server
 * (a separate process with fixed latency).
 *
 *   npm run build && node dist/bench/throughput.js [--latency 50] [--concurrency 1,10,20,50,200]
 *       [--requests 20000] [--seconds 8] [--rounds 3]
 *       [--clients shepherd,shepherd-platform,undici,openai,aiohttp] [--python python3] [--shepherd-from DIR]
 *
 * `shepherd` is `ChatClient.layer`'s default (its undici Agent called directly); `shepherd-platform` is
 * the same client with `transport: "platform"` (the Agent through @effect/platform's HttpClient);
 * `shepherd-notrace` (not in the default list) is `shepherd` with `tracing: false`; `shepherd-otel` (not
 * in the default list either) is `shepherd` with an OpenTelemetry tracer installed (@effect/opentelemetry's
 * NodeSdk, a BatchSpanProcessor, an exporter that drops the spans): what the spans cost when someone
 * collects them. `aiohttp` is the
 * seed's Python pattern (bench/aiohttp_peer.py), run as a child process that reports its own req/s and
 * CPU; it is skipped with a note when no Python with aiohttp is found (`--python`, else `python3`, then
 * /usr/bin/python3; Debian: `apt-get install python3-aiohttp`). `--shepherd-from DIR` adds
 * `shepherd-base`: `ChatClient` loaded from another build's output (e.g. a copy of `dist` made before a
 * change), with the options of the first Shepherd variant named in --clients, so that a change is
 * measured against its baseline in the same run. `--profile DIR` writes a
 * CPU profile of each cell's timed requests (not the start-up, not the warm-up) to DIR; read it with
 * bench/profileSummary (`node dist/bench/profileSummary.js DIR/shepherd@200.1.cpuprofile --per N`).
 *
 * Each cell sends min(--requests, concurrency x (1000 / latency) x --seconds) requests after a warm-up
 * of max(--warmup, concurrency) requests (default 2,000: enough for V8 to optimise every client's
 * hot path, as it is in a long batch; with only `concurrency` requests the first round of a deep
 * call path still runs partly unoptimised and measured up to 1.5x its steady CPU); rounds are interleaved (every client once per round, each round starting
 * with the next client) and the table shows medians, with the largest distance of a round from its
 * median as the noise.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { execFileSync, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { join as joinPath, resolve as resolvePath } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { NodeSdk } from "@effect/opentelemetry"
import { BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import OpenAI from "openai"
import pLimit from "p-limit"
import { Agent, request as undiciRequest } from "undici"
import * as ChatClient from "../src/ChatClient.js"
import type * as ChatSchema from "../src/ChatSchema.js"
import { flags, median, runPool, spreadPercent, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const latency = Number(args.get("latency") ?? 50)
const warmup = Number(args.get("warmup") ?? 2000)
const levels = (args.get("concurrency") ?? "1,10,20,50,200").split(",").map(Number)
const maxRequests = Number(args.get("requests") ?? 20_000)
const seconds = Number(args.get("seconds") ?? 8)
const rounds = Number(args.get("rounds") ?? 3)
const clients = (args.get("clients") ?? "shepherd,shepherd-platform,undici,openai,aiohttp").split(",")

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

/**
 * A client under test: `setup` builds it for a concurrency level; `run(n)` makes `n` calls and
 * resolves with the failures (measured here), or with a whole cell a child process measured itself.
 */
interface Contender {
  readonly name: string
  /** A child process that warms up and measures itself: `run(n)` is called once and resolves with its cell. */
  readonly selfMeasured?: boolean
  readonly setup: (url: string, concurrency: number) => Promise<{ run: (n: number) => Promise<number | Cell>; close: () => Promise<void> }>
}

/** Shepherd's `ChatClient.create` under `Effect.forEach({ concurrency })`, with either transport. */
const shepherdWith = (
  name: string,
  transport: ChatClient.Options["transport"],
  tracing = true,
  module: typeof ChatClient = ChatClient,
  telemetry: Layer.Layer<never> = Layer.empty
): Contender => ({
  name,
  setup: async (url, concurrency) => {
    const client = module.layer({ baseUrl: url, connections: Math.max(concurrency, 1), transport, tracing }).pipe(Layer.orDie)
    const runtime = ManagedRuntime.make(Layer.merge(client, telemetry))
    const run = (n: number) =>
      runtime.runPromise(
        Effect.flatMap(module.ChatClient, (chat) => {
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
/** The Shepherd variants: transport, tracing, what else the runtime has. */
type Variant = readonly [transport: ChatClient.Options["transport"], tracing: boolean, telemetry: () => Layer.Layer<never>]
/** An exporter that drops what it is given: the spans' cost in the client, none of the export's. */
const dropSpans: SpanExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: () => Promise.resolve() }
const variants: Record<string, Variant> = {
  shepherd: ["undici", true, () => Layer.empty],
  "shepherd-platform": ["platform", true, () => Layer.empty],
  "shepherd-notrace": ["undici", false, () => Layer.empty],
  // An OpenTelemetry tracer installed (@effect/opentelemetry, a batch processor, an exporter that drops).
  "shepherd-otel": ["undici", true, () => NodeSdk.layer(() => ({ resource: { serviceName: "bench" }, spanProcessor: new BatchSpanProcessor(dropSpans) }))]
}
const shepherdVariant = (name: string, module: typeof ChatClient = ChatClient, as = name): Contender => {
  const [transport, tracing, telemetry] = variants[name]!
  return shepherdWith(as, transport, tracing, module, telemetry())
}
/**
 * `--shepherd-from DIR`: also `shepherd-base`, the client of another build (DIR/src/ChatClient.js)
 * with the options of the first Shepherd variant in --clients, to compare two versions in one run.
 */
const baseDir = args.get("shepherd-from")
const shepherdBase = baseDir === undefined
  ? undefined
  : shepherdVariant(
    clients.find((name) => name in variants) ?? "shepherd",
    (await import(pathToFileURL(resolvePath(baseDir, "src/ChatClient.js")).href)) as typeof ChatClient,
    "shepherd-base"
  )

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

/**
 * Raw undici under the same harness as Shepherd (`Effect.forEach({ concurrency })`, one
 * `Effect.promise` per request): what the harness itself costs, apart from Shepherd's pipeline.
 */
const effectUndici: Contender = {
  name: "effect-undici",
  setup: async (url, concurrency) => {
    const agent = new Agent({ connections: Math.max(concurrency, 1), keepAliveTimeout: 30_000 })
    const target = `${url}/chat/completions`
    const headers = { "content-type": "application/json", authorization: "Bearer sk-bench" }
    const one = Effect.promise(async () => {
      const res = await undiciRequest(target, { dispatcher: agent, method: "POST", headers, body: bodyText })
      const json = (await res.body.json()) as { choices?: unknown }
      return res.statusCode === 200 && json.choices !== undefined
    })
    const run = (n: number) =>
      Effect.runPromise(
        Effect.map(
          Effect.forEach(Array.from({ length: n }, (_, i) => i), () => one, { concurrency }),
          (oks) => oks.filter((ok) => !ok).length
        )
      )
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

const peerScript = fileURLToPath(new URL("../../bench/aiohttp_peer.py", import.meta.url))

/** The first Python that can import aiohttp, or undefined. */
const findPython = (): string | undefined => {
  const candidates = args.get("python") !== undefined ? [args.get("python")!] : ["python3", "/usr/bin/python3"]
  return candidates.find((python) => {
    try {
      execFileSync(python, ["-c", "import aiohttp"], { stdio: "ignore" })
      return true
    } catch {
      return false
    }
  })
}

/** The seed's pattern (Python, aiohttp, one ClientSession, a Semaphore): a child process per cell that measures itself. */
const aiohttp = (python: string): Contender => ({
  name: "aiohttp",
  selfMeasured: true,
  setup: async (url, concurrency) => ({
    run: (n) =>
      new Promise<Cell>((resolve, reject) => {
        const child = spawn(python, [peerScript, "--url", url, "--concurrency", String(concurrency), "--requests", String(n), "--warmup", String(warmup)], { stdio: ["ignore", "pipe", "inherit"] })
        let out = ""
        child.stdout.on("data", (data: Buffer) => { out += data.toString() })
        child.once("error", reject)
        child.once("exit", (code) => {
          if (code !== 0) return reject(new Error(`bench/aiohttp_peer.py exited with ${code}`))
          const cell = JSON.parse(out.trim().split("\n").pop()!) as Cell
          resolve(cell)
        })
      }),
    close: async () => {}
  })
})

const python = clients.includes("aiohttp") ? findPython() : undefined
if (clients.includes("aiohttp") && python === undefined) {
  console.log("note: aiohttp skipped: no python3 with aiohttp found (apt-get install python3-aiohttp, or pass --python PATH)\n")
}
const contenders = [
  ...(shepherdBase === undefined ? [] : [shepherdBase]),
  ...[...Object.keys(variants).map((name) => shepherdVariant(name)), undici, effectUndici, openai, ...(python === undefined ? [] : [aiohttp(python)])].filter((c) =>
    clients.includes(c.name)
  )
]

const profileDir = args.get("profile")
let profiles = 0

/** `run` under V8's sampling profiler when `--profile DIR` is given: DIR/NAME.N.cpuprofile covers only the timed requests. */
const profiled = async <A>(label: string, run: () => Promise<A>): Promise<A> => {
  if (profileDir === undefined) return run()
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.start")
  try {
    return await run()
  } finally {
    const { profile } = await session.post("Profiler.stop")
    mkdirSync(profileDir, { recursive: true })
    writeFileSync(joinPath(profileDir, `${label}.${++profiles}.cpuprofile`), JSON.stringify(profile))
    session.disconnect()
  }
}

const measure = async (contender: Contender, url: string, concurrency: number, n: number): Promise<Cell> => {
  const client = await contender.setup(url, concurrency)
  try {
    const own = contender.selfMeasured === true ? await client.run(n) : await client.run(Math.max(concurrency, warmup)) // warm-up: open the connections, JIT the path
    if (typeof own !== "number") return own
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const failed = await profiled(`${contender.name}@${concurrency}`, () => client.run(n))
    const elapsed = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    return { rps: (n / elapsed) * 1000, cpuMicros: (cpu.user + cpu.system) / n, failed: failed as number }
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
        // Each round starts with the next client: none always runs first (a cold JIT) or last.
        const order = contenders.map((_, i) => contenders[(i + round - 1) % contenders.length]!)
        for (const contender of order) {
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

  const names = contenders.map((c) => c.name)
  const header = ["concurrency", "ideal req/s", ...names.flatMap((name) => [`${name} req/s`, `% ideal`, `CPU us/req`]), "noise"]
  console.log(`| ${header.join(" | ")} |`)
  console.log(`|${header.map(() => "---:").join("|")}|`)
  for (const concurrency of levels) {
    const ideal = concurrency * (1000 / latency)
    const row: Array<string> = [String(concurrency), ideal.toFixed(0)]
    let noise = 0
    for (const name of names) {
      const cells = results.get(`${name}@${concurrency}`) ?? []
      noise = Math.max(noise, spreadPercent(cells.map((c) => c.rps)))
      const rps = median(cells.map((c) => c.rps))
      row.push(rps.toFixed(0), `${((100 * rps) / ideal).toFixed(0)}%`, median(cells.map((c) => c.cpuMicros)).toFixed(0))
    }
    row.push(`±${noise.toFixed(0)}%`)
    console.log(`| ${row.join(" | ")} |`)
  }

  // Ratios of each Shepherd variant to the peers, per round (the cells of one round ran minutes apart
  // at most, under the same load from the rest of the machine), then the median over rounds.
  const ratio = (name: string, peer: string, concurrency: number, field: keyof Cell): string => {
    const a = results.get(`${name}@${concurrency}`)
    const b = results.get(`${peer}@${concurrency}`)
    if (a === undefined || b === undefined) return "-"
    return `${median(a.map((cell, i) => cell[field] / b[i]![field])).toFixed(2)}x`
  }
  const variants = names.filter((name) => name.startsWith("shepherd"))
  if (variants.length > 0) {
    const peers = ["undici", "openai", "aiohttp", ...(shepherdBase === undefined ? [] : ["shepherd-base"])]
    const columns = ["concurrency", "client", ...peers.flatMap((peer) => [`req/s / ${peer}`, `CPU / ${peer}`])]
    console.log(`\nRatios (median over rounds of each round's ratio):\n`)
    console.log(`| ${columns.join(" | ")} |`)
    console.log(`|${columns.map(() => "---:").join("|")}|`)
    for (const concurrency of levels) {
      for (const name of variants) {
        const row = [String(concurrency), name]
        for (const peer of peers) row.push(ratio(name, peer, concurrency, "rps"), ratio(name, peer, concurrency, "cpuMicros"))
        console.log(`| ${row.join(" | ")} |`)
      }
    }
  }
  const failed = [...results.values()].flat().reduce((s, c) => s + c.failed, 0)
  if (failed > 0) console.log(`\n${failed} request(s) failed during the run`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
