/**
 * `shepherd merge SHARD.jsonl... --out OUT.jsonl [--input IN.jsonl]`: the outputs of `shepherd run
 * --shard i/n` as one file with one line per `custom_id`. A final outcome wins over one worth sending
 * again; of two lines of the same kind the first (in argument order) is kept. With `--input`, the ids
 * of the input that have no final outcome are counted (exit 1 when there are any).
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { parseJson } from "../internal/jsonText.js"
import * as BatchFile from "./batchFile.js"
import { IdTable } from "./idTable.js"
import { CliError } from "./error.js"

const commandConfig = {
  shards: Args.file({ name: "SHARD.jsonl", exists: "yes" }).pipe(Args.atLeast(1), Args.withDescription("the output files of the shards")),
  out: Options.text("out").pipe(Options.withDescription("the merged file (written whole, then renamed into place)")),
  input: Options.file("input", { exists: "yes" }).pipe(
    Options.optional,
    Options.withDescription("the input file of the run: report its ids that have no final outcome (exit 1 if any)")
  )
}

/** The custom_id of an output line, or undefined for a line that is not one (a partial last line). */
const idOf = (text: string): { readonly id: string; readonly final: boolean } | undefined => {
  if (text.trim() === "") return undefined
  const parsed = parseJson(text)
  if (Either.isLeft(parsed)) return undefined
  const json = parsed.right
  if (typeof json !== "object" || json === null || typeof (json as { custom_id?: unknown }).custom_id !== "string") return undefined
  return { id: (json as { custom_id: string }).custom_id, final: BatchFile.isFinal(json) }
}

const handler = (o: Command.Command.ParseConfig<typeof commandConfig>) =>
  Effect.gen(function* () {
    const out = Path.resolve(o.out)
    if (o.shards.some((shard) => Path.resolve(shard) === out)) {
      return yield* new CliError({ detail: `--out ${o.out} is also one of the files to merge: choose another file`, exitCode: 2 })
    }
    // Pass 1: which ids have a final outcome somewhere.
    const finals = new IdTable()
    for (const shard of o.shards) {
      yield* BatchFile.forEachLine(shard, (line) => {
        const parsed = idOf(line.text)
        if (parsed?.final === true) finals.add(parsed.id, 1)
      })
    }
    // Pass 2: one line per id, the first final one, else the first one.
    const tmp = `${out}.${process.pid}.tmp`
    const fd = yield* Effect.try({ try: () => Fs.openSync(tmp, "w"), catch: (e) => new BatchFile.FileError({ path: tmp, detail: String(e) }) })
    const written = new IdTable()
    let lines = 0
    let toSendAgain = 0
    let duplicates = 0
    let unreadable = 0
    let pending = ""
    const writeOut = () => {
      if (pending !== "") Fs.writeSync(fd, pending)
      pending = ""
    }
    yield* Effect.forEach(o.shards, (shard) =>
      BatchFile.forEachLine(shard, (line) => {
        const parsed = idOf(line.text)
        if (parsed === undefined) {
          if (line.text.trim() !== "") unreadable++
          return
        }
        if (written.has(parsed.id) || (!parsed.final && finals.has(parsed.id))) {
          duplicates++
          return
        }
        written.add(parsed.id, 1)
        lines++
        if (!parsed.final) toSendAgain++
        pending += line.text + "\n"
        if (pending.length >= 1 << 16) writeOut()
      })).pipe(
        Effect.zipRight(Effect.try({ try: writeOut, catch: (e) => new BatchFile.FileError({ path: tmp, detail: String(e) }) })),
        Effect.ensuring(Effect.sync(() => {
          Fs.fsyncSync(fd)
          Fs.closeSync(fd)
        })),
        Effect.tapError(() => Effect.sync(() => Fs.rmSync(tmp, { force: true })))
      )
    yield* Effect.try({ try: () => Fs.renameSync(tmp, out), catch: (e) => new BatchFile.FileError({ path: out, detail: String(e) }) })

    let report = `shepherd merge: ${lines} lines (one per custom_id) from ${o.shards.length} file${o.shards.length === 1 ? "" : "s"} into ${o.out}` +
      `: ${lines - toSendAgain} final, ${toSendAgain} worth sending again; ${duplicates} duplicate lines dropped` +
      (unreadable > 0 ? `, ${unreadable} unreadable lines (a partial last line) skipped` : "")
    if (Option.isNone(o.input)) return yield* Console.error(report)

    // With the input: its ids without a final outcome.
    let missing = 0
    let requests = 0
    yield* BatchFile.forEachLine(o.input.value, (line) => {
      const parsed = BatchFile.parseInput(line.text)
      if (parsed === undefined || Either.isLeft(parsed)) return
      requests++
      if (!finals.has(parsed.right.custom_id)) missing++
    })
    report += `\n  ${o.input.value}: ${requests - missing} of ${requests} requests have a final outcome`
    yield* Console.error(report)
    if (missing > 0) {
      return yield* new CliError({
        detail: `${missing} requests of ${o.input.value} have no final outcome yet: rerun their shards (same --out files) to send them, then merge again`
      })
    }
  })

export const mergeCommand = Command.make("merge", commandConfig, handler).pipe(
  Command.withDescription("Merge the outputs of `shepherd run --shard i/n` into one file with one line per custom_id")
)
