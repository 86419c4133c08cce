/**
 * The OpenAI Batch API line formats (`BatchRequestInput`, `BatchRequestOutput`) as `shepherd run`
 * and `shepherd merge` use them: reading lines (batchLines), checking input lines (batchInput),
 * writing output lines and reading an earlier output to resume (batchOutput).
 * @internal
 */
export * from "./batchInput.js"
export * from "./batchLines.js"
export * from "./batchOutput.js"
