/**
 * One `shepherd run` per output file: an exclusive lock file `OUT.lock`, created with O_EXCL and
 * holding the owner's pid, host and start time, held for the whole run and removed on every exit
 * (normal, error, SIGINT/SIGTERM, and on `process.exit` as a last resort). A lock left by a run that
 * died (`kill -9`, a crash) is taken over when its pid is not alive on this host (or is alive but
 * started at another time: the pid was reused); a lock from another host is never taken over.
 *
 * Taking over is done under a second O_EXCL file (`OUT.lock.takeover`) so that two reruns that both
 * find the same stale lock do not both take it.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { parseJson } from "../internal/jsonText.js"
import { FileError } from "./batchFile.js"
import { CliError } from "./error.js"

/** What a lock file holds. */
export interface Holder {
  readonly pid: number
  readonly host: string
  /** ISO time the lock was taken. */
  readonly started: string
  /** The process's start time in clock ticks since boot (Linux `/proc/PID/stat`), to tell a reused pid. */
  readonly pidStart?: string | undefined
}

/** The lock file of an output file. */
export const lockPath = (out: string): string => `${out}.lock`

/** The start time of a process on Linux, if it can be read. */
export const processStart = (pid: number): string | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, starttime 22.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

/** Whether the process that wrote `holder` is still running (only meaningful on its own host). */
export const isAlive = (holder: Holder): boolean => {
  try {
    process.kill(holder.pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  if (holder.pidStart === undefined) return true
  const start = processStart(holder.pid)
  return start === undefined || start === holder.pidStart
}

const parseHolder = (text: string): Holder | undefined => {
  const parsed = parseJson(text)
  if (Either.isLeft(parsed) || typeof parsed.right !== "object" || parsed.right === null) return undefined
  const h = parsed.right as Partial<Holder>
  return Number.isInteger(h.pid) && typeof h.host === "string" && typeof h.started === "string" ? (h as Holder) : undefined
}

const readText = (path: string): string | undefined => {
  try {
    return Fs.readFileSync(path, "utf8")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw e
  }
}

/** Creates `path` with `text`, only if it does not exist: false if it does. A failed write removes it. */
const createExclusive = (path: string, text: string): boolean => {
  let fd: number
  try {
    fd = Fs.openSync(path, "wx")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false
    throw e
  }
  try {
    const data = Buffer.from(text)
    let offset = 0
    while (offset < data.length) {
      const n = Fs.writeSync(fd, data, offset)
      if (!(n > 0)) throw new Error("wrote nothing")
      offset += n
    }
  } catch (e) {
    Fs.closeSync(fd)
    Fs.rmSync(path, { force: true })
    throw e
  }
  Fs.closeSync(fd)
  return true
}

/** The result of one attempt at the lock. */
export type Attempt =
  | { readonly _tag: "Acquired"; readonly tookOver: Holder | "unreadable" | undefined }
  | { readonly _tag: "Held"; readonly holder: Holder }
  /** The lock exists but does not say whose it is yet (being written), or someone else is taking it over: try again. */
  | { readonly _tag: "Busy" }

/** A lock file this old that still holds no owner was left by a run that died while creating it. */
const UNREADABLE_STALE_MILLIS = 2_000
/** A takeover takes microseconds; a takeover file this old was left by a run that died in one. */
const TAKEOVER_STALE_MILLIS = 10_000

const ageMillis = (path: string, now: number): number => {
  try {
    return now - Fs.statSync(path).mtimeMs
  } catch {
    return 0
  }
}

/**
 * One attempt to take the lock at `path` for `me` (synchronous; `now` in epoch milliseconds). Throws
 * the file system's errors (no space to write the lock, no permission).
 */
export const attempt = (path: string, me: Holder, now: number): Attempt => {
  const text = JSON.stringify(me) + "\n"
  if (createExclusive(path, text)) return { _tag: "Acquired", tookOver: undefined }
  const seen = readText(path)
  if (seen === undefined) return { _tag: "Busy" } // removed meanwhile: try again
  const holder = parseHolder(seen)
  if (holder === undefined && ageMillis(path, now) < UNREADABLE_STALE_MILLIS) return { _tag: "Busy" }
  // A lock with this process's own pid was left by an earlier process that had the same pid.
  if (holder !== undefined && (holder.host !== me.host || (holder.pid !== me.pid && isAlive(holder)))) return { _tag: "Held", holder }
  // Stale: take it over, under the takeover file, if the lock still holds what was judged stale.
  const guard = `${path}.takeover`
  if (!createExclusive(guard, text)) {
    const other = parseHolder(readText(guard) ?? "")
    if (ageMillis(guard, now) > TAKEOVER_STALE_MILLIS || (other !== undefined && other.host === me.host && !isAlive(other))) {
      Fs.rmSync(guard, { force: true })
    }
    return { _tag: "Busy" }
  }
  try {
    if (readText(path) !== seen) return { _tag: "Busy" }
    Fs.rmSync(path, { force: true })
    return createExclusive(path, text) ? { _tag: "Acquired", tookOver: holder ?? "unreadable" } : { _tag: "Busy" }
  } finally {
    Fs.rmSync(guard, { force: true })
  }
}

/** Removes the lock at `path` if it is still the one `me` wrote. */
export const release = (path: string, me: Holder): void => {
  try {
    if (readText(path) === JSON.stringify(me) + "\n") Fs.rmSync(path, { force: true })
  } catch {
    // Nothing to do: the next run's stale detection handles a lock that could not be removed.
  }
}

const describeHolder = (h: Holder) => `pid ${h.pid} on host ${h.host}, since ${h.started}`

/**
 * Holds the lock of `out` until the scope closes. Fails with a `CliError` (exit 2) naming the holder
 * when another run holds it; takes over a stale lock with a note on stderr.
 */
export const acquire = (out: string): Effect.Effect<void, CliError | FileError, Scope.Scope> =>
  Effect.gen(function* () {
    const path = lockPath(out)
    const now = yield* Clock.currentTimeMillis
    const me: Holder = { pid: process.pid, host: Os.hostname(), started: new Date(now).toISOString(), pidStart: processStart(process.pid) }
    const onExit = () => release(path, me)
    let result: Attempt = { _tag: "Busy" }
    for (let tries = 0; tries < 50 && result._tag === "Busy"; tries++) {
      if (tries > 0) yield* Effect.sleep("100 millis")
      const at = yield* Clock.currentTimeMillis
      result = yield* Effect.try({
        try: () => attempt(path, me, at),
        catch: (e) => new FileError({ path, detail: `could not create the lock file (${e instanceof Error ? e.message : String(e)}); nothing was sent` })
      })
    }
    if (result._tag === "Held") {
      return yield* new CliError({
        detail: `${out} is in use by another shepherd run (${describeHolder(result.holder)}; lock file ${path}): nothing was sent. ` +
          `Wait for that run to end, or choose another --out. If no such run exists (it ran on another machine), delete ${path}.`,
        exitCode: 2
      })
    }
    if (result._tag === "Busy") {
      return yield* new CliError({ detail: `${path} could not be taken (another run keeps taking it over): nothing was sent. Try again.`, exitCode: 2 })
    }
    const tookOver = result.tookOver
    if (tookOver !== undefined) {
      yield* Console.error(
        tookOver === "unreadable"
          ? `shepherd run: ${path} held no owner (a run died while creating it): taking it over`
          : `shepherd run: ${path} was left by ${describeHolder(tookOver)}, which is no longer running: taking it over`
      )
    }
    // Removed when the scope closes; the exit hook covers a process.exit that skips finalizers.
    process.on("exit", onExit)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        process.off("exit", onExit)
        release(path, me)
      })
    )
  })
