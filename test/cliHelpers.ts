/** Running the built `shepherd` command in child processes, and batch files for it. */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const cli = fileURLToPath(new URL("../dist/bin/shepherd.js", import.meta.url))
export const KEY = "sk-run-test-5e4d3c2b1a09f8e7d6c5"

export interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
  /** What it printed on stdout. */
  readonly stdout: string
}

/** Starts `shepherd <command> ...args`; `ended` resolves when it exits. */
export const startCommand = (command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [cli, command, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, OPENAI_BASE_URL: "", OPENAI_API_KEY: "", SHEPHERD_REDIS_URL: "", ...env }
  })
  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => { stderr += chunk })
  let stdout = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => { stdout += chunk })
  // Also when awaited after the child exited (e.g. after a kill, its fiber having yielded meanwhile).
  const ended = Effect.async<Ended>((resume) => {
    const done = () => setImmediate(() => resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode, stderr, stdout })))
    if (child.exitCode !== null || child.signalCode !== null) done()
    else child.once("exit", done)
  })
  return { child, ended, stderr: () => stderr }
}

/** Starts `shepherd run ...args`. */
export const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => startCommand("run", args, env)

export const runToEnd = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => start(args, env).ended

export const tmp = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-run-"))

/** `n` input lines: every 10th is an embeddings request, the others chat; line i asks "question i". */
export const inputLines = (n: number, maxTokens = 20) =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `r${i}`,
      method: "POST",
      url: i % 10 === 9 ? "/v1/embeddings" : "/v1/chat/completions",
      body: i % 10 === 9
        ? { model: "text-embedding-3-small", input: `question ${i}` }
        : { model: "gpt-4.1-mini", messages: [{ role: "user", content: `question ${i}` }], max_tokens: maxTokens }
    }))

export const writeInput = (dir: string, lines: ReadonlyArray<string>) => {
  const path = Path.join(dir, "in.jsonl")
  Fs.writeFileSync(path, lines.join("\n") + "\n")
  return path
}

export interface Line {
  readonly id: string
  readonly custom_id: string
  readonly response: { readonly status_code: number; readonly body: Record<string, unknown> } | null
  readonly error: { readonly code: string; readonly message: string } | null
}

export const readOut = (path: string): Array<Line> =>
  Fs.existsSync(path) ? Fs.readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Line) : []

/** Which input a journal entry was: the number in its "question N". */
export const questionOf = (body: unknown): number => {
  const b = body as { messages?: Array<{ content: string }>; input?: string }
  const text = b.messages?.[0]?.content ?? b.input ?? ""
  return Number(/question (\d+)/.exec(text)?.[1])
}

export const waitFor = <A>(check: Effect.Effect<A | undefined>, what: string) =>
  Effect.retry(
    Effect.flatMap(check, (a) => (a === undefined ? Effect.fail(what) : Effect.succeed(a))),
    Schedule.spaced("20 millis").pipe(Schedule.upTo("20 seconds"))
  )

