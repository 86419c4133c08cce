/**
 * Which deployment a request goes to: the one that would start it soonest; among those that would
 * start it at the same time, the lowest `priority`, then the fewest requests in flight, then the
 * next in turn (so that equal deployments share the load).
 * @internal
 */

/** One deployment as the choice sees it. */
export interface Candidate {
  /** Its place among the router's deployments. */
  readonly index: number
  /** When it could start the request (epoch ms). */
  readonly at: number
  readonly priority: number
  readonly inFlight: number
}

/** The candidate to send to (undefined when there is none); `turn` rotates the last tie-break. */
export const choose = <C extends Candidate>(candidates: ReadonlyArray<C>, turn: number, count: number): C | undefined => {
  let best: C | undefined
  let bestRank = 0
  for (const c of candidates) {
    // Rotated index: the deployment after the last chosen one wins a full tie.
    const rank = (c.index - turn + count) % count
    if (
      best === undefined ||
      c.at < best.at ||
      (c.at === best.at && (c.priority < best.priority ||
        (c.priority === best.priority && (c.inFlight < best.inFlight || (c.inFlight === best.inFlight && rank < bestRank)))))
    ) {
      best = c
      bestRank = rank
    }
  }
  return best
}
