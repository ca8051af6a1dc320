// `jitterscope report IN.json`: read a saved report again, as text (the
// verdict and histograms) or as a self-contained HTML page with plots.
import type { Argv } from 'yargs';
import { UsageError } from '../base/errors';
import { renderHtml } from '../report/html';
import { PingReport } from '../report/model';
import { readReport } from '../report/read';
import { renderText } from '../report/text';
import { checkWritable, writeAtomic } from '../report/write';
import { say } from './common';

export interface ReportArgs {
  file: string;
  html?: string;
}

export function reportOptions(y: Argv): Argv<ReportArgs> {
  return y
    .positional('file', { type: 'string', describe: 'A report written by record, ping or serve (JSON)', demandOption: true })
    .option('html', { type: 'string', describe: 'Write a self-contained HTML page with plots to this file' })
    .example('$0 report spikes.json', 'the verdict and histograms again')
    .example('$0 report spikes.json --html spikes.html', 'heat map, timeline and histograms in one file') as unknown as Argv<ReportArgs>;
}

export async function report(argv: ReportArgs): Promise<void> {
  if (argv.html !== undefined) {
    if (!argv.html) throw new UsageError('--html needs a file name');
    checkWritable(argv.html, '--html');
  }
  const r = readReport(argv.file);
  if (argv.html) {
    writeAtomic(argv.html, renderHtml(r));
    say(`wrote ${argv.html}`);
    return;
  }
  const ping = (r as PingReport).ping;
  process.stdout.write((ping ? ping.verdict.text + '\n\n' : '') + renderText(r));
}
