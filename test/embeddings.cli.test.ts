/**
 * `shepherd run` on embeddings lines asking for base64: one request per line, as the Batch API format
 * says, and each output body carries the base64 vectors as the server sent them.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { KEY, readOut, runToEnd, tmp, writeInput } from "./cliHelpers.js"
import { batchValidatorFor } from "./helpers.js"

const validOutput = batchValidatorFor("BatchRequestOutput")

describe("shepherd run with embeddings lines", () => {
  it.scopedLive("base64 and float lines: one request each, base64 written back as sent", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ apiKey: KEY, latency: "0 millis" })
      const body = (i: number, format: "base64" | "float") => ({ model: "text-embedding-3-small", input: [`text ${i}`, `more ${i}`], dimensions: 4, encoding_format: format })
      const lines = [0, 1, 2, 3].map((i) => JSON.stringify({ custom_id: `e${i}`, method: "POST", url: "/v1/embeddings", body: body(i, i % 2 === 0 ? "base64" : "float") }))
      const dir = tmp()
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([writeInput(dir, lines), "--out", out, "--base-url", mock.url, "--no-progress"], { OPENAI_API_KEY: KEY })
      expect(ended.code, ended.stderr).toBe(0)
      const journal = yield* mock.journal
      expect(journal.map((e) => (e.body as { input: Array<string> }).input[0]).sort()).toEqual(["text 0", "text 1", "text 2", "text 3"])
      const written = readOut(out)
      expect(written).toHaveLength(4)
      // What the server sends for the same request, to compare the written body with.
      const direct = (b: unknown) => Effect.promise(() =>
        fetch(`${mock.url}/embeddings`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" }, body: JSON.stringify(b) }).then((r) => r.json()))
      for (const line of written) {
        expect(validOutput(line)).toBeUndefined()
        const i = Number(line.custom_id.slice(1))
        const data = (line.response!.body as { data: Array<{ embedding: unknown }> }).data
        expect(typeof data[0]!.embedding).toBe(i % 2 === 0 ? "string" : "object")
        expect(line.response!.body).toEqual(yield* direct(body(i, i % 2 === 0 ? "base64" : "float")))
      }
    }))
})
