// Kernel-adjacent: bad input and missing privileges give one line and exit 2,
// before anything is attached, and never touch an existing report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { CLI, runCli, skipUnlessKernel, tmpFile, tracerPrograms, waitFor } from '../helpers';
import { COMMANDS } from '../../src/cli';

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  return lines[0];
}

test('without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN: one line naming them, exit 2, report untouched', (t) => {
  if (skipUnlessKernel(t)) return;
  const out = tmpFile('keep.json');
  fs.writeFileSync(out, 'previous report');
  // capsh drops the capabilities from the bounding set, so the exec'd node has none of them
  const r = spawnSync(
    'capsh',
    ['--drop=cap_bpf,cap_perfmon,cap_sys_admin', '--', '-c', `exec '${process.execPath}' '${CLI}' record --duration 1s --out '${out}'`],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 2, r.stderr);
  const line = oneLine(r.stderr);
  assert.match(line, /CAP_BPF/);
  assert.match(line, /CAP_PERFMON/);
  assert.equal(fs.readFileSync(out, 'utf8'), 'previous report');
});

test('--duration banana is a usage error', async () => {
  const r = await runCli(['record', '--duration', 'banana']);
  assert.equal(r.code, 2);
  assert.match(oneLine(r.stderr), /--duration: 'banana' is not a duration/);
});

test('unknown options and commands are usage errors', async () => {
  for (const args of [['record', '--bogus'], ['frobnicate'], [], ['record', '--format', 'xml'], ['record', '--cpus', '999']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.trim().length > 0);
  }
});

test('--out into a missing directory fails before any probe attaches', async (t) => {
  if (skipUnlessKernel(t)) return;
  const r = await runCli(['record', '--duration', '1s', '--out', '/nonexistent/dir/x.json']);
  assert.equal(r.code, 2);
  assert.match(oneLine(r.stderr), /--out \/nonexistent\/dir\/x.json: directory \/nonexistent\/dir does not exist/);
  assert.doesNotMatch(r.stderr, /tracing for/);
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'no tracer programs');
});

test('--out where no file can be created (/proc) fails before tracing, not after', async (t) => {
  if (skipUnlessKernel(t)) return;
  const started = Date.now();
  const r = await runCli(['record', '--duration', '30s', '--out', '/proc/version']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(oneLine(r.stderr), /^jitterscope: --out \/proc\/version: cannot create files in \/proc \(\w+\); choose a writable path$/);
  assert.ok(Date.now() - started < 10_000, 'it did not trace for the duration first');
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'no tracer programs');
});

test('--help and --version work on every command', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  for (const cmd of COMMANDS) assert.match(top.stdout, new RegExp(`jitterscope ${cmd}\\b`), `--help lists ${cmd}`);
  for (const cmd of COMMANDS) {
    const r = await runCli([cmd, '--help']);
    assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^jitterscope ${cmd}`, 'm'), `${cmd} --help shows its usage`);
    assert.match(r.stdout, /--help/);
    assert.equal(r.stderr, '', `${cmd} --help wrote to stderr`);
  }
  const rh = await runCli(['record', '--help']);
  assert.match(rh.stdout, /--duration/);
  assert.match(rh.stdout, /--cpus/);
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

test('record loads only what it needs: no blessed (top only), no ajv (report reading only)', async (t) => {
  if (skipUnlessKernel(t)) return;
  const list = tmpFile('modules.txt');
  const preload = tmpFile('preload.js');
  fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, Object.keys(require.cache).join('\\n')));`);
  const r = spawnSync(process.execPath, ['--require', preload, CLI, 'record', '-d', '200ms', '-o', tmpFile('r.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const loaded = fs.readFileSync(list, 'utf8').split('\n');
  assert.ok(
    loaded.some((m) => m.includes('/node_modules/yargs/')),
    'the list is real: yargs is in it',
  );
  assert.deepEqual(
    loaded.filter((m) => /\/node_modules\/(blessed|ajv|ajv-formats)\//.test(m)),
    [],
  );
});
