/**
 * bench/streaming: time to first token and chunk throughput of streamed completions, Shepherd's
 * `ChatClient.stream` against raw undici with a hand-rolled line split and against the official
 * `openai` SDK's stream, same run, same mock server (a separate process).
 *
 *   npm run build && node dist/bench/streaming.js [--latency 20] [--interval 1] [--chunk-chars 4]
 *       [--concurrency 1,50] [--streams 400] [--rounds 3] [--clients shepherd,shepherd-each,undici,openai] [--warmup 200]
 *
 * The mock answers after `--latency` ms, then sends a chunk of `--chunk-chars` characters every
 * `--interval` ms (about 60 chunks per answer). For each client and concurrency it runs `--streams`
 * streams (a tenth of them at concurrency 1) and reports the median time to the first content chunk
 * (TTFT), the median time to the end of a stream, chunks per second over the cell, and the client's
 * CPU per chunk. Each cell starts after a warm-up of `--warmup` streams (default 200, about 12,000
 * chunks: enough for V8 to optimise every client's path; 20 left a deep path partly unoptimised).
 * Rounds are interleaved, each starting with the next client; the table shows medians.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import OpenAI from "openai"
import { Agent, request as undiciRequest } from "undici"
import * as ChatClient from "../src/ChatClient.js"
import type * as ChatError from "../src/ChatError.js"
import type * as ChatSchema from "../src/ChatSchema.js"
import { flags, median, runPool, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const latency = Number(args.get("latency") ?? 20)
const interval = Number(args.get("interval") ?? 1)
const chunkChars = Number(args.get("chunk-chars") ?? 4)
const levels = (args.get("concurrency") ?? "1,50").split(",").map(Number)
const streams = Number(args.get("streams") ?? 400)
const rounds = Number(args.get("rounds") ?? 3)
const clients = (args.get("clients") ?? "shepherd,shepherd-each,undici,openai").split(",")
const warmup = Number(args.get("warmup") ?? 200)

const body = {
  model: "gpt-4.1-mini",
  messages: [{ role: "user" as const, content: "Where is my order 12345? It was due on Monday and the tracking page has not changed since." }],
  max_tokens: 256
}

/** One stream's timings: to its first content chunk and to its end, in ms; and its chunk count. */
interface One {
  readonly ttft: number
  readonly total: number
  readonly chunks: number
}

interface Contender {
  readonly name: string
  readonly setup: (url: string, concurrency: number) => Promise<{ one: () => Promise<One>; close: () => Promise<void> }>
}

/** Shepherd, its chunks consumed one way or the other (`consume` gets the service, the request and the per-chunk effect). */
const shepherdWith = (
  name: string,
  consume: (chat: ChatClient.Service, onChunk: (chunk: ChatSchema.ChatCompletionChunk) => Effect.Effect<void>) => Effect.Effect<void, ChatError.ChatError>
): Contender => ({
  name,
  setup: async (url, concurrency) => {
    const runtime = ManagedRuntime.make(ChatClient.layer({ baseUrl: url, connections: Math.max(concurrency, 1) }).pipe(Layer.orDie))
    const chat = await runtime.runPromise(ChatClient.ChatClient)
    const one = () => {
      const start = performance.now()
      let ttft = -1
      let chunks = 0
      return runtime.runPromise(
        consume(chat, (chunk) =>
          Effect.sync(() => {
            chunks++
            if (ttft < 0 && (chunk.choices[0]?.delta.content ?? "") !== "") ttft = performance.now() - start
          }))
      ).then(() => ({ ttft, total: performance.now() - start, chunks }))
    }
    return { one, close: () => runtime.dispose() }
  }
})

/** `Stream.runForEach(chat.stream(request), f)`: the answer as an Effect `Stream`. */
const shepherd = shepherdWith("shepherd", (chat, onChunk) => Stream.runForEach(chat.stream(body), onChunk))
/** `chat.streamForEach(request, f)`: the same pipeline and chunks, without a `Stream`. */
const shepherdEach = shepherdWith("shepherd-each", (chat, onChunk) => chat.streamForEach(body, onChunk))

const undici: Contender = {
  name: "undici",
  setup: async (url, concurrency) => {
    const agent = new Agent({ connections: Math.max(concurrency, 1) })
    const text = JSON.stringify({ ...body, stream: true })
    const one = async (): Promise<One> => {
      const start = performance.now()
      let ttft = -1
      let chunks = 0
      const res = await undiciRequest(`${url}/chat/completions`, {
        method: "POST",
        body: text,
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        dispatcher: agent
      })
      // The hand-rolled way: split on blank lines, take the data lines, JSON.parse them.
      let buffer = ""
      const decoder = new TextDecoder()
      for await (const piece of res.body) {
        buffer += decoder.decode(piece as Uint8Array, { stream: true })
        let end: number
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (!event.startsWith("data: ")) continue
          const data = event.slice(6)
          if (data === "[DONE]") continue
          const chunk = JSON.parse(data) as { choices: Array<{ delta: { content?: string } }> }
          chunks++
          if (ttft < 0 && (chunk.choices[0]?.delta.content ?? "") !== "") ttft = performance.now() - start
        }
      }
      return { ttft, total: performance.now() - start, chunks }
    }
    return { one, close: () => agent.close() }
  }
}

const openai: Contender = {
  name: "openai",
  setup: async (url) => {
    const client = new OpenAI({ baseURL: url, apiKey: "sk-bench", maxRetries: 0 })
    const one = async (): Promise<One> => {
      const start = performance.now()
      let ttft = -1
      let chunks = 0
      const stream = await client.chat.completions.create({ ...body, messages: [...body.messages], stream: true })
      for await (const chunk of stream) {
        chunks++
        if (ttft < 0 && (chunk.choices[0]?.delta.content ?? "") !== "") ttft = performance.now() - start
      }
      return { ttft, total: performance.now() - start, chunks }
    }
    return { one, close: async () => {} }
  }
}

interface Cell {
  readonly ttft: number
  readonly total: number
  readonly chunksPerSecond: number
  readonly cpuMicrosPerChunk: number
}

const runCell = async (contender: Contender, url: string, concurrency: number): Promise<Cell> => {
  const { one, close } = await contender.setup(url, concurrency)
  const n = concurrency === 1 ? Math.max(10, Math.floor(streams / 10)) : streams
  await runPool(Math.max(Math.min(concurrency, 20), warmup), concurrency, one) // warm-up
  const results: Array<One> = []
  const cpu = process.cpuUsage()
  const start = performance.now()
  await runPool(n, concurrency, async () => { results.push(await one()) })
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  await close()
  const chunks = results.reduce((sum, r) => sum + r.chunks, 0)
  return {
    ttft: median(results.map((r) => r.ttft)),
    total: median(results.map((r) => r.total)),
    chunksPerSecond: chunks / seconds,
    cpuMicrosPerChunk: (used.user + used.system) / chunks
  }
}

const main = async () => {
  const mock = await startMockProcess(["--latency", `${latency}ms`, "--stream-interval", `${interval}ms`, "--stream-chunk-chars", String(chunkChars)])
  const contenders = [shepherd, shepherdEach, undici, openai].filter((c) => clients.includes(c.name))
  try {
    console.log(`bench/streaming: mock server ${mock.url} (separate process), ${latency} ms to the first chunk, a chunk of ${chunkChars} characters every ${interval} ms; ${rounds} round(s), node ${process.version}\n`)
    const header = ["concurrency", ...contenders.flatMap((c) => [`${c.name} TTFT ms`, "stream ms", "chunks/s", "CPU us/chunk"])]
    console.log(`| ${header.join(" | ")} |`)
    console.log(`|${header.map(() => "---:").join("|")}|`)
    for (const concurrency of levels) {
      const cells = new Map<string, Array<Cell>>()
      for (let round = 0; round < rounds; round++) {
        for (const contender of contenders.map((_, i) => contenders[(i + round) % contenders.length]!)) {
          const cell = await runCell(contender, mock.url, concurrency)
          cells.set(contender.name, [...(cells.get(contender.name) ?? []), cell])
        }
      }
      const row = [String(concurrency)]
      for (const contender of contenders) {
        const list = cells.get(contender.name)!
        row.push(
          median(list.map((c) => c.ttft)).toFixed(1),
          median(list.map((c) => c.total)).toFixed(1),
          median(list.map((c) => c.chunksPerSecond)).toFixed(0),
          median(list.map((c) => c.cpuMicrosPerChunk)).toFixed(1)
        )
      }
      console.log(`| ${row.join(" | ")} |`)
    }
  } finally {
    await mock.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
