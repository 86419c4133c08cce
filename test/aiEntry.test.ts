/**
 * `effect-shepherd/ai` is its own entry point: the main entry's import graph, as built, never reaches
 * `@effect/ai` (an optional peer dependency a user of the main entry need not install), and the
 * `./ai` export resolves to the built provider modules.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Specifiers a compiled module loads: static imports and re-exports, dynamic imports, requires. */
const specifiers = (source: string): Array<string> =>
  [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)["']([^"']+)["']/g)].map((m) => m[1]!)

/** Every package (bare specifier) the module graph from `entry` loads, following its relative imports. */
const packagesReachedFrom = (entry: string): Set<string> => {
  const seen = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const spec of specifiers(readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec))
      else packages.add(spec)
    }
  }
  visit(entry)
  return packages
}

const built = join(root, "dist/src/index.js")

describe("the entry points, as built (npm test builds first)", () => {
  it("the main entry (and effect-shepherd/testing) never import @effect/ai; effect-shepherd/ai does", () => {
    const fromMain = [...packagesReachedFrom(built), ...packagesReachedFrom(join(root, "dist/src/testing/index.js"))]
    expect(fromMain).toContain("effect/Effect")
    expect(fromMain.filter((spec) => spec === "@effect/ai" || spec.startsWith("@effect/ai/"))).toEqual([])
    const fromAi = [...packagesReachedFrom(join(root, "dist/src/ai/index.js"))]
    expect(fromAi).toEqual(expect.arrayContaining(["@effect/ai/LanguageModel", "@effect/ai/EmbeddingModel", "@effect/ai/Tokenizer"]))
  })

  it("the specifier scan finds every form of import it must follow", () => {
    expect(specifiers(`import * as A from "./a.js"\nexport { b } from '@effect/ai/B'\nimport "side"\nconst c = await import("dyn")\nrequire("cjs")`))
      .toEqual(["./a.js", "@effect/ai/B", "side", "dyn", "cjs"])
  })

  it("effect-shepherd/ai resolves through the package's exports to the built provider", () => {
    // Resolved by Node itself, as a user's import is (the package imports itself by name).
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", `console.log(import.meta.resolve("effect-shepherd/ai"))`], { cwd: root, encoding: "utf8", timeout: 30_000 })
    expect(run.stderr).toBe("")
    const resolved = run.stdout.trim()
    expect(resolved).toBe(pathToFileURL(join(root, "dist/src/ai/index.js")).href)
    const namespaces = [...readFileSync(fileURLToPath(resolved), "utf8").matchAll(/^export \* as (\w+) from/gm)].map((m) => m[1])
    expect(namespaces).toEqual(["ShepherdAiError", "ShepherdEmbeddingModel", "ShepherdLanguageModel", "ShepherdTokenizer"])
  }, 30_000)
})
