// Unit: the wiring between layers that has no kernel in it: which programs and
// globals a tracer object is built with (tracerSpec), how attach failures and
// the ladder's choices become each probe's status (attachTracer, over a stand-in
// object that records attach calls), serve's --listen parser, and the kernel's
// histograms read as ours (toHistogram).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, UsageError } from '../../../src/base/errors';
import { parseMsInRange } from '../../../src/base/options';
import type { NativeBpfObject } from '../../../src/kernel/addon';
import type { Choice, LadderProbe } from '../../../src/kernel/ladder';
import { attachTracer, tracerSpec } from '../../../src/kernel/tracer-spec';
import { HOOKS } from '../../../src/kernel/probes';
import { parseListen } from '../../../src/base/options';
import { kernelBucketBounds, KernelHist, toHistogram } from '../../../src/stream/kernel-histogram';
import { HIST_BUCKETS } from '../../../src/kernel/abi';

const tracepoint: Choice = { mode: 'tracepoint', reason: '' };
const modes = (over: Partial<Record<LadderProbe, Choice>> = {}): Record<LadderProbe, Choice> => ({
  ipvs_estimation: { mode: null, reason: 'ip_vs is not loaded' },
  net_rx_action: tracepoint,
  icmp_rcv: tracepoint,
  sock_ready: { mode: 'tracepoint', reason: 'sock:sk_data_ready (Linux 6.3+): every kind of socket' },
  ...over,
});

/** Every program name bpf/tracer.bpf.c defines, by flavour (TP_PAIR) and the direct ones. */
const ALL_PROGRAMS = [
  ...HOOKS.flatMap((h) => [`js_${h.name}`, `jsr_${h.name}`]),
  'jsf_nra_entry',
  'jsf_nra_exit',
  'jsk_nra_entry',
  'jsk_nra_exit',
  'jsf_icmp_rcv',
  'jsk_icmp_rcv',
  'jsf_sk_ready',
  'jsk_sk_ready',
];

test('tracerSpec: streaming loads the tp_btf family with its packet hooks, serve its late-run hook; direct rungs add their programs', () => {
  const stream = tracerSpec('tp_btf', modes(), { slowPacketNs: 2e6 }, () => undefined);
  const loaded = ALL_PROGRAMS.filter(stream.autoload);
  assert.ok(loaded.includes('js_skb_rcv') && loaded.includes('js_rx_arrive') && loaded.includes('js_sk_ready'), loaded.join(' '));
  assert.ok(!loaded.includes('js_skb_late'), "serve's hook is not loaded for a stream");
  assert.ok(!loaded.some((p) => p.startsWith('jsr_') || p.startsWith('jsf_') || p.startsWith('jsk_')), 'one family, no direct program');
  assert.ok(!loaded.includes('js_sched_wakeup'), 'no NAPI threads: no sched_wakeup hook');
  assert.equal(stream.globals.slow_packet_ns.readBigUInt64LE(), 2_000_000n);
  assert.equal(stream.globals.wake_min_ns.readBigUInt64LE(), 2_000_000n, '--wakeup-ms defaults to the packet threshold');
  assert.equal(stream.globals.kernel_hists, undefined, 'every run streams');

  const serve = tracerSpec(
    'raw_tp',
    modes({ net_rx_action: { mode: 'kprobe', reason: '' }, sock_ready: { mode: 'fentry', reason: '' } }),
    { lateRunPacketsOnly: true, kernelHistsBelowNs: 1e6, slowWakeupNs: 5e6, cpus: [1] },
    () => undefined,
  );
  const served = ALL_PROGRAMS.filter(serve.autoload);
  assert.ok(served.includes('jsr_skb_late') && !served.includes('jsr_skb_rcv') && !served.includes('jsr_rx_arrive'), served.join(' '));
  assert.ok(served.includes('jsk_nra_entry') && served.includes('jsk_nra_exit') && served.includes('jsf_sk_ready'), 'the direct rungs chosen');
  assert.ok(!served.includes('jsr_sk_ready'), 'the socket comes from fentry, not the tracepoint');
  assert.ok(!served.includes('jsk_icmp_rcv') && !served.includes('jsf_icmp_rcv'), 'serve lists no ICMP packets');
  assert.equal(serve.globals.kernel_hists.readUInt8(), 1);
  assert.equal(serve.globals.stream_min_ns.readBigUInt64LE(), 1_000_000n);
  assert.equal(serve.globals.wake_min_ns.readBigUInt64LE(), 5_000_000n);
  assert.equal(serve.globals.filter_cpus.readUInt8(), 1);
  assert.equal(serve.globals.cpu_mask.readBigUInt64LE(0), 2n, 'CPU 1 only');
});

/** A stand-in tracer object: attach() fails for the names in `refuse`, records the rest. */
function standIn(refuse: string[] = []) {
  const attached: string[] = [];
  const obj = {
    attach(p: string) {
      if (refuse.includes(p)) throw new BpfError(`attach ${p}: ENOENT`, { step: 'attach', errno: 2, code: 'ENOENT' });
      attached.push(p);
      return 0;
    },
  } as unknown as NativeBpfObject;
  return { obj, attached };
}

test('attachTracer: a failed helper hook leaves its probe partial, a failed required one inactive, and each says which', () => {
  const { obj, attached } = standIn(['js_rx_arrive', 'js_sched_waking']);
  const { probes, notes } = attachTracer(obj, 'tp_btf', modes(), false, false);
  assert.ok(attached.includes('js_skb_rcv') && attached.includes('js_sk_ready'));
  assert.equal(probes.packet_wait.active, true);
  assert.match(probes.packet_wait.reason ?? '', /partial: could not attach net:netif_rx_entry: ENOENT/);
  assert.equal(probes.wakeup.active, false);
  assert.match(probes.wakeup.reason ?? '', /could not attach sched:sched_waking: ENOENT/);
  assert.deepEqual(notes.sort(), ['hook not attached: net:netif_rx_entry: ENOENT', 'hook not attached: sched:sched_waking: ENOENT']);
});

test('attachTracer: the wakeup probe says where its flows come from, or that they are unknown', () => {
  let s = attachTracer(standIn().obj, 'tp_btf', modes(), false, false).probes.wakeup;
  assert.ok(s.hooks.includes('sock:sk_data_ready'), JSON.stringify(s));
  assert.equal(s.reason, null);
  const fentry = standIn();
  s = attachTracer(fentry.obj, 'tp_btf', modes({ sock_ready: { mode: 'fentry', reason: 'sock_def_readable by fentry' } }), false, false).probes.wakeup;
  assert.ok(fentry.attached.includes('jsf_sk_ready') && !fentry.attached.includes('js_sk_ready'));
  assert.ok(s.hooks.includes('fentry:sock_def_readable'), JSON.stringify(s));
  assert.match(s.reason ?? '', /^flows: sock_def_readable by fentry/);
  s = attachTracer(
    standIn().obj,
    'tp_btf',
    modes({ sock_ready: { mode: null, reason: 'the flows of network wake-ups are unknown: no sock:sk_data_ready' } }),
    false,
    false,
  ).probes.wakeup;
  assert.equal(s.active, true);
  assert.match(s.reason ?? '', /flows of network wake-ups are unknown/);
});

test('attachTracer: a direct rung that fails to attach is not hidden (the session falls back)', () => {
  const { obj } = standIn(['jsk_nra_entry']);
  assert.throws(() => attachTracer(obj, 'tp_btf', modes({ net_rx_action: { mode: 'kprobe', reason: '' } }), false, false), BpfError);
});

test('--listen: HOST:PORT, [IPv6]:PORT; anything else is one line naming the option', () => {
  assert.deepEqual(parseListen('127.0.0.1:9477'), { host: '127.0.0.1', port: 9477 });
  assert.deepEqual(parseListen(' [::1]:9477 '), { host: '::1', port: 9477 });
  assert.deepEqual(parseListen('node-a.example:80'), { host: 'node-a.example', port: 80 });
  for (const bad of ['9477', ':9477', '127.0.0.1:0', '127.0.0.1:65536', '::1:9477', '[::1]', 'host:port', ''])
    assert.throws(
      () => parseListen(bad),
      (e: Error) => e instanceof UsageError && e.message.startsWith(`--listen: '${bad.trim()}' is not HOST:PORT`),
      bad,
    );
});

test('milliseconds in a range, fractions allowed', () => {
  assert.equal(parseMsInRange('0.5', '--stall-ms', 0.1, 100), 0.5);
  assert.equal(parseMsInRange(100, '--stall-ms', 0.1, 100), 100);
  for (const bad of ['0.05', '101', 'ten', '', '1e9'])
    assert.throws(
      () => parseMsInRange(bad, '--stall-ms', 0.1, 100),
      (e: Error) => e instanceof UsageError && e.message === `--stall-ms: '${bad}' must be 0.1 to 100 ms`,
      bad,
    );
});

test("toHistogram: the kernel's counts keep their exact count, sum and max; quantiles fall in the kernel's buckets", () => {
  const buckets = new Float64Array(HIST_BUCKETS);
  // 90 values in the kernel bucket of 1 ms, 10 in the one of 12 ms
  const at = (v: number) => buckets.findIndex((_, i) => kernelBucketBounds(i)[0] <= v && v < kernelBucketBounds(i)[1]);
  buckets[at(1e6)] = 90;
  buckets[at(12e6)] = 10;
  const k: KernelHist = { count: 100, sumNs: 90 * 1e6 + 10 * 12e6, maxNs: 12.5e6, unknown: 0, buckets };
  const h = toHistogram(k);
  assert.equal(h.count, 100);
  assert.equal(h.sum, k.sumNs);
  assert.equal(h.max, 12.5e6);
  assert.equal(h.min, kernelBucketBounds(at(1e6))[0], "the least is the lowest bucket's lower bound");
  const [lo1, hi1] = kernelBucketBounds(at(1e6));
  const [lo12, hi12] = kernelBucketBounds(at(12e6));
  const p50 = h.quantile(0.5);
  const p99 = h.quantile(0.99);
  assert.ok(p50 >= lo1 * 0.97 && p50 < hi1 * 1.03, `p50 ${p50} in [${lo1}, ${hi1})`);
  assert.ok(p99 >= lo12 * 0.97 && p99 <= 12.5e6, `p99 ${p99} in [${lo12}, ${hi12}) and no more than the max`);
  assert.equal(toHistogram({ count: 0, sumNs: 0, maxNs: 0, unknown: 0, buckets: new Float64Array(HIST_BUCKETS) }).count, 0);
});
