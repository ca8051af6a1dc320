// The mesh's UDP side, in a worker thread of its own: the responder that
// answers peers' probes (and notes when, and on which CPU, for /explain), and
// this node's probes, each timed there. serve's
// main thread summarizes its trace each second and answers scrapes; a UDP
// round trip timed on that loop would carry those milliseconds, and read as
// "held between the two kernels". The worker's loop does nothing else.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { UsageError } from '../base/errors';

const JOB = 'jitterscope-mesh-udp';
/** A probe with no reply in this long is lost. */
export const UDP_LOST_AFTER_MS = 2000;

/**
 * A UDP probe's first bytes, and its reply's: the responder answers only a
 * probe (and never a reply), so two responders cannot echo one datagram back
 * and forth.
 */
export const UDP_PROBE_MAGIC = Buffer.from('jsmesh1?');
export const UDP_REPLY_MAGIC = Buffer.from('jsmesh1!');
const UDP_PROBE_BYTES = 16;
const startsWith = (msg: Buffer, magic: Buffer) => msg.length === UDP_PROBE_BYTES && msg.subarray(0, magic.length).equals(magic);

type ToWorker = { op: 'send'; id: number; address: string; port: number } | { op: 'stop' };
type FromWorker =
  | { op: 'bound'; port: number; tid: number }
  | { op: 'bind-error'; code: string | undefined; message: string }
  | { op: 'done'; id: number; sport: number; rttMs: number | null }
  | { op: 'answered'; address: string; sport: number; atNs: number; cpu: number };

/** Peers' probes answered, kept for /explain (the newest this many). */
const ANSWERED_KEPT = 50_000;

/** One probe's end: its source port, and its round trip (ms; null: lost). */
export interface UdpProbeResult {
  sport: number;
  rttMs: number | null;
}

/** The main thread's handle on the worker. */
export class MeshUdp {
  private nextId = 1;
  private readonly pending = new Map<number, (r: UdpProbeResult) => void>();
  /** When (this node's monotonic clock) and on which CPU the responder answered each peer probe, by source and port. */
  private readonly answered = new Map<string, { atNs: number; cpu: number }>();
  /** Since when the record of answers is whole (this node's monotonic clock): the start, or the newest answer given up to the cap. */
  keptSinceNs = Number(process.hrtime.bigint());

  private constructor(
    private readonly worker: Worker,
    /** The responder's port (the one asked for, or the kernel's choice for 0). */
    readonly port: number,
    /** The worker's thread id: it measures, so it runs at the priority serve had before it yielded (serve sets it). */
    readonly tid: number,
  ) {
    worker.on('message', (m: FromWorker) => {
      if (m.op === 'answered') {
        const key = `${m.address}|${m.sport}`;
        this.answered.delete(key);
        this.answered.set(key, { atNs: m.atNs, cpu: m.cpu });
        if (this.answered.size > ANSWERED_KEPT) {
          const [oldest, was] = this.answered.entries().next().value!;
          this.answered.delete(oldest);
          this.keptSinceNs = Math.max(this.keptSinceNs, was.atNs);
        }
        return;
      }
      if (m.op !== 'done') return;
      const done = this.pending.get(m.id);
      this.pending.delete(m.id);
      done?.({ sport: m.sport, rttMs: m.rttMs });
    });
  }

  /** Binds the responder on host:port (UDP) in a new worker; a port in use is a usage error. */
  static start(host: string, port: number): Promise<MeshUdp> {
    const worker = new Worker(__filename, { workerData: { kind: JOB, host, port } });
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      worker.once('error', onError);
      worker.once('message', (m: FromWorker) => {
        worker.removeListener('error', onError);
        if (m.op === 'bound') return resolve(new MeshUdp(worker, m.port, m.tid));
        void worker.terminate();
        if (m.op === 'bind-error' && m.code === 'EADDRINUSE')
          reject(
            new UsageError(`--mesh: UDP port ${port} (the mesh's responder, beside --listen) is in use; stop what holds it or choose another --listen port`),
          );
        else reject(new Error(`--mesh: the UDP responder: ${m.op === 'bind-error' ? m.message : 'no answer'}`));
      });
    });
  }

  /** When the responder answered a peer's probe from `source`, port `sport` (diagnose/explain.ts's AnsweredAt). */
  readonly answeredAt = (source: string, sport: number) => this.answered.get(`${source}|${sport}`);

  /** One probe to address:port from a new source port; `done` hears its round trip, or that it was lost. */
  send(address: string, port: number, done: (r: UdpProbeResult) => void): void {
    const id = this.nextId++;
    this.pending.set(id, done);
    this.worker.postMessage({ op: 'send', id, address, port } satisfies ToWorker);
  }

  async stop(): Promise<void> {
    this.pending.clear();
    await this.worker.terminate();
  }
}

function runWorker(job: { host: string; port: number }): void {
  const post = (m: FromWorker) => parentPort!.postMessage(m);
  const responder = dgram.createSocket(net.isIPv6(job.host) ? 'udp6' : 'udp4');
  responder.once('error', (e: NodeJS.ErrnoException) => post({ op: 'bind-error', code: e.code, message: e.message }));
  responder.bind(job.port, job.host, () => {
    responder.removeAllListeners('error');
    responder.on('error', () => undefined);
    responder.on('message', (msg, from) => {
      if (!startsWith(msg, UDP_PROBE_MAGIC)) return;
      const reply = Buffer.from(msg);
      UDP_REPLY_MAGIC.copy(reply);
      responder.send(reply, from.port, from.address);
      // when, and on which CPU, this thread got to it: a late wake-up here is the peer's to ask about
      const address = from.address.startsWith('::ffff:') && from.address.includes('.') ? from.address.slice(7) : from.address.toLowerCase();
      post({ op: 'answered', address, sport: from.port, atNs: Number(process.hrtime.bigint()), cpu: thisCpu() });
    });
    post({ op: 'bound', port: responder.address().port, tid: thisTid() });
  });
  parentPort!.on('message', (m: ToWorker) => {
    if (m.op === 'stop') return process.exit(0);
    probe(m.id, m.address, m.port, (sport, rttMs) => post({ op: 'done', id: m.id, sport, rttMs }));
  });
}

/** This thread's id (/proc/thread-self is "PID/task/TID"), or -1. */
function thisTid(): number {
  try {
    return Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return -1;
  }
}

/** The CPU this thread last ran on (/proc/thread-self/stat, field 39), or -1. */
function thisCpu(): number {
  try {
    const t = fs.readFileSync('/proc/thread-self/stat', 'latin1');
    return Number(t.slice(t.lastIndexOf(')') + 2).split(' ')[36]);
  } catch {
    return -1;
  }
}

/**
 * A source port is a UDP probe's identity at the peer (its trace and its
 * responder's record), so this node does not use one again for this long:
 * the peer's window. The kernel hands out ephemeral ports at random; at 10
 * probes a second, one in 20 would repeat a port of the last two minutes.
 */
const PORT_REUSE_MS = 120_000;
/** Ports given to probes, and when (performance.now()), oldest first. */
const portsUsed = new Map<number, number>();
/** Binds tried for a port not used within PORT_REUSE_MS before one is taken anyway. */
const BIND_TRIES = 8;

/** A socket bound to a source port this node has not probed from within PORT_REUSE_MS (the kernel picks; a repeat is held open while the next is tried). */
function freshSocket(family: 'udp4' | 'udp6', then: (socket: dgram.Socket | null) => void): void {
  const held: dgram.Socket[] = [];
  const release = () => held.forEach((s) => s.close());
  const attempt = () => {
    const socket = dgram.createSocket(family);
    socket.once('error', () => {
      socket.close();
      release();
      then(null);
    });
    socket.bind(0, () => {
      const now = performance.now();
      for (const [p, at] of portsUsed) {
        if (at >= now - PORT_REUSE_MS) break;
        portsUsed.delete(p);
      }
      const port = socket.address().port;
      if (portsUsed.has(port) && held.length < BIND_TRIES - 1) {
        held.push(socket);
        return attempt();
      }
      socket.removeAllListeners('error');
      portsUsed.delete(port);
      portsUsed.set(port, now);
      release();
      then(socket);
    });
  };
  attempt();
}

/** A probe from a fresh socket (a new source port, so probes spread over the peer's queues and CPUs). */
function probe(id: number, address: string, port: number, done: (sport: number, rttMs: number | null) => void): void {
  freshSocket(net.isIPv6(address) ? 'udp6' : 'udp4', (socket) => (socket ? probeFrom(socket, id, address, port, done) : done(0, null)));
}

function probeFrom(socket: dgram.Socket, id: number, address: string, port: number, done: (sport: number, rttMs: number | null) => void): void {
  let open = true;
  const close = () => {
    if (open) socket.close();
    open = false;
  };
  // a send that fails (no route) is a probe without a reply: its timer says lost
  socket.on('error', close);
  const sport = socket.address().port;
  const payload = Buffer.alloc(UDP_PROBE_BYTES);
  UDP_PROBE_MAGIC.copy(payload);
  payload.writeUInt32BE(id >>> 0, 8);
  const sentAt = performance.now();
  const timer = setTimeout(() => {
    close();
    done(sport, null);
  }, UDP_LOST_AFTER_MS);
  socket.on('message', (msg, from) => {
    if (from.port !== port || !startsWith(msg, UDP_REPLY_MAGIC)) return;
    const rttMs = performance.now() - sentAt;
    clearTimeout(timer);
    close();
    done(sport, rttMs);
  });
  socket.send(payload, port, address);
}

if (!isMainThread && (workerData as { kind?: string } | undefined)?.kind === JOB) runWorker(workerData);
