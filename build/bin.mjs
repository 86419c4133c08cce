// Bundles the `shepherd` command (dist/src/cli/main.js, compiled by tsc) into dist/bin/, one file per
// command family (run; the others) plus shared chunks. Node 20 resolves and links each ES module
// separately: the unbundled command loads about a thousand files (effect's among them) in ~1.1 s of
// CPU per start; bundled, ~0.45 s. The library itself (dist/src) is not bundled.
// Workers stay in dist/workers (JsonParser finds them at ../workers from here too), and
// gpt-tokenizer is loaded at run time with require, from node_modules.
import { build } from "esbuild"

await build({
  entryPoints: { shepherd: "dist/src/cli/main.js" },
  outdir: "dist/bin",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // CommonJS dependencies (undici, ioredis, piscina) call require for Node's own modules.
  banner: { js: "import { createRequire as __shepherdRequire } from 'node:module'; const require = __shepherdRequire(import.meta.url);" },
  logLevel: "warning"
})
