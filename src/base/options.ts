// Parsers for command-line values. Each throws UsageError naming the option.
import { UsageError } from './errors';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10s", "500ms", "2m", "1h", or a bare number of seconds -> milliseconds. */
export function parseDurationMs(value: unknown, option = '--duration'): number {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) throw new UsageError(`${option}: '${text}' is not a duration; use e.g. 10s, 500ms, 2m`);
  const ms = parseFloat(m[1]) * DURATION_UNITS[m[2] ?? 's'];
  if (!(ms > 0)) throw new UsageError(`${option}: '${text}' must be longer than zero`);
  if (ms > 7 * 24 * 3_600_000) throw new UsageError(`${option}: '${text}' is longer than a week`);
  return Math.round(ms);
}

/** "0,2-3" -> [0, 2, 3]; every CPU must be below `possible`. */
export function parseCpuList(value: unknown, possible: number, option = '--cpus'): number[] {
  const text = String(value).trim();
  const cpus = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new UsageError(`${option}: '${text}' is not a CPU list; use e.g. 0,2-3`);
    const lo = parseInt(m[1], 10);
    const hi = m[2] === undefined ? lo : parseInt(m[2], 10);
    if (hi < lo) throw new UsageError(`${option}: range '${part}' runs backwards`);
    if (hi >= possible) throw new UsageError(`${option}: CPU ${hi} does not exist; this machine has CPUs 0-${possible - 1}`);
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** Positive integer with bounds, for sizes and counts. */
export function parseIntInRange(value: unknown, option: string, min: number, max: number): number {
  const text = String(value).trim();
  if (!/^\d+$/.test(text)) throw new UsageError(`${option}: '${text}' is not a whole number`);
  const n = parseInt(text, 10);
  if (n < min || n > max) throw new UsageError(`${option}: ${n} is out of range (${min}-${max})`);
  return n;
}

/** A number of milliseconds above 0 and at most `max`, fractions allowed (--stall-ms 0.5). */
export function parsePositiveMs(value: unknown, option: string, max = 60_000): number {
  const text = String(value).trim();
  const n = Number(text);
  if (text === '' || !(n > 0) || n > max) throw new UsageError(`${option}: '${text}' must be a number of milliseconds above 0 and at most ${max}`);
  return n;
}

/** A number of milliseconds from `min` to `max`, fractions allowed (--stall-ms 0.5, --interval 2.5). */
export function parseMsInRange(value: unknown, option: string, min: number, max: number): number {
  const text = String(value).trim();
  const n = Number(text);
  if (text === '' || !(n >= min && n <= max)) throw new UsageError(`${option}: '${text}' must be ${min} to ${max} ms`);
  return n;
}

/** An optional positive number of milliseconds: `fallback` when not given. */
export function parseOptionalMs(value: unknown, option: string, fallback: number): number {
  return value === undefined ? fallback : parsePositiveMs(value, option);
}

/** A rate such as 250k or 1M events/s. */
export function parseRate(value: unknown, option: string, min: number, max: number): number {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text);
  if (!m) throw new UsageError(`${option}: '${text}' is not a rate; use e.g. 1M or 250k`);
  const n = parseFloat(m[1]) * ({ k: 1e3, m: 1e6 }[m[2].toLowerCase() as 'k' | 'm'] ?? 1);
  if (n < min || n > max) throw new UsageError(`${option}: use ${min} to ${max} events/s`);
  return n;
}

/** --listen: host:port, [v6]:port. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`--listen: '${value}' is not HOST:PORT (e.g. 127.0.0.1:9477, [::1]:9477, 0.0.0.0:9477)`);
  return { host: m[1] ?? m[2], port };
}

/** An http:// or https:// URL (--explain-from: a peer's serve). */
export function parseHttpUrl(value: unknown, option: string): URL {
  const text = String(value).trim();
  let u: URL | undefined;
  try {
    u = new URL(text);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash)
    throw new UsageError(`${option}: '${text}' is not the http:// address of a jitterscope serve (e.g. http://10.0.0.7:9477)`);
  return u;
}

/** Where serve --mesh finds its candidate peers. */
export type PeersSpec = { dns: string } | { list: { name: string | null; host: string }[] };

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
const isAddress = (t: string) =>
  /^[0-9.]+$/.test(t) ? /^(\d{1,3})(\.\d{1,3}){3}$/.test(t) && t.split('.').every((o) => Number(o) <= 255) : /^[0-9a-fA-F:.]+$/.test(t) && t.includes(':');

/**
 * --peers: "dns:NAME" (the A/AAAA records of a headless Service over the
 * DaemonSet, read again every 30 s), or a comma list of ADDRESS, HOST or
 * NODE=ADDRESS (a node's name beside its address).
 */
export function parsePeers(value: unknown): PeersSpec {
  const text = String(value ?? '').trim();
  const hint = 'use dns:NAME (a headless Service), or a list such as node-a=10.0.0.7,node-b=10.0.0.8 or 10.0.0.7,10.0.0.8';
  if (text.startsWith('dns:')) {
    const name = text.slice(4);
    if (!HOST_NAME.test(name) || isAddress(name)) throw new UsageError(`--peers: '${name}' after dns: is not a DNS name; ${hint}`);
    return { dns: name };
  }
  const list = text.split(',').map((e) => e.trim());
  if (!text || list.some((e) => !e)) throw new UsageError(`--peers: '${text}' has an empty entry; ${hint}`);
  return {
    list: list.map((e) => {
      const eq = e.indexOf('=');
      const name = eq >= 0 ? e.slice(0, eq) : null;
      const host = (eq >= 0 ? e.slice(eq + 1) : e).replace(/^\[(.*)\]$/, '$1');
      if (name !== null && !HOST_NAME.test(name)) throw new UsageError(`--peers: '${name}' (in '${e}') is not a node name; ${hint}`);
      if (!isAddress(host) && (/^[0-9.]+$/.test(host) || !HOST_NAME.test(host)))
        throw new UsageError(`--peers: '${host}' (in '${e}') is neither an address nor a host name; ${hint}`);
      return { name, host };
    }),
  };
}
