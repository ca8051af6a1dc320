// Unit: log2-linear histogram buckets, quantiles, merge and log2 export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, bucketOf, bucketBounds, BUCKET_COUNT } from '../../../src/stream/histogram';

test('every value falls inside the bounds of its bucket, and buckets are contiguous', () => {
  const values = [0, 1, 63, 64, 65, 127, 128, 1000, 4095, 4096, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, 2 ** 43];
  for (const v of values) {
    const [lo, hi] = bucketBounds(bucketOf(v));
    assert.ok(lo <= v && v < hi, `${v} not in [${lo}, ${hi})`);
  }
  for (let i = 1; i < BUCKET_COUNT; i++) assert.equal(bucketBounds(i)[0], bucketBounds(i - 1)[1], `gap before bucket ${i}`);
});

test('relative bucket width stays within 1/32', () => {
  for (let i = 64; i < BUCKET_COUNT; i += 7) {
    const [lo, hi] = bucketBounds(i);
    assert.ok((hi - lo) / lo <= 1 / 32 + 1e-12, `bucket ${i} too wide`);
  }
});

test('quantiles are within 3 % of the exact order statistic and tell 2 ms from 3 ms', () => {
  const h = new Histogram();
  const xs: number[] = [];
  let seed = 7;
  for (let i = 0; i < 20000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const v = Math.floor((seed / 2147483648) * 10_000_000);
    xs.push(v);
    h.record(v);
  }
  xs.sort((a, b) => a - b);
  for (const q of [0.5, 0.9, 0.99, 0.999]) {
    const exact = xs[Math.ceil(q * xs.length) - 1];
    const got = h.quantile(q);
    assert.ok(Math.abs(got - exact) / exact < 0.03, `q${q}: ${got} vs ${exact}`);
  }
  const a = new Histogram();
  a.record(2_000_000);
  const b = new Histogram();
  b.record(3_000_000);
  assert.ok(Math.abs(a.quantile(0.5) - 2e6) < 0.03 * 2e6 && Math.abs(b.quantile(0.5) - 3e6) < 0.03 * 3e6);
  assert.equal(h.count, 20000);
  assert.equal(h.min, xs[0]);
  assert.equal(h.max, xs[xs.length - 1]);
});

test('merge equals recording everything into one', () => {
  const a = new Histogram();
  const b = new Histogram();
  const all = new Histogram();
  for (let i = 0; i < 5000; i++) {
    const v = (i * 7919) % 100000;
    (i % 2 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  assert.deepEqual(a.summary(), all.summary());
  assert.deepEqual(Array.from(a.counts), Array.from(all.counts));
});

test('log2 buckets cover the counts in power-of-two ranges', () => {
  const h = new Histogram();
  [0, 1, 3, 5, 1000, 1023, 1024, 1500, 1e6].forEach((v) => h.record(v));
  const b = h.log2Buckets();
  assert.deepEqual(
    b.map((x) => [x.lo, x.hi, x.count]),
    [
      [0, 1, 1],
      [1, 2, 1],
      [2, 4, 1],
      [4, 8, 1],
      [512, 1024, 2],
      [1024, 2048, 2],
      [524288, 1048576, 1],
    ],
  );
  assert.equal(
    b.reduce((s, x) => s + x.count, 0),
    h.count,
  );
});

test('an empty histogram summarises to zeros', () => {
  assert.deepEqual(new Histogram().summary(), { count: 0, sum: 0, min: 0, max: 0, p50: 0, p90: 0, p99: 0, p999: 0 });
});
