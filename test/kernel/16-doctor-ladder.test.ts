// Kernel (this host): doctor tells what loads here, and the attach ladder
// honours --attach, refusing a mode the kernel lacks with one line.
import { test } from 'node:test';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { readReport, runCli, skipUnlessKernel, tmpFile, validator, skipIf } from '../helpers';

test('doctor --json validates and reports what this kernel allows', async (t) => {
  if (skipUnlessKernel(t)) return;
  const r = await runCli(['doctor', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  const validate = validator('doctor.v1.json');
  assert.ok(validate(d), JSON.stringify(validate.errors));
  assert.equal(d.kernel.btf, true);
  assert.equal(d.attach.tp_btf.ok, true);
  assert.equal(d.attach.raw_tp.ok, true);
  // what each mode's trial says must agree with what record then does
  const out = tmpFile('r.json');
  const rec = await runCli(['record', '-d', '300ms', '-o', out]);
  assert.equal(rec.code, 0, rec.stderr);
  const used = readReport(out).meta.probes;
  for (const p of ['net_rx_action', 'icmp_rcv', 'softirq'])
    assert.ok(used[p].mode.startsWith(d.probes[p].mode), `${p}: doctor says ${d.probes[p].mode}, record used ${used[p].mode}`);
  const text = await runCli(['doctor']);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /attach modes \(tested by loading\):/);
  assert.match(text.stdout, /probes will use:/);
  assert.match(text.stdout, /IPVS: /);
});

test('a forced mode the kernel lacks is one line naming the modes it has, exit 2', async (t) => {
  if (skipUnlessKernel(t)) return;
  const d = JSON.parse((await runCli(['doctor', '--json'])).stdout);
  const missing = (['fentry', 'kprobe'] as const).filter((m) => !d.attach[m].ok);
  if (!missing.length) {
    // the wording is still covered without a kernel, by the forced-mode unit test below
    skipIf(t, 'this kernel allows both fentry and kprobe: no mode to refuse through the CLI');
    return;
  }
  for (const mode of missing) {
    const r = await runCli(['record', '--attach', mode, '-d', '1s']);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`--attach ${mode}: this kernel does not allow ${mode} programs \\(.+\\); it has: .*tracepoint`));
  }
  const bad = await runCli(['record', '--attach', 'uprobe']);
  assert.equal(bad.code, 2);
  const out = tmpFile('tp.json');
  const ok = await runCli(['record', '--attach', 'tracepoint', '-d', '500ms', '-o', out]);
  assert.equal(ok.code, 0, ok.stderr);
  const rep = readReport(out);
  assert.match(rep.meta.probes.net_rx_action.mode, /^(tp_btf|raw_tp) /);
  assert.match(rep.meta.probes.net_rx_action.reason, /--attach tracepoint/);
});

test("the trial programs' answers are kept for the boot: a start reads them, a changed key or doctor probes again", async (t) => {
  if (skipUnlessKernel(t)) return;
  const cache = tmpFile('features.json');
  const env = { ...process.env, JITTERSCOPE_FEATURE_CACHE: cache };
  const out = tmpFile('r.json');
  const first = await runCli(['record', '-d', '100ms', '-o', out], { env });
  assert.equal(first.code, 0, first.stderr);
  const written = JSON.parse(fs.readFileSync(cache, 'utf8'));
  assert.equal(written.features.tp_btf.ok, true, 'this run probed and kept what it found');
  assert.match(written.key, new RegExp(`^${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()} `), 'keyed by this boot');
  // what the cache says is what the next start believes: tp_btf "refused" sends it to raw_tp, said as a fallback
  written.features.tp_btf = { ok: false, error: 'load: EPERM (from the cache)' };
  fs.writeFileSync(cache, JSON.stringify(written));
  const cachedRun = await runCli(['record', '-d', '100ms', '-o', out], { env });
  assert.equal(cachedRun.code, 0, cachedRun.stderr);
  assert.match(cachedRun.stderr, /tp_btf unavailable \(load: EPERM \(from the cache\)\): using raw_tp tracepoints/);
  // doctor checks the kernel itself
  const doc = await runCli(['doctor', '--json'], { env });
  assert.equal(JSON.parse(doc.stdout).attach.tp_btf.ok, true, 'doctor ran the trial again');
  // another key (another boot, build or set of capabilities): probed again, and kept anew
  fs.writeFileSync(cache, JSON.stringify({ ...written, key: 'another boot' }));
  const fresh = await runCli(['record', '-d', '100ms', '-o', out], { env });
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.doesNotMatch(fresh.stderr, /using raw_tp/);
  assert.equal(JSON.parse(fs.readFileSync(cache, 'utf8')).features.tp_btf.ok, true);
});
