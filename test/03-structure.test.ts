// Unit: the source tree keeps its shape. No import cycles (madge), each layer
// imports only itself and the layers below it, and every file says first what
// it is for. Run on the compiled JavaScript, which is what Node loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import madge from 'madge';
import { ROOT } from './helpers';

/** Bottom to top; a file may import from its own layer and those before it. */
const LAYERS = ['base', 'host', 'kernel', 'stream', 'diagnose', 'report', 'top', 'serve', 'commands', 'cli.ts'];

const layerOf = (file: string) => LAYERS.indexOf(file.replace(/\.(js|ts)$/, '.ts').split('/')[0]);

async function graph(): Promise<Record<string, string[]>> {
  const res = await madge(path.join(ROOT, 'dist', 'src'), { fileExtensions: ['js'] });
  return res.obj();
}

test('no import cycles anywhere in src (madge --circular)', async () => {
  const res = await madge(path.join(ROOT, 'dist', 'src'), { fileExtensions: ['js'] });
  assert.deepEqual(res.circular(), []);
  assert.ok(Object.keys(res.obj()).length >= 20, 'madge saw the tree');
});

test('each layer imports only itself and the layers below it', async () => {
  const g = await graph();
  const bad: string[] = [];
  const inSrc = (f: string) => !f.startsWith('../'); // package.json is data, not a layer
  for (const [file, deps] of Object.entries(g).filter(([f]) => inSrc(f))) {
    const own = layerOf(file);
    assert.notEqual(own, -1, `${file} is in no layer: put it in one of ${LAYERS.join(', ')}`);
    for (const d of deps.filter(inSrc)) if (layerOf(d) > own) bad.push(`${file} -> ${d}`);
  }
  assert.deepEqual(bad, [], 'imports that run up the layers');
});

test('the layer check can fail: an upward import is caught', () => {
  assert.ok(layerOf('kernel/session.js') < layerOf('stream/aggregate.js'));
  assert.ok(layerOf('cli.js') > layerOf('commands/record.js'));
});

test('every source file starts by saying what it is for', () => {
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  const files = walk(path.join(ROOT, 'src')).filter((f) => f.endsWith('.ts'));
  const silent = files.filter((f) => !/^\/\/ \S.{20,}/.test(fs.readFileSync(f, 'utf8')));
  assert.deepEqual(silent.map((f) => path.relative(ROOT, f)), []);
});
