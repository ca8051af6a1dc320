// The mesh's UDP worker over loopback, no kernel tracing: real sockets, real
// replies. A source port is a probe's identity at the peer, so a port must
// not come back within the peer's window.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeshUdp, type UdpProbeResult } from '../../../src/serve/mesh-udp';

test('UDP probes: each is answered, and no source port repeats among 3,000 (the kernel alone would repeat about 150)', async (t) => {
  const udp = await MeshUdp.start('127.0.0.1', 0);
  t.after(() => udp.stop());
  const port = udp.port;
  const results: UdpProbeResult[] = [];
  // in batches, so the sockets of one batch are closed before the next is bound
  for (let batch = 0; batch < 30; batch++)
    results.push(...(await Promise.all(Array.from({ length: 100 }, () => new Promise<UdpProbeResult>((done) => udp.send('127.0.0.1', port, done))))));
  const lost = results.filter((r) => r.rttMs === null).length;
  assert.ok(lost <= 3, `${lost} of 3000 probes over loopback had no reply`);
  const ports = results.map((r) => r.sport);
  assert.ok(
    ports.every((p) => p > 0),
    'every probe had a source port',
  );
  const repeats = ports.length - new Set(ports).size;
  assert.equal(repeats, 0, `${repeats} source ports came back within the window`);
  // and the responder noted each one it answered
  assert.ok(
    ports.every((p) => udp.answeredAt('127.0.0.1', p)),
    'the responder noted every answer',
  );
});
