// The guest's initramfs (test/vm/vm.ts, vm-arm64.ts): busybox, the 9p and
// overlay modules of the unpacked kernel, and an init that mounts the shared
// root (this machine's /, or an arm64 userland) read-only under a tmpfs
// overlay and switches into the job's guest script.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).slice(0, 2000)}`);
  return r.stdout;
}

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /modules/$m || echo "jsvm: insmod $m failed"; done
mkdir -p /mnt/lower /mnt/rw /mnt/root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /mnt/lower || echo "jsvm: mounting the host root failed"
mount -t tmpfs -o size=1g tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /mnt/root || echo "jsvm: overlay failed"
mkdir -p /mnt/root/jsvm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /mnt/root/jsvm || echo "jsvm: mounting the job share failed"
mount --move /proc /mnt/root/proc
mount --move /sys /mnt/root/sys
mount --move /dev /mnt/root/dev
exec switch_root /mnt/root /bin/sh /jsvm/guest.sh
`;

/** `busybox`: a static busybox for the guest's CPU (default this machine's). */
export function buildInitramfs(root: string, version: string, dir: string, busybox = '/bin/busybox'): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'jsvm-initramfs-'));
  try {
    for (const d of ['bin', 'proc', 'sys', 'dev', 'mnt', 'modules']) fs.mkdirSync(path.join(work, d), { recursive: true });
    fs.copyFileSync(busybox, path.join(work, 'bin', 'busybox'));
    fs.chmodSync(path.join(work, 'bin', 'busybox'), 0o755);
    fs.writeFileSync(path.join(work, 'init'), INIT, { mode: 0o755 });
    const order: string[] = [];
    for (const mod of ['virtio_pci', '9pnet_virtio', '9p', 'overlay']) {
      const deps = run('modprobe', ['-d', root, '-S', version, '--show-depends', mod]);
      for (const line of deps.split('\n')) {
        const m = /^insmod (\S+)/.exec(line.trim());
        if (!m) continue; // "builtin ..." needs nothing
        const base = path.basename(m[1]).replace(/\.(xz|zst|gz)$/, '');
        if (order.includes(base)) continue;
        order.push(base);
        const out = path.join(work, 'modules', base);
        if (m[1].endsWith('.xz')) fs.writeFileSync(out, spawnSync('xz', ['-dc', m[1]], { maxBuffer: 64 << 20 }).stdout);
        else fs.copyFileSync(m[1], out);
      }
    }
    fs.writeFileSync(path.join(work, 'modules.order'), order.join('\n') + '\n');
    const out = path.join(dir, 'initramfs.cpio.gz');
    run('sh', ['-c', `cd '${work}' && find . | cpio -o -H newc --quiet | gzip -1 > '${out}'`]);
    return out;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
