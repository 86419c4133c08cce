/**
 * bench/profileSummary: what a V8 CPU profile (`node --cpu-prof`) spent its time on, as text.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/throughput.js --concurrency 200 --clients shepherd --rounds 1 --requests 8000
 *   node dist/bench/profileSummary.js /tmp/prof/CPU.*.cpuprofile [--top 25] [--focus /src/] [--per 8000]
 *
 * Prints, over the samples that were not idle:
 * - the top `--top` functions by self time (file:line, ms, % of busy time);
 * - self time by file (which module the CPU is in: effect's fiber runtime, undici, the GC, ...);
 * - the top functions by total time (self and callees, each sample counted once per function) whose
 *   file contains `--focus` (default `/src/`, the library's own code);
 * `--per N` adds a column of microseconds per unit (e.g. per request) to every table. Several files
 * are summed as one profile.
 */
import { readFileSync } from "node:fs"
import { flags } from "./lib.js"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const argv = process.argv.slice(2)
const files = argv.filter((arg, i) => !arg.startsWith("--") && (i === 0 || !argv[i - 1]!.startsWith("--")))
const args = flags(argv)
const top = Number(args.get("top") ?? 25)
const focus = args.get("focus") ?? "/src/"
const per = args.get("per") === undefined ? undefined : Number(args.get("per"))

if (files.length === 0) {
  console.error("usage: node dist/bench/profileSummary.js FILE.cpuprofile... [--top 25] [--focus /src/] [--per N]")
  process.exit(2)
}

/** A short, stable name for a file: from `node_modules/` or the project's `dist/` on. */
const shortFile = (url: string): string => {
  if (url === "") return "(native)"
  const path = url.replace(/^file:\/\//, "")
  const modules = path.lastIndexOf("node_modules/")
  if (modules >= 0) return path.slice(modules + "node_modules/".length)
  const dist = path.lastIndexOf("/dist/")
  if (dist >= 0) return path.slice(dist + 1)
  return path
}

const frameKey = (frame: CallFrame): string =>
  frame.url === ""
    ? frame.functionName
    : `${frame.functionName || "(anonymous)"} ${shortFile(frame.url)}:${frame.lineNumber + 1}:${frame.columnNumber + 1}`

const selfByFunction = new Map<string, number>()
const selfByFile = new Map<string, number>()
const totalByFunction = new Map<string, number>()
let busy = 0
let idle = 0

const add = (map: Map<string, number>, key: string, micros: number) => map.set(key, (map.get(key) ?? 0) + micros)

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  for (let i = 0; i < profile.samples.length; i++) {
    const micros = profile.timeDeltas[i] ?? 0
    const node = byId.get(profile.samples[i]!)!
    if (node.callFrame.functionName === "(idle)") {
      idle += micros
      continue
    }
    busy += micros
    add(selfByFunction, frameKey(node.callFrame), micros)
    add(selfByFile, node.callFrame.url === "" ? node.callFrame.functionName : shortFile(node.callFrame.url), micros)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame
      if (!frame.url.includes(focus)) continue
      const key = frameKey(frame)
      if (seen.has(key)) continue
      seen.add(key)
      add(totalByFunction, key, micros)
    }
  }
}

const table = (title: string, map: Map<string, number>, limit: number) => {
  console.log(`\n${title}\n`)
  const columns = ["ms", "% busy", ...(per === undefined ? [] : ["us/unit"]), "function / file"]
  console.log(`| ${columns.join(" | ")} |`)
  console.log(`|${columns.map((_, i) => (i === columns.length - 1 ? "---" : "---:")).join("|")}|`)
  for (const [key, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)) {
    const cells = [(micros / 1000).toFixed(1), `${((100 * micros) / busy).toFixed(1)}%`, ...(per === undefined ? [] : [(micros / per).toFixed(1)]), key]
    console.log(`| ${cells.join(" | ")} |`)
  }
}

console.log(
  `${files.length} profile(s): ${(busy / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle` +
    (per === undefined ? "" : `; ${(busy / per).toFixed(1)} us busy per unit (${per} units)`)
)
table(`Top ${top} functions by self time`, selfByFunction, top)
table(`Self time by file (top ${top})`, selfByFile, top)
table(`Top ${top} functions in files matching "${focus}" by total time (self and callees)`, totalByFunction, top)
