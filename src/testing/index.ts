/**
 * Test helpers, exported as `effect-shepherd/testing`.
 *
 * @since 0.1.0
 */

/**
 * An OpenAI-compatible HTTP server on loopback for tests, benchmarks and demos: deterministic replies,
 * latency, scripted or random faults, and a journal of what it received.
 *
 * @since 0.1.0
 */
export * as MockServer from "./MockServer.js"
