/**
 * bench/json: what JSON repair does to the event loop, inline against the JsonParser pool, and how fast
 * each path is by size.
 *
 *   npm run build && node dist/bench/json.js [--docs 200] [--concurrency 4]
 *
 * 1. Event-loop delay (perf_hooks.monitorEventLoopDelay, max and p99) while `--docs` malformed 1 MB
 *    documents (Python literals, which jsonrepair repairs in linear time) are parsed, `--concurrency`
 *    at a time, with a 10 ms interval timer running: inline against the pool.
 * 2. Time per document and MB/s at 1 KB, 64 KB, 1 MB and 8 MB: inline `Json.parse`, the pool, and
 *    plain `jsonrepair` + `JSON.parse`.
 * 3. What the main thread pays to receive a parsed 1 MB / 8 MB value: `structuredClone` of the value
 *    (what the pool does today) against `JSON.parse` of its text (the alternative).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import { jsonrepair } from "jsonrepair"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Json from "../src/Json.js"
import * as JsonParser from "../src/JsonParser.js"
import { flags, median } from "./lib.js"

const args = flags(process.argv.slice(2))
const docs = Number(args.get("docs") ?? 200)
const concurrency = Number(args.get("concurrency") ?? 4)

/** A document of about `bytes` with Python literals (True, None) in every object. */
const malformed = (bytes: number, seed = 0) =>
  "Here is the data:\n[" + Array.from({ length: Math.max(1, Math.ceil(bytes / 48)) }, (_, i) => `{"id": ${i + seed}, "ok": True, "note": None, "n": ${i % 7}}`).join(",") + "]"

const parserWith = async (inlineBelowBytes: number) => {
  const scope = Effect.runSync(Scope.make())
  const ctx = await Effect.runPromise(Scope.extend(Layer.build(JsonParser.layer({ inlineBelowBytes })), scope))
  return { parser: Context.get(ctx, JsonParser.JsonParser), close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const loopDelay = async (label: string, inlineBelowBytes: number, texts: ReadonlyArray<string>) => {
  const { close, parser } = await parserWith(inlineBelowBytes)
  // warm the pool's worker up so that its start is not counted
  await Effect.runPromise(parser.parse(texts[0]!))
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  // Our own 10 ms timer too: a loop blocked for the whole run never lets the histogram record.
  let ticks = 0
  let last = performance.now()
  let worstGap = 0
  const timer = setInterval(() => {
    const now = performance.now()
    worstGap = Math.max(worstGap, now - last)
    last = now
    ticks++
  }, 10)
  histogram.enable()
  const t0 = performance.now()
  await Effect.runPromise(Effect.forEach(Array.from({ length: docs }, (_, i) => i), (i) => parser.parse(texts[i % texts.length]!), { concurrency, discard: true }))
  const end = performance.now()
  worstGap = Math.max(worstGap, end - last)
  const seconds = (end - t0) / 1000
  histogram.disable()
  clearInterval(timer)
  await close()
  const mb = texts.reduce((s, t) => s + t.length, 0) / texts.length / 1e6
  return { label, maxMs: Math.max(histogram.max / 1e6, worstGap - 10), p99Ms: histogram.percentile(99) / 1e6, seconds, docsPerSecond: docs / seconds, mbPerSecond: (docs * mb) / seconds, ticks, expectedTicks: Math.floor(seconds * 100) }
}

const timePer = (runs: number, f: () => unknown): number => {
  const times: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    f()
    times.push(performance.now() - t0)
  }
  return median(times)
}

const timePerAsync = async (runs: number, f: () => Promise<unknown>): Promise<number> => {
  const times: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await f()
    times.push(performance.now() - t0)
  }
  return median(times)
}

const main = async () => {
  console.log(`bench/json: node ${process.version}; ${docs} malformed 1 MB documents, ${concurrency} at a time\n`)
  const texts = [0, 1, 2, 3].map((seed) => malformed(1_000_000, seed * 100_000))
  const rows = [await loopDelay("inline", Number.POSITIVE_INFINITY, texts), await loopDelay("pool", 0, texts)]
  console.log("| path | event-loop delay max ms | histogram p99 ms | 10 ms timer ticks (of expected) | seconds | docs/s | MB/s |")
  console.log("|---|---:|---:|---:|---:|---:|---:|")
  for (const r of rows) console.log(`| ${r.label} | ${r.maxMs.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.ticks} (${r.expectedTicks}) | ${r.seconds.toFixed(1)} | ${r.docsPerSecond.toFixed(1)} | ${r.mbPerSecond.toFixed(1)} |`)
  console.log(`\npool max delay / inline max delay: ${(rows[1]!.maxMs / rows[0]!.maxMs).toFixed(3)}\n`)

  const { close, parser } = await parserWith(0)
  await Effect.runPromise(parser.parse(texts[0]!))
  console.log("| size | inline ms/doc | pool ms/doc (round trip) | jsonrepair + JSON.parse ms/doc | inline MB/s | pool MB/s | jsonrepair MB/s |")
  console.log("|---:|---:|---:|---:|---:|---:|---:|")
  for (const [name, bytes, runs] of [["1 KB", 1_000, 200], ["64 KB", 64_000, 50], ["1 MB", 1_000_000, 7], ["8 MB", 8_000_000, 3]] as const) {
    const text = malformed(bytes)
    const mb = text.length / 1e6
    const inline = timePer(runs, () => Json.parseEither(text))
    const pool = await timePerAsync(runs, () => Effect.runPromise(parser.parse(text)))
    const plain = timePer(runs, () => JSON.parse(jsonrepair(text.slice(text.indexOf("[")))))
    console.log(`| ${name} | ${inline.toFixed(2)} | ${pool.toFixed(2)} | ${plain.toFixed(2)} | ${(mb / (inline / 1000)).toFixed(1)} | ${(mb / (pool / 1000)).toFixed(1)} | ${(mb / (plain / 1000)).toFixed(1)} |`)
  }
  await close()

  console.log("\n| value of | structuredClone ms (what the pool's reply costs) | JSON.parse of its text ms |")
  console.log("|---:|---:|---:|")
  for (const [name, bytes] of [["1 MB", 1_000_000], ["8 MB", 8_000_000]] as const) {
    const value = JSON.parse(jsonrepair(malformed(bytes).slice(malformed(bytes).indexOf("["))))
    const text = JSON.stringify(value)
    console.log(`| ${name} | ${timePer(5, () => structuredClone(value)).toFixed(1)} | ${timePer(5, () => JSON.parse(text)).toFixed(1)} |`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
