// Typed facade over the native addon (build/Release/jitterscope.node): the
// generic libbpf verbs. Only this file loads the addon.
import path from 'node:path';
import { BpfError } from '../base/errors';

/** The BPF objects compiled into the addon (bpf/NAME.bpf.c). */
export type EmbeddedObject = 'tracer' | 'ipvs' | 'features' | 'lab_stall' | 'bench_gen';

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

export const ADDON_PATH = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'jitterscope.node');

let addon: Addon | undefined;

export function native(): Addon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon loads only through require
    addon = require(ADDON_PATH) as Addon;
    addon.setErrorClass(BpfError);
  }
  return addon;
}

/** Sum of a per-CPU u64 counter at key 0 (e.g. the drops map), and each CPU's value. */
export function readPercpuCounter(obj: NativeBpfObject, map: string): { total: number; perCpu: number[] } {
  const buf = obj.lookup(map, Buffer.alloc(4));
  const perCpu: number[] = [];
  if (buf) for (let off = 0; off + 8 <= buf.length; off += 8) perCpu.push(Number(buf.readBigUInt64LE(off)));
  return { total: perCpu.reduce((a, b) => a + b, 0), perCpu };
}
