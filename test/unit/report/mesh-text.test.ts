// Unit: the mesh section of a report's text (serve --mesh's /report).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meshText, renderText } from '../../../src/report/text';
import { Aggregator } from '../../../src/stream/aggregate';
import { report } from '../../encode';
import { validator } from '../../helpers';
import { MESH_SCHEMA_ID, MeshView, ProbeOutcome } from '../../../src/diagnose/mesh';

const held = (seq: number, culprit: string, side: ProbeOutcome['side'] = 'peer'): ProbeOutcome => ({
  proto: 'icmp',
  seq,
  rttMs: 14,
  side,
  culprit,
  kind: 'timer',
  cpu: 1,
  waitMs: 12,
  pausedMs: 0,
  peerSaw: side === 'peer' ? 'slow' : 'not-slow',
});

test('the mesh section: each peer, where its slow probes were held, what held most, its lost probes and its UDP state', () => {
  const view: MeshView = {
    schema: MESH_SCHEMA_ID,
    node: 'node-a',
    peersFrom: 'dns:jitterscope.jitterscope.svc.cluster.local, read 2026-12-04T06:00:00.000Z',
    candidates: 40,
    k: 10,
    probesPerSecond: 10,
    slowMs: 5,
    notes: ['dns:x: ETIMEOUT (IPv6)'],
    peers: [
      {
        name: '10.0.0.7',
        address: '10.0.0.7',
        state: 'answered',
        detail: null,
        udpState: 'no-answer',
        udpDetail: 'no reply to 20 UDP probes: no responder there',
        echoId: 7,
        udpPort: 9477,
        sent: 600,
        replies: 598,
        lost: 2,
        slow: 4,
        bySide: { peer: 3, here: 1, between: 0, unknown: 0 },
        rttP50Ms: 0.21,
        rttP99Ms: 13.5,
        rttMaxMs: 14,
        recent: [
          held(1, 'estimation_timer [ip_vs]'),
          held(2, 'estimation_timer [ip_vs]'),
          held(3, 'estimation_timer [ip_vs]'),
          held(4, 'kdamond.0[83]', 'here'),
        ],
        recentLost: [
          { ...held(9, 'x'), rttMs: null, side: 'between', culprit: null, peerSaw: 'not-slow' },
          { ...held(10, 'x'), rttMs: null, side: 'between', culprit: null, peerSaw: 'not-seen', proto: 'udp' },
          { ...held(11, 'x'), rttMs: null, side: 'between', culprit: null, peerSaw: 'seen', proto: 'udp' },
        ],
      },
    ],
  };
  const text = meshText(view).join('\n');
  assert.match(text, /^mesh: node-a probes 1 of 40 peers \(dns:jitterscope/m);
  assert.match(text, /^ {2}10\.0\.0\.7 \(10\.0\.0\.7\): answered; 600 sent, 2 lost, 4 slow; rtt p50 0\.21 ms, p99 13\.50 ms$/m);
  assert.match(text, /held at the peer 3, here 1, between 0, not known 0/);
  assert.match(text, /most of the newest: estimation_timer \[ip_vs\] on CPU 1 \(at the peer\), 3 of 4/);
  assert.match(text, /UDP: no-answer \(no reply to 20 UDP probes/);
  assert.match(
    text,
    /the newest 3 lost: 1 never reached the peer's responder \(UDP\), 1 answered there, the reply lost \(UDP\), 1 not seen held there \(ICMP: lost on the way, or their replies\)$/m,
  );
  assert.match(text, /note: dns:x: ETIMEOUT/);
  // /report carries the same view: the schema holds it, and refuses one that breaks it
  const validate = validator();
  const r = { ...report(new Aggregator()), mesh: view };
  assert.ok(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors, null, 1));
  assert.match(renderText(r), /^mesh: node-a probes 1 of 40 peers/m);
  const bad = JSON.parse(JSON.stringify(r));
  bad.mesh.peers[0].recent[0].side = 'elsewhere';
  assert.equal(validate(bad), false);
  const unseen = JSON.parse(JSON.stringify(r));
  unseen.mesh.peers[0].recentLost[0].peerSaw = 'maybe';
  assert.equal(validate(unseen), false, 'peerSaw is one of the answer states');
});
