/**
 * Issue 14 §3-§5: `shepherd run` exits honestly, stops early when nothing can work, speaks in one
 * voice, and its progress display agrees with its summary and gets out of the way on Ctrl-C. The
 * built CLI in child processes (build first: npx tsc -p tsconfig.build.json).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { Batch, ChatClient, ChatError } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import * as ExitStatus from "../src/cli/exitStatus.js"
import * as ErrorRules from "../src/internal/errorRules.js"
import { cli, inputLines, KEY, readOut, runToEnd, startCommand, tmp, waitFor, writeInput } from "./cliHelpers.js"
import { completion } from "./helpers.js"
import * as Hostile from "./hostile/server.js"

/** A loopback port nothing listens on. */
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  }))

/** A plain-text server that answers every connection with an HTTP 400 and counts the connections (TLS to it fails). */
const plainServer = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ readonly port: number; readonly connections: () => number; readonly close: () => Promise<void> }>((resolve) => {
      const sockets = new Set<Net.Socket>()
      let count = 0
      const server = Net.createServer((socket) => {
        count++
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
        socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
      })
      const close = () =>
        new Promise<void>((done) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => done())
        })
      server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as Net.AddressInfo).port, connections: () => count, close }))
    })),
  ({ close }) => Effect.promise(close)
)

const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "")
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]|\u001b[78]/g

/** Runs `args` under `script` on a pseudo-terminal; `input` is typed into it (e.g. "\x03" for Ctrl-C). */
const onTerminal = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  if (!Fs.existsSync("/usr/bin/script")) throw new Error("this test needs /usr/bin/script (Debian: apt-get install bsdutils)")
  const command = [process.execPath, cli, ...args].map((a) => `'${a}'`).join(" ")
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, OPENAI_BASE_URL: "", OPENAI_API_KEY: "", ...env }
  })
  let screen = ""
  child.stdout.setEncoding("utf8").on("data", (c: string) => { screen += c })
  child.stderr.resume()
  const ended = Effect.async<number | null>((resume) => {
    child.once("exit", (code) => setImmediate(() => resume(Effect.succeed(code))))
  })
  return { child, ended, screen: () => screen, type: (text: string) => child.stdin.write(text) }
}

/** The bar's frames: done, total, ETA text and cost. */
const frames = (screen: string) =>
  [...screen.replace(ANSI, "\n").matchAll(/(\d+)\/(\d+) \| [\d.]+ req\/s \| ETA (\S+) \| \S+ tokens \| (\$[\d.]+) \| \d+ errors/g)]
    .map((m) => ({ done: Number(m[1]), total: Number(m[2]), eta: m[3]!, cost: m[4]! }))

/** `shepherd run --help` with stdout a pipe: one process, read by the tests of 14.3 and 14.4. */
let help: Promise<string> | undefined
const helpOutput = () =>
  help ??= new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [cli, "run", "--help"], { stdio: ["ignore", "pipe", "pipe"] })
    let text = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => { text += c })
    child.once("exit", () => resolve(text))
  })

describe("14.3 shepherd run exits honestly and stops early when nothing can work", { concurrent: true }, () => {
  it("14.3 --help and docs/batch.md state the exit status contract: 0, 1, 2, 130", async () => {
      const help = await helpOutput()
      const docs = Fs.readFileSync(new URL("../docs/batch.md", import.meta.url), "utf8")
      for (const [status, meaning] of ExitStatus.rows) {
        expect(help).toMatch(new RegExp(`^  ${status} +${meaning.replace(/[()]/g, "\\$&")}$`, "m"))
        expect(docs).toContain(`| ${status} | ${meaning} |`)
      }
  })

  it.scopedLive("14.3 configuration errors are found before anything runs: one line naming the flag, exit 2, no summary, nothing sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const input = writeInput(dir, inputLines(20))
      const out = Path.join(dir, "out.jsonl")
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [[], /^shepherd: no API key: https:\/\/api\.openai\.com\/v1 needs one\. Set OPENAI_API_KEY/],
        [["--base-url", mock.url, "--max-retries", "-1"], /^shepherd: --max-retries must be at least 0, got -1$/],
        [["--base-url", mock.url, "--rpm", "0"], /^shepherd: --rpm must be at least 1, got 0/],
        [["--base-url", mock.url, "--tpm", "0"], /^shepherd: --tpm must be at least 1, got 0/],
        [["--base-url", "ftp://example.com/v1"], /^shepherd: --base-url must be an http\(s\) URL/]
      ]
      const results = yield* Effect.forEach(cases, ([args]) => runToEnd([input, "--out", out, "--no-progress", ...args]), { concurrency: 2 })
      results.forEach((ended, i) => {
        expect(ended.code, cases[i]![0].join(" ")).toBe(ExitStatus.USAGE)
        expect(lines(ended.stderr)).toHaveLength(1)
        expect(ended.stderr.trim()).toMatch(cases[i]![1])
        expect(ended.stderr).not.toContain("outcomes written")
      })
      expect(yield* mock.journal).toHaveLength(0)
      expect(readOut(out)).toHaveLength(0)
    }), 60_000)

  it.scopedLive("14.3 durations need a unit: a bare number is refused with \"add a unit, e.g. 5s\" for every duration flag", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const dir = tmp()
      const input = writeInput(dir, inputLines(5))
      const flags = ["--timeout", "--grace", "--progress-interval"]
      const results = yield* Effect.forEach(flags, (flag) => runToEnd([input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, flag, "5"]), { concurrency: 2 })
      results.forEach((ended, i) => {
        expect(ended.code).toBe(ExitStatus.USAGE)
        expect(ended.stderr.trim()).toBe(`shepherd: ${flags[i]} needs a unit, got "5": add a unit, e.g. 5s`)
      })
      expect(yield* mock.journal).toHaveLength(0)
    }), 60_000)

  it.scopedLive("14.3 a server that refuses connections stops the run after a short run of failures: names the URL and why, exit 1, no lines", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const dir = tmp()
      const input = writeInput(dir, inputLines(300))
      const out = Path.join(dir, "out.jsonl")
      const summary = Path.join(dir, "summary.json")
      const url = `http://127.0.0.1:${port}/v1`
      const ended = yield* runToEnd([input, "--out", out, "--base-url", url, "--concurrency", "4", "--max-retries", "1", "--no-progress", "--summary", summary])
      expect(ended.code).toBe(ExitStatus.UNFINISHED)
      expect(ended.stderr).toContain(`shepherd: stopped: ${url} could not be reached (ECONNREFUSED`)
      expect(ended.stderr).toContain("300 requests have no final outcome: 300 not sent:")
      expect(ended.stderr).not.toMatch(/429, 5xx/)
      expect(readOut(out)).toHaveLength(0)
      expect(JSON.parse(Fs.readFileSync(summary, "utf8"))).toMatchObject({ stoppedBy: "unreachable", written: 0, remaining: 300 })
    }), 60_000)

  it.scopedLive("14.3 a TLS failure on every request stops sending after a few connections (not one per attempt), exit 1", () =>
    Effect.gen(function* () {
      const server = yield* plainServer
      const dir = tmp()
      const input = writeInput(dir, inputLines(300))
      const out = Path.join(dir, "out.jsonl")
      const url = `https://127.0.0.1:${server.port}/v1`
      const ended = yield* runToEnd([input, "--out", out, "--base-url", url, "--concurrency", "4", "--max-retries", "1", "--no-progress"])
      expect(ended.code).toBe(ExitStatus.UNFINISHED)
      expect(ended.stderr).toMatch(new RegExp(`stopped: ${url.replace(/\./g, "\\.")} could not be reached \\(ERR_SSL_`))
      // 300 requests x 2 attempts before; now the requests in flight when the third failed, and no more.
      expect(server.connections()).toBeLessThanOrEqual(2 * (4 + Batch.UNREACHABLE_STOP_AFTER))
      expect(readOut(out)).toHaveLength(0)
    }), 60_000)

  it.scopedLive("14.3 a refused key stops sending at the first 401, writes no line for it, exits 1; the rerun with the right key sends them all", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY })
      const dir = tmp()
      const input = writeInput(dir, inputLines(100))
      const out = Path.join(dir, "out.jsonl")
      const wrong = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--concurrency", "4", "--no-progress"], { OPENAI_API_KEY: "sk-wrong-key-0000" })
      expect(wrong.code).toBe(ExitStatus.UNFINISHED)
      expect(wrong.stderr).toContain(`shepherd: stopped: ${mock.url} refused the API key (401 invalid_api_key: Incorrect API key provided`)
      expect(wrong.stderr).toContain("Check OPENAI_API_KEY (or --api-key-env)")
      expect(wrong.stderr).toContain("100 requests have no final outcome: 100 refused or not sent:")
      expect(readOut(out)).toHaveLength(0)
      expect((yield* mock.journal).length).toBeLessThanOrEqual(8) // the first 401 and those already in flight
      const right = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--concurrency", "4", "--no-progress"], { OPENAI_API_KEY: KEY })
      expect(right.code).toBe(ExitStatus.DONE)
      expect(right.stderr).not.toContain("already answered")
      expect(readOut(out).map((l) => l.response?.status_code)).toEqual(Array.from({ length: 100 }, () => 200))
    }), 60_000)

  it.scopedLive("14.3 lines of http 401 written by an earlier version are not final: the rerun with the right key sends those requests", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY })
      const dir = tmp()
      const input = writeInput(dir, inputLines(10))
      const out = Path.join(dir, "out.jsonl")
      const refused = (i: number) =>
        JSON.stringify({
          id: `batch_req_old_${i}`,
          custom_id: `r${i}`,
          response: { status_code: 401, request_id: null, body: { error: { message: "Incorrect API key provided", type: "invalid_request_error", param: null, code: "invalid_api_key" } } },
          error: null
        })
      Fs.writeFileSync(out, Array.from({ length: 10 }, (_, i) => refused(i)).join("\n") + "\n")
      const rerun = yield* runToEnd([input, "--out", out, "--base-url", mock.url, "--no-progress"], { OPENAI_API_KEY: KEY })
      expect(rerun.code).toBe(ExitStatus.DONE)
      expect(yield* mock.journal).toHaveLength(10)
      expect(readOut(out).map((l) => l.response?.status_code)).toEqual(Array.from({ length: 10 }, () => 200))
    }), 60_000)

  it.scopedLive("14.3 inputs left without a final outcome (every answer a 503) exit 1, and the summary names the real failures", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve((_, res) => Hostile.json(res, 503, Hostile.errorBody("overloaded", "server_error")))
      const dir = tmp()
      const input = writeInput(dir, inputLines(20))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", server.baseUrl, "--max-retries", "0", "--no-progress"])
      expect(ended.code).toBe(ExitStatus.UNFINISHED)
      expect(ended.stderr).toContain("20 requests have no final outcome: 20 failed in a way worth retrying (http_503 20). Rerun the same command to send them.")
      expect(ended.stderr).not.toContain("shepherd: ") // the summary says it; no second line
      expect(readOut(out)).toHaveLength(20)
    }), 60_000)
})

describe("14.3 Batch.run stops when nothing can work", () => {
  /** A client whose every chat call fails with `error`, counting the calls. */
  const failing = (error: ChatError.ChatError, calls: { n: number }, answerFirst = false) =>
    Layer.succeed(ChatClient.ChatClient, {
      createWithMetadata: () =>
        Effect.suspend(() => {
          calls.n++
          return answerFirst && calls.n === 1
            ? Effect.succeed({
              completion: completion({ model: "m" }),
              requestId: undefined,
              status: 200,
              attempts: 1,
              latencyMillis: 1
            })
            : Effect.fail(error)
        })
    } as unknown as Context.Tag.Service<ChatClient.ChatClient>)
  const requests = Array.from({ length: 50 }, (_, i) => ({ custom_id: `r${i}`, body: { model: "m", messages: [{ role: "user" as const, content: "q" }] } }))
  const refused = new ChatError.TransportError({ code: "ECONNREFUSED", detail: "connect ECONNREFUSED 127.0.0.1:1", attempts: 5 })

  it.effect("14.3 after UNREACHABLE_STOP_AFTER connection failures and no answer, the rest are not sent (attempts 0)", () =>
    Effect.gen(function* () {
      const calls = { n: 0 }
      const outcomes = yield* Batch.runAll(requests, { concurrency: 1 }).pipe(Effect.provide(failing(refused, calls)))
      expect(calls.n).toBe(Batch.UNREACHABLE_STOP_AFTER)
      expect(outcomes).toHaveLength(50)
      expect(outcomes.filter((o) => o.attempts === 0)).toHaveLength(50 - Batch.UNREACHABLE_STOP_AFTER)
    }))

  it.effect("14.3 once a request was answered, connection failures do not stop the batch (the retry policy handles them)", () =>
    Effect.gen(function* () {
      const calls = { n: 0 }
      yield* Batch.runAll(requests, { concurrency: 1 }).pipe(Effect.provide(failing(refused, calls, true)))
      expect(calls.n).toBe(50)
    }))

  it.effect("14.3 a 401 stops the batch at once; a 400 does not", () =>
    Effect.gen(function* () {
      const key = { n: 0 }
      yield* Batch.runAll(requests, { concurrency: 1 }).pipe(Effect.provide(failing(new ChatError.ApiError({ status: 401, code: "invalid_api_key", detail: "Incorrect API key provided", attempts: 1 }), key)))
      expect(key.n).toBe(1)
      const bad = { n: 0 }
      yield* Stream.runDrain(Batch.run(requests, { concurrency: 1 })).pipe(Effect.provide(failing(new ChatError.ApiError({ status: 400, detail: "bad", attempts: 1 }), bad)))
      expect(bad.n).toBe(50)
    }))

  it("14.3 key refusals: every 401, and a 403 that is about the key or the region; not a 403 about one model", () => {
    const api = (status: number, detail: string, code?: string) => new ChatError.ApiError({ status, detail, code, attempts: 1 })
    expect(ErrorRules.isKeyRefusal(api(401, "Incorrect API key provided", "invalid_api_key"))).toBe(true)
    expect(ErrorRules.isKeyRefusal(api(403, "Country, region, or territory not supported", "unsupported_country_region_territory"))).toBe(true)
    expect(ErrorRules.isKeyRefusal(api(403, "Your API key does not have permission to use the specified resource."))).toBe(true)
    expect(ErrorRules.isKeyRefusal(api(403, "You have insufficient permissions for this operation. Missing scopes: model.request", "model_not_allowed"))).toBe(false)
    expect(ErrorRules.isKeyRefusal(api(404, "The model does not exist", "model_not_found"))).toBe(false)
    expect(ErrorRules.isUnreachable(new ChatError.TransportError({ code: "ECONNRESET", detail: "socket hang up", attempts: 1 }))).toBe(false)
    expect(ErrorRules.isUnreachable(new ChatError.TransportError({ code: "ERR_SSL_WRONG_VERSION_NUMBER", detail: "wrong version number", attempts: 1 }))).toBe(true)
    expect(ErrorRules.isUnreachable(new ChatError.TimeoutError({ phase: "connect", timeoutMillis: 10_000, attempts: 1 }))).toBe(true)
    expect(ErrorRules.isUnreachable(new ChatError.TimeoutError({ phase: "attempt", timeoutMillis: 10_000, attempts: 1 }))).toBe(false)
  })
})


describe("14.4 messages and help", { concurrent: true }, () => {
  it("14.4 run --help: the usage says shepherd run, every option shows its default, no filler, no ANSI escapes in a pipe", async () => {
    const help = await helpOutput()
    expect(help.split("\n")[0]).toBe("Usage: shepherd run IN.jsonl --out OUT.jsonl [options]")
    expect(help).not.toMatch(ANSI)
    expect(help).not.toContain("A user-defined piece of text.")
    expect(help).not.toContain("This setting is optional.")
    const options = help.slice(help.indexOf("Options:"), help.indexOf("Environment:"))
    const entries = options.split(/\n(?=  --)/).slice(1).map((e) => e.replace(/\s+/g, " ").trim())
    expect(entries.length).toBeGreaterThanOrEqual(20)
    for (const entry of entries) expect(entry).toMatch(/\((default: [^)]+|required)\)$/)
    const byName = Object.fromEntries(entries.map((e) => [e.split(" ")[0], e]))
    expect(byName["--concurrency"]).toMatch(/\(default: 64\)$/)
    expect(byName["--grace"]).toMatch(/\(default: 30s\)$/)
    expect(byName["--progress-interval"]).toMatch(/\(default: 5s\)$/)
    expect(byName["--max-retries"]).toMatch(/\(default: 4\)$/)
    expect(byName["--timeout"]).toMatch(/\(default: 60s\)$/)
  })

  it.live("14.4 on a terminal help is bold, and plain with NO_COLOR", () =>
    Effect.gen(function* () {
      const styled = onTerminal(["run", "--help"])
      yield* styled.ended
      expect(styled.screen()).toContain("\u001b[1mOptions:\u001b[0m")
      const plain = onTerminal(["run", "--help"], { NO_COLOR: "1" })
      yield* plain.ended
      expect(plain.screen()).toContain("Options:")
      expect(plain.screen()).not.toMatch(ANSI)
    }))

  it.scopedLive("14.4 parse errors speak as shepherd: an unknown option with a suggestion, a bad integer, a missing input file", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const input = writeInput(dir, inputLines(3))
      const out = Path.join(dir, "out.jsonl")
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [[input, "--out", out, "--concurency", "8"], "shepherd: unknown option --concurency (did you mean --concurrency?)"],
        [[input, "--out", out, "--concurrency", "abc"], "shepherd: --concurrency must be an integer, got \"abc\""],
        [["nope.jsonl", "--out", out], "shepherd: input file nope.jsonl does not exist"]
      ]
      const results = yield* Effect.forEach(cases, ([args]) => runToEnd(args), { concurrency: 2 })
      results.forEach((ended, i) => {
        expect(ended.code).toBe(ExitStatus.USAGE)
        expect(ended.stderr).toBe(`${cases[i]![1]}\n`)
      })
    }), 60_000)

  it.scopedLive("14.4 shared limits that cannot be reached: the message names --redis-fallback, not the library option; nothing is sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const port = yield* closedPort
      const dir = tmp()
      const input = writeInput(dir, inputLines(10))
      const ended = yield* runToEnd([input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, "--redis", `redis://127.0.0.1:${port}`, "--no-progress"])
      expect(ended.code).toBe(ExitStatus.UNFINISHED)
      expect(ended.stderr).toContain("--redis-fallback")
      expect(ended.stderr).not.toContain("onUnavailable")
      expect(ended.stderr).not.toContain("outcomes written")
      expect(yield* mock.journal).toHaveLength(0)
    }), 60_000)
})

describe("14.5 progress and Ctrl-C", { concurrent: true }, () => {
  it.scopedLive("14.5 the bar's ETA has a unit, and its last frame agrees with the summary's count and cost", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "10 millis" })
      const dir = tmp()
      const input = writeInput(dir, inputLines(120))
      const run = onTerminal(["run", input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, "--concurrency", "2"])
      expect(yield* run.ended).toBe(0)
      const shown = frames(run.screen())
      expect(shown.length).toBeGreaterThan(1)
      for (const frame of shown) expect(frame.eta).toMatch(/^(\?|\d+s|\d+m\d\ds|\d+h\d\dm)$/)
      const last = shown.at(-1)!
      const summaryCost = /cost (\$[\d.]+)/.exec(run.screen())![1]
      expect(last).toMatchObject({ done: 120, total: 120, cost: summaryCost })
    }), 60_000)

  it.scopedLive("14.5 after Ctrl-C on a terminal the bar stops before any message; the second Ctrl-C is acknowledged", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "20 millis", script: [...Array.from({ length: 20 }, () => "ok" as const), { type: "hang" }, { type: "hang" }, { type: "hang" }] })
      const dir = tmp()
      const input = writeInput(dir, inputLines(200))
      const run = onTerminal(["run", input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, "--concurrency", "3", "--grace", "10m"])
      yield* waitFor(Effect.map(mock.journal, (j) => (j.length >= 23 && run.screen().includes("req/s") ? true : undefined)), "the bar and three hanging requests")
      yield* Effect.sleep("400 millis") // a few more frames of the bar
      run.type("\x03")
      yield* waitFor(Effect.sync(() => (run.screen().includes("stopping") ? true : undefined)), "the first Ctrl-C's notice")
      yield* Effect.sleep("600 millis") // the bar would have redrawn by now if it still ran
      run.type("\x03")
      expect(yield* run.ended).toBe(130)
      const screen = run.screen()
      const afterNotice = screen.slice(screen.indexOf("shepherd run: stopping"))
      expect(frames(afterNotice)).toEqual([]) // no frame of the bar after the first message
      expect(afterNotice).toContain("shepherd run: aborting the requests in flight")
      expect(afterNotice).toMatch(/shepherd run: 20 outcomes written/)
    }), 60_000)

  it.scopedLive("14.5 without a terminal, the Ctrl-C notices start on their own line with no blank line before them", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "20 millis", script: ["ok", "ok", "ok", { type: "hang" }, { type: "hang" }] })
      const dir = tmp()
      const input = writeInput(dir, inputLines(50))
      const run = startCommand("run", [input, "--out", Path.join(dir, "out.jsonl"), "--base-url", mock.url, "--concurrency", "2", "--grace", "10m", "--progress-interval", "50ms"])
      yield* waitFor(Effect.map(mock.journal, (j) => (j.length >= 5 ? true : undefined)), "two hanging requests")
      run.child.kill("SIGINT")
      yield* waitFor(Effect.sync(() => (run.stderr().includes("stopping") ? true : undefined)), "the first signal's notice")
      run.child.kill("SIGINT")
      const ended = yield* run.ended
      expect(ended.code).toBe(130)
      expect(ended.stderr).not.toMatch(/\n\n|^\n/)
      expect(ended.stderr).toMatch(/^shepherd run: stopping: /m)
      expect(ended.stderr).toMatch(/^shepherd run: aborting the requests in flight/m)
    }), 60_000)
})
