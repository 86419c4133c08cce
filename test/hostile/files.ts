/** What test/hostile/files.test.ts and disk.test.ts share: `shepherd run`'s arguments and checks of its files and messages. */
import { expect } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** `shepherd run` arguments: `input` to `out` against `url`, no progress display, then `more`. */
export const args = (input: string, out: string, url: string, ...more: Array<string>) => [input, "--out", out, "--base-url", url, "--no-progress", ...more]

/** Every line of a file is a whole JSON line, and the file ends with a newline (or is empty). */
export const wholeLines = (path: string): Array<string> => {
  const text = Fs.readFileSync(path, "utf8")
  if (text !== "") expect(text.endsWith("\n")).toBe(true)
  const lines = text.split("\n").filter((l) => l !== "")
  for (const line of lines) expect(() => JSON.parse(line)).not.toThrow()
  return lines
}

/** A message for people: no stack trace, no RangeError. */
export const noStackTrace = (stderr: string) => {
  expect(stderr).not.toMatch(/^\s+at /m)
  expect(stderr).not.toContain("RangeError")
}

/** Whether this process may mount a tmpfs (root in a container that allows it). */
export const canMount = (() => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-mount-probe-"))
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" })
    execFileSync("umount", [dir], { stdio: "ignore" })
    return true
  } catch {
    return false
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
})()
