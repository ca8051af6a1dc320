// Gathers HostFacts (base/host-facts.ts) from /sys and /proc in one place, for
// a command to hand to the report and diagnosis layers.
import { HostFacts } from '../base/host-facts';
import { hasRunEstimationSwitch } from './ipvs';
import { interfaceIndexes, rpsState } from './net';

export function gatherHostFacts(): HostFacts {
  return {
    interfaces: interfaceIndexes(),
    rps: Object.fromEntries(rpsState().map((r) => [r.interface, r.queues])),
    ipvsSwitch: hasRunEstimationSwitch(),
  };
}

let cached: { atMs: number; facts: HostFacts } | undefined;

/**
 * The facts, read again at most every `maxAgeMs`: for views that build a
 * verdict every second (top, serve), where a node with hundreds of pods has
 * hundreds of interfaces to read, and a mask changed half a minute ago is news
 * enough.
 */
export function recentHostFacts(maxAgeMs = 30_000): HostFacts {
  const now = Date.now();
  if (!cached || now - cached.atMs > maxAgeMs) cached = { atMs: now, facts: gatherHostFacts() };
  return cached.facts;
}
