/** Sharded `shepherd run` processes and their merge, shared by test/shard.cli.test.ts and test/long/. */
import { expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import { inputLines, questionOf, readOut, startCommand } from "./cliHelpers.js"

/** Runs `n` shards of `input` at once; each has its `ended`. */
export const shards = (n: number, input: string, dir: string, extra: (i: number) => ReadonlyArray<string>, env: Record<string, string>) =>
  Array.from({ length: n }, (_, i) =>
    startCommand("run", [input, "--out", Path.join(dir, `out.${i}.jsonl`), "--shard", `${i}/${n}`, "--no-progress", "--summary", Path.join(dir, `summary.${i}.json`), ...extra(i)], env))

export const merge = (dir: string, n: number, input: string) =>
  startCommand("merge", ["--out", Path.join(dir, "merged.jsonl"), "--input", input, ...Array.from({ length: n }, (_, i) => Path.join(dir, `out.${i}.jsonl`))]).ended

/** `n` chat lines (no embeddings), line i asking "question i". */
export const chatLines = (n: number) =>
  inputLines(n).map((line) => line.replace("/v1/embeddings", "/v1/chat/completions").replace(/"input":"(question \d+)"/, '"messages":[{"role":"user","content":"$1"}],"max_tokens":20'))

/** How many times the server was sent each question. */
export const sentCounts = (journal: ReadonlyArray<{ readonly body: unknown }>) => {
  const counts = new Map<number, number>()
  for (const entry of journal) {
    const q = questionOf(entry.body)
    counts.set(q, (counts.get(q) ?? 0) + 1)
  }
  return counts
}

/**
 * The shards' outputs merge (exit 0) into exactly one line per input id, and the server was sent
 * each request exactly once: no line lost or duplicated, no request sent twice.
 */
export const expectEachOnce = (dir: string, shardCount: number, input: string, count: number, mock: { readonly journal: Effect.Effect<ReadonlyArray<{ readonly body: unknown }>> }) =>
  Effect.gen(function* () {
    const merged = yield* merge(dir, shardCount, input)
    expect(merged.code, merged.stderr).toBe(0)
    expect(merged.stderr).toContain(`${count} of ${count} requests have a final outcome`)
    const out = readOut(Path.join(dir, "merged.jsonl"))
    expect(out.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: count }, (_, i) => `r${i}`).sort())
    const counts = sentCounts(yield* mock.journal)
    expect(counts.size).toBe(count)
    expect([...counts.values()].every((c) => c === 1)).toBe(true)
  })
