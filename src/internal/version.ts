/** The package version, sent in the user-agent. test/version.test.ts keeps it equal to package.json's. @internal */
export const VERSION = "0.1.0"
