/**
 * bench/json-adversarial: Shepherd's `Json.parse` against plain `jsonrepair` on large inputs with
 * the defects models produce, same run. Each parse runs in a worker thread of its own with a time
 * cap, so a quadratic case is reported as "> cap" instead of stalling the bench.
 *
 *   npm run build && node dist/bench/json-adversarial.js [--sizes 0.1,1,8] [--cap 30] [--kinds all]
 *
 * Reports the time of one parse, MB/s, and the growth factor from 1 MB to 8 MB (linear is 8x).
 */
import { Worker } from "node:worker_threads"
import { flags } from "./lib.js"

const args = flags(process.argv.slice(2))
const sizes = (args.get("sizes") ?? "0.1,1,8").split(",").map(Number)
const capSeconds = Number(args.get("cap") ?? 30)

/** One record in the style of each defect; repeated until the size is reached. */
const KINDS: Record<string, { readonly open: string; readonly item: (i: number) => string; readonly sep: string; readonly close: string }> = {
  "trailing-comma": { open: "[", item: (i) => `{"id": ${i}, "name": "item ${i}", "tags": ["a", "b",],}`, sep: ", ", close: "]" },
  "single-quote": { open: "[", item: (i) => `{'id': ${i}, 'name': 'item ${i}', 'note': 'say "hi"',}`, sep: ", ", close: "]" },
  "python-literals": { open: "[", item: (i) => `{"id": ${i}, "ok": True, "done": False, "parent": None}`, sep: ", ", close: "]" },
  comments: { open: "[", item: (i) => `{"id": ${i}, /* a note */ "name": "item ${i}"} // line\n`, sep: ", ", close: "]" },
  "unquoted-keys": { open: "[", item: (i) => `{id: ${i}, name: "item ${i}", score: 0.5}`, sep: ", ", close: "]" },
  "raw-newlines": { open: "[", item: (i) => `{"id": ${i}, "text": "line one\nline two\n"}`, sep: ", ", close: "]" },
  truncated: { open: "[", item: (i) => `{"id": ${i}, "name": "item ${i}", "tags": ["a", "b"]}`, sep: ", ", close: "" },
  // Python json_repair's issue #203: an unclosed string followed by many commas.
  "unclosed-string-commas": { open: '{"note": "starts here', item: () => ",", sep: " ", close: "" }
}

const kinds = args.get("kinds") === undefined || args.get("kinds") === "all" ? Object.keys(KINDS) : args.get("kinds")!.split(",")

const make = (kind: string, megabytes: number): string => {
  const k = KINDS[kind]!
  const target = Math.floor(megabytes * 1024 * 1024)
  const parts: Array<string> = [k.open]
  let length = 1
  for (let i = 0; length < target; i++) {
    const item = (i === 0 ? "" : k.sep) + k.item(i)
    parts.push(item)
    length += item.length
  }
  parts.push(k.close)
  let text = parts.join("")
  // The truncated kind stops in the middle of a string, as a response cut at max_tokens does.
  if (kind === "truncated") text = text.slice(0, text.lastIndexOf("item") + 2)
  return text
}

const workerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const run = async () => {
  const text = workerData.text
  let fn
  if (workerData.impl === "shepherd") {
    const Json = await import(workerData.jsonModule)
    fn = () => { const r = Json.parseEither(text); if (r._tag !== "Right") throw new Error(r.left.message) }
  } else {
    const { jsonrepair } = await import("jsonrepair")
    fn = () => JSON.parse(jsonrepair(text))
  }
  fn() // warm-up on the same input would double the time of slow cases: time the first call
  const start = performance.now()
  fn()
  parentPort.postMessage(performance.now() - start)
}
run().catch((e) => parentPort.postMessage({ error: String(e) }))
`

const jsonModule = new URL("../src/Json.js", import.meta.url).href

/** Milliseconds of one parse, or undefined past the cap. */
const time = (impl: "shepherd" | "jsonrepair", text: string) =>
  new Promise<number | undefined>((resolve, reject) => {
    const worker = new Worker(workerSource, { eval: true, workerData: { impl, text, jsonModule } })
    const timer = setTimeout(() => {
      void worker.terminate()
      resolve(undefined)
    }, capSeconds * 1000 * 2 + 1000)
    worker.once("message", (m: number | { error: string }) => {
      clearTimeout(timer)
      void worker.terminate()
      // A parser that cannot repair the input at all: shown as "fails".
      if (typeof m === "number") resolve(m > capSeconds * 1000 ? undefined : m)
      else resolve(-1)
    })
    worker.once("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })

const fmt = (ms: number | undefined) =>
  ms === undefined ? `> ${capSeconds} s` : ms < 0 ? "fails" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`
const rate = (mb: number, ms: number | undefined) => (ms === undefined || ms < 0 ? "-" : (mb / (ms / 1000)).toFixed(1))

const main = async () => {
  console.log(`bench/json-adversarial: one parse per cell (after one warm-up parse), each in its own worker thread, cap ${capSeconds} s; node ${process.version}\n`)
  const header = ["kind", ...sizes.flatMap((mb) => [`${mb} MB shepherd`, "MB/s", "jsonrepair", "MB/s"]), "shepherd 1->8 MB", "jsonrepair 1->8 MB"]
  console.log(`| ${header.join(" | ")} |`)
  console.log(`|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`)
  for (const kind of kinds) {
    const row = [kind]
    const mine = new Map<number, number | undefined>()
    const theirs = new Map<number, number | undefined>()
    let theirsCapped = false
    let theirsSkip: number | undefined = undefined
    for (const mb of sizes) {
      const text = make(kind, mb)
      const a = await time("shepherd", text)
      // Past the cap at a smaller size, a larger one would only take longer.
      const b: number | undefined = theirsCapped ? theirsSkip : await time("jsonrepair", text)
      if (b === undefined || b < 0) {
        theirsCapped = true
        theirsSkip = b
      }
      mine.set(mb, a)
      theirs.set(mb, b)
      row.push(fmt(a), rate(mb, a), fmt(b), rate(mb, b))
    }
    const growth = (m: Map<number, number | undefined>) => {
      const one = m.get(1)
      const eight = m.get(8)
      return one === undefined || eight === undefined || one < 0 || eight < 0 ? "-" : `${(eight / one).toFixed(1)}x`
    }
    row.push(growth(mine), growth(theirs))
    console.log(`| ${row.join(" | ")} |`)
  }
}

/** The deadline: an input the linear pass leaves to jsonrepair, through a JsonParser pool with its default deadline. */
const deadlineRun = async () => {
  const { Effect, Either, ManagedRuntime } = await import("effect")
  const JsonParser = await import("../src/JsonParser.js")
  const runtime = ManagedRuntime.make(JsonParser.layer({ maxThreads: 1 }))
  const parser = await runtime.runPromise(JsonParser.JsonParser)
  const mb = Number(args.get("deadline-mb") ?? 1)
  const text = make("trailing-comma", mb).slice(0, -1) + ', {"x": undefined}]'
  const started = performance.now()
  const result = await runtime.runPromise(Effect.either(parser.parse(text)))
  const elapsed = performance.now() - started
  const nextStarted = performance.now()
  await runtime.runPromise(parser.parse("x".repeat(20_000) + ' {"ok": true}'))
  const next = performance.now() - nextStarted
  await runtime.dispose()
  const outcome = Either.isLeft(result) ? `JsonParseError{reason: "${result.left.reason}"}` : "a value"
  console.log(`\ndeadline: ${mb} MB of trailing commas plus one \`undefined\` (left to jsonrepair), JsonParser with its default deadline ` +
    `(${String(JsonParser.defaults.deadline)} + ${String(JsonParser.defaults.deadlinePerMb)} per MB): ${outcome} after ${fmt(elapsed)}; the next parse on the same pool took ${fmt(next)}`)
}

main().then(deadlineRun).catch((e) => {
  console.error(e)
  process.exit(1)
})

