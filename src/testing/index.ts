/**
 * Test helpers, exported as `effect-shepherd/testing`.
 *
 * @since 0.1.0
 */
export * as MockServer from "./MockServer.js"
