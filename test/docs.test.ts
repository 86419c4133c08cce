/**
 * Every TypeScript program in README.md and docs/ is typechecked and run, as a user would run it:
 * importing "effect-shepherd" (the built package, by self-reference), against a MockServer.
 * A block counts as a program when it has an import; type sketches without imports are prose.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { execFile, spawnSync } from "node:child_process"
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
  const server = await Effect.runPromise(Scope.extend(MockServer.make({ latency: "2 millis" }), scope))
  url = server.url
  if (withRedis) redisUrl = (await Effect.runPromise(Scope.extend(startRedis, scope))).url
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })
  for (const example of examples) {
    writeFileSync(join(outDir, `${example.name}.ts`), example.source)
    const js = ts.transpileModule(example.source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
    writeFileSync(join(outDir, `${example.name}.mjs`), js.outputText)
  }
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  rmSync(outDir, { recursive: true, force: true })
})

describe("documentation examples", () => {
  it("there are examples to check", () => {
    expect(examples.length).toBeGreaterThanOrEqual(4)
  })

  it("all typecheck against the published types", () => {
    writeFileSync(
      join(outDir, "tsconfig.json"),
      JSON.stringify({ extends: "../tsconfig.base.json", compilerOptions: { noEmit: true, noUnusedLocals: false }, include: ["*.ts"] })
    )
    const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(outDir, "tsconfig.json")], { encoding: "utf8" })
    expect(tsc.stdout + tsc.stderr).toBe("")
    expect(tsc.status).toBe(0)
  }, 60_000)

  for (const example of examples) {
    it.skipIf(needsRedis(example) && !withRedis)(`${example.name} runs against the mock server`, async () => {
      // Asynchronously: the mock server lives in this process and must keep answering.
      const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [join(outDir, `${example.name}.mjs`)], {
          encoding: "utf8",
          timeout: 60_000,
          env: { ...process.env, OPENAI_BASE_URL: url, OPENAI_API_KEY: "sk-docs-example", ...(redisUrl === "" ? {} : { REDIS_URL: redisUrl }) }
        }, (_error, stdout, stderr) => resolve({ status: child.exitCode, stdout, stderr }))
      })
      expect(result.stderr).toBe("")
      expect(result.status).toBe(0)
      expect(result.stdout.length).toBeGreaterThan(0)
    }, 60_000)
  }
})
