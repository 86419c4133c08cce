#!/usr/bin/env node
// Installing the package as documented works: `npm pack` the repository, install the tarball into an
// empty project with the install line of docs/getting-started.md (the tarball in place of the name),
// compile README.md's first program there with TypeScript, and run it against `shepherd mock` started
// from the installed package on a free port. Prints the sizes measured; exits 1 on any failure.
// Needs the npm registry. Usage: node .ci/install-check.mjs [--keep]
import { execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "shepherd-install-"))
const keep = process.argv.includes("--keep")
const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const step = (text) => console.log(`-- ${text}`)
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })

const fail = (message) => {
  console.error(`install check failed: ${message}`)
  process.exitCode = 1
}

let mock
try {
  // 1. The documented install line, and the README's first program.
  const gettingStarted = readFileSync(join(root, "docs", "getting-started.md"), "utf8")
  const install = /^npm install effect-shepherd .*$/m.exec(gettingStarted)?.[0]
  if (install === undefined) throw new Error("docs/getting-started.md has no `npm install effect-shepherd ...` line")
  const readme = readFileSync(join(root, "README.md"), "utf8")
  const program = /^```ts\n([\s\S]*?)^```$/m.exec(readme)?.[1]
  if (program === undefined) throw new Error("README.md has no TypeScript program")

  // 2. The package as npm publishes it.
  step("npm pack")
  const packed = JSON.parse(sh(npm, ["pack", "--json", "--pack-destination", dir], root))[0]
  const tarball = join(dir, packed.filename)
  const maps = packed.files.filter((f) => f.path.endsWith(".map")).length
  if (maps > 0) fail(`the package ships ${maps} source maps without their sources`)
  for (const needed of ["LICENSE", "README.md", "package.json", "dist/src/index.js", "dist/workers/jsonWorkerEntry.cjs"]) {
    if (!packed.files.some((f) => f.path === needed)) fail(`the package lacks ${needed}`)
  }

  // 3. An empty project, installed with the documented command.
  const project = join(dir, "project")
  mkdirSync(project, { recursive: true })
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "first-program", private: true, type: "module" }, null, 2))
  const args = install.split(/\s+/).slice(2).map((word) => (word === "effect-shepherd" ? tarball : word))
  step(`npm install ${args.join(" ")}`)
  sh(npm, ["install", "--no-audit", "--no-fund", ...args], project)

  // 4. README's first program, typechecked against the installed types and compiled.
  writeFileSync(join(project, "first.ts"), program)
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
    compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, skipLibCheck: true, types: [], outDir: "out" },
    files: ["first.ts"]
  }, null, 2))
  step("tsc (README's first program against the installed package)")
  sh(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], project)

  // 5. `shepherd mock` from the installed package, on a free port; the program against it.
  step("npx shepherd mock --port 0, then node first.js")
  mock = spawn(join(project, "node_modules", ".bin", "shepherd"), ["mock", "--port", "0", "--latency", "5ms"], { cwd: project, stdio: ["ignore", "pipe", "inherit"] })
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: mock.stdout }).once("line", resolve)
    mock.once("exit", (code) => reject(new Error(`shepherd mock exited ${code} before printing its URL`)))
  })
  const run = await new Promise((resolve) => {
    const child = spawn(process.execPath, [join(project, "out", "first.js")], {
      cwd: project,
      env: { ...process.env, OPENAI_BASE_URL: url, OPENAI_API_KEY: "sk-install-check" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c) => { stdout += c })
    child.stderr.setEncoding("utf8").on("data", (c) => { stderr += c })
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.once("exit", (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
  process.stdout.write(run.stdout)
  process.stderr.write(run.stderr)
  const answers = run.stdout.split("\n").filter((line) => line.startsWith("Mock answer"))
  if (run.code !== 0) fail(`the README's first program exited ${run.code}`)
  else if (answers.length !== 3) fail(`expected 3 answers from the README's first program, got ${answers.length}`)

  // 6. What the install weighs.
  const du = sh("du", ["-sh", join(project, "node_modules")], project).split("\t")[0]
  console.log(
    `sizes: tarball ${(statSync(tarball).size / 1024).toFixed(0)} kB, package unpacked ${(packed.unpackedSize / 1024).toFixed(0)} kB ` +
      `(${packed.entryCount} files); node_modules of the empty project after the documented install: ${du}`
  )
} catch (error) {
  fail(error instanceof Error ? error.message : String(error))
} finally {
  if (mock !== undefined && mock.exitCode === null) mock.kill("SIGTERM")
  if (!keep) rmSync(dir, { recursive: true, force: true })
  else console.log(`kept ${dir}`)
}
if (process.exitCode !== 1) console.log("install check passed")
