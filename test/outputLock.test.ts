/** One `shepherd run` per output file: OUT.lock (issue 13, D.13). */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as OutputLock from "../src/cli/outputLock.js"

const dir = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-lock-"))
const host = Os.hostname()
const DEAD = 2 ** 22 + 4321 // above Linux's pid_max: never a live process
const holder = (pid: number, h = host): OutputLock.Holder => ({ pid, host: h, started: "2026-01-01T00:00:00.000Z", pidStart: OutputLock.processStart(pid) })
const me = holder(process.pid)
const NOW = Date.now()

describe("OUT.lock", () => {
  it("13.13 the first attempt creates the lock with pid and host; a second one finds it held", () => {
    const lock = Path.join(dir(), "out.jsonl.lock")
    expect(OutputLock.attempt(lock, me, NOW)).toEqual({ _tag: "Acquired", tookOver: undefined })
    expect(JSON.parse(Fs.readFileSync(lock, "utf8"))).toMatchObject({ pid: process.pid, host })
    // Another process (say pid 1, alive) trying now:
    expect(OutputLock.attempt(lock, holder(1), NOW)).toEqual({ _tag: "Held", holder: me })
    OutputLock.release(lock, me)
    expect(Fs.existsSync(lock)).toBe(false)
  })

  it("13.13 a lock whose pid is not alive on this host is taken over, once", () => {
    const lock = Path.join(dir(), "out.jsonl.lock")
    const stale = holder(DEAD)
    Fs.writeFileSync(lock, JSON.stringify(stale) + "\n")
    expect(OutputLock.attempt(lock, me, NOW)).toEqual({ _tag: "Acquired", tookOver: stale })
    expect(JSON.parse(Fs.readFileSync(lock, "utf8"))).toMatchObject({ pid: process.pid })
    expect(Fs.existsSync(`${lock}.takeover`)).toBe(false)
    expect(OutputLock.attempt(lock, holder(1), NOW)._tag).toBe("Held")
  })

  it("13.13 a live pid that started at another time (a reused pid) is stale; a lock from another host never is", () => {
    const lock = Path.join(dir(), "out.jsonl.lock")
    const reused = { ...holder(process.ppid), pidStart: "1" }
    Fs.writeFileSync(lock, JSON.stringify(reused) + "\n")
    expect(OutputLock.isAlive(holder(process.ppid))).toBe(true)
    expect(OutputLock.isAlive(reused)).toBe(false)
    expect(OutputLock.attempt(lock, me, NOW)).toEqual({ _tag: "Acquired", tookOver: reused })

    const elsewhere = holder(DEAD, "another-host")
    Fs.writeFileSync(lock, JSON.stringify(elsewhere) + "\n")
    expect(OutputLock.attempt(lock, me, NOW)).toEqual({ _tag: "Held", holder: elsewhere })
  })

  it("13.13 an empty lock (its run died while creating it) is waited for briefly, then taken over; a takeover in progress is waited for", () => {
    const lock = Path.join(dir(), "out.jsonl.lock")
    Fs.writeFileSync(lock, "")
    expect(OutputLock.attempt(lock, me, NOW)._tag).toBe("Busy")
    expect(OutputLock.attempt(lock, me, NOW + 5_000)).toEqual({ _tag: "Acquired", tookOver: "unreadable" })

    Fs.writeFileSync(lock, JSON.stringify(holder(DEAD)) + "\n")
    Fs.writeFileSync(`${lock}.takeover`, JSON.stringify(holder(process.ppid)) + "\n") // a live process taking it over
    expect(OutputLock.attempt(lock, me, NOW)._tag).toBe("Busy")
    expect(Fs.existsSync(`${lock}.takeover`)).toBe(true)
    // A takeover file left by a dead process is removed; the next attempt takes the lock.
    Fs.writeFileSync(`${lock}.takeover`, JSON.stringify(holder(DEAD)) + "\n")
    expect(OutputLock.attempt(lock, me, NOW)._tag).toBe("Busy")
    expect(OutputLock.attempt(lock, me, NOW)._tag).toBe("Acquired")
  })

  it("13.13 release removes only the lock this process wrote", () => {
    const lock = Path.join(dir(), "out.jsonl.lock")
    const other = holder(process.ppid)
    Fs.writeFileSync(lock, JSON.stringify(other) + "\n")
    OutputLock.release(lock, me)
    expect(Fs.existsSync(lock)).toBe(true)
  })

  it.effect("13.13 acquire holds the lock until its scope closes, and refuses (exit 2) naming a live holder", () =>
    Effect.gen(function* () {
      const out = Path.join(dir(), "out.jsonl")
      const scope = yield* Scope.make()
      yield* Scope.extend(OutputLock.acquire(out), scope)
      expect(JSON.parse(Fs.readFileSync(`${out}.lock`, "utf8")).pid).toBe(process.pid)
      yield* Scope.close(scope, Exit.void)
      expect(Fs.existsSync(`${out}.lock`)).toBe(false)

      Fs.writeFileSync(`${out}.lock`, JSON.stringify(holder(process.ppid)) + "\n")
      const refused = yield* Effect.flip(Effect.scoped(OutputLock.acquire(out)))
      expect(refused).toMatchObject({ _tag: "CliError", exitCode: 2 })
      expect(refused.message).toContain(`${out} is in use by another shepherd run (pid ${process.ppid} on host ${host}`)
    }))
})
