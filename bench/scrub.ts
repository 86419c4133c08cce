/**
 * What scrubbing the API key out of every answer costs per response: one completion body and 14
 * typical response headers, with a 128-character key.
 *
 *   npm run build && node dist/bench/scrub.js [--rounds 200000]
 */
import { makeScrub } from "../src/internal/classify.js"

const rounds = Number(process.argv[process.argv.indexOf("--rounds") + 1]) || 200_000
const key = "sk-proj-" + "a1B2c3D4e5".repeat(12)
const scrub = makeScrub(key)
const body = JSON.stringify({
  id: "chatcmpl-x", object: "chat.completion", created: 1, model: "gpt-4.1-mini",
  choices: [{ index: 0, message: { role: "assistant", content: "Paris is the capital of France. ".repeat(10), refusal: null }, logprobs: null, finish_reason: "stop" }],
  usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }
})
const headers: Record<string, string> = {
  "content-type": "application/json", connection: "keep-alive", "x-request-id": "req_0123456789abcdef", "openai-model": "gpt-4.1-mini",
  "x-ratelimit-limit-requests": "5000", "x-ratelimit-remaining-requests": "4999", "x-ratelimit-reset-requests": "60ms",
  "x-ratelimit-limit-tokens": "2000000", "x-ratelimit-remaining-tokens": "1999990", "x-ratelimit-reset-tokens": "1ms",
  date: "Sun, 29 Nov 2026 05:00:00 GMT", "transfer-encoding": "chunked", "keep-alive": "timeout=5", "alt-svc": "h3=\":443\""
}
const time = (f: () => number) => {
  const start = process.hrtime.bigint()
  let sink = 0
  for (let i = 0; i < rounds; i++) sink += f()
  return { ns: Number(process.hrtime.bigint() - start) / rounds, sink }
}
console.log(`| round | body (${body.length} B) ns | 14 headers ns |`)
console.log("|---:|---:|---:|")
for (let round = 1; round <= 3; round++) {
  const b = time(() => scrub(body).length)
  const h = time(() => {
    let n = 0
    for (const name in headers) n += scrub(name).length + scrub(headers[name]!).length
    return n
  })
  console.log(`| ${round} | ${b.ns.toFixed(0)} | ${h.ns.toFixed(0)} |`)
}
