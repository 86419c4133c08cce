/**
 * What a `shepherd run` has to send: what OUT already holds (the ids with a final outcome, repaired
 * for appending), and every input line checked before anything is sent. A bad line stops the run
 * (exit 2, nothing sent) unless `--skip-invalid`.
 * @internal
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as BatchFile from "./batchFile.js"
import { CliError } from "./error.js"
import * as ExitStatus from "./exitStatus.js"
import { IdTable } from "./idTable.js"
import * as OutputFile from "./outputFile.js"
import type { RunConfig } from "./runConfig.js"

/** The input, checked. */
export interface Checked {
  /** `path:line: what is wrong`, one per bad line (and per repeated `custom_id`). */
  readonly problems: ReadonlyArray<string>
  /** The numbers of the lines not to send (bad ones). */
  readonly skip: ReadonlySet<number>
  /** Valid requests of this shard. */
  readonly valid: number
  /** Of those, the ones OUT already holds a final outcome for. */
  readonly done: number
}

/** What is left to send. */
export interface Plan {
  /** What OUT held before this run. */
  readonly previous: BatchFile.Done
  readonly checked: Checked
}

/** Checks every input line; reports the bad ones. Returns how many requests are valid and which lines to skip. */
export const validate = (input: string, alreadyDone: IdTable, inShard: (lineNumber: number) => boolean): Effect.Effect<Checked, BatchFile.FileError> =>
  Effect.gen(function* () {
    const problems: Array<string> = []
    const skip = new Set<number>()
    const seen = new IdTable()
    let valid = 0
    let done = 0
    yield* BatchFile.forEachLine(input, (line) => {
      const parsed = BatchFile.parseInput(line.text)
      if (parsed === undefined) return
      if (Either.isLeft(parsed)) {
        problems.push(`${input}:${line.number}: ${parsed.left}`)
        skip.add(line.number)
        return
      }
      const id = parsed.right.custom_id
      const first = seen.add(id, line.number)
      if (first !== undefined) {
        problems.push(`${input}:${line.number}: custom_id ${JSON.stringify(id)} is already used on line ${first}`)
        skip.add(line.number)
        return
      }
      if (!inShard(line.number)) return
      valid++
      if (alreadyDone.has(id)) done++
    })
    return { problems, skip, valid, done }
  })

/** Reports the bad lines; stops the run on any unless `--skip-invalid`, and on an input with nothing to send. */
const refuseInvalid = (config: RunConfig, checked: Checked) =>
  Effect.gen(function* () {
    if (checked.problems.length > 0) {
      for (const problem of checked.problems) yield* Console.error(problem)
      if (!config.skipInvalid) {
        return yield* new CliError({
          detail: `${checked.problems.length} invalid line${checked.problems.length === 1 ? "" : "s"} in ${config.input} (listed above); nothing was sent. ` +
            `Fix them, or pass --skip-invalid to send the ${checked.valid} valid requests.`,
          exitCode: ExitStatus.USAGE
        })
      }
      yield* Console.error(`shepherd run: skipping ${checked.problems.length} invalid lines (--skip-invalid)`)
    }
    if (checked.valid === 0) {
      return yield* new CliError({ detail: `${config.input} holds no valid requests${Option.isSome(config.shard) ? " for this shard" : ""}`, exitCode: ExitStatus.USAGE })
    }
  })

/**
 * Reads OUT (holding its lock for the scope) and checks the input; then repairs OUT for appending
 * and says how much of the input is already done.
 */
export const plan = (config: RunConfig): Effect.Effect<Plan, CliError | BatchFile.FileError, Scope.Scope> =>
  Effect.gen(function* () {
    const previous = yield* OutputFile.prepare(config)
    const checked = yield* validate(config.input, previous.ids, config.inShard)
    yield* refuseInvalid(config, checked)
    if (previous.needsRewrite) yield* BatchFile.repairOutput(config.out, previous)
    if (checked.done > 0) {
      yield* Console.error(
        `shepherd run: resuming: ${checked.done} of ${checked.valid} requests already have a final outcome in ${config.out}` +
          (previous.dropped > 0 ? ` (${previous.dropped} earlier lines to be sent again were removed)` : "")
      )
    }
    return { previous, checked }
  })
