/**
 * `shepherd json [FILE]`: prints the JSON recovered from FILE (or stdin), with how it was recovered on
 * stderr; exits 1 with the reason when there is none.
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { readFileSync } from "node:fs"
import * as Json from "../Json.js"
import { CliError } from "./error.js"

const readStdin = Effect.promise(async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
})

export const jsonCommand = Command.make("json", { file: Args.file({ name: "FILE", exists: "yes" }).pipe(Args.optional) }, ({ file }) =>
  Effect.gen(function* () {
    const text = Option.isSome(file) ? readFileSync(file.value, "utf8") : yield* readStdin
    const result = yield* Json.parse(text).pipe(Effect.mapError((e) => new CliError({ detail: e.message })))
    yield* Console.log(JSON.stringify(result.value, null, 2))
    yield* Console.error(`recovery: ${result.recovery}`)
  })
).pipe(Command.withDescription("Print the JSON value recovered from FILE (or standard input); exit 1 with the reason when there is none"))
