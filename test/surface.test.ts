/**
 * The public surface is documented as Effect's own packages document theirs: every exported
 * declaration of a public module carries a JSDoc with `@since` (the version that added it) and
 * `@category` (constructors, models, layers, ...), every `Context.Tag` says in words what the service
 * does, and every namespace re-exported by an index has its `@since` and a description. Read from the
 * source with the TypeScript compiler (`ts.createSourceFile`), without type-checking.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))

/** The `.ts` files of a folder of the repository, as paths from its root, sorted. */
const tsFiles = (folder: string): Array<string> =>
  readdirSync(join(root, folder)).filter((name) => name.endsWith(".ts")).sort().map((name) => `${folder}/${name}`)

/**
 * The public modules checked: every module of src/, src/testing/ and src/ai/ (the package's entry points
 * and the namespaces they re-export). src/cli/ is the command line's, not part of the library.
 */
const MODULES: ReadonlyArray<string> = [...tsFiles("src"), ...tsFiles("src/testing"), ...tsFiles("src/ai")]

/**
 * Internal modules (src/internal/, src/testing/internal/): each says `@internal` in its opening comment
 * and gives every export a one-line doc comment; no `@since` needed (they are not part of the public
 * surface).
 */
const INTERNAL_MODULES: ReadonlyArray<string> = [
  ...tsFiles("src/internal"),
  ...tsFiles("src/internal/batchApi"),
  ...tsFiles("src/internal/cache"),
  ...tsFiles("src/testing/internal"),
  ...tsFiles("src/ai/internal")
]

interface Export {
  /** `Module.name` (`Module.Namespace.name` inside a namespace). */
  readonly name: string
  readonly line: number
  readonly tags: ReadonlyMap<string, string>
  readonly description: string
  readonly isTag: boolean
}

const exported = (node: ts.Node): boolean =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)

const commentText = (comment: string | ts.NodeArray<ts.JSDocComment> | undefined): string =>
  comment === undefined ? "" : typeof comment === "string" ? comment : comment.map((part) => part.text).join("")

/**
 * The JSDoc attached to a declaration (the last one written before it), as its description and tags.
 * The comment that opens the file documents the module, not the first declaration after it.
 */
const jsDocOf = (node: ts.Node, opening = false): { readonly description: string; readonly tags: Map<string, string> } => {
  const docs = ts.getJSDocCommentsAndTags(node).filter((doc) => ts.isJSDoc(doc) && (opening || doc.pos > 0)) as Array<ts.JSDoc>
  const doc = docs[docs.length - 1]
  const tags = new Map<string, string>()
  for (const tag of doc?.tags ?? []) tags.set(tag.tagName.text, commentText(tag.comment).trim())
  return { description: commentText(doc?.comment).trim(), tags }
}

/** `class X extends Context.Tag(...)<...>() {}` (or `Context.Reference`, `Effect.Service`): a service's key. */
const isContextTag = (node: ts.Node): boolean =>
  ts.isClassDeclaration(node) &&
  (node.heritageClauses ?? []).some((clause) =>
    clause.types.some((type) => /^(Context\.(Tag|Reference)|Effect\.Service)\b/.test(type.expression.getText()))
  )

/**
 * The exported declarations of a module's text, namespaces walked; overloads of a function counted
 * once. `opening`: the file's opening comment may document its first export (internal modules).
 */
const exportsOf = (file: string, text: string = readFileSync(join(root, file), "utf8"), opening = false): Array<Export> => {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const module = file.replace(/^.*\//, "").replace(/\.ts$/, "")
  const found: Array<Export> = []
  const add = (prefix: string, name: string, node: ts.Node, docNode: ts.Node = node) => {
    const full = `${prefix}.${name}`
    // A function's overloads and its body are one export: the first declaration carries the doc.
    if (ts.isFunctionDeclaration(node) && found.some((e) => e.name === full)) return
    const { description, tags } = jsDocOf(docNode, opening)
    found.push({ name: full, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, tags, description, isTag: isContextTag(node) })
  }
  const walk = (statements: ts.NodeArray<ts.Statement>, prefix: string) => {
    for (const statement of statements) {
      if (ts.isExportDeclaration(statement)) {
        // `export * as Name from "./Name.js"`: the namespace itself is the export.
        const clause = statement.exportClause
        if (clause === undefined) add(prefix, "*", statement)
        else if (ts.isNamespaceExport(clause)) add(prefix, clause.name.text, statement)
        else for (const element of clause.elements) add(prefix, element.name.text, element, statement)
        continue
      }
      if (!exported(statement)) continue
      if (ts.isVariableStatement(statement)) {
        for (const declaration of statement.declarationList.declarations) {
          if (ts.isIdentifier(declaration.name)) add(prefix, declaration.name.text, declaration, statement)
        }
      } else if (
        (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) ||
          ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement)) && statement.name !== undefined
      ) {
        add(prefix, statement.name.text, statement)
      } else if (ts.isModuleDeclaration(statement) && ts.isIdentifier(statement.name)) {
        add(prefix, statement.name.text, statement)
        if (statement.body !== undefined && ts.isModuleBlock(statement.body)) walk(statement.body.statements, `${prefix}.${statement.name.text}`)
      }
    }
  }
  walk(source.statements, module)
  return found
}

/**
 * What a module's surface lacks, one line per export: `@since` (a version) and `@category` on every
 * export not marked `@internal`; an index, which re-exports modules as namespaces, needs `@since` and a
 * description on each (as Effect's own index); a `Context.Tag` needs a description of its service.
 */
const problemsOf = (file: string, text?: string): Array<string> => {
  const problems: Array<string> = []
  const isIndex = file.endsWith("index.ts")
  for (const e of exportsOf(file, text)) {
    if (e.tags.has("internal")) continue
    const at = `${file}:${e.line} ${e.name}`
    const since = e.tags.get("since") ?? ""
    if (since === "") problems.push(`${at}: no @since`)
    else if (!/^\d+\.\d+\.\d+$/.test(since)) problems.push(`${at}: @since ${since} is not a version`)
    if (!isIndex && (e.tags.get("category") ?? "") === "") problems.push(`${at}: no @category`)
    if ((isIndex || e.isTag) && e.description === "") problems.push(`${at}: no description`)
  }
  return problems
}

describe("the public surface", () => {
  it("finds the modules and the exports it checks", () => {
    // A walk that found nothing would pass every check below.
    expect(MODULES).toEqual(expect.arrayContaining(["src/ChatClient.ts", "src/RetryPolicy.ts", "src/Budget.ts", "src/Metrics.ts", "src/RateLimit.ts", "src/Batch.ts", "src/BatchApi.ts", "src/BatchApiError.ts", "src/BatchApiSchema.ts", "src/index.ts", "src/testing/MockServer.ts", "src/testing/index.ts"]))
    expect(INTERNAL_MODULES).toEqual(expect.arrayContaining(["src/internal/pipeline.ts", "src/internal/batchApi/run.ts", "src/testing/internal/routing.ts"]))
    const counts = MODULES.map((file) => exportsOf(file).length)
    expect(counts.every((n) => n > 0)).toBe(true)
    expect(exportsOf("src/ChatSchema.ts").length).toBeGreaterThan(50)
    expect(exportsOf("src/index.ts").map((e) => e.name)).toContain("index.ChatClient")
  })

  it.each(MODULES)("%s: opens with a module comment with @since", (file) => {
    const text = readFileSync(join(root, file), "utf8")
    expect(text.startsWith("/**")).toBe(true)
    expect(/^ \* @since \d+\.\d+\.\d+$/m.test(text.slice(0, text.indexOf("*/")))).toBe(true)
  })

  it.each(MODULES)("%s: every export has @since and @category; Tags and namespaces a description", (file) => {
    expect(problemsOf(file)).toEqual([])
  })

  it.each(INTERNAL_MODULES)("%s: marked @internal, every export with a doc comment", (file) => {
    const text = readFileSync(join(root, file), "utf8")
    const opening = text.startsWith("/**") ? text.slice(0, text.indexOf("*/")) : ""
    expect(/@internal\b/.test(opening)).toBe(true)
    const bare = exportsOf(file, text, true).filter((e) => e.description === "").map((e) => `${file}:${e.line} ${e.name}`)
    expect(bare).toEqual([])
  })

  it("no public module exports an @internal helper (it belongs in src/internal/)", () => {
    const internal = MODULES.flatMap((file) => exportsOf(file).filter((e) => e.tags.has("internal")).map((e) => e.name))
    expect(internal).toEqual([])
  })

  it("names each export that lacks a tag or a description", () => {
    const text = [
      "/** The probe. @since 0.1.0 */\nimport * as Context from \"effect/Context\"",
      "/** Documented.\n * @since 0.1.0 */\nexport const a = 1",
      "/**\n * @since 0.1.0\n * @category models\n */\nexport interface B {}",
      "export type C = string",
      "/** @since soon\n * @category models */\nexport function d(): void\nexport function d(x?: number): void {}",
      "/** @since 0.2.0\n * @category services */\nexport class E extends Context.Tag(\"x/E\")<E, {}>() {}",
      "/** Its own. @internal */\nexport const f = 1",
      "export declare namespace G {\n  /** @since 0.1.0 */\n  export type H = number\n}"
    ].join("\n")
    expect(problemsOf("src/Probe.ts", text)).toEqual([
      "src/Probe.ts:5 Probe.a: no @category",
      "src/Probe.ts:11 Probe.C: no @since",
      "src/Probe.ts:11 Probe.C: no @category",
      "src/Probe.ts:14 Probe.d: @since soon is not a version",
      "src/Probe.ts:18 Probe.E: no description",
      "src/Probe.ts:21 Probe.G: no @since",
      "src/Probe.ts:21 Probe.G: no @category",
      "src/Probe.ts:23 Probe.G.H: no @category"
    ])
    // The module's own comment is not the first export's.
    expect(problemsOf("src/probe/index.ts", "/**\n * The module.\n * @since 0.1.0\n */\nexport * as A from \"./A.js\"\n/** @since 0.1.0 */\nexport * as B from \"./B.js\"")).toEqual([
      "src/probe/index.ts:5 index.A: no @since",
      "src/probe/index.ts:5 index.A: no description",
      "src/probe/index.ts:7 index.B: no description"
    ])
  })
})
