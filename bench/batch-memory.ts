/**
 * bench/batch-memory: peak memory of a large batch, Shepherd against the usual ways, same run, same
 * mock server (a separate process, zero latency). Each client runs in a process of its own, whose
 * resident memory is sampled from /proc every 100 ms.
 *
 *   npm run build && node dist/bench/batch-memory.js [--requests 1000000] [--peer-requests 100000]
 *       [--concurrency 64] [--clients shepherd,cli,undici,openai]
 *
 * - `shepherd`: `Batch.run` over a lazily generated `Stream` of requests, outcomes counted as they come.
 * - `cli`: `shepherd run` on a batch file of that many lines, writing every outcome to its output file.
 * - `undici`: raw undici calls from `concurrency` loops over a counter (the flat-memory floor).
 * - `openai`: the official SDK with p-limit, the usual `Promise.all(items.map((x) => limit(...)))`.
 * The peers run `--peer-requests` requests (the SDK's pattern holds every promise and result, so its
 * memory grows with the batch; 1M requests through it would take most of an hour here).
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { flags, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const self = fileURLToPath(import.meta.url)
const cliPath = fileURLToPath(new URL("../bin/shepherd.js", import.meta.url))

const body = {
  model: "gpt-4.1-mini",
  messages: [
    { role: "system" as const, content: "You are a support assistant for an online shop. Answer in one sentence." },
    { role: "user" as const, content: "Where is my order 12345? It was due on Monday." }
  ],
  max_tokens: 32
}

/** The worker side: one client, `n` requests, prints `{ ok, failed }` as JSON on stdout. */
const worker = async (name: string, url: string, n: number, concurrency: number): Promise<{ ok: number; failed: number }> => {
  if (name === "shepherd") {
    const Effect = await import("effect/Effect")
    const Stream = await import("effect/Stream")
    const Layer = await import("effect/Layer")
    const { Batch, ChatClient } = await import("../src/index.js")
    const requests = Stream.map(Stream.range(0, n - 1), (i) => ({ custom_id: `r${i}`, body }))
    const program = Batch.run(requests, { concurrency }).pipe(
      Stream.runFold({ ok: 0, failed: 0 }, (acc, o) => (o._tag === "Success" ? { ...acc, ok: acc.ok + 1 } : { ...acc, failed: acc.failed + 1 })),
      Effect.provide(ChatClient.layer({ baseUrl: url, connections: concurrency, retry: { maxRetries: 0 } }).pipe(Layer.orDie))
    )
    return Effect.runPromise(program)
  }
  if (name === "undici") {
    const { Agent, request } = await import("undici")
    const agent = new Agent({ connections: concurrency })
    const text = JSON.stringify(body)
    let next = 0
    let ok = 0
    let failed = 0
    const loop = async () => {
      while (next < n) {
        next++
        try {
          const res = await request(`${url}/chat/completions`, { method: "POST", body: text, headers: { "content-type": "application/json" }, dispatcher: agent })
          const json = await res.body.json()
          if (res.statusCode === 200 && json !== null) ok++
          else failed++
        } catch {
          failed++
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, loop))
    await agent.close()
    return { ok, failed }
  }
  if (name === "openai") {
    const { default: OpenAI } = await import("openai")
    const { default: pLimit } = await import("p-limit")
    const client = new OpenAI({ baseURL: url, apiKey: "sk-bench", maxRetries: 0 })
    const limit = pLimit(concurrency)
    const items = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, messages: body.messages }))
    const results = await Promise.all(items.map((item) =>
      limit(() => client.chat.completions.create({ model: body.model, messages: [...item.messages], max_tokens: body.max_tokens }).then((c) => ({ id: item.id, c }), (e: unknown) => ({ id: item.id, e })))
    ))
    let ok = 0
    for (const r of results) if ("c" in r) ok++
    return { ok, failed: n - ok }
  }
  throw new Error(`unknown client ${name}`)
}

interface Measured {
  readonly name: string
  readonly requests: number
  readonly seconds: number
  readonly ok: number
  /** Resident memory at 10%, 50% and 90% of the run's time, and the peak, in MB. */
  readonly rss: readonly [number, number, number]
  readonly peakMb: number
}

const statusOf = (pid: number): { rss: number; hwm: number } | undefined => {
  try {
    const text = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0)
    return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 }
  } catch {
    return undefined
  }
}

/** Runs a command, sampling its memory; resolves with the samples and its stdout. */
const measure = (command: ReadonlyArray<string>) =>
  new Promise<{ seconds: number; samples: Array<number>; peakMb: number; stdout: string }>((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, command, { stdio: ["ignore", "pipe", "inherit"] })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => { stdout += c })
    const samples: Array<number> = []
    let peakMb = 0
    const timer = setInterval(() => {
      const s = statusOf(child.pid!)
      if (s === undefined) return
      samples.push(s.rss)
      peakMb = Math.max(peakMb, s.hwm)
    }, 100)
    child.once("exit", (code) => {
      clearInterval(timer)
      if (code !== 0) return reject(new Error(`${command.join(" ")} exited with ${code}`))
      resolve({ seconds: (performance.now() - started) / 1000, samples, peakMb, stdout })
    })
  })

const at = (samples: ReadonlyArray<number>, fraction: number) => samples[Math.min(samples.length - 1, Math.floor(samples.length * fraction))] ?? 0

const main = async () => {
  const n = Number(args.get("requests") ?? 1_000_000)
  const peerN = Number(args.get("peer-requests") ?? 100_000)
  const concurrency = Number(args.get("concurrency") ?? 64)
  const clients = (args.get("clients") ?? "shepherd,cli,undici,openai").split(",")
  const mock = await startMockProcess(["--latency", "0ms", "--no-validate"])
  const results: Array<Measured> = []
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-bench-"))
  try {
    for (const name of clients) {
      const count = name === "shepherd" || name === "cli" ? n : peerN
      let command: Array<string>
      if (name === "cli") {
        const input = Path.join(dir, "in.jsonl")
        const out = Fs.createWriteStream(input)
        for (let i = 0; i < count; i++) {
          const line = JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body }) + "\n"
          if (!out.write(line)) await new Promise<void>((r) => out.once("drain", () => r()))
        }
        await new Promise<void>((r) => out.end(() => r()))
        command = [cliPath, "run", input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, "--concurrency", String(concurrency), "--no-progress", "--max-retries", "0"]
      } else {
        command = [self, "--worker", name, "--url", mock.url, "--n", String(count), "--concurrency", String(concurrency)]
      }
      process.stderr.write(`${name}: ${count.toLocaleString("en-US")} requests...\n`)
      const m = await measure(command)
      results.push({ name, requests: count, seconds: m.seconds, ok: 0, rss: [at(m.samples, 0.1), at(m.samples, 0.5), at(m.samples, 0.9)], peakMb: m.peakMb })
      if (name === "cli") {
        const lines = await new Promise<number>((resolve) => {
          let count = 0
          Fs.createReadStream(Path.join(dir, "out.jsonl")).on("data", (chunk) => { for (const b of chunk as Buffer) if (b === 10) count++ }).on("end", () => resolve(count))
        })
        process.stderr.write(`cli: ${lines.toLocaleString("en-US")} output lines\n`)
        for (const f of ["in.jsonl", "out.jsonl"]) Fs.rmSync(Path.join(dir, f))
      }
    }
  } finally {
    await mock.stop()
    Fs.rmSync(dir, { recursive: true, force: true })
  }
  const header = ["client", "requests", "seconds", "req/s", "RSS at 10% MB", "at 50%", "at 90%", "peak RSS MB"]
  const rows = results.map((r) => [
    r.name,
    r.requests.toLocaleString("en-US"),
    r.seconds.toFixed(1),
    (r.requests / r.seconds).toFixed(0),
    ...r.rss.map((x) => x.toFixed(0)),
    r.peakMb.toFixed(0)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  console.log(header.map((h, i) => h.padStart(widths[i]!)).join("  "))
  for (const row of rows) console.log(row.map((c, i) => c.padStart(widths[i]!)).join("  "))
  console.log(`\nconcurrency ${concurrency}, mock server at zero latency in its own process; ${Os.cpus().length} cores, Node ${process.version}`)
}

if (args.has("worker")) {
  worker(args.get("worker")!, args.get("url")!, Number(args.get("n")), Number(args.get("concurrency")))
    .then((r) => {
      process.stdout.write(JSON.stringify(r) + "\n")
      if (r.failed > 0) process.stderr.write(`${args.get("worker")}: ${r.failed} failed\n`)
    })
    .catch((e) => {
      console.error(e)
      process.exit(1)
    })
} else {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
