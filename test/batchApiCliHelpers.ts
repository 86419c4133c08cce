/** Helpers of the Batch API's CLI tests. */
import { expect } from "@effect/vitest"
import * as Fs from "node:fs"
import type { MockServer } from "../src/testing/index.js"
import { KEY, readOut } from "./cliHelpers.js"
import { batchValidatorFor } from "./helpers.js"

export const validOutput = batchValidatorFor("BatchRequestOutput")

export const fast = { validating: "150 millis", perRequest: "10 millis", finalizing: "100 millis" } as const

export const flags = (input: string, out: string, url: string, extra: ReadonlyArray<string> = []) =>
  [input, "--out", out, "--base-url", url, "--via", "batch-api", "--poll-interval", "100ms", ...(extra.includes("--max-requests-per-file") ? [] : ["--max-requests-per-file", "5"]), ...extra]

export const env = { OPENAI_API_KEY: KEY }

export interface StateFile {
  readonly runId: string
  readonly ranges: Record<string, { readonly step: string; readonly retryOf?: string; readonly unfinished?: ReadonlyArray<string> }>
}
export const readState = (out: string) => JSON.parse(Fs.readFileSync(`${out}.batches.json`, "utf8")) as StateFile

export const okCount = (journal: ReadonlyArray<MockServer.BatchApiJournalEntry>, action: string) => journal.filter((e) => e.action === action && e.status === 200).length

/** Every input id exactly once in OUT, each line in OpenAI's batch output format. */
export const expectComplete = (out: string, n: number) => {
  const lines = readOut(out)
  expect(lines.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: n }, (_, i) => `r${i}`).sort())
  for (const line of lines) expect(validOutput(line)).toBeUndefined()
}

