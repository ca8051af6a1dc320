// The render loops of `top`: one clock per screen. Each tick closes an
// interval, takes a snapshot and draws it, on the dashboard or as plain text.
import { Collector, WindowName } from './collector';
import { plainBlock } from './plain';

/** Plain-text blocks every `delayMs` until `iterations`, a stop signal or a closed pipe. */
export async function runPlain(c: Collector, delayMs: number, iterations: number, window: WindowName, signalled: Promise<string>): Promise<void> {
  let stopped = false;
  signalled.then(() => (stopped = true));
  let lastStallNs = 0;
  let pipeClosed = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') pipeClosed = true;
  });
  const start = Date.now();
  for (let i = 0; i < iterations && !stopped && !pipeClosed; i++) {
    // deadlines from the start, so the time a block takes does not drift the clock
    const wait = Math.max(0, start + (i + 1) * delayMs - Date.now());
    await Promise.race([new Promise((r) => setTimeout(r, wait)), signalled]);
    c.tick();
    const snap = c.snapshot(window);
    process.stdout.write(plainBlock(snap, lastStallNs));
    for (const x of [...snap.summary.stalls.rows, ...snap.summary.packets.slow]) if (x.startNs > lastStallNs) lastStallNs = x.startNs;
  }
}

/** The blessed dashboard until q, Esc, Ctrl-C or a stop signal. */
export async function runDashboard(c: Collector, cpus: number, delayMs: number, window: WindowName, signalled: Promise<string>): Promise<void> {
  const { Dashboard } = await import('./dashboard');
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined = undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(timer);
      dash.destroy();
      resolve();
    };
    const dash = new Dashboard(
      {
        quit: finish,
        reset: () => c.reset(),
        // a new window redraws the last interval's data: no extra tick, no extra snapshot side effects
        windowChanged: (w) => dash.show(c.snapshot(w)),
      },
      cpus,
    );
    dash.window = window;
    dash.draw();
    signalled.then(finish);
    timer = setInterval(() => {
      c.tick();
      dash.update(c.snapshot(dash.window));
    }, delayMs);
  });
}
