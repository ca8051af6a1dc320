// A node:test reporter that ends the run with one list of every skipped test
// and why (npm test prints it last, after the spec reporter's output). A skip
// that repeats run after run is a question to answer: this makes it visible.
// With JITTERSCOPE_SKIP_FILE set it appends its counts and skips there
// instead, for scripts/test.sh to print one list after several runs (one per
// test folder: node sorts the files of one run by path).
import fs from 'node:fs';
import path from 'node:path';

interface TestEventData {
  name: string;
  nesting: number;
  file?: string;
  skip?: string | boolean;
}

async function* skipSummary(source: AsyncIterable<{ type: string; data: TestEventData }>): AsyncGenerator<string> {
  const skipped: string[] = [];
  let passed = 0;
  let failed = 0;
  for await (const ev of source) {
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    const d = ev.data;
    const where = d.file ? `${path.basename(d.file).replace(/\.js$/, '')}: ` : '';
    if (d.skip !== undefined && d.skip !== false) skipped.push(`  ${where}${d.name} — ${d.skip === true ? '(no reason given)' : d.skip}`);
    else if (ev.type === 'test:pass') passed++;
    else failed++;
  }
  const file = process.env.JITTERSCOPE_SKIP_FILE;
  if (file) {
    fs.appendFileSync(file, [`COUNT\t${passed}\t${failed}`, ...skipped.map((l) => `SKIP\t${l}`)].join('\n') + '\n');
    return;
  }
  yield `\nSkipped tests: ${skipped.length} (passed ${passed}, failed ${failed})\n`;
  for (const line of skipped) yield `${line}\n`;
}
export = skipSummary;
