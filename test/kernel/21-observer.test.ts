// Kernel: the observer stays out of the way. While `record` and `ping` trace,
// every thread of jitterscope's process runs at nice 19 (ksoftirqd and NAPI
// threads, at nice 0, preempt it), and the system ping that `jitterscope ping`
// starts runs at the priority the command was started with, as does the
// thread that times the mesh's UDP probes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { skipUnlessKernel, startCli, tmpFile, waitFor } from '../helpers';

/** Each thread's nice value (field 19 of /proc/PID/task/TID/stat), by thread id. */
function threadNice(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      // the comm (field 2) may hold spaces and parentheses: count from its closing one
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), Number(fields[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** The direct children of `pid` whose comm is `comm`. */
function childrenNamed(pid: number, comm: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === pid && stat.includes(`(${comm})`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('record: every thread of the tracer runs at nice 19 while it traces', async (t) => {
  if (skipUnlessKernel(t)) return;
  const run = startCli(['record', '-d', '20s', '-o', tmpFile('observer.json')], /tracing for/);
  try {
    assert.ok(await run.ready, 'record started tracing');
    const nice = threadNice(run.child.pid!);
    assert.ok(nice.size >= 4, `node's threads: ${[...nice.keys()]}`);
    assert.deepEqual([...new Set(nice.values())], [19], `nice by thread: ${JSON.stringify([...nice])}`);
  } finally {
    run.child.kill('SIGINT');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
  }
});

test("serve --mesh: the mesh's UDP worker times round trips at the priority serve was started with; every other thread at nice 10", async (t) => {
  if (skipUnlessKernel(t)) return;
  const want = os.getPriority();
  if (want === 10) return t.skip('this test runs at nice 10: the worker and the rest cannot be told apart');
  const run = startCli(['serve', '--listen', '0.0.0.0:19482', '--node-name', 'n1', '--mesh', '--peers', '127.0.0.2'], /serving http/);
  try {
    assert.ok(await run.ready, 'serve started');
    const nice = () => [...threadNice(run.child.pid!).values()];
    await waitFor(() => nice().filter((n) => n === want).length === 1, 5000);
    const got = nice();
    assert.equal(got.filter((n) => n === want).length, 1, `one thread (the UDP worker) at ${want}: ${JSON.stringify([...threadNice(run.child.pid!)])}`);
    assert.ok(
      got.filter((n) => n !== want).every((n) => n === 10),
      `the others at 10: ${JSON.stringify([...threadNice(run.child.pid!)])}`,
    );
  } finally {
    run.child.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
  }
});

test('ping: the tracer yields, the system ping it runs keeps the priority it was started with', async (t) => {
  if (skipUnlessKernel(t)) return;
  const run = startCli(['ping', '127.0.0.1', '-c', '100', '-i', '100'], /tracing|PING|seq/);
  try {
    let pings: number[] = [];
    assert.ok(await waitFor(() => (pings = childrenNamed(run.child.pid!, 'ping')).length === 1, 15_000), 'the system ping started');
    assert.deepEqual([...new Set(threadNice(run.child.pid!).values())], [19], 'jitterscope ping yields');
    // set right after it starts (the command's own main thread runs at nice 19 meanwhile, so allow it a moment)
    const want = os.getPriority();
    await waitFor(() => [...threadNice(pings[0]).values()].every((n) => n === want), 2000);
    assert.deepEqual([...threadNice(pings[0]).values()], [want], 'the system ping it started does not: it keeps the nice the command had');
  } finally {
    run.child.kill('SIGINT');
    await run.done;
  }
});

test('serve: every thread at nice 10, below receive processing yet answering scrapes on a busy node', async (t) => {
  if (skipUnlessKernel(t)) return;
  const run = startCli(['serve', '--listen', '127.0.0.1:19481'], /serving http/);
  try {
    assert.ok(await run.ready, 'serve started');
    assert.deepEqual([...new Set(threadNice(run.child.pid!).values())], [10], `nice by thread: ${JSON.stringify([...threadNice(run.child.pid!)])}`);
  } finally {
    run.child.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
  }
});
