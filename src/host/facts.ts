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
