// Capability check before touching the kernel, so a user without privileges
// gets one clear line instead of an EPERM from deep inside libbpf.
import fs from 'node:fs';
import { EnvironmentError } from '../base/errors';
import { hasKernelBtf, KERNEL_BTF } from './kernel-info';

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

export function effectiveCaps(status = fs.readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt('0x' + m[1]) : 0n;
}

export function missingCaps(caps: bigint): string[] {
  const has = (c: number) => (caps >> BigInt(c)) & 1n;
  if (has(CAP_SYS_ADMIN)) return [];
  const missing: string[] = [];
  if (!has(CAP_BPF)) missing.push('CAP_BPF');
  if (!has(CAP_PERFMON)) missing.push('CAP_PERFMON');
  return missing;
}

export function requireTracingCaps(status?: string): void {
  const missing = missingCaps(effectiveCaps(status));
  if (missing.length)
    throw new EnvironmentError(
      `missing ${missing.length > 1 ? 'capabilities' : 'capability'} ${missing.join(' and ')}: jitterscope needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its BPF programs; run it as root, or in a container add them (podman/docker --cap-add=BPF,PERFMON,SYSLOG; deploy/kubernetes has a DaemonSet)`,
    );
}

/** 2 when a seccomp filter is on this process (a container runtime's profile), 0 when none. */
export function seccompMode(status = fs.readFileSync('/proc/self/status', 'utf8')): number {
  const m = /^Seccomp:\s*(\d+)$/m.exec(status);
  return m ? Number(m[1]) : 0;
}

/** The tracer's CO-RE programs need the kernel's BTF. */
export function requireKernelBtf(file = KERNEL_BTF): void {
  if (!hasKernelBtf(file))
    throw new EnvironmentError(
      `this kernel has no BTF (${file} is missing; it needs CONFIG_DEBUG_INFO_BTF=y): jitterscope's programs cannot be relocated to it; use a distribution kernel built with BTF (jitterscope doctor shows what is there)`,
    );
}
