// The exporter's HTTP side: /metrics (Prometheus text format), /report?window=
// (the JSON report of the last window, the same schema as record's), /explain
// (a peer's own probes), /mesh (serve --mesh), /healthz.
// Anything else is a 4xx with a line saying what exists; the server goes on.
import http from 'node:http';
import { UsageError } from '../base/errors';
import { ForbiddenQuery } from '../diagnose/explain';

export interface Routes {
  /** null until tracing has started. */
  metrics(): Promise<{ contentType: string; body: string } | null>;
  /** The report JSON for the last `window` text (e.g. "60s"); throws UsageError for a bad window. */
  report(window: string): string;
  /** What this node's trace saw of the caller's own probes (diagnose/explain.ts); throws UsageError, ForbiddenQuery or RateLimited. */
  explain(params: URLSearchParams, caller: string): string;
  /** serve --mesh's peers and probes (diagnose/mesh.ts), as JSON; throws NotServed without --mesh. */
  mesh(): string;
  healthy(): boolean;
}

const HELP = 'try /metrics, /report?window=60s, /mesh, /explain?proto=icmp&id=N&seq=1,2 or /healthz';

/** More queries than a node answers a second: the caller waits and asks again. */
export class RateLimited extends Error {}

/** A route this serve does not offer as started (404, saying why). */
export class NotServed extends Error {}

export function handler(routes: Routes) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const text = (code: number, body: string) => send(code, 'text/plain; charset=utf-8', body + '\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, `method ${req.method} not allowed: ${HELP}`);
    const url = new URL(req.url ?? '/', 'http://exporter');
    try {
      if (url.pathname === '/metrics') {
        routes.metrics().then(
          (m) => (m ? send(200, m.contentType, m.body) : text(503, 'not tracing yet')),
          (e) => text(500, `metrics failed: ${(e as Error).message}`),
        );
        return;
      }
      if (url.pathname === '/report') return send(200, 'application/json', routes.report(url.searchParams.get('window') ?? '60s'));
      if (url.pathname === '/explain') return send(200, 'application/json', routes.explain(url.searchParams, req.socket.remoteAddress ?? ''));
      if (url.pathname === '/mesh') return send(200, 'application/json', routes.mesh());
      if (url.pathname === '/healthz') return routes.healthy() ? text(200, 'ok') : text(503, 'not tracing');
      if (url.pathname === '/') return text(200, `jitterscope exporter: ${HELP}`);
      return text(404, `not found: ${url.pathname}; ${HELP}`);
    } catch (e) {
      if (e instanceof UsageError) return text(400, e.message);
      if (e instanceof ForbiddenQuery) return text(403, e.message);
      if (e instanceof RateLimited) return text(429, e.message);
      if (e instanceof NotServed) return text(404, e.message);
      return text(500, (e as Error).message);
    }
  };
}

/** Binds before anything is traced: a taken port or a foreign address is a usage error. */
export function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      if (e.code === 'EADDRINUSE') reject(new UsageError(`--listen ${where}: the port is in use; stop what holds it or choose another port`));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN')
        reject(new UsageError(`--listen ${where}: no such address on this host`));
      else if (e.code === 'EACCES') reject(new UsageError(`--listen ${where}: not allowed to bind there (ports below 1024 need CAP_NET_BIND_SERVICE)`));
      else reject(e);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}
