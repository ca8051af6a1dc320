// Unit (no kernel): the exporter's metrics from folded interval summaries —
// names, units and cumulative buckets; the callback cap; `promtool check
// metrics` on the output; the shipped alert rules under `promtool test rules`;
// and every metric the rules and the Grafana dashboard use is one the exporter
// exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Aggregator } from '../../../src/stream/aggregate';
import { Kallsyms } from '../../../src/host/kallsyms';
import { PROBE_NAMES, ProbeName, ProbeStatus } from '../../../src/kernel/probes';
import { summarize } from '../../../src/diagnose/summary';
import { HIST_BUCKETS } from '../../../src/kernel/abi';
import { Metrics } from '../../../src/serve/metrics';
import { MESH_SCHEMA_ID, MeshPeerView, MeshView } from '../../../src/diagnose/mesh';
import { encode, Flag, Kind, FakeEvent } from '../../encode';
import { ROOT, skipIf } from '../../helpers';

const probes = Object.fromEntries(
  PROBE_NAMES.map((p): [ProbeName, ProbeStatus] => [p, { active: true, via: 'tracepoint', mode: 'tp_btf', reason: null, hooks: [] }]),
) as Record<ProbeName, ProbeStatus>;
const kallsyms = new Kallsyms('ffffffff8150e200 t bpf_timer_cb\nffffffff81000100 t tick_nohz_handler\n');

/** One second: NET_RX waits on CPU 1 (one of 15 ms), the 15 ms bpf_timer_cb run, a slow packet inside it; a 30 ms host pause on CPU 0. */
function interval(k: number): ReturnType<typeof summarize> {
  const t0 = 1e9 + k * 1e9;
  const ev: FakeEvent[] = [];
  for (let i = 0; i < 50; i++) ev.push({ kind: Kind.SOFTIRQ, cpu: 1, startNs: t0 + i * 1e7, durationNs: 20_000, key: 3n, waitNs: i === 10 ? 15e6 : 3000 });
  ev.push({ kind: Kind.SOFTIRQ, cpu: 1, startNs: t0 + 99.5e6, durationNs: 16e6, key: 8n, waitNs: 1000 });
  ev.push({ kind: Kind.HRTIMER, cpu: 1, startNs: t0 + 1e8, durationNs: 15e6, key: 0xffffffff8150e200n });
  ev.push({ kind: Kind.HRTIMER, cpu: 0, startNs: t0 + 1e8, durationNs: 4000, key: 0xffffffff81000100n });
  ev.push({ kind: Kind.PAUSE, cpu: 0, startNs: t0 + 5e8, durationNs: 30e6, key: 0xffffffff81000100n }); // the tick came 30 ms late
  ev.push({
    kind: Kind.PACKET,
    cpu: 1,
    startNs: t0 + 1.02e8,
    durationNs: 9e6,
    flags: Flag.SLOW,
    pkt: { saddr: '198.18.0.1', daddr: '198.18.0.2', proto: 6, sport: 40000, dport: 7000 },
  });
  const agg = new Aggregator({ stallThresholdNs: 1e6 });
  agg.consume(encode(ev), ev.length);
  return summarize(agg, { probes, kallsyms });
}

function metrics(perCpu = false, topCallbacks = 20) {
  return new Metrics(
    { perCpu, topCallbacks },
    {
      drops: () => ({ total: 7, badRecords: 2, consumeErrors: 1 }),
      probes: () => probes,
      ipvs: () => ({ loaded: false, services: null, destinations: null, runEstimation: null, estimator: 'none' }),
      version: '0.0.0',
    },
  );
}

const line = (text: string, re: RegExp) => text.split('\n').find((l) => re.test(l));
const value = (text: string, re: RegExp) => Number(line(text, re)?.split(' ').pop());

test('metrics: seconds, cumulative power-of-two buckets, counters by culprit, per-CPU slow events', async () => {
  const m = metrics();
  m.fold(interval(0));
  m.fold(interval(1));
  const text = await m.text();
  // 100 NET_RX waits over two seconds, 2 of them 15 ms: under 8.4 ms 98, under 16.8 ms all
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.008388608"\}/), 98);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.016777216"\}/), 100);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="\+Inf"\}/), 100);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_count /), 100);
  assert.ok(Math.abs(value(text, /^jitterscope_net_rx_wait_seconds_sum /) - (98 * 3000 + 2 * 15e6) / 1e9) < 1e-9);
  assert.match(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.000001024"\} 0$/m);
  assert.match(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="2\.147483648"\} 100$/m, 'buckets reach past 2 s');
  assert.match(text, /^jitterscope_timer_callback_seconds_count\{function="bpf_timer_cb",kind="hrtimer"\} 2$/m);
  assert.match(text, /^jitterscope_softirq_seconds_count\{vector="NET_RX"\} 100$/m);
  // one stall event per bpf_timer_cb run (not again for its HRTIMER softirq), one slow packet each second
  assert.match(text, /^jitterscope_stalls_total\{culprit="bpf_timer_cb",kind="hrtimer"\} 2$/m);
  assert.doesNotMatch(text, /culprit="HRTIMER softirq"/);
  assert.match(text, /^jitterscope_slow_packets_total\{culprit="bpf_timer_cb"\} 2$/m);
  // the two 15 ms NET_RX waits are receive stalls (nothing in these intervals overlaps them)
  assert.match(text, /^jitterscope_receive_stalls_total\{culprit="unexplained",kind="none"\} 2$/m);
  assert.match(text, /^jitterscope_cpu_slow_events_total\{cpu="1"\} 6$/m);
  assert.match(text, /^jitterscope_ring_drops_total 7$/m);
  assert.match(text, /^jitterscope_ring_bad_records_total 2$/m);
  assert.match(text, /^jitterscope_ring_read_errors_total 1$/m);
  // the pauses: a histogram of their own, and stall events by the pause culprit
  assert.equal(value(text, /^jitterscope_pause_seconds_count /), 2);
  assert.equal(value(text, /^jitterscope_pause_seconds_bucket\{le="0\.016777216"\}/), 0);
  assert.equal(value(text, /^jitterscope_pause_seconds_bucket\{le="0\.033554432"\}/), 2);
  assert.match(text, /^jitterscope_stalls_total\{culprit="host pause or IRQs off",kind="pause"\} 2$/m);
  assert.match(text, /^jitterscope_cpu_slow_events_total\{cpu="0"\} 2$/m);
  assert.match(text, /^jitterscope_probe_info\{probe="packet_wait",via="tracepoint",mode="tp_btf",active="true"\} 1$/m);
  assert.match(text, /^jitterscope_ipvs_info\{loaded="false",estimator="none"\} 1$/m);
  assert.doesNotMatch(text, /cpu="\d+",le=/, 'no per-CPU histogram series unless asked');
  const perCpu = metrics(true);
  perCpu.fold(interval(0));
  assert.match(await perCpu.text(), /^jitterscope_net_rx_wait_seconds_count\{cpu="1"\} 50$/m);
});

test("metrics: the kernel's own histogram buckets go straight into the Prometheus buckets, beside the streamed runs", async () => {
  const agg = new Aggregator({ stallThresholdNs: 1e6 });
  // kernel buckets (4 per power of two): index 4*(e+1)+m holds [ (4+m)*2^e, (5+m)*2^e )
  const buckets = new Float64Array(HIST_BUCKETS);
  buckets[4 * (10 + 1) + 3] = 5; // [7168, 8192) ns: under 2^13
  buckets[4 * (20 + 1) + 0] = 2; // [4 Mi, 5 Mi) ns: under 2^23 (8.4 ms)
  agg.addKernel('softirqWait', 1, 3, { count: 7, sumNs: 5 * 7500 + 2 * 4.5e6, maxNs: 4.6e6, unknown: 0, buckets });
  // one NET_RX run streamed (a stall-length wait): 15 ms
  agg.consume(encode([{ kind: Kind.SOFTIRQ, cpu: 1, startNs: 2e9, durationNs: 20_000, key: 3n, waitNs: 15e6 }]), 1);
  const m = metrics();
  m.fold(summarize(agg, { probes, kallsyms }));
  const text = await m.text();
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.000004096"\}/), 0);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.000008192"\}/), 5);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.004194304"\}/), 5);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.008388608"\}/), 7);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_bucket\{le="0\.016777216"\}/), 8);
  assert.equal(value(text, /^jitterscope_net_rx_wait_seconds_count /), 8);
  assert.ok(Math.abs(value(text, /^jitterscope_net_rx_wait_seconds_sum /) - (5 * 7500 + 2 * 4.5e6 + 15e6) / 1e9) < 1e-9);
});

test('metrics: callbacks beyond --top-callbacks are function="other", and a series once given stays', async () => {
  const m = metrics(false, 1);
  m.fold(interval(0));
  const text = await m.text();
  assert.match(text, /function="bpf_timer_cb"/);
  assert.match(text, /^jitterscope_timer_callback_seconds_count\{function="other",kind="mixed"\} 1$/m);
  assert.doesNotMatch(text, /function="tick_nohz_handler"/);
});

const PROMTOOL = '/usr/bin/promtool';
function needsPromtool(t: { skip: (m?: string) => void }): boolean {
  return skipIf(t, fs.existsSync(PROMTOOL) ? null : `${PROMTOOL} is missing (npm test installs Debian's prometheus)`);
}

test('promtool check metrics accepts the exposition', async (t) => {
  if (needsPromtool(t)) return;
  const m = metrics(true);
  m.fold(interval(0));
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: await m.text(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('promtool test rules passes on the shipped alert rules', (t) => {
  if (needsPromtool(t)) return;
  const r = spawnSync(PROMTOOL, ['test', 'rules', 'jitterscope-rules.test.yml'], { cwd: path.join(ROOT, 'deploy', 'prometheus'), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

const meshView = (state: MeshPeerView['state']): MeshView => ({
  schema: MESH_SCHEMA_ID,
  node: 'node-a',
  peersFrom: '--peers list',
  candidates: 1,
  k: 10,
  probesPerSecond: 10,
  slowMs: 5,
  notes: [],
  peers: [
    {
      name: 'node-b',
      address: '10.0.0.2',
      state,
      detail: null,
      udpState: 'answered',
      udpDetail: null,
      echoId: 7,
      udpPort: 9477,
      sent: 3,
      replies: 2,
      lost: 1,
      slow: 1,
      bySide: { peer: 1, here: 0, between: 0, unknown: 0 },
      rttP50Ms: 0.2,
      rttP99Ms: 12,
      rttMaxMs: 12,
      recent: [],
      recentLost: [],
    },
  ],
});

test("the mesh's families: round trips by peer, lost and slow probes by side and culprit, each peer's state", async () => {
  const m = metrics(false);
  let state: MeshPeerView['state'] = 'probing';
  const sink = m.enableMesh(() => meshView(state));
  sink.touch('node-b');
  const before = await m.text();
  assert.match(before, /^jitterscope_mesh_lost_probes_total\{peer="node-b"\} 0$/m, 'a chosen peer has its series at zero');
  sink.reply('node-b', 0.2);
  sink.reply('node-b', 12);
  sink.lost('node-b');
  sink.slow('node-b', {
    proto: 'icmp',
    seq: 3,
    rttMs: 12,
    side: 'peer',
    culprit: 'estimation_timer [ip_vs]',
    kind: 'timer',
    cpu: 1,
    waitMs: 11,
    pausedMs: 0,
    peerSaw: 'slow',
  });
  sink.slow('node-b', { proto: 'udp', seq: 4, rttMs: 9, side: 'between', culprit: null, kind: null, cpu: null, waitMs: null, pausedMs: null, peerSaw: 'seen' });
  state = 'no-answer';
  const t = await m.text();
  assert.match(t, /^jitterscope_mesh_rtt_seconds_bucket\{peer="node-b",le="0\.000262144"\} 1$/m, '0.2 ms in the bucket up to 262 µs');
  assert.match(t, /^jitterscope_mesh_rtt_seconds_bucket\{peer="node-b",le="0\.016777216"\} 2$/m, '12 ms up to 16.8 ms');
  assert.match(t, /^jitterscope_mesh_rtt_seconds_count\{peer="node-b"\} 2$/m);
  assert.match(t, /^jitterscope_mesh_probes_total\{peer="node-b"\} 3$/m);
  assert.match(t, /^jitterscope_mesh_lost_probes_total\{peer="node-b"\} 1$/m);
  assert.match(t, /^jitterscope_mesh_slow_probes_total\{peer="node-b",proto="icmp",side="peer",culprit="estimation_timer \[ip_vs\]",kind="timer"\} 1$/m);
  assert.match(t, /^jitterscope_mesh_slow_probes_total\{peer="node-b",proto="udp",side="between",culprit="none",kind="none"\} 1$/m);
  assert.match(t, /^jitterscope_mesh_peer_state\{peer="node-b",state="no-answer"\} 1$/m);
  assert.match(t, /^jitterscope_mesh_peer_state\{peer="node-b",state="answered"\} 0$/m);
  // a kind the engine does not make is "other"; a peer no longer probed loses its series
  sink.slow('node-b', { proto: 'icmp', seq: 5, rttMs: 9, side: 'peer', culprit: 'x', kind: 'made-up', cpu: 0, waitMs: 8, pausedMs: 0, peerSaw: 'slow' });
  assert.match(await m.text(), /^jitterscope_mesh_slow_probes_total\{peer="node-b",proto="icmp",side="peer",culprit="x",kind="other"\} 1$/m);
  sink.forget('node-b');
  const after = await m.text();
  assert.doesNotMatch(after.replace(/^jitterscope_mesh_peer_state.*$/gm, ''), /peer="node-b"/, 'no series of node-b but its state (read from the view)');
});

test('the alert rules and the Grafana dashboard use only metrics the exporter exports', async () => {
  const m = metrics(true);
  m.enableMesh(() => meshView('answered')).touch('node-b');
  m.fold(interval(0));
  const exported = new Set(
    (await m.text())
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]),
  );
  const base = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
  const used = (text: string) => new Set([...text.matchAll(/\bjitterscope_[a-z0-9_]+/g)].map((x) => base(x[0])));
  const rules = fs.readFileSync(path.join(ROOT, 'deploy', 'prometheus', 'jitterscope-rules.yml'), 'utf8');
  const dash = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'jitterscope-dashboard.json'), 'utf8'));
  const exprs = (dash.panels as any[]).flatMap((p) => (p.targets ?? []).map((x: any) => x.expr)).concat(dash.templating.list.map((v: any) => v.query ?? ''));
  const inRules = used(rules);
  const inDash = used(exprs.join('\n'));
  assert.ok(inRules.size >= 4 && inDash.size >= 10, `rules use ${inRules.size}, the dashboard ${inDash.size}`);
  for (const name of [...inRules, ...inDash]) assert.ok(exported.has(name), `${name} is used but not exported (exported: ${[...exported].join(', ')})`);
});
