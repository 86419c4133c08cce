/**
 * The exit status of `shepherd run`, as `--help` and docs/batch.md state it.
 * @internal
 */

/** Every input has a final outcome in the output (the summary counts the failures). */
export const DONE = 0
/** Some inputs have no final outcome (not sent, or failed in a way worth retrying): a rerun continues. */
export const UNFINISHED = 1
/** A usage or configuration error: nothing was sent. */
export const USAGE = 2
/** Interrupted (Ctrl-C, SIGTERM): a rerun continues. */
export const INTERRUPTED = 130

/** The contract, one row per status, for `--help`. */
export const rows: ReadonlyArray<readonly [string, string]> = [
  [String(DONE), "every input has a final outcome (the summary counts the failures)"],
  [String(UNFINISHED), "some inputs have none (not sent, or failed in a way worth retrying): a rerun continues"],
  [String(USAGE), "usage or configuration error: nothing was sent"],
  [String(INTERRUPTED), "interrupted (Ctrl-C): a rerun continues"]
]
