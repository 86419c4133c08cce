/**
 * Shared pieces of the benchmarks: the mock server in a child process, argument parsing, medians.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const cliPath = fileURLToPath(new URL("../bin/shepherd.js", import.meta.url))

/** Starts `shepherd mock ARGS` in its own process; resolves with its base URL and a stop function. */
export const startMockProcess = async (args: ReadonlyArray<string>): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> => {
  const child = spawn(process.execPath, [cliPath, "mock", ...args], { stdio: ["ignore", "pipe", "inherit"] })
  const lines = createInterface({ input: child.stdout! })
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`shepherd mock exited with ${code} before listening`)))
    lines.once("line", resolve)
  })
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGTERM")
    })
  return { url, child, stop }
}

/** `--name value` pairs from argv. */
export const flags = (argv: ReadonlyArray<string>): Map<string, string> => {
  const out = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg.startsWith("--")) {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith("--")) out.set(arg.slice(2), "true")
      else {
        out.set(arg.slice(2), next)
        i++
      }
    }
  }
  return out
}

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Largest relative distance from the median, in percent: the run-to-run noise of one cell. */
export const spreadPercent = (xs: ReadonlyArray<number>): number => {
  const m = median(xs)
  return m === 0 ? 0 : Math.max(...xs.map((x) => Math.abs(x - m) / m)) * 100
}

/** Runs `task(i)` for i in [0, total) with at most `concurrency` in flight. */
export const runPool = async (total: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> => {
  let next = 0
  const worker = async () => {
    while (next < total) {
      const i = next++
      await task(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker))
}
