// Kernel + browser: a 60 s lab-stall `record --format html` (traffic steered by
// RPS onto the stalled CPU) and a `ping` report turned into HTML by `report`,
// both rendered in headless Chromium: no console errors, no request beyond the
// file itself, the verdict on the page, the heat map and the timeline drawn
// (coloured pixels inside their canvases), size and render time printed and
// checked. Screenshots stay in test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { CLI, NetnsPair, readJson, runCli, sh, skipUnlessKernel, startCli, tmpFile, validator, needsTwoCpus, startLab, skipIf } from '../helpers';
import { browserSkipReason, render, Rendered } from './browser';

function needsBrowser(t: { skip: (m?: string) => void }): boolean {
  return skipIf(t, browserSkipReason());
}

function checkPage(page: Rendered, file: string, verdict: RegExp) {
  const kb = fs.statSync(file).size / 1024;
  process.stderr.write(
    `${file}: ${kb.toFixed(0)} KiB; drawn in ${page.coldMs.toFixed(0)} ms (first load), ${page.warmMs.toFixed(0)} ms (again); coloured pixels ${JSON.stringify(page.coloured)}; screenshot ${page.screenshot}\n`,
  );
  assert.deepEqual(page.errors, [], 'console errors');
  assert.deepEqual(page.requests, ['file://' + file], 'the page fetched nothing but itself');
  assert.match(page.text, verdict);
  assert.ok(page.coloured.timeline > 200, `timeline drawn: ${page.coloured.timeline} coloured pixels`);
  assert.ok(kb <= 1024, `${kb.toFixed(0)} KiB > 1 MiB`);
  assert.ok(page.warmMs < 2000, `drawn in ${page.warmMs.toFixed(0)} ms`);
}

test('record --format html: 60 s of the lab stall with traffic on CPU 1 — verdict, heat map, timeline', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t) || needsBrowser(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  const lab = await startLab(net);
  t.after(() => lab.kill());
  const html = tmpFile('lab.html');
  const rec = startCli(['record', '-d', '60s', '-f', 'html', '-o', html], /tracing for/);
  assert.ok(await rec.ready, 'record never said it was tracing');
  const pinger = spawn('ip', net.exec(net.a, ['ping', '-q', '-n', '-i', '0.02', '-w', '62', net.addrB]), { stdio: 'ignore' });
  t.after(() => pinger.kill());
  const res = await rec.done;
  await lab.stop();
  assert.equal(res.code, 0, res.stderr);
  const page = await render(html, 'record-lab-stall');
  checkPage(page, html, /bpf_timer_cb/);
  assert.ok(page.coloured.heatmap > 500, `heat map drawn: ${page.coloured.heatmap} coloured pixels`);
  assert.match(page.text, /Timer callbacks, longest first[\s\S]*bpf_timer_cb/);
  assert.match(page.text, /Probes[\s\S]*packet_wait/);
});

test('ping report -> report --html: replies on the timeline, the ping verdict on top; text form reads it back', async (t) => {
  if (skipUnlessKernel(t) || needsTwoCpus(t) || needsBrowser(t)) return;
  const net = new NetnsPair();
  t.after(() => net.destroy());
  sh(`ip netns exec ${net.a} sh -c 'echo 2 > /sys/class/net/va/queues/rx-0/rps_cpus'`);
  const lab = await startLab(net);
  t.after(() => lab.kill());
  const json = tmpFile('ping.json');
  const p = spawnSync(
    'ip',
    ['netns', 'exec', net.a, 'taskset', '-c', '0', process.execPath, CLI, 'ping', net.addrB, '-c', '100', '-i', '50', '--slow-ms', '3', '--out', json],
    { encoding: 'utf8' },
  );
  await lab.stop();
  assert.equal(p.status, 0, p.stderr);
  const r = readJson(json);
  const validate = validator();
  assert.ok(validate(r), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.ok(r.series && r.series.points >= 5, 'the ping report has its time series');

  const html = tmpFile('ping.html');
  const conv = await runCli(['report', json, '--html', html]);
  assert.equal(conv.code, 0, conv.stderr);
  const page = await render(html, 'ping-report');
  checkPage(page, html, /jitterscope ping 198\.18\.0\.2: 100 of 100 replies/);

  const text = await runCli(['report', json]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^jitterscope ping 198\.18\.0\.2: 100 of 100 replies/);
  assert.match(text.stdout, /probes:/);
});
