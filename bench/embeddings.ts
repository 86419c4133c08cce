/**
 * bench/embeddings: many short texts to vectors, Shepherd against the official SDK, same run, same
 * mock server (`shepherd mock`, its own process, zero latency, no request validation). Each client
 * runs in a process of its own: wall time and the client's CPU time from the first request to the
 * last vector (modules loaded and texts made before), requests the server received, and the
 * process's peak resident memory (VmHWM from /proc).
 *
 *   npm run build && node dist/bench/embeddings.js [--texts 100000] [--single-texts 100000]
 *       [--dimensions 256] [--clients shepherd,openai-single,openai-batched] [--concurrency 64]
 *       [--batched-concurrency 4]
 *
 * - `shepherd`: `Embeddings.embedMany(texts, { model, dimensions })`, defaults otherwise (base64, packed
 *   under 2,048 inputs and 300,000 tokens a request, 4 requests in flight).
 * - `openai-single`: the official SDK with p-limit, one text per request, `concurrency` in flight
 *   (`Promise.all(texts.map((t) => limit(() => client.embeddings.create({ input: t }))))`), on the
 *   first `single-texts` texts (one request each: on a busy machine, 100,000 take many minutes).
 * - `openai-batched`: the official SDK, the texts cut by hand into requests of 2,048,
 *   `batched-concurrency` in flight.
 * The SDK asks for base64 too (its default when `encoding_format` is not given) and returns number
 * arrays; Shepherd returns Float32Arrays.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { fileURLToPath } from "node:url"
import { flags, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const self = fileURLToPath(import.meta.url)
const MODEL = "text-embedding-3-small"

/** Short texts, like product titles or search queries: 5 to 12 words. */
const textsOf = (n: number): Array<string> => {
  const words = ["red", "running", "shoes", "for", "men", "waterproof", "jacket", "with", "hood", "size", "large", "blue", "cotton", "shirt", "summer", "sale"]
  return Array.from({ length: n }, (_, i) => {
    const count = 5 + (i % 8)
    return Array.from({ length: count }, (_, k) => words[(i * 7 + k * 3) % words.length]).join(" ") + ` #${i}`
  })
}

interface WorkerResult {
  readonly vectors: number
  readonly dimensions: number
  readonly cpuMillis: number
  readonly wallMillis: number
}

/** The worker side: one client embeds every text; prints a `WorkerResult` as JSON on stdout. */
const worker = async (name: string, url: string, n: number, dimensions: number, concurrency: number): Promise<WorkerResult> => {
  const texts = textsOf(n)
  // Modules loaded before the clock starts: the figures are the embedding's, not the imports'.
  const Effect = await import("effect/Effect")
  const Layer = await import("effect/Layer")
  const { ChatClient, Embeddings } = await import("../src/index.js")
  const { default: OpenAI } = await import("openai")
  const { default: pLimit } = await import("p-limit")
  const cpu = process.cpuUsage()
  const started = performance.now()
  let vectors: ReadonlyArray<ArrayLike<number>>
  if (name === "shepherd") {
    vectors = await Effect.runPromise(
      Embeddings.embedMany(texts, { model: MODEL, dimensions }).pipe(Effect.provide(ChatClient.layer({ baseUrl: url }).pipe(Layer.orDie)))
    )
  } else {
    const client = new OpenAI({ baseURL: url, apiKey: "sk-bench", maxRetries: 2 })
    const limit = pLimit(concurrency)
    if (name === "openai-single") {
      const answers = await Promise.all(texts.map((input) => limit(() => client.embeddings.create({ model: MODEL, input, dimensions }))))
      vectors = answers.map((a) => a.data[0]!.embedding)
    } else {
      const parts: Array<Array<string>> = []
      for (let i = 0; i < texts.length; i += 2048) parts.push(texts.slice(i, i + 2048))
      const answers = await Promise.all(parts.map((input) => limit(() => client.embeddings.create({ model: MODEL, input, dimensions }))))
      vectors = answers.flatMap((a) => [...a.data].sort((x, y) => x.index - y.index).map((d) => d.embedding))
    }
  }
  const used = process.cpuUsage(cpu)
  return { vectors: vectors.length, dimensions: vectors[0]?.length ?? 0, cpuMillis: (used.user + used.system) / 1000, wallMillis: performance.now() - started }
}

const peakRssMb = (pid: number): number => {
  try {
    const text = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    return Number(/VmHWM:\s+(\d+) kB/.exec(text)?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

/** Runs one client's process; its result, and its peak RSS (read just before it exits). */
const measure = (command: ReadonlyArray<string>) =>
  new Promise<{ result: WorkerResult; peakMb: number }>((resolve, reject) => {
    const child = spawn(process.execPath, command, { stdio: ["ignore", "pipe", "inherit"] })
    let stdout = ""
    let peakMb = 0
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c
      // The worker prints its result, then waits to be told to exit: its high-water mark is final.
      if (stdout.endsWith("\n")) {
        peakMb = peakRssMb(child.pid!)
        child.kill("SIGTERM")
      }
    })
    child.once("exit", () => {
      if (!stdout.endsWith("\n")) return reject(new Error(`${command.join(" ")} ended without a result`))
      resolve({ result: JSON.parse(stdout) as WorkerResult, peakMb })
    })
  })

const stats = async (url: string): Promise<number> => {
  const response = await fetch(`${url.replace(/\/v1\/?$/, "")}/_mock/stats`)
  return ((await response.json()) as { requests: number }).requests
}

const main = async () => {
  const n = Number(args.get("texts") ?? 100_000)
  const dimensions = Number(args.get("dimensions") ?? 256)
  const concurrency = Number(args.get("concurrency") ?? 64)
  const batchedConcurrency = Number(args.get("batched-concurrency") ?? 4)
  const clients = (args.get("clients") ?? "shepherd,openai-single,openai-batched").split(",")
  const mock = await startMockProcess(["--latency", "0ms", "--no-validate"])
  const singleN = Math.min(n, Number(args.get("single-texts") ?? n))
  const rows: Array<Array<string>> = []
  try {
    // The server loads its tokenizer on its first embeddings request: not in any client's figures.
    await fetch(`${mock.url}/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, input: "warm up" }) })
    for (const name of clients) {
      const count = name === "openai-single" ? singleN : n
      process.stderr.write(`${name}: ${count.toLocaleString("en-US")} texts...\n`)
      const before = await stats(mock.url)
      const c = name === "openai-batched" ? batchedConcurrency : concurrency
      const m = await measure([self, "--worker", name, "--url", mock.url, "--n", String(count), "--dimensions", String(dimensions), "--concurrency", String(c)])
      if (m.result.vectors !== count || m.result.dimensions !== dimensions) throw new Error(`${name}: ${m.result.vectors} vectors of ${m.result.dimensions}`)
      const requests = (await stats(mock.url)) - before
      const seconds = m.result.wallMillis / 1000
      rows.push([
        name,
        count.toLocaleString("en-US"),
        requests.toLocaleString("en-US"),
        seconds.toFixed(1),
        (count / seconds).toFixed(0),
        (m.result.cpuMillis / 1000).toFixed(1),
        ((m.result.cpuMillis * 1000) / count).toFixed(1),
        m.peakMb.toFixed(0)
      ])
    }
  } finally {
    await mock.stop()
  }
  const header = ["client", "texts", "requests", "wall s", "texts/s", "client CPU s", "CPU us/text", "peak RSS MB"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  console.log(header.map((h, i) => h.padStart(widths[i]!)).join("  "))
  for (const row of rows) console.log(row.map((c, i) => c.padStart(widths[i]!)).join("  "))
  console.log(
    `\ntexts of 5-12 words, ${dimensions} dimensions; openai-single ${concurrency} in flight, openai-batched ` +
      `${batchedConcurrency}; mock server at zero latency in its own process; ${Os.cpus().length} cores, Node ${process.version}`
  )
}

if (args.has("worker")) {
  worker(args.get("worker")!, args.get("url")!, Number(args.get("n")), Number(args.get("dimensions")), Number(args.get("concurrency")))
    .then((r) => {
      process.stdout.write(JSON.stringify(r) + "\n")
      // Kept alive until the parent has read the peak RSS and ends this process.
      setInterval(() => {}, 1000)
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
