import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

// Issue 15's size targets: no file in src/ over 400 lines, no function over 80 lines.
// Schema and data tables are exempt by name; keep these lists short.
const MAX_FILE_LINES = 400
const MAX_FUNCTION_LINES = 80

/** Files that are wire schemas or data tables, exempt from the file limit. */
const FILE_ALLOW = new Set<string>([
  "src/ChatSchema.ts",
  "src/BatchApiSchema.ts"
])

/** Functions (as `file:name`) that are data tables, exempt from the function limit. */
const FUNCTION_ALLOW = new Set<string>([])

const root = path.resolve(import.meta.dirname, "..")

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`
    if (entry.isDirectory()) return sourceFiles(rel)
    return entry.name.endsWith(".ts") ? [rel] : []
  })

const lineCount = (text: string): number => text.split("\n").length - (text.endsWith("\n") ? 1 : 0)

const nameOf = (node: ts.Node): string => {
  if ((ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node)) && node.name) return node.name.getText()
  let parent: ts.Node | undefined = node.parent
  const names: Array<string> = []
  while (parent) {
    if ((ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) &&
      parent.name) {
      names.push(parent.name.getText())
      break
    }
    if (ts.isFunctionDeclaration(parent) && parent.name) {
      names.push(parent.name.getText())
      break
    }
    parent = parent.parent
  }
  return names.length > 0 ? names[0]! : "<anonymous>"
}

/** Every function-like node over the limit, as `file:name (N lines)`. */
const longFunctions = (file: string): Array<{ readonly key: string; readonly lines: number }> => {
  const text = fs.readFileSync(path.join(root, file), "utf8")
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const found: Array<{ key: string; lines: number }> = []
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
      const lines = end - start + 1
      if (lines > MAX_FUNCTION_LINES) {
        // Report the outermost long function only; a generator inside it is the same body.
        found.push({ key: `${file}:${nameOf(node)}`, lines })
        return
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

const files = sourceFiles("src")

describe("size targets (issue 15)", () => {
  it("finds the sources", () => {
    expect(files).toContain("src/ChatClient.ts")
  })

  it(`no file in src/ is over ${MAX_FILE_LINES} lines`, () => {
    const over = files
      .filter((file) => !FILE_ALLOW.has(file))
      .map((file) => ({ file, lines: lineCount(fs.readFileSync(path.join(root, file), "utf8")) }))
      .filter(({ lines }) => lines > MAX_FILE_LINES)
      .map(({ file, lines }) => `${file} (${lines} lines)`)
    expect(over).toEqual([])
  })

  it(`no function in src/ is over ${MAX_FUNCTION_LINES} lines`, () => {
    const over = files
      .flatMap(longFunctions)
      .filter(({ key }) => !FUNCTION_ALLOW.has(key))
      .map(({ key, lines }) => `${key} (${lines} lines)`)
    expect(over).toEqual([])
  })

  it("the check sees a long function", () => {
    const dir = fs.mkdtempSync(path.join(root, "node_modules/.sizes-"))
    try {
      const body = Array.from({ length: MAX_FUNCTION_LINES + 1 }, (_, i) => `  const x${i} = ${i}`).join("\n")
      const file = path.join(dir, "long.ts")
      fs.writeFileSync(file, `export const tooLong = () => {\n${body}\n}\n`)
      const rel = path.relative(root, file)
      expect(longFunctions(rel).map(({ key }) => key)).toEqual([`${rel}:tooLong`])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
