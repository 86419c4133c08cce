/**
 * The files of `shepherd run`: checking that `--out`, the input, `--summary` and `--metrics` are
 * distinct files and that OUT is a batch output file, holding OUT's lock, appending outcome lines
 * whole or not at all, and writing the reports.
 *
 * A write to OUT either lands whole lines or leaves the file as it was after the last whole line: a
 * short write goes on with the rest, and a failed one (a full disk) cuts the file back to its last
 * whole line and stops the run at once, naming the error.
 * @internal
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as Batch from "../Batch.js"
import type * as ChatError from "../ChatError.js"
import * as ErrorRules from "../internal/errorRules.js"
import * as BatchFile from "./batchFile.js"
import { CliError } from "./error.js"
import * as OutputLock from "./outputLock.js"
import type * as RunStats from "./runStats.js"

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** What identifies a file: its inode if it exists (symlinks and hard links agree), else its real directory and name. Devices and pipes: none. */
const fileKey = (path: string): string | undefined => {
  const stat = Fs.statSync(path, { throwIfNoEntry: false })
  if (stat !== undefined) return stat.isFile() ? `inode ${stat.dev}:${stat.ino}` : undefined
  const absolute = Path.resolve(path)
  try {
    return `path ${Path.join(Fs.realpathSync(Path.dirname(absolute)), Path.basename(absolute))}`
  } catch {
    return `path ${absolute}`
  }
}

/** The files a run reads and writes. */
export interface Paths {
  readonly input: string
  readonly out: string
  readonly summary: Option.Option<string>
  readonly metrics: Option.Option<string>
}

/**
 * Refuses (exit 2, nothing touched) two of the input, `--out`, `--summary`, `--metrics` and OUT's
 * lock file that are the same file, by real path (so symlinks and hard links count). Devices and
 * pipes (`/dev/stdout`) are not files that writing destroys, and are not compared.
 */
export const checkDistinct = (paths: Paths): Effect.Effect<void, CliError> =>
  Effect.suspend(() => {
    const named: Array<readonly [string, string]> = [
      [`the input ${paths.input}`, paths.input],
      [`--out ${paths.out}`, paths.out],
      ...Option.toArray(Option.map(paths.summary, (p) => [`--summary ${p}`, p] as const)),
      ...Option.toArray(Option.map(paths.metrics, (p) => [`--metrics ${p}`, p] as const)),
      [`the lock file of --out (${OutputLock.lockPath(paths.out)})`, OutputLock.lockPath(paths.out)]
    ]
    const keys = named.map(([, path]) => fileKey(path))
    for (let i = 0; i < named.length; i++) {
      for (let j = i + 1; j < named.length; j++) {
        if (keys[i] !== undefined && keys[i] === keys[j]) {
          return new CliError({
            detail: `${named[i]![0]} and ${named[j]![0]} are the same file: writing one would destroy the other. Nothing was done; give each its own file.`,
            exitCode: 2
          })
        }
      }
    }
    return Effect.void
  })

/** Whether a process is running (on this host). */
const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Removes `OUT.<pid>.tmp` files (from a rewrite or a merge) whose process is gone; call with the lock held. */
export const removeLeftovers = (out: string): number => {
  const dir = Path.dirname(Path.resolve(out))
  const base = Path.basename(out)
  let removed = 0
  let names: Array<string>
  try {
    names = Fs.readdirSync(dir)
  } catch {
    return 0
  }
  for (const name of names) {
    if (!name.startsWith(`${base}.`) || !name.endsWith(".tmp")) continue
    const pid = name.slice(base.length + 1, -4)
    if (!/^\d+$/.test(pid) || running(Number(pid))) continue
    try {
      Fs.rmSync(Path.join(dir, name))
      removed++
    } catch {
      // left for the next run
    }
  }
  return removed
}

/**
 * Everything before sending: the files are distinct, OUT's lock is held until the scope closes (not
 * for a device or pipe, which holds nothing to resume), temporary files of dead runs are removed, and
 * OUT is read for the ids already answered. Refuses (exit 2) an OUT that holds lines that are not
 * batch output lines, naming the first.
 */
export const prepare = (paths: Paths): Effect.Effect<BatchFile.Done, CliError | BatchFile.FileError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* checkDistinct(paths)
    const out = paths.out
    const stat = Fs.statSync(out, { throwIfNoEntry: false })
    if (stat?.isDirectory() === true) return yield* new CliError({ detail: `--out ${out} is a directory: give a file`, exitCode: 2 })
    if (stat === undefined || stat.isFile()) {
      yield* OutputLock.acquire(out)
      const removed = removeLeftovers(out)
      if (removed > 0) yield* Console.error(`shepherd run: removed ${removed} temporary file${removed === 1 ? "" : "s"} left beside ${out} by runs that died`)
    }
    const done = yield* BatchFile.scanOutput(out)
    if (done.foreign !== undefined) {
      return yield* new CliError({
        detail: `--out ${out} holds lines that are not batch output lines (line ${done.foreign.number}: ${BatchFile.excerpt(done.foreign.text)}), ` +
          `so it is not an earlier output of this input: nothing was sent and it is unchanged. Choose another --out.`,
        exitCode: 2
      })
    }
    return done
  })

/** The file system calls a `LineWriter` makes (replaced in tests). */
export interface WriteFs {
  readonly writeSync: (fd: number, data: Buffer, offset: number, length: number) => number
  readonly ftruncateSync: (fd: number, length: number) => void
}

/** What one `LineWriter.write` did: how many lines were written whole, and the error that stopped it. */
export interface Written {
  readonly lines: number
  readonly error: string | undefined
}

/**
 * Appends whole lines to a file open for appending. After a failed write (`ENOSPC`, `EIO`) a regular
 * file holds the lines written whole and nothing of the rest: it is cut back to its last whole line.
 */
export class LineWriter {
  constructor(
    readonly path: string,
    private readonly fd: number,
    /** The file's length, for a regular file (a device or pipe cannot be cut back). */
    private end: number | undefined,
    private readonly fs: WriteFs = Fs
  ) {}

  /** Writes `text`, whole lines ending in `\n`. */
  write(text: string): Written {
    const data = Buffer.from(text, "utf8")
    let offset = 0
    try {
      offset = BatchFile.writeFully(this.fd, data, (fd, d, o, l) => {
        const n = this.fs.writeSync(fd, d, o, l)
        if (n > 0) offset = o + n
        return n
      })
      if (this.end !== undefined) this.end += data.length
      return { lines: countNewlines(data, data.length), error: undefined }
    } catch (e) {
      const whole = offset === 0 ? 0 : data.lastIndexOf(0x0a, offset - 1) + 1
      let error = errorText(e)
      if (this.end !== undefined && whole < offset) {
        try {
          this.fs.ftruncateSync(this.fd, this.end + whole)
        } catch (t) {
          error += `; its cut last line could not be removed (${errorText(t)}): the next run removes it`
        }
      }
      if (this.end !== undefined) this.end += whole
      return { lines: countNewlines(data, whole), error }
    }
  }
}

const countNewlines = (data: Buffer, end: number): number => {
  let n = 0
  for (let at = data.indexOf(0x0a); at !== -1 && at < end; at = data.indexOf(0x0a, at + 1)) n++
  return n
}

/** Opens OUT for appending until the scope closes. */
export const open = (path: string): Effect.Effect<LineWriter, BatchFile.FileError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.try({
        try: () => {
          const fd = Fs.openSync(path, "a")
          const stat = Fs.fstatSync(fd)
          return { fd, end: stat.isFile() ? stat.size : undefined }
        },
        catch: (e) => new BatchFile.FileError({ path, detail: `could not open it for writing (${errorText(e)})` })
      }),
      ({ fd }) => Effect.sync(() => Fs.closeSync(fd))
    ),
    ({ end, fd }) => new LineWriter(path, fd, end)
  )

/** The kind of a failure written to the output: `http_<status>` or the error code. */
const failureKind = (line: BatchFile.OutputLine): string | undefined =>
  line.error !== null ? line.error.code : line.response !== null && line.response.status_code >= 300 ? `http_${line.response.status_code}` : undefined

/**
 * Writes a chunk of outcomes, one line each, with one write, and counts those written. Refusals
 * that stop sending (budget, shared limits) get no line and go to `onRefused`. A failed write fails
 * with a `FileError` naming its cause, which stops the run at once; `stats` then says so.
 */
export const writeOutcomes = (
  writer: LineWriter,
  chunk: Iterable<Batch.BatchOutcome>,
  lineId: (outcome: Batch.BatchOutcome) => string,
  stats: RunStats.RunStats,
  onRefused: (error: ChatError.ChatError, unsent: boolean) => void
): Effect.Effect<void, BatchFile.FileError> =>
  Effect.suspend(() => {
    let text = ""
    const pending: Array<readonly [Batch.BatchOutcome, BatchFile.OutputLine]> = []
    for (const outcome of chunk) {
      if (outcome._tag === "Failure" && (ErrorRules.stopsSending(outcome.error) || ErrorRules.isUnreachable(outcome.error))) {
        // Refused for a reason every later request meets too (budget spent, shared limits or the
        // server unreachable, the key refused): no line, so that a rerun sends it.
        onRefused(outcome.error, outcome.attempts === 0)
        continue
      }
      const line = BatchFile.outputLine(outcome, lineId(outcome))
      text += JSON.stringify(line) + "\n"
      pending.push([outcome, line])
    }
    if (text === "") return Effect.void
    const written = writer.write(text)
    for (let i = 0; i < written.lines; i++) {
      const [outcome, line] = pending[i]!
      stats.record(outcome, failureKind(line), BatchFile.isFinal(line))
    }
    if (written.error === undefined) return Effect.void
    const lost = pending.length - written.lines
    stats.unwritten += lost
    stats.outputError = written.error
    stats.stoppedBy = "output"
    return new BatchFile.FileError({
      path: writer.path,
      detail: `could not write (${written.error}): sending stopped at once. The file holds whole lines only (${stats.written} written by this run); ` +
        `${lost} answer${lost === 1 ? "" : "s"} received could not be written. Make room (or fix the file's disk) and rerun the same command to send the rest.`
    })
  })

/**
 * Writes a report (`--summary`, `--metrics`) whole or not at all: into a temporary file, renamed over
 * the target (which is followed if it is a symlink); a device or pipe is written directly. The
 * temporary file is removed on failure.
 */
export const writeReport = (path: string, text: string): Effect.Effect<void, BatchFile.FileError> =>
  Effect.try({
    try: () => {
      const stat = Fs.statSync(path, { throwIfNoEntry: false })
      if (stat !== undefined && !stat.isFile()) return Fs.writeFileSync(path, text)
      const target = stat === undefined ? path : Fs.realpathSync(path)
      const tmp = `${target}.${process.pid}.tmp`
      try {
        const fd = Fs.openSync(tmp, "w")
        try {
          BatchFile.writeFully(fd, Buffer.from(text, "utf8"))
        } finally {
          Fs.closeSync(fd)
        }
        Fs.renameSync(tmp, target)
      } catch (e) {
        Fs.rmSync(tmp, { force: true })
        throw e
      }
    },
    catch: (e) => new BatchFile.FileError({ path, detail: `could not write it (${errorText(e)})` })
  })
