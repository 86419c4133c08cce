/**
 * `ChatClient.layerRouter`: the same `ChatClient` service over many deployments. The options are
 * checked first (`options.ts`); then each deployment gets its own pool, limiter and breaker
 * (`deployment.ts`), and the client's pipeline gains the route stage (`stage.ts`).
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Options as ClientOptions, Overrides, Service } from "../../ChatClient.js"
import type { LimiterUnavailableError } from "../../ChatError.js"
import type * as Router from "../../Router.js"
import * as Classify from "../classify.js"
import * as ClientService from "../clientService.js"
import * as Deadlines from "../deadlines.js"
import * as Deployment from "./deployment.js"
import * as Options from "./options.js"
import { route, type Table } from "./stage.js"

/** Builds the routed service; `resolve` is `ChatClient.resolveOptions`. */
export const make = (
  options: Router.Options,
  resolve: (o: Overrides) => Effect.Effect<ClientOptions, ConfigError.ConfigError>
): Effect.Effect<Service, ConfigError.ConfigError | LimiterUnavailableError, Scope.Scope> =>
  Effect.gen(function* () {
    const checked = yield* Options.check(options, resolve)
    const deadlines = yield* Deadlines.make
    const deployments = yield* Effect.forEach(checked.clients, (resolved, index) => Deployment.make(options, index, resolved, checked.breaker, deadlines))
    const table: Table = {
      deployments,
      chains: checked.chains,
      fallbackOn: checked.fallbackOn,
      contextWindows: checked.contextWindows,
      tracing: checked.clients[0]!.tracing,
      turn: 0
    }
    const first = deployments[0]!
    // A stream's chunks are read after the route stage picked its deployment: scrub every key.
    const endpoints: ClientService.Endpoints = {
      ...first.endpoints,
      streamSettings: { ...first.endpoints.streamSettings, scrub: Classify.combineScrubs(deployments.map((d) => d.endpoints.streamSettings.scrub)) }
    }
    return yield* ClientService.routed(checked.clients[0]!, endpoints, route(table), first.limiter, ClientService.routerCacheStage(checked.clients))
  })
