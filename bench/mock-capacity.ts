/**
 * bench/mock-capacity: how many chat completions a second MockServer answers at zero latency, in a
 * process of its own, so that it never limits the client benchmarks (target: >= 10,000 req/s).
 *
 *   npm run build && node dist/bench/mock-capacity.js [--seconds 5] [--connections 64] [--rounds 3]
 *
 * The load comes from `wrk` (Debian package `wrk`) when it is installed, since a Node client spends more
 * CPU per request than the server does; otherwise from undici in this process, and the table says so.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Agent, request } from "undici"
import { flags, median, runPool, spreadPercent, startMockProcess } from "./lib.js"

const args = flags(process.argv.slice(2))
const seconds = Number(args.get("seconds") ?? 5)
const connections = Number(args.get("connections") ?? 64)
const rounds = Number(args.get("rounds") ?? 3)

const body = JSON.stringify({
  model: "gpt-4.1-mini",
  messages: [
    { role: "system", content: "You are a support assistant for an online shop. Answer in one sentence." },
    { role: "user", content: "Where is my order 12345? It was due on Monday." }
  ],
  max_tokens: 64
})

const hasWrk = spawnSync("wrk", ["--version"]).error === undefined

const withWrk = (url: string): number => {
  const dir = mkdtempSync(join(tmpdir(), "shepherd-bench-"))
  const script = join(dir, "post.lua")
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`)
  const out = execFileSync("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "-s", script, `${url}/chat/completions`], { encoding: "utf8" })
  const match = /Requests\/sec:\s+([\d.]+)/.exec(out)
  if (match === null) throw new Error(`could not read wrk's output:\n${out}`)
  return Number(match[1])
}

const withUndici = async (url: string): Promise<number> => {
  const agent = new Agent({ connections })
  const target = `${url}/chat/completions`
  const deadline = performance.now() + seconds * 1000
  let done = 0
  const t0 = performance.now()
  await runPool(Number.MAX_SAFE_INTEGER, connections, async () => {
    if (performance.now() > deadline) throw new Error("done")
    const res = await request(target, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json" }, body })
    await res.body.text()
    done++
  }).catch(() => undefined)
  const elapsed = performance.now() - t0
  await agent.destroy()
  return (done / elapsed) * 1000
}

const main = async () => {
  const mock = await startMockProcess(["--latency", "0ms"])
  const generator = hasWrk ? `wrk, 1 thread, ${connections} connections` : `undici in-process, ${connections} connections (install wrk for a load generator that is not the limit)`
  console.log(`bench/mock-capacity: MockServer in its own process at zero latency; load from ${generator}; ${rounds} x ${seconds} s\n`)
  const results: Array<number> = []
  try {
    for (let round = 1; round <= rounds; round++) {
      const rps = hasWrk ? withWrk(mock.url) : await withUndici(mock.url)
      results.push(rps)
      process.stderr.write(`round ${round}: ${rps.toFixed(0)} req/s\n`)
    }
  } finally {
    await mock.stop()
  }
  console.log("| server | load | median req/s | noise | target |")
  console.log("|---|---|---:|---:|---:|")
  console.log(`| MockServer, 0 ms latency | ${hasWrk ? "wrk" : "undici"} | ${median(results).toFixed(0)} | ±${spreadPercent(results).toFixed(0)}% | >= 10000 |`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
