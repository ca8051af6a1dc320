// npm run bench:soak — `serve` under a steady synthetic load (200k events/s by
// default) with /metrics scraped every second, for an hour by default. Samples
// the exporter's RSS every 5 s and prints the peak and the growth per hour
// (least-squares slope after a warm-up). Targets: RSS <= 80 MB, growth <= 5 MB
// an hour. `--seconds=60` is the short version the tests run (test/19-serve);
// `--report-window=` is passed on to serve (what /report keeps grows until that
// window is full, so a short run uses a short window).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface SoakResult {
  seconds: number;
  samples: { t: number; rssMb: number; anonMb: number }[];
  peakMb: number;
  /** Peak of the private part of RSS (RssAnon): RSS less the node binary's and libraries' shared pages. */
  peakAnonMb: number;
  /** Least-squares growth after the warm-up, MB per hour. */
  slopeMbPerHour: number;
  /** Last minus first sample after the warm-up, MB. */
  growthMb: number;
  scrapes: number;
  stderr: string;
}

const CLI = path.join(__dirname, '..', 'src', 'cli.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** VmRSS and RssAnon of a process, MB. */
function rssMb(pid: number): { rssMb: number; anonMb: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rssMb: kb('VmRSS'), anonMb: kb('RssAnon') };
}

/** A loopback port nothing listens on now. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function soak(seconds: number, rate = '200k', warmupS = Math.min(60, seconds / 4), extra: string[] = []): Promise<SoakResult> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--synthetic-rate', rate, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  try {
    for (let i = 0; i < 100 && !/serving http/.test(stderr); i++) await sleep(200);
    if (!/serving http/.test(stderr)) throw new Error(`serve did not start: ${stderr}`);
    const samples: { t: number; rssMb: number; anonMb: number }[] = [];
    let scrapes = 0;
    const t0 = Date.now();
    let nextSample = 0;
    while (Date.now() - t0 < seconds * 1000) {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`);
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      await r.text();
      scrapes++;
      const t = (Date.now() - t0) / 1000;
      if (t >= nextSample) {
        samples.push({ t, ...rssMb(child.pid!) });
        nextSample += 5;
      }
      await sleep(1000);
    }
    const after = samples.filter((s) => s.t >= warmupS);
    const n = after.length;
    const mt = after.reduce((a, s) => a + s.t, 0) / n;
    const mr = after.reduce((a, s) => a + s.rssMb, 0) / n;
    const slope = after.reduce((a, s) => a + (s.t - mt) * (s.rssMb - mr), 0) / after.reduce((a, s) => a + (s.t - mt) ** 2, 0);
    return {
      seconds,
      samples,
      peakMb: Math.max(...samples.map((s) => s.rssMb)),
      peakAnonMb: Math.max(...samples.map((s) => s.anonMb)),
      slopeMbPerHour: slope * 3600,
      growthMb: after[n - 1].rssMb - after[0].rssMb,
      scrapes,
      stderr,
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

export function soakSummary(r: SoakResult, rate: string): string {
  return (
    `soak: serve at ${rate} events/s for ${r.seconds} s, ${r.scrapes} scrapes: RSS peak ${r.peakMb.toFixed(1)} MB (target <= 80; of it private ${r.peakAnonMb.toFixed(1)} MB, the rest the node binary's shared pages), ` +
    `growth after warm-up ${r.growthMb.toFixed(1)} MB, slope ${r.slopeMbPerHour.toFixed(1)} MB/h (target <= 5 MB in an hour)`
  );
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const seconds = Number(args.find((a) => a.startsWith('--seconds='))?.split('=')[1] ?? 3600);
  const rate = args.find((a) => a.startsWith('--rate='))?.split('=')[1] ?? '200k';
  const window = args.find((a) => a.startsWith('--report-window='))?.split('=')[1];
  soak(seconds, rate, undefined, window ? ['--report-window', window] : []).then(
    (r) => {
      for (const s of r.samples) console.log(`  t=${s.t.toFixed(0)}s rss=${s.rssMb.toFixed(1)} MB anon=${s.anonMb.toFixed(1)} MB`);
      console.log(soakSummary(r, rate));
    },
    (e) => {
      console.error(String(e));
      process.exitCode = 1;
    },
  );
}
