// Kernel: after `record` ends — normally, by SIGINT, by SIGTERM, by kill -9 —
// none of its BPF programs stay loaded. SIGINT and SIGTERM still write the
// report of what was traced; kill -9 leaves an existing report as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, skipUnlessKernel, tmpFile, tracerPrograms, waitFor, readJson, validator, runCli } from '../helpers';

function startRecord(out: string) {
  const child = spawn(process.execPath, [CLI, 'record', '--duration', '60s', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('close', (code, signal) => r({ code, signal })));
  return { child, closed, stderr: () => stderr };
}

test('no programs remain after a normal end', async (t) => {
  if (skipUnlessKernel(t)) return;
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'clean before the test');
  const r = await runCli(['record', '--duration', '500ms', '--out', tmpFile('r.json')]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'programs left after a normal end');
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} writes what was traced, then detaches`, async (t) => {
    if (skipUnlessKernel(t)) return;
    const out = tmpFile('r.json');
    const run = startRecord(out);
    assert.ok(await waitFor(() => run.stderr().includes('tracing for'), 10000), run.stderr());
    const loaded = tracerPrograms();
    assert.ok(loaded.length >= 7, `programs visible while tracing: ${JSON.stringify(loaded)}`);
    await new Promise((r) => setTimeout(r, 500));
    run.child.kill(sig);
    const { code } = await run.closed;
    assert.equal(code, 0, run.stderr());
    const report = readJson(out);
    assert.ok(validator()(report));
    assert.ok(report.meta.notes.includes(`stopped early by ${sig}`), JSON.stringify(report.meta.notes));
    assert.ok(report.meta.events.total > 0);
    assert.ok(await waitFor(() => tracerPrograms().length === 0, 3000), 'programs left after ' + sig);
  });
}

test('kill -9: the kernel drops the programs, an existing report is untouched', async (t) => {
  if (skipUnlessKernel(t)) return;
  const out = tmpFile('r.json');
  fs.writeFileSync(out, 'previous report');
  const run = startRecord(out);
  assert.ok(await waitFor(() => run.stderr().includes('tracing for'), 10000), run.stderr());
  assert.ok(tracerPrograms().length >= 7);
  run.child.kill('SIGKILL');
  const { signal } = await run.closed;
  assert.equal(signal, 'SIGKILL');
  assert.ok(await waitFor(() => tracerPrograms().length === 0, 5000), 'programs left after kill -9');
  assert.equal(fs.readFileSync(out, 'utf8'), 'previous report');
  assert.deepEqual(
    fs.readdirSync(path.dirname(out)).filter((f: string) => f.endsWith('.tmp')),
    [],
    'no temp file',
  );
});
