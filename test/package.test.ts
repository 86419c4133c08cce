/**
 * The built package as a user gets it: copied into a node_modules folder (not linked to the repo),
 * imported by name, with the JSON worker pool running from dist/workers.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "shepherd-package-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("the built package in node_modules", () => {
  it("imports by name and parses through the worker pool", () => {
    const modules = join(dir, "node_modules")
    const self = join(modules, "effect-shepherd")
    mkdirSync(self, { recursive: true })
    cpSync(join(root, "package.json"), join(self, "package.json"))
    cpSync(join(root, "dist", "src"), join(self, "dist", "src"), { recursive: true })
    cpSync(join(root, "dist", "workers"), join(self, "dist", "workers"), { recursive: true })
    // its dependencies, as npm would have installed them beside it
    for (const name of readdirSync(join(root, "node_modules"))) {
      if (name.startsWith(".")) continue
      symlinkSync(join(root, "node_modules", name), join(modules, name), "dir")
    }
    writeFileSync(join(dir, "check.mjs"), `
      import { Effect } from "effect"
      import { JsonParser } from "effect-shepherd"
      import { MockServer } from "effect-shepherd/testing"
      const doc = "[" + Array.from({ length: 3000 }, (_, i) => '{"id": ' + i + ', "ok": True,}').join(",") + "]"
      const program = Effect.gen(function* () {
        const parser = yield* JsonParser.JsonParser
        const result = yield* parser.parse(doc)
        console.log(result.recovery, result.value.length, typeof MockServer.make, JsonParser.workerPath())
      })
      Effect.runPromise(program.pipe(Effect.provide(JsonParser.layer({ inlineBelowBytes: 0 }))))
    `)
    const run = spawnSync(process.execPath, [join(dir, "check.mjs")], { cwd: dir, encoding: "utf8", timeout: 60_000 })
    expect(run.stderr).toBe("")
    const [recovery, length, make, worker] = run.stdout.trim().split(" ")
    expect([recovery, length, make]).toEqual(["repaired", "3000", "function"])
    expect(worker).toBe(join(self, "dist", "workers", "jsonWorkerEntry.cjs"))
  }, 60_000)
})
