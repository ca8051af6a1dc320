// Capability check before touching the kernel, so a user without privileges
// gets one clear line instead of an EPERM from deep inside libbpf.
import fs from 'node:fs';
import { EnvironmentError } from '../base/errors';
import os from 'node:os';
import { hasKernelBtf, KERNEL_BTF, kernelVersion } from './kernel-info';

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

/**
 * Why the kernel may have refused a BPF step (`code`: EPERM, EACCES) although the
 * capabilities are there, most likely first: a container's seccomp profile,
 * the locked-memory limit on kernels that charge maps to it, or the generic list.
 */
export function bpfRefusalHints(
  code: string,
  status = fs.readFileSync('/proc/self/status', 'utf8'),
  release = os.release(),
  limits = fs.readFileSync('/proc/self/limits', 'utf8'),
): string[] {
  const hints: string[] = [];
  if (code === 'EPERM' && seccompMode(status) === 2)
    hints.push(
      "a seccomp filter is on this process (a container profile); runtimes' default profiles allow bpf() and perf_event_open() only with CAP_SYS_ADMIN: use deploy/podman/seccomp.json (--security-opt seccomp=FILE), or see deploy/kubernetes",
    );
  const [major, minor] = kernelVersion(release);
  const memlock = /^Max locked memory\s+(\S+)/m.exec(limits)?.[1] ?? '?';
  if (code === 'EPERM' && (major < 5 || (major === 5 && minor < 11)) && memlock !== 'unlimited')
    hints.push(
      `kernels before 5.11 charge BPF maps to the locked-memory limit (${memlock} bytes here): raise it (ulimit -l unlimited; podman/docker --ulimit memlock=-1) or grant CAP_SYS_RESOURCE so libbpf can`,
    );
  if (!hints.length) hints.push('the kernel refused: check capabilities, kernel lockdown and kernel.unprivileged_bpf_disabled');
  return hints;
}

/** The tracer's CO-RE programs need the kernel's BTF. */
export function requireKernelBtf(file = KERNEL_BTF): void {
  if (!hasKernelBtf(file))
    throw new EnvironmentError(
      `this kernel has no BTF (${file} is missing; it needs CONFIG_DEBUG_INFO_BTF=y): jitterscope's programs cannot be relocated to it; use a distribution kernel built with BTF (jitterscope doctor shows what is there)`,
    );
}
