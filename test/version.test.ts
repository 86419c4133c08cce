import { expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { VERSION } from "../src/internal/version.js"

it("the version sent in the user-agent is package.json's", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
  expect(VERSION).toBe(pkg.version)
})
