// The container image, built from scratch by deploy/image/build.sh (Debian's
// libraries, Node LTS from the npm registry, the packed jitterscope), run with
// rootful podman the way the DaemonSet runs it: all capabilities dropped but
// BPF, PERFMON and SYSLOG, host network and PID, /sys/kernel/btf read-only, and
// the seccomp profile in deploy/podman. `record` inside sees the lab stall by
// name; without CAP_BPF it is one line and exit 2; under the runtime's default
// seccomp profile it says so. Then the DaemonSet's pod through `podman kube play`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LabStall } from '../../src/kernel/lab-stall';
import { ROOT, skipUnlessKernel, needsTwoCpus, skipIf } from '../helpers';
import { readManifests, podForPodman, YAML } from '../kube';

/** The manifest list build.sh makes; its linux/amd64 image is the one run here, its arm64 one is inspected. */
const LIST = 'localhost/jitterscope:test';
const IMAGE = `${LIST}-amd64`;
const ARM64 = `${LIST}-arm64`;

/** The Node arch of an ELF file inside a mounted image (from e_machine). */
function elfMachine(file: string): string {
  const h = Buffer.alloc(20);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, h, 0, 20, 0);
  fs.closeSync(fd);
  return ({ 0x3e: 'x64', 0xb7: 'arm64' } as Record<number, string>)[h.readUInt16LE(18)] ?? `e_machine ${h.readUInt16LE(18)}`;
}
const PODMAN_DIR = path.join(ROOT, 'deploy', 'podman');
/** The project's podman settings (runc, ulimits, host network): see containers.conf. */
const env = { ...process.env, CONTAINERS_CONF: path.join(PODMAN_DIR, 'containers.conf') };
const MINIMAL = [
  '--pid=host',
  '--cap-drop=ALL',
  '--cap-add=CAP_BPF,CAP_PERFMON,CAP_SYSLOG',
  `--security-opt=seccomp=${path.join(PODMAN_DIR, 'seccomp.json')}`,
  '--volume=/sys/kernel/btf:/sys/kernel/btf:ro',
];

function podman(args: string[], timeout = 120_000): SpawnSyncReturns<string> {
  return spawnSync('podman', args, { encoding: 'utf8', env, timeout });
}

/** Why the container tests cannot run here, or null. */
function missingTools(): string | null {
  for (const tool of ['podman', 'mmdebstrap'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (bash scripts/setup.sh --tests installs it)`;
  return null;
}

function skipUnlessContainers(t: { skip: (m?: string) => void }): boolean {
  if (skipUnlessKernel(t)) return true;
  return skipIf(t, missingTools());
}

let built = false;

test('deploy/image/build.sh builds linux/amd64 and linux/arm64 images from scratch, and a manifest list over both: <= 200 MB each, Node LTS, no shell', (t) => {
  if (skipUnlessContainers(t)) return;
  podman(['manifest', 'rm', LIST]);
  for (const i of [LIST, IMAGE, ARM64]) podman(['rmi', '--force', i]);
  const archive = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-image-')), 'jitterscope.oci.tar');
  const r = spawnSync('bash', [path.join(ROOT, 'deploy', 'image', 'build.sh'), '--tag', LIST, '--save', archive], { encoding: 'utf8', timeout: 900_000 });
  process.stderr.write(r.stdout);
  assert.equal(r.status, 0, r.stderr);
  built = true;
  for (const [image, arch] of [
    [IMAGE, 'amd64'],
    [ARM64, 'arm64'],
  ]) {
    const size = Number(podman(['image', 'inspect', '--format', '{{.Size}}', image]).stdout);
    process.stderr.write(`image ${image}: ${(size / 1e6).toFixed(1)} MB\n`);
    assert.ok(size > 50e6 && size <= 200e6, `${image} is ${size} bytes`);
    assert.match(r.stdout, new RegExp(`${image}: ${Math.floor(size / 1e6)} MB \\(linux/${arch}, Node `), 'build.sh prints the size');
    assert.equal(podman(['image', 'inspect', '--format', '{{.Architecture}}', image]).stdout.trim(), arch);
  }
  const list = JSON.parse(podman(['manifest', 'inspect', LIST]).stdout);
  assert.deepEqual(
    list.manifests.map((m: any) => `${m.platform.os}/${m.platform.architecture}`).sort(),
    ['linux/amd64', 'linux/arm64'],
    'one manifest list over both',
  );
  const viaList = podman(['run', '--rm', '--network=none', LIST, '--version']);
  assert.equal(viaList.status, 0, `the list runs as this machine's image: ${viaList.stderr}`);
  // the arm64 image: arm64's node, and the package's arm64 addon beside the x64 one
  const mount = podman(['image', 'mount', ARM64]);
  assert.equal(mount.status, 0, mount.stderr);
  try {
    const root = mount.stdout.trim();
    assert.equal(elfMachine(path.join(root, 'usr/local/bin/node')), 'arm64');
    assert.equal(elfMachine(path.join(root, 'usr/local/lib/node_modules/jitterscope/build/prebuilt/linux-arm64/jitterscope.node')), 'arm64');
    assert.equal(elfMachine(path.join(root, 'lib/aarch64-linux-gnu/libc.so.6')), 'arm64', 'arm64 libraries from Debian');
  } finally {
    podman(['image', 'unmount', ARM64]);
  }
  // --save: an OCI archive (oci-layout, index.json) of the list and both images, for podman load or a registry
  const listing = spawnSync('tar', ['-tf', archive], { encoding: 'utf8' }).stdout.split('\n');
  assert.ok(listing.includes('oci-layout') && listing.includes('index.json'), `OCI archive: ${listing.slice(0, 5).join(' ')}`);
  fs.rmSync(path.dirname(archive), { recursive: true, force: true });

  const cfg = JSON.parse(podman(['image', 'inspect', '--format', '{{json .Config}}', IMAGE]).stdout);
  assert.deepEqual(cfg.Cmd, ['serve', '--listen', '0.0.0.0:9477']);
  const node = podman(['run', '--rm', '--network=none', '--entrypoint=/usr/local/bin/node', IMAGE, '--version']);
  assert.equal(node.status, 0, node.stderr);
  const major = Number(/^v(\d+)\./.exec(node.stdout)![1]);
  assert.ok(major >= 22 && major % 2 === 0, `Node ${node.stdout.trim()} is an LTS line, not 20`);
  const v = podman(['run', '--rm', '--network=none', IMAGE, '--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout.trim(), JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  // nothing to build or install with at run time
  for (const tool of ['/bin/sh', '/usr/bin/apt-get', '/usr/bin/dpkg', '/usr/bin/cc'])
    assert.notEqual(podman(['run', '--rm', '--network=none', `--entrypoint=${tool}`, IMAGE, '--version']).status, 0, `${tool} is not in the image`);
});

test('in the container with BPF, PERFMON and SYSLOG only, record names the lab stall', (t) => {
  if (skipUnlessContainers(t) || needsTwoCpus(t)) return;
  assert.ok(built, 'the image was built');
  const stall = new LabStall({ cpu: 1, stallMs: 15, periodMs: 200 });
  let r: SpawnSyncReturns<string>;
  try {
    r = podman(['run', '--rm', ...MINIMAL, IMAGE, 'record', '--duration', '2s']);
  } finally {
    stall.stop();
  }
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const row = report.timers.byMax.find((x: any) => x.symbol === 'bpf_timer_cb');
  assert.ok(row && row.cpu === 1 && row.count >= 5, `bpf_timer_cb on CPU 1: ${JSON.stringify(row)}`);
  assert.doesNotMatch(r.stderr, /kallsyms hides addresses/, 'CAP_SYSLOG lets it read symbol addresses');
  const caps = podman([
    'run',
    '--rm',
    ...MINIMAL,
    '--entrypoint=/usr/local/bin/node',
    IMAGE,
    '-p',
    "require('fs').readFileSync('/proc/self/status','utf8').match(/CapEff:\\s*(\\w+)/)[1]",
  ]);
  assert.equal(caps.stdout.trim(), '000000c400000000', 'CapEff is exactly BPF, PERFMON and SYSLOG');
});

test('in the container without CAP_BPF: one line naming it, exit 2; under the default seccomp profile: the hint', (t) => {
  if (skipUnlessContainers(t)) return;
  assert.ok(built, 'the image was built');
  const noBpf = MINIMAL.map((a) => (a.startsWith('--cap-add') ? '--cap-add=CAP_PERFMON,CAP_SYSLOG' : a));
  const r = podman(['run', '--rm', ...noBpf, IMAGE, 'record', '--duration', '1s']);
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.trim());
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^jitterscope: missing capability CAP_BPF: /);
  assert.equal(r.stdout, '');

  const defaultProfile = MINIMAL.filter((a) => !a.includes('seccomp'));
  const d = podman(['run', '--rm', ...defaultProfile, IMAGE, 'record', '--duration', '1s']);
  assert.notEqual(d.status, 0);
  assert.match(d.stderr, /EPERM/);
  assert.match(d.stderr, /a seccomp filter is on this process.*deploy\/podman\/seccomp\.json/);
});

test('the DaemonSet pod through podman kube play: serves /metrics and /mesh with its four capabilities', async (t) => {
  if (skipUnlessContainers(t)) return;
  assert.ok(built, 'the image was built');
  const ds = readManifests().find((m) => m.doc.kind === 'DaemonSet')!.doc;
  const pod = podForPodman(ds, 'seccomp.json');
  pod.spec.containers[0].image = IMAGE;
  const port = 9477;
  const busy = spawnSync('sh', ['-c', `ss -Hltn 'sport = :${port}'`], { encoding: 'utf8' }).stdout.trim();
  assert.equal(busy, '', `port ${port} is free for the pod`);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-kube-')), 'pod.yaml');
  fs.writeFileSync(file, YAML.stringify(pod));
  t.after(() => podman(['kube', 'down', file]));
  const play = podman(['kube', 'play', `--seccomp-profile-root=${PODMAN_DIR}`, file]);
  assert.equal(play.status, 0, play.stderr);
  const container = `${pod.metadata.name}-${pod.spec.containers[0].name}`;
  // the pod is up once /metrics answers (the port is bound before anything attaches)
  let metrics = '';
  const end = Date.now() + 30_000;
  while (!/jitterscope_probe_info/.test(metrics) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
  }
  const ok = /jitterscope_probe_info/.test(metrics);
  assert.ok(ok, `no metrics from the pod: ${podman(['logs', container]).stderr}`);
  assert.match(metrics, /jitterscope_probe_info\{probe="softirq"[^}]*active="true"/);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  const caps = podman(['inspect', '--format', '{{json .EffectiveCaps}}', container]);
  assert.deepEqual(JSON.parse(caps.stdout).sort(), ['CAP_BPF', 'CAP_NET_RAW', 'CAP_PERFMON', 'CAP_SYSLOG']);
  // --mesh with the headless Service's name, which nothing resolves here: one clear note, serve goes on
  let mesh: any = null;
  const until = Date.now() + 15_000;
  while (!mesh?.notes?.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    mesh = await fetch(`http://127.0.0.1:${port}/mesh`).then(
      (r) => r.json(),
      () => null,
    );
  }
  assert.equal(mesh?.schema, 'jitterscope.mesh/v1', JSON.stringify(mesh));
  assert.match(mesh.peersFrom, /^dns:jitterscope\.jitterscope\.svc\.cluster\.local/);
  assert.match(mesh.notes.join('\n'), /dns:jitterscope\.jitterscope\.svc\.cluster\.local: /);
});

test("the image's ping (serve --mesh's probes) runs with NET_RAW alone", (t) => {
  if (skipUnlessContainers(t)) return;
  assert.ok(built, 'the image was built');
  const r = podman([
    'run',
    '--rm',
    '--network',
    'host',
    '--cap-drop',
    'ALL',
    '--cap-add',
    'NET_RAW',
    '--entrypoint',
    'ping',
    IMAGE,
    '-4',
    '-n',
    '-c',
    '1',
    '-W',
    '2',
    '127.0.0.1',
  ]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /1 received/);
});
