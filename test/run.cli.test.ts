/**
 * `shepherd run` as users run it: the built CLI in a child process, against a MockServer in this
 * process (so its journal shows every request the CLI sent).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { cli, inputLines, KEY, questionOf, readOut, runToEnd, start, tmp, waitFor, writeInput } from "./cliHelpers.js"
import { batchValidatorFor, sharedRun, validatorFor } from "./helpers.js"

const validOutput = batchValidatorFor("BatchRequestOutput")
const validInput = batchValidatorFor("BatchRequestInput")

describe("shepherd run", { concurrent: true }, () => {
  describe("one run of 120 requests (chat and embeddings) with 15% faults: 429, 503, 400", () => {
    const lines = inputLines(120)
    const run = sharedRun(Effect.gen(function* () {
      const mock = yield* MockServer.make({
        apiKey: KEY,
        seed: 7,
        faultRate: 0.15,
        faults: [{ type: "rate_limit", retryAfterMillis: 5 }, { type: "server_error", status: 503 }, { type: "bad_request" }]
      })
      const dir = tmp()
      const input = writeInput(dir, lines)
      const out = Path.join(dir, "out.jsonl")
      const summaryPath = Path.join(dir, "summary.json")
      const metricsPath = Path.join(dir, "metrics.json")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--concurrency", "8", "--summary", summaryPath, "--metrics", metricsPath, "--no-progress"], { OPENAI_API_KEY: KEY })
      return {
        ended,
        out,
        written: readOut(out),
        journal: yield* mock.journal,
        summaryText: Fs.readFileSync(summaryPath, "utf8"),
        metricsText: Fs.readFileSync(metricsPath, "utf8")
      }
    }))

    it("the input lines are valid BatchRequestInput lines", () => {
      for (const line of lines) expect(validInput(JSON.parse(line))).toBeUndefined()
    })

    it("exits 0 having written exactly one output line per custom_id", () => {
      const { ended, written } = run()
      expect(ended.code, ended.stderr).toBe(0)
      expect(written.map((l) => l.custom_id).sort()).toEqual(lines.map((_, i) => `r${i}`).sort())
    })

    it("every output line is a spec-valid BatchRequestOutput, and each 200 body a spec-valid chat completion or embeddings response", () => {
      for (const line of run().written) {
        expect(validOutput(line)).toBeUndefined()
        const i = Number(line.custom_id.slice(1))
        if (line.response?.status_code === 200) {
          const schema = i % 10 === 9 ? "CreateEmbeddingResponse" : "CreateChatCompletionResponse"
          expect(validatorFor(schema)(line.response.body)).toBeUndefined()
        }
      }
    })

    it("the 400s are final and written as OpenAI writes an error answer", () => {
      const rejected = run().written.filter((l) => l.response?.status_code === 400)
      expect(rejected.length).toBeGreaterThan(0)
      for (const l of rejected) expect(l.response!.body).toMatchObject({ error: { type: "invalid_request_error" } })
    })

    it("the summary (file and last line) matches the server: totals, successes, 429s, retries", () => {
      const { ended, journal, summaryText, written } = run()
      const summary = JSON.parse(summaryText)
      expect(summary).toMatchObject({ total: 120, written: 120, remaining: 0, stoppedBy: null })
      expect(summary.succeeded).toBe(written.filter((l) => l.response?.status_code === 200).length)
      expect(summary.rateLimited).toBe(journal.filter((e) => e.status === 429).length)
      expect(summary.retries).toBe(journal.length - 120)
      expect(ended.stderr).toContain("shepherd run: 120 outcomes written")
    })

    it("--metrics: the process's shepherd_* metrics agree with the server", () => {
      const { journal, metricsText, summaryText } = run()
      const { metrics } = JSON.parse(metricsText) as { metrics: Array<{ name: string; labels: Record<string, string>; value: { count: number } }> }
      const total = (name: string) => metrics.filter((m) => m.name === name).reduce((sum, m) => sum + m.value.count, 0)
      expect(total("shepherd_requests_total")).toBe(120)
      expect(total("shepherd_attempts_total")).toBe(journal.length)
      expect(total("shepherd_rate_limited_total")).toBe(JSON.parse(summaryText).rateLimited)
    })

    it("the key went to the server and nowhere else: not in the output, the summary, the metrics or the messages", () => {
      const { ended, out, metricsText, summaryText } = run()
      for (const text of [Fs.readFileSync(out, "utf8"), summaryText, metricsText, ended.stderr]) expect(text).not.toContain(KEY)
    })
  })

  it.scopedLive("reports every invalid line with its number and sends nothing (exit 2); --skip-invalid sends the valid ones", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const good = inputLines(3)
      const input = writeInput(dir, [
        good[0]!,
        "{not json",
        JSON.stringify({ custom_id: "r0", method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: "question 0" }] } }),
        JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: {} }),
        JSON.stringify({ custom_id: "x", method: "POST", url: "/v1/completions", body: { model: "m", prompt: "hi" } }),
        JSON.stringify({ custom_id: "y", method: "PUT", url: "/v1/chat/completions", body: {} }),
        JSON.stringify({ custom_id: "z", method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "wizard", content: "x" }] } }),
        "",
        good[1]!
      ])
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url])
      expect(ended.code).toBe(2)
      expect(ended.stderr).toContain(`${input}:2: not JSON`)
      expect(ended.stderr).toContain(`${input}:3: custom_id "r0" is already used on line 1`)
      expect(ended.stderr).toContain(`${input}:4: missing custom_id`)
      expect(ended.stderr).toContain(`${input}:5: unsupported url "/v1/completions"`)
      expect(ended.stderr).toContain(`${input}:6: method must be "POST"`)
      expect(ended.stderr).toContain(`${input}:7: body.messages[0].role`)
      expect(ended.stderr).toContain("6 invalid lines")
      expect(ended.stderr).not.toContain(`${input}:8:`) // a blank line is not an error
      expect(yield* mock.journal).toHaveLength(0)
      expect(Fs.existsSync(out)).toBe(false)

      const skipped = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--skip-invalid", "--no-progress"])
      expect(skipped.code).toBe(0)
      expect(readOut(out).map((l) => l.custom_id).sort()).toEqual(["r0", "r1"])
      expect((yield* mock.journal).map((e) => questionOf(e.body)).sort()).toEqual([0, 1])
    }))

  it.scopedLive("after kill -9 mid-run, the rerun completes the file and sends none of the requests already written", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "30 millis", journalLimit: 100_000 })
      const dir = tmp()
      const input = writeInput(dir, inputLines(400))
      const out = Path.join(dir, "out.jsonl")
      const first = start([input, "--out", out, "--base-url", mock.url, "--concurrency", "8", "--no-progress"])
      yield* waitFor(Effect.sync(() => (readOut(out).length >= 60 ? true : undefined)), "60 lines written")
      first.child.kill("SIGKILL")
      const killed = yield* first.ended
      expect(killed.signal).toBe("SIGKILL")
      const before = readOut(out)
      expect(before.length).toBeLessThan(400)
      const writtenIds = new Set(before.map((l) => Number(l.custom_id.slice(1))))
      const sentBefore = (yield* mock.journal).length

      const second = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--concurrency", "8", "--no-progress"])
      expect(second.code).toBe(0)
      expect(second.stderr).toContain(`resuming: ${before.length} of 400 requests already have a final outcome`)
      const after = readOut(out)
      expect(after).toHaveLength(400)
      expect(new Set(after.map((l) => l.custom_id)).size).toBe(400)
      const resent = (yield* mock.journal).slice(sentBefore).map((e) => questionOf(e.body)).filter((i) => writtenIds.has(i))
      expect(resent).toEqual([])
    }))

  it.scopedLive("a budget stops the run cleanly: spend within it, exit 1, no line for unsent requests; a rerun with more budget finishes", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "5 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(100))
      const out = Path.join(dir, "out.jsonl")
      const summaryPath = Path.join(dir, "summary.json")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--concurrency", "4", "--budget-usd", "0.001", "--summary", summaryPath, "--no-progress"])
      expect(ended.code).toBe(1)
      expect(ended.stderr).toContain("stopped by the budget of $0.001000")
      const summary = JSON.parse(Fs.readFileSync(summaryPath, "utf8"))
      expect(summary.stoppedBy).toBe("budget")
      expect(summary.costMicroUsd).toBeLessThanOrEqual(1000)
      const written = readOut(out)
      expect(written.length).toBeGreaterThan(5)
      expect(written.length).toBeLessThan(100)
      expect(written.every((l) => l.response?.status_code === 200)).toBe(true)
      expect(yield* mock.journal).toHaveLength(written.length) // refused requests never reached the server
      expect(summary.remaining).toBe(100 - written.length)

      const rerun = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--budget-usd", "1", "--no-progress"])
      expect(rerun.code).toBe(0)
      expect(readOut(out)).toHaveLength(100)
      expect(yield* mock.journal).toHaveLength(100)
    }))

  it.scopedLive("SIGINT stops sending, lets the requests in flight finish, writes the summary and exits 130", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "150 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(200))
      const out = Path.join(dir, "out.jsonl")
      const summaryPath = Path.join(dir, "summary.json")
      const run = start([input, "--out", out, "--base-url", mock.url, "--concurrency", "6", "--summary", summaryPath, "--no-progress"])
      yield* waitFor(Effect.sync(() => (readOut(out).length >= 12 ? true : undefined)), "12 lines")
      run.child.kill("SIGINT")
      const ended = yield* run.ended
      expect(ended.code).toBe(130)
      expect(ended.stderr).toContain("stopping: no new requests")
      const written = readOut(out)
      const journal = yield* mock.journal
      // every request sent was answered and written: none was cut off
      expect(journal.filter((e) => e.hungUp)).toEqual([])
      expect(written).toHaveLength(journal.length)
      expect(written.length).toBeLessThan(200)
      const summary = JSON.parse(Fs.readFileSync(summaryPath, "utf8"))
      expect(summary).toMatchObject({ stoppedBy: "interrupted", written: written.length, remaining: 200 - written.length })
    }))

  it.scopedLive("a second SIGINT aborts the requests in flight at once; the file holds whole lines only", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ script: ["ok", "ok", "ok", { type: "hang" }, { type: "hang" }, { type: "hang" }] })
      const dir = tmp()
      const input = writeInput(dir, inputLines(50))
      const out = Path.join(dir, "out.jsonl")
      const run = start([input, "--out", out, "--base-url", mock.url, "--concurrency", "3", "--no-progress", "--grace", "10m"])
      yield* waitFor(Effect.map(mock.journal, (j) => (j.length >= 6 ? true : undefined)), "three hanging requests")
      run.child.kill("SIGINT")
      yield* waitFor(Effect.sync(() => (run.stderr().includes("stopping") ? true : undefined)), "the first signal's notice")
      run.child.kill("SIGINT")
      const ended = yield* run.ended
      expect(ended.code).toBe(130)
      expect(ended.stderr).toContain("the run was interrupted")
      const text = Fs.readFileSync(out, "utf8")
      expect(text.endsWith("\n")).toBe(true)
      expect(readOut(out)).toHaveLength(3)
      yield* waitFor(Effect.map(mock.journal, (j) => (j.filter((e) => e.hungUp).length === 3 ? true : undefined)), "the server sees the hang-ups")
    }))

  it.scopedLive("without a terminal, progress is a plain line every --progress-interval", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "20 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(60))
      const ended = yield* runToEnd([input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, "--concurrency", "2", "--progress-interval", "100ms"])
      expect(ended.code).toBe(0)
      const lines = ended.stderr.split("\n").filter((l) => l.startsWith("progress: "))
      expect(lines.length).toBeGreaterThan(2)
      expect(lines[0]).toMatch(/^progress: \d+\/60 \(\d+\.\d%\) [\d.]+ req\/s, ETA \S+, \d+ tokens, \$\d+\.\d{6}, 0 errors$/)
    }))

  it.scopedLive("--api-key-env names the variable holding the key; an unset one is refused before anything is read", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY })
      const dir = tmp()
      const input = writeInput(dir, inputLines(5))
      const out = Path.join(dir, "out.jsonl")
      const unset = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--api-key-env", "SHEPHERD_TEST_UNSET_KEY"])
      expect(unset.code).toBe(2)
      expect(unset.stderr).toContain("--api-key-env names SHEPHERD_TEST_UNSET_KEY, which is not set")
      const ok = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--api-key-env", "MY_PROVIDER_KEY", "--no-progress"], { MY_PROVIDER_KEY: KEY })
      expect(ok.code).toBe(0)
      expect(readOut(out).every((l) => l.response?.status_code === 200)).toBe(true)
      expect(Fs.readFileSync(out, "utf8")).not.toContain(KEY)
    }))

  // `script` (util-linux's bsdutils, essential in Debian) runs the CLI on a pseudo-terminal, so stderr is a TTY.
  it.scopedLive("on a terminal, progress is a bar with done/total, req/s, ETA, tokens, cost and errors", () =>
    Effect.gen(function* () {
      if (!Fs.existsSync("/usr/bin/script")) throw new Error("this test needs /usr/bin/script (Debian: apt-get install bsdutils)")
      const mock = yield* MockServer.make({ latency: "10 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(80))
      const out = Path.join(dir, "out.jsonl")
      const command = [process.execPath, cli, "run", input, "--out", out, "--base-url", mock.url, "--concurrency", "2"].map((a) => `'${a}'`).join(" ")
      const screen = yield* Effect.async<string>((resume) => {
        const child = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENAI_BASE_URL: "", OPENAI_API_KEY: "" } })
        let text = ""
        child.stdout.setEncoding("utf8").on("data", (c: string) => { text += c })
        child.stderr.resume()
        child.once("exit", () => resume(Effect.succeed(text)))
      })
      expect(screen).toMatch(/80\/80 \| [\d.]+ req\/s \| ETA \S+ \| \d+ tokens \| \$\d+\.\d{6} \| 0 errors/)
      expect(screen).not.toContain("progress: ") // no plain lines on a terminal
      expect(readOut(out)).toHaveLength(80)
    }))
})
