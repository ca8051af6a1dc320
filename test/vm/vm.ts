// The VM harness: boots a real Debian kernel under QEMU (software emulation),
// with this machine's / shared read-only (9p) under a tmpfs overlay, so the
// guest runs the very same node, addon and scripts. Runs a shell script in the
// guest and returns its exit status and output. Kernels come from Debian with
// `apt-get download` and are cached in /var/cache/jitterscope/kernels.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, skipIf } from '../helpers';
import { servePauses, servePings } from './vm-host';
import { buildInitramfs } from './vm-initramfs';

export const CACHE = process.env.JITTERSCOPE_KERNEL_CACHE ?? '/var/cache/jitterscope/kernels';

/**
 * Debian packages of the kernels the tests boot: the newest one matching, from
 * the host's own sources, or from an older suite's (bullseye's 5.10 kernels are
 * still in Debian's archive) through a private apt state used only to download.
 */
export const KERNELS = {
  'debian-5.10': { pkg: /^linux-image-5\.10\.0-\d+-amd64-unsigned$/, suite: 'bullseye' },
  'debian-6.1': { pkg: /^linux-image-6\.1\.0-\d+-amd64-unsigned$/ },
  'debian-6.12': { pkg: /^linux-image-6\.12\.\d+\+deb12-amd64-unsigned$/ },
} satisfies Record<string, { pkg: RegExp; suite?: string }>;
export type KernelName = keyof typeof KERNELS;

export interface Kernel {
  name: KernelName;
  version: string; // uname -r in the guest
  root: string; // the unpacked package
  vmlinuz: string;
  initramfs: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).slice(0, 2000)}`);
  return r.stdout;
}

/** Why VM tests cannot run here, or null. */
export function vmSkipReason(): string | null {
  if (process.getuid && process.getuid() !== 0) return 'VM tests need root';
  for (const tool of ['qemu-system-x86_64', 'busybox', 'cpio', 'depmod', 'xz', 'apt-get'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/setup.sh installs it)`;
  if (process.arch !== 'x64') return 'the VM kernels are amd64';
  return null;
}

/**
 * apt options that read `suite`'s package lists from a private directory under
 * the cache (updated once a day at most), never the host's: nothing is installed
 * from it, packages are only downloaded.
 */
function aptOptions(suite: string | undefined): string[] {
  if (!suite) return [];
  const dir = path.join(CACHE, `apt-${suite}`);
  const lists = path.join(dir, 'lists');
  fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
  const sources = path.join(dir, 'sources.list');
  fs.writeFileSync(sources, `deb http://deb.debian.org/debian ${suite} main\n`);
  const opts = ['-o', `Dir::Etc::SourceList=${sources}`, '-o', 'Dir::Etc::SourceParts=/dev/null', '-o', `Dir::State::Lists=${lists}`];
  const stamp = path.join(dir, 'updated');
  if (!fs.existsSync(stamp) || Date.now() - fs.statSync(stamp).mtimeMs > 86_400_000) {
    run('apt-get', [...opts, '-qq', 'update']);
    fs.writeFileSync(stamp, new Date().toISOString());
  }
  return opts;
}

function newestPackage(re: RegExp, apt: string[]): string {
  const names = run('apt-cache', [...apt, 'search', '--names-only', '^linux-image-[0-9]'])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => re.test(n));
  if (!names.length) throw new Error(`no Debian package matches ${re} (apt-get update?)`);
  const ver = (n: string) => (n.match(/\d+/g) ?? []).map(Number);
  return names.sort((a, b) => {
    const x = ver(a);
    const y = ver(b);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  })[names.length - 1];
}

/** Downloads, unpacks and prepares a kernel once; later calls reuse the cache. */
export function ensureKernel(name: KernelName): Kernel {
  fs.mkdirSync(CACHE, { recursive: true });
  const marker = path.join(CACHE, `${name}.ready`);
  if (fs.existsSync(marker)) {
    const k = JSON.parse(fs.readFileSync(marker, 'utf8')) as Kernel;
    if (fs.existsSync(k.vmlinuz) && fs.existsSync(k.initramfs)) return k;
  }
  const { pkg: pattern, suite }: { pkg: RegExp; suite?: string } = KERNELS[name];
  const apt = aptOptions(suite);
  const pkg = newestPackage(pattern, apt);
  const version = pkg.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
  const dir = path.join(CACHE, version);
  const root = path.join(dir, 'root');
  if (!fs.existsSync(path.join(root, 'boot', `vmlinuz-${version}`))) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    run('apt-get', [...apt, 'download', pkg], { cwd: dir });
    const deb = fs.readdirSync(dir).find((f) => f.endsWith('.deb'))!;
    run('dpkg-deb', ['-x', path.join(dir, deb), root]);
    fs.rmSync(path.join(dir, deb));
  }
  run('depmod', ['-b', root, version]);
  const initramfs = buildInitramfs(root, version, dir);
  const k: Kernel = { name, version, root, vmlinuz: path.join(root, 'boot', `vmlinuz-${version}`), initramfs };
  fs.writeFileSync(marker, JSON.stringify(k));
  return k;
}

export interface VmResult {
  /** The script's exit status, or null when the guest never reported one. */
  code: number | null;
  /** What the script printed (stdout and stderr). */
  output: string;
  /** Everything the console showed, for diagnosis. */
  console: string;
  /** The job directory: /jsvm in the guest; files the script writes there. */
  jobDir: string;
  seconds: number;
}

/**
 * A NIC into the guest: a tap device on this host, a virtio-net device in the
 * guest, so traffic goes through a real NIC driver path there (an interrupt
 * per queue, NAPI polls, napi_gro_receive), not the backlog path of veth and
 * lo. The host end gets `hostAddr`, the guest script configures `guestAddr`.
 */
export interface NicOptions {
  tap: string;
  hostAddr: string;
  guestAddr: string;
}

/** The NIC the NIC tests use: addresses from RFC 5737's documentation range 203.0.113.0/24. */
export const TEST_NIC: NicOptions = { tap: 'jstap0', hostAddr: '203.0.113.1', guestAddr: '203.0.113.2' };

/** A job directory for one boot: guest.sh (`prologue`, then test.sh with its output kept, then power off) and test.sh. */
export function newJob(prologue: string, script: string, nic?: NicOptions): string {
  const jobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jsvm-job-'));
  fs.chmodSync(jobDir, 0o777);
  fs.writeFileSync(
    path.join(jobDir, 'guest.sh'),
    `${prologue}
echo "jsvm: guest up: $(uname -r) $(uname -m)"
sh /jsvm/test.sh > /jsvm/output.log 2>&1
echo "jsvm-exit:$?"
sync
echo o > /proc/sysrq-trigger
sleep 30
`,
  );
  const nicEnv = nic ? `NIC_HOST=${nic.hostAddr} NIC_GUEST=${nic.guestAddr}\n` : '';
  fs.writeFileSync(path.join(jobDir, 'test.sh'), `set -e\n${nicEnv}${script}\n`);
  return jobDir;
}

/** QEMU's arguments for a tap-fed virtio-net NIC, or none. */
/**
 * What every guest boots with, whatever the machine: 2 CPUs and 2 GiB, no
 * display, the kernel and initramfs, the host's root (read-only, `hostroot`)
 * and the job's share (`job`), and the NIC if any.
 */
export function guestArgs(kernel: string, initrd: string, append: string, root: string, jobDir: string, nic?: NicOptions): string[] {
  return [
    ...['-smp', '2', '-m', '2048', '-nographic', '-no-reboot', ...nicArgs(nic)],
    ...['-kernel', kernel, '-initrd', initrd, '-append', append],
    ...['-virtfs', `local,path=${root},mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap`],
    ...['-virtfs', `local,path=${jobDir},mount_tag=job,security_model=none`],
  ];
}

function nicArgs(nic?: NicOptions): string[] {
  return nic ? ['-netdev', `tap,id=n0,ifname=${nic.tap},script=no,downscript=no`, '-device', 'virtio-net-pci,netdev=n0'] : ['-nic', 'none'];
}

/** Runs `qemu` with `args` until the guest powers off (or `timeoutMs`), serving its pause and ping requests; its result. */
export function bootGuest(qemu: string, args: string[], jobDir: string, timeoutMs: number, nic?: NicOptions): Promise<VmResult> {
  if (nic) spawnSync('ip', ['link', 'del', nic.tap]); // a tap left by a killed run
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const q = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let con = '';
    q.stdout.on('data', (d) => (con += d));
    q.stderr.on('data', (d) => (con += d));
    const timer = setTimeout(() => q.kill('SIGKILL'), timeoutMs);
    const pauses = servePauses(q, jobDir);
    const pings = nic ? servePings(jobDir, nic) : undefined;
    q.on('error', reject);
    q.on('close', () => {
      clearTimeout(timer);
      clearInterval(pauses);
      if (pings) clearInterval(pings);
      if (nic) spawnSync('ip', ['link', 'del', nic.tap]);
      const m = /jsvm-exit:(\d+)/.exec(con);
      let output: string;
      try {
        output = fs.readFileSync(path.join(jobDir, 'output.log'), 'utf8');
      } catch {
        output = '(no output.log: the job share did not work)';
      }
      resolve({ code: m ? Number(m[1]) : null, output, console: con, jobDir, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** Boots `kernel`, runs `script` (sh) in the project directory as root, powers off. */
export function runInVm(kernel: Kernel, script: string, timeoutMs = 600_000, nic?: NicOptions): Promise<VmResult> {
  const modules = path.join(kernel.root, 'lib', 'modules');
  // no tmpfs on /tmp: the project may live there (a CI clone); the overlay is writable anyway
  const jobDir = newJob(
    `export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C
mkdir -p /lib/modules && mount --bind '${modules}' /lib/modules
mount -t tracefs none /sys/kernel/tracing 2>/dev/null
ip link set lo up
cd '${ROOT}'`,
    script,
    nic,
  );
  const args = [
    '-accel',
    'tcg',
    '-cpu',
    'max',
    // loglevel 5 prints the stacks of kernel warnings; a soft lockup panics (and so
    // ends the run at once) with every CPU's stack on the console
    ...guestArgs(
      kernel.vmlinuz,
      kernel.initramfs,
      'console=ttyS0 panic=-1 loglevel=5 softlockup_panic=1 softlockup_all_cpu_backtrace=1 rdinit=/init',
      '/',
      jobDir,
      nic,
    ),
  ];
  return bootGuest('qemu-system-x86_64', args, jobDir, timeoutMs, nic);
}

/** What a guest kernel prints when it, not the script, went wrong. */
const GUEST_KERNEL_FAULT = /BUG: soft lockup|Kernel panic|rcu: INFO: rcu_preempt/;

/** The console's first kernel BUG or warning with its stacks, else its tail. */
export function consoleExcerpt(con: string): string {
  const at = con.search(/BUG: |WARNING: |Kernel panic|rcu: INFO: /);
  return at < 0 ? con.slice(-3000) : con.slice(Math.max(0, at - 500), at + 12000);
}

/**
 * One boot per test file: `boot` (for before()) runs `script` from test/vm/ in
 * the guest; `job(t)` gives the job directory to the tests, or skips them with
 * the reason printed when this machine cannot run VMs, or fails them with the
 * guest's output when the script failed.
 */
export function vmSuite(kernel: KernelName, script: string, timeoutMs: number, nic?: NicOptions) {
  return guestSuite(kernel, script, vmSkipReason(), (text) => runInVm(ensureKernel(kernel), text, timeoutMs, nic));
}

/**
 * The same for any guest: `run` boots it with the script's text (an x86
 * Debian kernel above, the arm64 guest in vm-arm64.ts); `skip` says why this
 * machine cannot.
 */
export function guestSuite(name: string, script: string, skip: string | null, run: (text: string) => Promise<VmResult>) {
  let vm: VmResult | undefined;
  let bootError: Error | undefined;
  return {
    async boot(): Promise<void> {
      // a developer's aid: check a guest's results again without booting it
      // (JITTERSCOPE_VM_JOB=/tmp/jsvm-job-XXXX, the job directory a run left)
      const reuse = process.env.JITTERSCOPE_VM_JOB;
      if (reuse) {
        process.stderr.write(`NOTE: reusing the guest results in ${reuse} (JITTERSCOPE_VM_JOB); no VM was booted\n`);
        vm = { code: 0, output: '', console: '', jobDir: reuse, seconds: 0 };
        return;
      }
      if (skip) {
        process.stderr.write(`SKIP: ${skip}\n`);
        return;
      }
      try {
        const text = fs.readFileSync(path.join(ROOT, 'test', 'vm', script), 'utf8');
        vm = await run(text);
        process.stderr.write(`${name} guest ran ${vm.seconds.toFixed(0)} s, exit ${vm.code}\n`);
        if (vm.code === null && GUEST_KERNEL_FAULT.test(vm.console)) {
          // seen twice in ~40 runs, both times with both emulated CPUs stuck:
          // shown in full, then the guest boots once more; twice in a row fails
          process.stderr.write(`WARN: the ${name} guest kernel locked up; booting it once more. Its console:\n${consoleExcerpt(vm.console)}\n`);
          vm = await run(text);
          process.stderr.write(`${name} guest ran ${vm.seconds.toFixed(0)} s, exit ${vm.code}\n`);
        }
      } catch (e) {
        bootError = e as Error;
      }
    },
    job(t: { skip: (m?: string) => void }): string | null {
      if (skipIf(t, skip)) return null;
      if (bootError) throw bootError;
      if (!vm) throw new Error('the VM did not run');
      if (vm.code !== 0) throw new Error(`guest script failed (exit ${vm.code}):\n${vm.output}\n--- console ---\n${consoleExcerpt(vm.console)}`);
      return vm.jobDir;
    },
  };
}
