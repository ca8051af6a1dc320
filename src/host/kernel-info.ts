// Facts about the running kernel that need no BPF: release, version, lockdown.
import fs from 'node:fs';

export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** The active kernel lockdown mode ("none", "integrity", "confidentiality"), or null. */
export function lockdown(file = '/sys/kernel/security/lockdown'): string | null {
  let t: string;
  try {
    t = fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  return /\[(\w+)\]/.exec(t)?.[1] ?? t;
}

export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';

export function hasKernelBtf(file = KERNEL_BTF): boolean {
  return fs.existsSync(file);
}
