/** The `shepherd` command, run as users run it: the built CLI in a child process. */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { MockServer } from "../src/testing/index.js"
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { sharedRun } from "./helpers.js"

const cli = fileURLToPath(new URL("../dist/bin/shepherd.js", import.meta.url))

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, OPENAI_BASE_URL: "", ...env } })

/**
 * `shepherd demo` against its embedded mock server, started before the first test: it runs for about
 * ten seconds, mostly waiting on the mock's latency, while the other tests of this file run; its own
 * tests (the last ones) read what it printed.
 */
let demoChild: ChildProcess | undefined
let demoRun: Promise<{ readonly status: number | null; readonly stdout: string; readonly stderr: string }> | undefined
beforeAll(() => {
  demoRun = new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, "demo"], { encoding: "utf8", timeout: 60_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, OPENAI_BASE_URL: "" } }, (_error, stdout, stderr) =>
      resolve({ status: child.exitCode, stdout, stderr }))
    demoChild = child
  })
})
afterAll(() => {
  if (demoChild !== undefined && demoChild.exitCode === null && demoChild.signalCode === null) demoChild.kill("SIGKILL")
})

describe("shepherd mock", () => {
  it("prints its base URL first, serves completions, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [cli, "mock", "--latency", "5ms", "--seed", "3"], { stdio: ["ignore", "pipe", "pipe"] })
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve)
      child.once("exit", (code) => reject(new Error(`exited ${code}`)))
    })
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
    const res = await fetch(`${url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hello" }] })
    })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { object: string }).object).toBe("chat.completion")
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    child.kill("SIGTERM")
    await exited
    await expect(fetch(`${url}/models`)).rejects.toThrow()
  })

  it("rejects an unknown fault with the list of known ones", () => {
    const result = run(["mock", "--faults", "rate_limit,meteor"])
    expect(result.status).toBe(2)
    expect(result.stderr).toContain("unknown fault \"meteor\"")
    expect(result.stderr).toContain("truncated_body")
  })

  it("rejects a latency it cannot read", () => {
    const result = run(["mock", "--latency", "fast"])
    expect(result.status).toBe(2)
    expect(result.stderr).toContain("not a duration")
  })

  it("names an unset --api-key-env variable in one line and exits 1", () => {
    const result = run(["mock", "--api-key-env", "SHEPHERD_TEST_UNSET_VARIABLE"])
    expect(result.status).toBe(1)
    expect(result.stderr.trim()).toBe("shepherd: --api-key-env names SHEPHERD_TEST_UNSET_VARIABLE, which is not set: export it first")
  })
})

describe("shepherd demo against a provider", () => {
  it.scopedLive("with OPENAI_BASE_URL and OPENAI_API_KEY set it says so first and runs the small version there", () =>
    Effect.gen(function* () {
      const key = "sk-demo-provider-0a1b2c3d4e5f"
      // The first request is refused as invalid (400), the second answered with a body that is not JSON.
      const mock = yield* MockServer.make({ apiKey: key, latency: "5 millis", script: [{ type: "bad_request" }, { type: "malformed_json" }] })
      const result = yield* Effect.async<{ code: number | null; stdout: string }>((resume) => {
        const child = spawn(process.execPath, [cli, "demo"], { env: { ...process.env, OPENAI_BASE_URL: mock.url, OPENAI_API_KEY: key }, stdio: ["ignore", "pipe", "pipe"] })
        let stdout = ""
        child.stdout.setEncoding("utf8").on("data", (c: string) => { stdout += c })
        child.stderr.resume()
        child.once("exit", (code) => resume(Effect.succeed({ code, stdout })))
      })
      expect(result.code).toBe(0)
      expect(result.stdout.split("\n")[0]).toBe(`Shepherd demo against ${mock.url} with model gpt-4.1-mini (a small run: it sends about 120 requests and analyses 5 documents;`)
      expect(result.stdout).toContain("5 of 5 documents analysed")
      // Each failure is explained by what happened to it.
      expect(result.stdout).toContain("2 requests failed, each with a typed ChatError:")
      const apiLine = result.stdout.split("\n").find((line) => line.startsWith("  ApiError 400 x1: "))
      expect(apiLine).toMatch(/the server refused the request itself \(".+"\); final: the same request would be refused again$/)
      expect(apiLine).not.toContain("not a chat completion")
      expect(result.stdout).toMatch(/^ {2}ResponseDecodeError x1: a 200 answer whose body is not a chat completion/m)
      const journal = yield* mock.journal
      expect(journal.length).toBeGreaterThan(100)
      expect(journal.every((e) => e.status !== 401)).toBe(true)
      expect(result.stdout).not.toContain(key)
    }), 60_000)
})

describe("shepherd json", () => {
  it("prints the recovered value and how it was recovered; exits 1 with the reason when there is none", () => {
    const good = spawnSync(process.execPath, [cli, "json"], { input: "Sure:\n```json\n{\"a\": 1, \"b\": [true,],}\n```", encoding: "utf8" })
    expect(good.status).toBe(0)
    expect(JSON.parse(good.stdout)).toEqual({ a: 1, b: [true] })
    expect(good.stderr.trim()).toBe("recovery: repaired")
    const bad = spawnSync(process.execPath, [cli, "json"], { input: "I cannot help with that.", encoding: "utf8" })
    expect(bad.status).toBe(1)
    expect(bad.stdout).toBe("")
    expect(bad.stderr).toContain("no JSON found")
  })
})

describe("shepherd --version", () => {
  it("prints the package version", () => {
    const result = run(["--version"])
    expect(result.stdout.trim()).toContain("0.1.0")
  })
})

describe("shepherd demo: the whole story against the embedded mock server", () => {
  const demo = sharedRun(Effect.promise(async () => {
    const result = await demoRun!
    const lines = result.stdout.split("\n")
    const rows = lines.filter((line) => /^\s+(sequential|\d+)\s+\d+\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+\d+\s+[\d.]+x$/.test(line))
    return { result, lines, rows }
  }), 120_000)

  it("exits 0 with nothing on stderr, and says it runs against the embedded mock server", () => {
    const { result } = demo()
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
    expect(result.stdout).toContain("embedded mock server")
  })

  it("the table: sequential, 10, 20, 50 concurrent; every request counted; 50 at once is over 5x faster than one at a time", () => {
    const { result, rows } = demo()
    expect(rows.map((r) => r.trim().split(/\s+/)[0])).toEqual(["sequential", "10", "20", "50"])
    for (const row of rows) {
      const [, requests, ok, failed] = row.trim().split(/\s+/).map(Number)
      expect(ok! + failed!).toBe(requests)
    }
    const speedUp = Number(rows[3]!.trim().split(/\s+/).at(-1)!.slice(0, -1))
    expect(speedUp).toBeGreaterThan(5) // 50 concurrent calls against one at a time
    expect(result.stdout).toMatch(/\d+ retries absorbed/)
  })

  it("the failures are explained by what happened: the count matches the table, and each kind says why", () => {
    const { result, lines, rows } = demo()
    const failedInTable = rows.reduce((sum, row) => sum + Number(row.trim().split(/\s+/)[3]), 0)
    const kinds = lines.filter((line) => /^ {2}\w+Error( \d+| \(\w+\))? x\d+: /.test(line))
    if (failedInTable === 0) expect(kinds).toEqual([])
    else {
      expect(result.stdout).toContain(`${failedInTable} ${failedInTable === 1 ? "request" : "requests"} failed, each with a typed ChatError:`)
      expect(kinds.reduce((sum, line) => sum + Number(/ x(\d+): /.exec(line)![1]), 0)).toBe(failedInTable)
      for (const line of kinds) {
        // The mock's faults: malformed 200 bodies are final; 429s and 5xx only fail once the retries run out.
        if (line.includes("ResponseDecodeError")) expect(line).toContain("a 200 answer whose body is not a chat completion")
        else expect(line).toMatch(/the retries ran out|after \d+ attempts/)
      }
    }
  })

  it("4. routing over three deployments: every request answered by the two that work, the one refusing connections cooled down", () => {
    const { result, lines } = demo()
    expect(result.stdout).toContain("4. One client over three deployments (ChatClient.layerRouter)")
    const rowOf = (name: string) => {
      const line = lines.find((l) => new RegExp(`^  ${name}\\s+\\d+`).test(l))
      expect(line, name).toBeDefined()
      const [, requests, succeeded, rateLimited, cooldowns] = line!.trim().split(/\s+/).map(Number)
      return { requests: requests!, succeeded: succeeded!, rateLimited: rateLimited!, cooldowns: cooldowns! }
    }
    const [small, large, down] = [rowOf("small"), rowOf("large"), rowOf("down")]
    expect(result.stdout).toMatch(/ 80 of 80 answered in [\d.]+ s /)
    expect(small.succeeded + large.succeeded).toBe(80)
    expect(down.succeeded).toBe(0)
    expect(down.cooldowns).toBeGreaterThanOrEqual(1)
  })

  it("the 50 documents: analysed (over 40 of them), with their cost", () => {
    const { result } = demo()
    const analysed = /(\d+) of 50 documents analysed/.exec(result.stdout)
    expect(Number(analysed?.[1])).toBeGreaterThan(40)
    expect(result.stdout).toContain("analysed 50/50 documents")
    expect(result.stdout).toMatch(/cost: \d+ prompt \+ \d+ completion tokens = \$\d+\.\d{6}/)
  })

  it("how the answers' JSON was read: each kind named once", () => {
    const recovered = demo().lines.find((line) => line.startsWith("The answers' JSON: "))!
    expect(recovered).toMatch(/\d+ repaired \(prose around it, trailing commas\)/)
    expect(recovered.match(/repaired/g)).toHaveLength(1)
  })

  it("the example analysis reads as sentences: a summary of two, key points of one each", () => {
    const { lines } = demo()
    const summary = lines.find((line) => line.startsWith("  summary: "))!.slice("  summary: ".length)
    expect(summary).toMatch(/^[A-Z][^.]+\. [A-Z][^]+\.$/)
    const keyPoints = lines.filter((line) => line.startsWith("    - "))
    expect(keyPoints.length).toBeGreaterThanOrEqual(2)
    for (const point of keyPoints) expect(point).toMatch(/^ {4}- [A-Z].*\.$/)
  })

  it("the answer: five ranked sources, best first, scores all different; the answer cites the best one", () => {
    const { result, lines } = demo()
    const sources = lines.filter((line) => /^ {2}kb-\d+ {2}score +[\d.]+ {2}\S/.test(line)).map((line) => {
      const [, id, score, title] = /^ {2}(kb-\d+) {2}score +([\d.]+) {2}(.+)$/.exec(line)!
      return { id: id!, score: Number(score), title: title! }
    })
    expect(sources).toHaveLength(5)
    expect(sources[0]!.title).toBe("Refunds (UK store)")
    expect(new Set(sources.map((s) => s.score)).size).toBe(5)
    for (let i = 1; i < sources.length; i++) expect(sources[i]!.score).toBeLessThan(sources[i - 1]!.score)
    expect(result.stdout).toContain(`answer: Refunds for damaged items are paid within three working days of the return reaching our warehouse [${sources[0]!.id}].`)
  })
})
