// CLI without a kernel: `jitterscope report` on files that are not reports,
// reports from a newer or older jitterscope, and broken ones: one line naming
// what is wrong, exit 2, no output file. And --format html without --out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { runCli, tmpFile } from '../../helpers';

async function refused(file: string, pattern: RegExp) {
  const html = tmpFile('out.html');
  const r = await runCli(['report', file, '--html', html]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.equal(fs.existsSync(html), false, 'no HTML written');
  const text = await runCli(['report', file]);
  assert.equal(text.code, 2, 'the text form refuses it too');
  assert.equal(text.stdout, '');
}

function file(name: string, content: string): string {
  const f = tmpFile(name);
  fs.writeFileSync(f, content);
  return f;
}

test('report: a file that is not JSON, or JSON that is not a report', async () => {
  await refused(file('x.json', 'hello'), /x\.json: not a jitterscope report \(not JSON/);
  await refused(file('y.json', '{"foo": 1}'), /y\.json: not a jitterscope report \(no "schema": "jitterscope\.report\/v2"/);
  await refused('/nonexistent/z.json', /z\.json: cannot read it \(ENOENT\)/);
});

test('report: a newer schema asks for an upgrade; an older one asks to record again', async () => {
  await refused(file('new.json', '{"schema": "jitterscope.report/v3"}'), /written by a newer jitterscope \(jitterscope\.report\/v3\).*upgrade/);
  await refused(file('old.json', '{"schema": "jitterscope.report/v1"}'), /jitterscope\.report\/v1 is an older format.*record it again/);
});

test('report: a v2 report with a field missing names the field', async () => {
  await refused(
    file('broken.json', '{"schema": "jitterscope.report/v2", "meta": {}}'),
    /not a valid jitterscope\.report\/v2 report: .*must have required property/,
  );
});

test('record --format html without --out is a usage error before tracing', async () => {
  const r = await runCli(['record', '-d', '1s', '--format', 'html']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--format html needs --out FILE\.html/);
  const bad = await runCli(['record', '--interval', '5ms', '-o', tmpFile('r.json')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--interval: '5ms' is shorter than 10ms/);
});
