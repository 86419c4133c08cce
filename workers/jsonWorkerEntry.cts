/**
 * The file piscina loads for `JsonParser`: CommonJS, so that piscina's `require` of it never loads an
 * ES module. (Node 20 can `require` an ES module, and piscina tries that first; in CI it once
 * aborted the whole process with "FATAL ERROR: v8::Module::IsGraphAsync must be used on an
 * instantiated module" while a worker started.) The ES module with the work is imported once, on the
 * first task, by `import()`.
 */
import type { Reply, Task } from "./jsonWorker.js"

let implementation: Promise<typeof import("./jsonWorker.js")> | undefined

const handler = async (task: Task): Promise<Reply> => {
  implementation ??= import("./jsonWorker.js")
  return (await implementation).default(task)
}

export = handler
