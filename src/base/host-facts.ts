// The facts about this host that diagnosis needs, as plain data: gathered by
// a command (host/facts.ts) and handed down, so diagnose/ does no I/O.

/** One receive queue's RPS mask. */
export interface RpsQueue {
  queue: string; // rx-0
  cpus: number[]; // empty: RPS off for this queue
}

export interface HostFacts {
  /** Interface names by ifindex, in this network namespace. */
  interfaces: Record<number, string>;
  /** The RPS masks of each interface's receive queues. */
  rps: Record<string, RpsQueue[]>;
  /** The kernel has net.ipv4.vs.run_estimation (advice may tell people to set it). */
  ipvsSwitch: boolean;
}

/** No facts at all (a saved report read again, a unit test): no RPS finding, IPVS advice as for current kernels. */
export const NO_HOST_FACTS: HostFacts = { interfaces: {}, rps: {}, ipvsSwitch: true };

/** The symbol of IPVS's estimator on kernels before 6.2. */
export const IPVS_ESTIMATION_SYMBOL = 'estimation_timer';

/** Whether a resolved symbol ("estimation_timer [ip_vs]", ...) is the IPVS estimator. */
export function isIpvsEstimation(symbol: string): boolean {
  return symbol === IPVS_ESTIMATION_SYMBOL || symbol.startsWith(IPVS_ESTIMATION_SYMBOL + ' ');
}
