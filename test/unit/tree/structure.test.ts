// Unit: the source tree keeps its shape. No import cycles (madge), each layer
// imports only itself and the layers below it, and every file says first what
// it is for. Run on the compiled JavaScript, which is what Node loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import madge from 'madge';
import { ROOT } from '../../helpers';

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

/** Imports that run up the layers, and files in no layer, in an import graph (file -> its imports). */
function layerViolations(g: Record<string, string[]>): string[] {
  const bad: string[] = [];
  const inSrc = (f: string) => !f.startsWith('../'); // package.json is data, not a layer
  for (const [file, deps] of Object.entries(g).filter(([f]) => inSrc(f))) {
    const own = layerOf(file);
    if (own === -1) bad.push(`${file} is in no layer: put it in one of ${LAYERS.join(', ')}`);
    for (const d of deps.filter(inSrc)) if (layerOf(d) > own) bad.push(`${file} -> ${d}`);
  }
  return bad;
}

test('each layer imports only itself and the layers below it', async () => {
  assert.deepEqual(layerViolations(await graph()), [], 'imports that run up the layers');
});

/** diagnose/ is pure logic: it reads no host facts itself (the command gathers them and passes them in). */
function hostReadsInDiagnosis(g: Record<string, string[]>): string[] {
  return Object.entries(g)
    .filter(([f]) => f.startsWith('diagnose/'))
    .flatMap(([f, deps]) => deps.filter((d) => d.startsWith('host/')).map((d) => `${f} -> ${d}`));
}

test('diagnose/ imports nothing from host/', async () => {
  assert.deepEqual(hostReadsInDiagnosis(await graph()), []);
  // and the check catches one
  assert.deepEqual(hostReadsInDiagnosis({ 'diagnose/verdict.js': ['host/net.js', 'base/format.js'] }), ['diagnose/verdict.js -> host/net.js']);
});

test('the layer check can fail: on a graph with an upward import and a stray file', () => {
  const bad = layerViolations({
    'kernel/session.js': ['stream/aggregate.js', 'base/errors.js'],
    'stray.js': [],
    'stream/aggregate.js': ['kernel/abi.js'],
  });
  assert.deepEqual(bad, ['kernel/session.js -> stream/aggregate.js', `stray.js is in no layer: put it in one of ${LAYERS.join(', ')}`]);
});

test('the cycle check can fail: madge finds a cycle in a tree that has one', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jitterscope-cycle-'));
  try {
    fs.writeFileSync(path.join(dir, 'a.js'), "require('./b');\n");
    fs.writeFileSync(path.join(dir, 'b.js'), "require('./a');\n");
    const res = await madge(dir, { fileExtensions: ['js'] });
    assert.deepEqual(res.circular(), [['a.js', 'b.js']]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('every source file starts by saying what it is for', () => {
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  const files = walk(path.join(ROOT, 'src')).filter((f) => f.endsWith('.ts'));
  const silent = files.filter((f) => !/^\/\/ \S.{20,}/.test(fs.readFileSync(f, 'utf8')));
  assert.deepEqual(
    silent.map((f) => path.relative(ROOT, f)),
    [],
  );
});
