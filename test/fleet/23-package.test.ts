// The prebuilt package: `npm pack` gives a tarball with the compiled addons for
// x86-64 and arm64 (BPF objects embedded) and the compiled JavaScript; installed into a fresh prefix
// and run with a PATH that holds node and ping and nothing of the toolchain, it
// records the lab stall by name, and runs doctor, top and ping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LabStall } from '../../src/kernel/lab-stall';
import { ROOT, readReport, skipUnlessKernel, needsTwoCpus } from '../helpers';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-pack-'));
const prefix = path.join(work, 'prefix');
const toolDir = path.join(work, 'tools');
/** A PATH with the installed command, node and ping: no clang, cmake, make, cc or bpftool. */
const PATH = `${path.join(prefix, 'bin')}:${toolDir}`;
let tarball = '';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = { PATH, HOME: work }): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', env, cwd: work, timeout: 300_000 });
}

function jitterscope(args: string[]): SpawnSyncReturns<string> {
  return run('jitterscope', args);
}

test('npm pack: the tarball holds the addon and the compiled JavaScript, no sources', () => {
  const r = spawnSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
  tarball = path.join(work, info.filename);
  const files: string[] = info.files.map((f: { path: string }) => f.path);
  // both platforms' addons: x86-64 (the native build) and arm64 (cross-built)
  for (const f of [
    'bin/jitterscope',
    'build/Release/jitterscope.node',
    'build/prebuilt/linux-arm64/jitterscope.node',
    'dist/src/cli.js',
    'schema/report.v2.json',
    'deploy/kubernetes/daemonset.yaml',
  ])
    assert.ok(files.includes(f), `${f} is in the tarball`);
  const sources = files.filter((f) => /^(bpf|native|src|test|bench)\/|^dist\/(test|bench)\/|CMakeLists/.test(f));
  assert.deepEqual(sources, [], 'no sources or tests in the tarball');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  for (const build of ['cmake-js', 'node-addon-api']) assert.ok(!pkg.dependencies[build], `${build} is only a build dependency`);
});

test('installed from the tarball into a fresh prefix, without the toolchain', () => {
  assert.ok(tarball, 'packed');
  fs.mkdirSync(toolDir, { recursive: true });
  fs.symlinkSync(process.execPath, path.join(toolDir, 'node'));
  const ping = spawnSync('sh', ['-c', 'command -v ping'], { encoding: 'utf8' }).stdout.trim();
  if (ping) fs.symlinkSync(ping, path.join(toolDir, 'ping'));
  // npm itself is run from the developer's PATH; everything after runs without it
  const r = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error', tarball], {
    encoding: 'utf8',
    cwd: work,
  });
  assert.equal(r.status, 0, r.stderr);
  const installed = path.join(prefix, 'lib', 'node_modules');
  assert.ok(fs.existsSync(path.join(installed, 'jitterscope', 'build', 'Release', 'jitterscope.node')));
  for (const build of ['cmake-js', 'node-addon-api', 'typescript'])
    assert.ok(!fs.existsSync(path.join(installed, 'jitterscope', 'node_modules', build)), `${build} was not installed`);
  for (const tool of ['clang', 'cmake', 'make', 'cc', 'bpftool', 'npm'])
    assert.notEqual(run('/bin/sh', ['-c', `command -v ${tool}`], { PATH }).status, 0, `${tool} is out of reach`);
  const v = jitterscope(['--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /\d+\.\d+\.\d+/);
});

test('the installed package: doctor, record (names the lab stall), top and ping', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t)) return;
  assert.ok(fs.existsSync(path.join(prefix, 'bin', 'jitterscope')), 'installed');
  const doctor = jitterscope(['doctor', '--json']);
  assert.equal(doctor.status, 0, doctor.stderr);
  const d = JSON.parse(doctor.stdout);
  assert.equal(d.capabilities.ok, true);
  assert.match(d.probes.softirq.mode, /^(tp_btf|raw_tp|tracepoint)$/, 'the embedded objects load from the installed addon');

  const out = path.join(work, 'stall.json');
  const stall = new LabStall({ cpu: 1, stallMs: 15, periodMs: 200 });
  let rec: SpawnSyncReturns<string>;
  try {
    rec = jitterscope(['record', '--duration', '2s', '--out', out]);
  } finally {
    stall.stop();
  }
  assert.equal(rec.status, 0, rec.stderr);
  const row = readReport(out).timers.byMax.find((r: any) => r.symbol === 'bpf_timer_cb');
  assert.ok(row && row.cpu === 1 && row.count >= 5, `bpf_timer_cb on CPU 1: ${JSON.stringify(row)}`);

  const top = jitterscope(['top', '--once', '--delay', '500ms']);
  assert.equal(top.status, 0, top.stderr);
  assert.match(top.stdout, /CPU/);

  if (!fs.existsSync(path.join(toolDir, 'ping'))) assert.fail('ping (iputils-ping) is not installed; setup.sh installs it');
  const p = jitterscope(['ping', '127.0.0.1', '-c', '5', '-i', '100']);
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, /5 of 5 replies/);
});
