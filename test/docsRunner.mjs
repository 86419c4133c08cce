/**
 * Runs the documentation examples given as arguments one after another in this one process, for
 * test/docs.test.ts: loading effect and the package once instead of once per example (about 2 s of
 * CPU each). Each example runs to its end as it would in a process of its own: until the event loop
 * is empty ('beforeExit'), which is when `node example.mjs` would exit. Its output on stdout and
 * stderr is framed by marker lines naming its index, and its end line carries the exit code it would have had
 * (`process.exitCode`). An example that ends the process (process.exit, an uncaught error) ends this
 * runner: the test reads that exit as the example's own and runs the examples after it in a new runner.
 */
import { pathToFileURL } from "node:url"

/** Starts each marker line (as in test/docs.test.ts). */
const MARK = "\u0000docs-example"
const files = process.argv.slice(2)
let next = 0
/** The index (in the arguments) of the example running now. */
let current

const mark = (line) => {
  process.stdout.write(`${MARK} ${line}\n`)
  process.stderr.write(`${MARK} ${line}\n`)
}

const startNext = () => {
  if (next >= files.length) return
  current = next++
  process.exitCode = 0
  mark(`start ${current}`)
  // A rejection here is unhandled, as an example's top-level error is when it runs alone: the process
  // prints it and exits 1.
  void import(pathToFileURL(files[current]).href)
}

process.on("beforeExit", () => {
  if (current === undefined) return
  mark(`end ${current} ${process.exitCode ?? 0}`)
  current = undefined
  startNext()
  if (current === undefined) process.exitCode = 0
})

startNext()
