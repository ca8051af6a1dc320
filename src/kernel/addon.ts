// Typed facade over the native addon (this checkout's build/Release, or the
// prebuilt build/prebuilt/linux-ARCH jitterscope.node): the generic libbpf
// verbs. Only this file loads the addon.
import fs from 'node:fs';
import path from 'node:path';
import { BpfError, EnvironmentError } from '../base/errors';
import { EVENT_SIZE } from './abi';

/** The BPF objects compiled into the addon (bpf/NAME.bpf.c). */
export type EmbeddedObject = 'tracer' | 'ipvs' | 'features' | 'lab_stall' | 'bench_gen' | 'symbols';

export interface ProgramDesc {
  name: string;
  section: string;
  autoload: boolean;
}

export interface ProgramInfo {
  id: number;
  name: string;
  runTimeNs: number;
  runCount: number;
  recursionMisses: number;
}

export interface NativeBpfObject {
  programs(): ProgramDesc[];
  setAutoload(program: string, on: boolean): void;
  setGlobal(name: string, value: Buffer): void;
  setMapMaxEntries(map: string, n: number): void;
  reuseMap(map: string, fd: number): void;
  load(): void;
  /** Attaches where the program's section says; the link lives until close(). */
  attach(program: string): number;
  programFd(program: string): number;
  mapFd(map: string): number;
  programInfo(program: string): ProgramInfo;
  lookup(map: string, key: Buffer): Buffer | null;
  testRun(program: string, cpu?: number): number;
  /** Detaches every link and frees the object. Safe to call more than once. */
  close(): void;
}

export type BatchCallback = (buffer: ArrayBuffer, count: number, bytes: number) => void;

export interface NativeRingReader {
  drain(): number;
  close(): void;
  stats(): { events: number; batches: number; badRecords: number; consumeErrors: number; open: boolean };
}

export interface AbiLayout {
  abiVersion: number;
  eventSize: number;
  maxCpus: number;
  offsets: Record<string, number>;
  kinds: Record<string, number>;
  flags: Record<string, number>;
  nrSoftirqs: number;
  funcs: Record<string, number>;
  hist: { subBits: number; buckets: number; valueBytes: number; bucketsOffset: number };
  kernelHists: Record<string, number>;
}

export interface Addon {
  BpfObject: new (name: EmbeddedObject) => NativeBpfObject;
  RingReader: new (
    object: NativeBpfObject,
    map: string,
    onBatch: BatchCallback,
    batchBytes: number,
    recordSize: number,
    eventsPerWakeup: number,
  ) => NativeRingReader;
  testRunFd(fd: number, cpu?: number): number;
  layout(): AbiLayout;
  numPossibleCpus: number;
  setErrorClass(ctor: typeof BpfError): void;
}

/** The platforms a prebuilt addon is shipped for (the package carries one per entry). */
export const PREBUILT_PLATFORMS = ['linux-x64', 'linux-arm64'] as const;

const BUILD = path.resolve(__dirname, '..', '..', '..', 'build');

/** The first `n` bytes of a file (fewer if it is shorter), or null if it cannot be read. */
function head(file: string, n: number): Buffer | null {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const h = Buffer.alloc(n);
      return h.subarray(0, fs.readSync(fd, h, 0, n, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** The Node arch an ELF file is built for (its e_machine), or null. */
export function elfArch(file: string): string | null {
  const h = head(file, 20);
  if (!h || h.length < 20 || h.readUInt32BE(0) !== 0x7f454c46) return null;
  return ({ 0x3e: 'x64', 0xb7: 'arm64' } as Record<number, string>)[h.readUInt16LE(18)] ?? null;
}

/** The GNU build id of an ELF file (hex), from a note in its first 4 KiB where linkers put it; null without one. */
export function elfBuildId(file: string): string | null {
  const h = head(file, 4096);
  if (!h) return null;
  // the note's header: name size 4, descriptor size, type 3 (NT_GNU_BUILD_ID), then "GNU\0"
  const gnu = Buffer.from('GNU\0', 'latin1');
  for (let at = h.indexOf(gnu, 12); at >= 12; at = h.indexOf(gnu, at + 1)) {
    if (h.readUInt32LE(at - 12) !== 4 || h.readUInt32LE(at - 4) !== 3) continue;
    const size = h.readUInt32LE(at - 8);
    if (size >= 8 && size <= 64 && at + 4 + size <= h.length) return h.toString('hex', at + 4, at + 4 + size);
  }
  return null;
}

/**
 * The addon for this machine: this checkout's native build (build/Release,
 * what `npm run build` makes; the package carries the x64 one) when it is
 * built for this CPU, else the prebuilt one for this platform
 * (build/prebuilt/linux-ARCH: the package carries arm64's). Elsewhere, one
 * line saying what is supported and how to build.
 */
export function addonPath(platform: string = process.platform, arch: string = process.arch, archOf: (file: string) => string | null = elfArch): string {
  const key = `${platform}-${arch}`;
  const supported = (PREBUILT_PLATFORMS as readonly string[]).includes(key);
  const own = path.join(BUILD, 'Release', 'jitterscope.node');
  if (supported && archOf(own) === arch) return own;
  const prebuilt = path.join(BUILD, 'prebuilt', key, 'jitterscope.node');
  if (supported && archOf(prebuilt) === arch) return prebuilt;
  throw new EnvironmentError(
    `no jitterscope addon for ${key}: the package ships ${PREBUILT_PLATFORMS.join(' and ')}; on another Linux machine build it from a checkout (as root: npm run build, which needs clang, libbpf-dev and a kernel with BTF)`,
  );
}

let addon: Addon | undefined;

export function native(): Addon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon loads only through require
    addon = require(addonPath()) as Addon;
    addon.setErrorClass(BpfError);
  }
  return addon;
}

/** Ring batches handed to the callback at most this large. */
const RING_BATCH_BYTES = 256 * 1024;
/** The reader takes a wakeup's worth of events, at most this many, before it yields to the event loop. */
const EVENTS_PER_WAKEUP = 1 << 18;

/** A reader of an object's `events` ring of event-ABI records (the tracer's, the bench generator's). */
export function eventRing(obj: NativeBpfObject, onBatch: BatchCallback): NativeRingReader {
  return new (native().RingReader)(obj, 'events', onBatch, RING_BATCH_BYTES, EVENT_SIZE, EVENTS_PER_WAKEUP);
}

/** Sum of a per-CPU u64 counter at key 0 (e.g. the drops map), and each CPU's value. */
export function readPercpuCounter(obj: NativeBpfObject, map: string): { total: number; perCpu: number[] } {
  const buf = obj.lookup(map, Buffer.alloc(4));
  const perCpu: number[] = [];
  if (buf) for (let off = 0; off + 8 <= buf.length; off += 8) perCpu.push(Number(buf.readBigUInt64LE(off)));
  return { total: perCpu.reduce((a, b) => a + b, 0), perCpu };
}
