/**
 * bench/ratelimitServer: a chat-completions server that enforces a steady per-minute request limit
 * (a token bucket holding `rpm`, like OpenAI's) and describes it in one of four ways, for
 * bench/ratelimit's `--behaviours` run. Started in its own process by the bench; prints its base URL
 * on the first line of stdout; `GET /_mock/stats` gives `{ requests, rateLimited }`.
 *
 *   node dist/bench/ratelimitServer.js --behaviour openai|none|disagree|lagging [--rpm 6000] [--latency 50]
 *
 * - `openai`: OpenAI's `x-ratelimit-*` headers, exact.
 * - `none`: no rate headers at all; a refusal is a 429 with `retry-after-ms` and `retry-after` only.
 * - `disagree`: headers that describe a bucket twice the real one (limit and remaining doubled), as a
 *   relay in front of a smaller deployment may send.
 * - `lagging`: the headers as they were 2 seconds earlier (remaining counts that lag the bucket).
 */
import * as Http from "node:http"
import { fileURLToPath } from "node:url"
import type * as Net from "node:net"
import * as Limits from "../src/testing/internal/limits.js"
import { flags } from "./lib.js"

export type Behaviour = "openai" | "none" | "disagree" | "lagging"
export const behaviours: ReadonlyArray<Behaviour> = ["openai", "none", "disagree", "lagging"]

const LAG_MILLIS = 2000

const completion = (content: string) =>
  JSON.stringify({
    id: "chatcmpl-bench",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "gpt-4.1-mini",
    choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, logprobs: null, finish_reason: "stop" }],
    usage: { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 }
  })

/** The headers the behaviour sends, from the real bucket's. */
const describe = (behaviour: Behaviour, real: Record<string, string>, history: Array<{ at: number; headers: Record<string, string> }>, now: number): Record<string, string> => {
  const { "retry-after": retryAfter, "retry-after-ms": retryAfterMs, ...rate } = real
  const retry: Record<string, string> = {}
  if (retryAfter !== undefined) retry["retry-after"] = retryAfter
  if (retryAfterMs !== undefined) retry["retry-after-ms"] = retryAfterMs
  switch (behaviour) {
    case "openai":
      return real
    case "none":
      return retry
    case "disagree": {
      const limit = Number(rate["x-ratelimit-limit-requests"])
      const remaining = Number(rate["x-ratelimit-remaining-requests"])
      return { ...rate, ...retry, "x-ratelimit-limit-requests": String(2 * limit), "x-ratelimit-remaining-requests": String(remaining + limit) }
    }
    case "lagging": {
      history.push({ at: now, headers: rate })
      let shown = history[0]!.headers
      while (history.length > 1 && history[1]!.at <= now - LAG_MILLIS) history.shift()
      if (history[0]!.at <= now - LAG_MILLIS) shown = history[0]!.headers
      return { ...shown, ...retry }
    }
  }
}

const main = () => {
  const args = flags(process.argv.slice(2))
  const behaviour = (args.get("behaviour") ?? "openai") as Behaviour
  if (!behaviours.includes(behaviour)) throw new Error(`--behaviour must be one of ${behaviours.join(", ")}`)
  const rpm = Number(args.get("rpm") ?? 6000)
  const latency = Number(args.get("latency") ?? 50)
  const limits = Limits.make(rpm, undefined)
  const history: Array<{ at: number; headers: Record<string, string> }> = []
  let requests = 0
  let rateLimited = 0
  const server = Http.createServer((req, res) => {
    if (req.url === "/_mock/stats") {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ requests, rateLimited }))
      return
    }
    req.resume()
    req.on("end", () => {
      requests++
      const now = Date.now()
      const verdict = limits.take(now, 0)
      const headers = describe(behaviour, verdict.headers, history, now)
      const [status, body] = verdict.limited === undefined ? [200, completion("ok")] : [429, verdict.body!]
      if (status === 429) rateLimited++
      setTimeout(() => {
        res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers })
        res.end(body)
      }, latency)
    })
  })
  server.keepAliveTimeout = 30_000
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`http://127.0.0.1:${(server.address() as Net.AddressInfo).port}/v1\n`)
  })
  process.on("SIGTERM", () => process.exit(0))
}

// Run as a script (the bench imports this file only for the behaviour names).
if (process.argv[1] === fileURLToPath(import.meta.url)) main()
