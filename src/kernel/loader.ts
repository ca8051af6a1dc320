// The one loader sequence every BPF object goes through: open the embedded
// object, configure it (which programs load, globals, map sizes, shared maps),
// load, attach or start, and close everything it made if any step throws.
import { EmbeddedObject, native, NativeBpfObject } from './addon';

export interface ObjectSpec {
  object: EmbeddedObject;
  /** Which programs load; the others are switched off. Default: all. */
  autoload?: (program: string) => boolean;
  /** `const volatile` globals (rodata), by name; sizes must match exactly. */
  globals?: Record<string, Buffer>;
  maxEntries?: Record<string, number>;
  /** Maps that use another object's map (e.g. a shared ring buffer), by fd. */
  reuseMaps?: Record<string, number>;
  /** After load: attach programs, start timers. A throw here closes the object too. */
  start?: (obj: NativeBpfObject) => void;
}

export function loadObject(spec: ObjectSpec): NativeBpfObject {
  const obj = new (native().BpfObject)(spec.object);
  try {
    if (spec.autoload) for (const p of obj.programs()) obj.setAutoload(p.name, spec.autoload(p.name));
    for (const [name, value] of Object.entries(spec.globals ?? {})) obj.setGlobal(name, value);
    for (const [map, n] of Object.entries(spec.maxEntries ?? {})) obj.setMapMaxEntries(map, n);
    for (const [map, fd] of Object.entries(spec.reuseMaps ?? {})) obj.reuseMap(map, fd);
    obj.load();
    spec.start?.(obj);
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

/** Global values in the BPF side's layout (little-endian, x86_64 and arm64). */
export const globals = {
  u64(n: number): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(Math.round(n)));
    return b;
  },
  u32(n: number): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  },
  bool(v: boolean): Buffer {
    return Buffer.from([v ? 1 : 0]);
  },
  /** A bitmap of CPUs, `bits` bits long. */
  cpuMask(cpus: number[], bits: number): Buffer {
    const mask = Buffer.alloc(bits / 8);
    for (const cpu of cpus) mask[cpu >> 3] |= 1 << (cpu & 7);
    return mask;
  },
};
