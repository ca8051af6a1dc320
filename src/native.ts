// Typed facade over the addon in build/Release. Only this file loads it.
import path from 'node:path';
import { BpfError } from './errors';

export interface ProgramDesc {
  name: string;
  section: string;
  autoload: boolean;
}
export interface MapDesc {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
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
  maps(): MapDesc[];
  setAutoload(program: string, on: boolean): void;
  setAttachTarget(program: string, fn: string): void;
  setGlobal(name: string, value: Buffer): void;
  setMapMaxEntries(map: string, n: number): void;
  reuseMap(map: string, fd: number): void;
  load(): void;
  attach(program: string): number;
  detach(link: number): boolean;
  programFd(program: string): number;
  mapFd(map: string): number;
  programInfo(program: string): ProgramInfo;
  lookup(map: string, key: Buffer): Buffer | null;
  update(map: string, key: Buffer, value: Buffer): void;
  testRun(program: string, cpu?: number): number;
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
}

export interface Addon {
  BpfObject: new (name: string) => NativeBpfObject;
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
  embeddedObjects: string[];
  setErrorClass(ctor: typeof BpfError): void;
  takeLibbpfLog(): string;
  libbpfVersion: string;
}

export const ADDON_PATH = path.resolve(__dirname, '..', '..', 'build', 'Release', 'jitterscope.node');

let addon: Addon | undefined;

export function native(): Addon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
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
