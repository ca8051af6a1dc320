// The host's side of a guest run (test/vm/vm.ts): requests the guest script
// leaves in the job share — stop the VM for a while (a host pause, made on
// purpose), ping the guest through its NIC — answered in the same share.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, ROOT } from '../helpers';
import type { NicOptions } from './vm';

/** The echo client the host runs against a guest's server. */
const ECHO = path.join(ROOT, 'test', 'fixtures', 'echo.js');

/**
 * A guest script asks the host to stop the whole VM for N ms by writing N to
 * /jsvm/pause-request: the host sends qemu SIGSTOP, then SIGCONT N ms later,
 * and answers in /jsvm/pause-done with how long it really was. The guest's
 * clock runs on meanwhile (a SIGSTOP is not a vm stop), so inside the guest
 * this is a vCPU the host did not run: a host pause, made on purpose.
 */
export function servePauses(q: ChildProcess, jobDir: string): NodeJS.Timeout {
  const request = path.join(jobDir, 'pause-request');
  let busy = false;
  return setInterval(() => {
    if (busy || !fs.existsSync(request)) return;
    const text = fs.readFileSync(request, 'utf8').trim();
    if (!text) return; // written next, or never: the next look decides
    const ms = Number(text);
    fs.unlinkSync(request);
    if (!(ms > 0 && ms <= 10_000)) return void fs.writeFileSync(path.join(jobDir, 'pause-done'), JSON.stringify({ error: `bad request ${ms}` }));
    busy = true;
    const t0 = performance.now();
    q.kill('SIGSTOP');
    setTimeout(() => {
      q.kill('SIGCONT');
      fs.writeFileSync(path.join(jobDir, 'pause-done'), JSON.stringify({ requestedMs: ms, stoppedMs: Math.round(performance.now() - t0) }));
      busy = false;
    }, ms);
  }, 100);
}

/**
 * The host side of the NIC: once qemu has made the tap, give it its address;
 * then, each time the guest writes /jsvm/host-ping-request ("NAME COUNT
 * INTERVAL_MS ID [flood]"), ping the guest from this host (iputils, -D
 * timestamps, the given ICMP id; with "flood", a ping -f meanwhile) and leave
 * the output in /jsvm/NAME.host-ping.txt, written whole and renamed, so the
 * guest waits for the file to appear.
 */
export function servePings(jobDir: string, nic: NicOptions): NodeJS.Timeout {
  const request = path.join(jobDir, 'host-ping-request');
  let configured = false;
  let busy = false;
  return setInterval(() => {
    if (!configured) {
      if (spawnSync('ip', ['link', 'show', nic.tap]).status !== 0) return;
      spawnSync('ip', ['addr', 'add', `${nic.hostAddr}/24`, 'dev', nic.tap]);
      spawnSync('ip', ['link', 'set', nic.tap, 'up']);
      configured = true;
    }
    if (busy || !fs.existsSync(request)) return;
    const words = fs.readFileSync(request, 'utf8').trim().split(/\s+/);
    if (words.length < 4) return; // written next: the next look reads it whole
    fs.unlinkSync(request);
    const [name, count, intervalMs, id, flood] = words;
    busy = true;
    // "mesh:PORT": this host runs `serve --mesh` with the guest as its peer for COUNT seconds (the guest runs its own,
    // with this host as its peer), and leaves its /mesh and /metrics in NAME.host-mesh.json and NAME.host-metrics.txt
    if (id.startsWith('mesh:')) {
      void hostMesh(jobDir, nic, name, Number(count), id.slice(5)).finally(() => (busy = false));
      return;
    }
    // "tcp:PORT": requests to the guest's echo server (test/fixtures/echo.js) instead of pings, each timed here
    if (id.startsWith('tcp:')) {
      const clientOut = path.join(jobDir, `${name}.host-client.json`);
      const c = spawn(process.execPath, [ECHO, 'client', nic.guestAddr, id.slice(4), count, intervalMs, clientOut], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      c.on('close', (code) => {
        const file = path.join(jobDir, `${name}.host-ping.txt`);
        fs.writeFileSync(`${file}.tmp`, `${err}exit ${code}\n`);
        fs.renameSync(`${file}.tmp`, file);
        busy = false;
      });
      return;
    }
    const p = spawn('ping', ['-D', '-n', '-c', count, '-i', String(Number(intervalMs) / 1000), '-e', id, '-W', '1', nic.guestAddr], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // "flood": a ping -f alongside, so the guest's softirq runs go over budget and NET_RX is left to ksoftirqd
    const f = flood === 'flood' ? spawn('ping', ['-f', '-q', '-n', nic.guestAddr], { stdio: 'ignore' }) : undefined;
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => {
      f?.kill('SIGINT');
      const file = path.join(jobDir, `${name}.host-ping.txt`);
      fs.writeFileSync(`${file}.tmp`, `${out}exit ${code}\n`);
      fs.renameSync(`${file}.tmp`, file);
      busy = false;
    });
  }, 100);
}

/**
 * This host's side of the two-kernel mesh: serve --mesh toward the guest for `seconds`, then its /mesh and /metrics.
 * /mesh lists a peer's newest 50 slow probes; polled each second, every slow probe of the run is kept (NAME.host-probes.json).
 */
async function hostMesh(jobDir: string, nic: NicOptions, name: string, seconds: number, port: string): Promise<void> {
  const base = `http://${nic.hostAddr}:${port}`;
  const args = [CLI, 'serve', '--listen', `${nic.hostAddr}:${port}`, '--node-name', 'host', '--mesh', '--peers', `guest=${nic.guestAddr}`];
  const serve = spawn(process.execPath, [...args, '--mesh-slow-ms', '10', '--mesh-rate', '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  serve.stderr!.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((r) => serve.on('close', r));
  const write = (file: string, text: string) => {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  };
  const get = (p: string) =>
    fetch(base + p, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.text(),
      (e) => `failed: ${(e as Error).message}`,
    );
  const probes = new Map<string, unknown>();
  const gather = (text: string) => {
    try {
      for (const o of JSON.parse(text).peers?.[0]?.recent ?? []) probes.set(`${o.proto} ${o.seq} ${o.rttMs}`, o);
    } catch {
      // not serving yet, or stopping: the next poll
    }
    return text;
  };
  try {
    for (const end = Date.now() + seconds * 1000; Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 1000));
      gather(await get('/mesh'));
    }
    const last = gather(await get('/mesh'));
    write(path.join(jobDir, `${name}.host-probes.json`), JSON.stringify([...probes.values()]));
    write(path.join(jobDir, `${name}.host-mesh.json`), last);
    write(path.join(jobDir, `${name}.host-metrics.txt`), await get('/metrics'));
  } finally {
    serve.kill('SIGTERM');
    const kill = setTimeout(() => serve.kill('SIGKILL'), 15_000);
    const code = await closed;
    clearTimeout(kill);
    write(path.join(jobDir, `${name}.host-ping.txt`), `${err}exit ${code}\n`);
  }
}
