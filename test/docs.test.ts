/**
 * Every TypeScript program in README.md and docs/ is typechecked and run, as a user would run it:
 * importing "effect-shepherd" (the built package, by self-reference), against a MockServer.
 * A block counts as a program when it has an import; type sketches without imports are prose.
 * The programs run one after another in one child process (test/docsRunner.mjs), each to its own
 * end, and each is checked for its own output and exit status.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { execFile } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { MockServer } from "../src/testing/index.js"
import { redisAvailable, startRedis } from "./redisServer.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const outDir = join(root, ".docs-test")

interface Example {
  readonly name: string
  readonly source: string
}

const examples: Array<Example> = []
for (const file of ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)]) {
  const text = readFileSync(join(root, file), "utf8")
  // A block ends at a line that is only its closing fence (a fence inside a string does not end it).
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
  blocks.forEach((source, i) => {
    if (/^import /m.test(source)) examples.push({ name: `${file.replace(/[/.]/g, "_")}_${i}`, source })
  })
}

let url = ""
let redisUrl = ""
const scope = Effect.runSync(Scope.make())
/** Examples that share limits through Redis get one of their own (REDIS_URL). */
const needsRedis = (example: Example) => example.source.includes("REDIS_URL")
const withRedis = examples.some(needsRedis) && redisAvailable("documentation examples with Redis")

beforeAll(async () => {
  const server = await Effect.runPromise(Scope.extend(MockServer.make({ latency: "2 millis", batchApi: { validating: "200 millis", perRequest: "5 millis", finalizing: "200 millis" } }), scope))
  url = server.url
  if (withRedis) redisUrl = (await Effect.runPromise(Scope.extend(startRedis, scope))).url
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })
  for (const example of examples) {
    writeFileSync(join(outDir, `${example.name}.ts`), example.source)
    const js = ts.transpileModule(example.source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
    writeFileSync(join(outDir, `${example.name}.mjs`), js.outputText)
  }
  ran = runExamples(examples.filter((example) => !needsRedis(example) || withRedis))
  // Read by each example's test; a rejection here would be a bug in this file.
  ran.catch(() => {})
})

afterAll(async () => {
  await ran
  await Effect.runPromise(Scope.close(scope, Exit.void))
  rmSync(outDir, { recursive: true, force: true })
})

const runner = fileURLToPath(new URL("./docsRunner.mjs", import.meta.url))
/** Starts each marker line of the runner (test/docsRunner.mjs). */
const MARK = "\u0000docs-example"

/** What one example did: its exit status (or the signal that ended it) and its output. */
interface Ran {
  readonly status: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * One stream of a runner split by example (by its index in the runner's arguments): its text, and
 * the exit status its end marker carries (none when the process ended during that example). Text
 * after an end marker can only come from the example that ran last; text before the first start
 * marker (index -1) is the runner's own.
 */
const sections = (text: string) => {
  const parts = new Map<number, { text: string; status?: number }>()
  let last: { text: string; status?: number } | undefined
  for (const line of text.split(/(?<=\n)/)) {
    if (line.startsWith(`${MARK} `)) {
      const [what, index, status] = line.slice(MARK.length + 1).trimEnd().split(" ")
      if (what === "start") {
        last = { text: "" }
        parts.set(Number(index), last)
      } else last!.status = Number(status)
    } else if (last !== undefined) last.text += line
    else parts.set(-1, { text: (parts.get(-1)?.text ?? "") + line })
  }
  return parts
}

const exampleEnv = () => ({ ...process.env, OPENAI_BASE_URL: url, OPENAI_API_KEY: "sk-docs-example", ...(redisUrl === "" ? {} : { REDIS_URL: redisUrl }) })

/**
 * Runs `list` in runners until each has run: an example that ends its process (process.exit, an
 * uncaught error, the timeout) is given that exit, and the examples after it run in a new runner.
 */
const runExamples = async (list: ReadonlyArray<Example>): Promise<Map<string, Ran>> => {
  const results = new Map<string, Ran>()
  let pending = list
  while (pending.length > 0) {
    // Asynchronously: the mock server lives in this process and must keep answering.
    const run = await new Promise<Ran>((resolve) => {
      const child = execFile(process.execPath, [runner, ...pending.map((e) => join(outDir, `${e.name}.mjs`))], {
        encoding: "utf8",
        timeout: 60_000 + 10_000 * pending.length,
        maxBuffer: 64 * 1024 * 1024,
        env: exampleEnv(),
        // Files an example writes (a Batch API state file) land in the scratch directory.
        cwd: outDir
      }, (_error, stdout, stderr) => resolve({ status: child.exitCode, signal: child.signalCode, stdout, stderr }))
    })
    const out = sections(run.stdout)
    const err = sections(run.stderr)
    const started = pending.filter((_, i) => out.has(i) || err.has(i)).length
    if (started === 0) {
      // The runner itself failed: every example gets its exit and output.
      for (const example of pending) results.set(example.name, run)
      break
    }
    pending.slice(0, started).forEach((example, i) => {
      const status = out.get(i)?.status
      results.set(example.name, {
        status: status ?? run.status,
        signal: status === undefined ? run.signal : null,
        stdout: out.get(i)?.text ?? "",
        stderr: (err.get(i)?.text ?? "") + (i === 0 ? err.get(-1)?.text ?? "" : "")
      })
    })
    pending = pending.slice(started)
  }
  return results
}

/** Started once all examples are written and the servers listen; each example's test reads its own result. */
let ran: Promise<Map<string, Ran>> | undefined

describe("documentation examples", () => {
  it("there are examples to check", () => {
    expect(examples.length).toBeGreaterThanOrEqual(4)
  })

  it("all typecheck against the published types", async () => {
    writeFileSync(
      join(outDir, "tsconfig.json"),
      JSON.stringify({ extends: "../tsconfig.base.json", compilerOptions: { noEmit: true, noUnusedLocals: false }, include: ["*.ts"] })
    )
    // Asynchronously: the examples are running against the mock server in this process meanwhile.
    const tsc = await new Promise<{ status: number | null; output: string }>((resolve) => {
      const child = execFile(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(outDir, "tsconfig.json")], { encoding: "utf8" }, (_error, stdout, stderr) =>
        resolve({ status: child.exitCode, output: stdout + stderr }))
    })
    expect(tsc.output).toBe("")
    expect(tsc.status).toBe(0)
  }, 120_000)

  for (const example of examples) {
    it.skipIf(needsRedis(example) && !withRedis)(`${example.name} runs against the mock server`, async () => {
      const result = (await ran!).get(example.name)!
      expect(result.stderr).toBe("")
      expect(result.signal).toBe(null)
      expect(result.status).toBe(0)
      expect(result.stdout.length).toBeGreaterThan(0)
    }, 180_000)
  }
})
