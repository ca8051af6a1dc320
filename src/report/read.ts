// Reading a report back (`jitterscope report IN.json`): parsed, its schema
// version checked, then validated against schema/report.v2.json, so a file
// that is not a jitterscope report, or one from a newer jitterscope, gets one
// line that says so instead of a half-drawn page.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../base/errors';
import { Report, REPORT_SCHEMA_ID } from './model';

const SCHEMA_FILE = path.join(__dirname, '..', '..', '..', 'schema', 'report.v2.json');
const VERSION_OF = /^jitterscope\.report\/v(\d+)$/;

export function readReport(file: string): Report {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not a jitterscope report (not JSON: ${(e as Error).message})`);
  }
  const schema = (data as { schema?: unknown } | null)?.schema;
  const m = typeof schema === 'string' ? VERSION_OF.exec(schema) : null;
  if (!m) throw new UsageError(`${file}: not a jitterscope report (no "schema": "${REPORT_SCHEMA_ID}" in it)`);
  const mine = Number(VERSION_OF.exec(REPORT_SCHEMA_ID)![1]);
  const theirs = Number(m[1]);
  if (theirs > mine) throw new UsageError(`${file}: written by a newer jitterscope (${schema}); this one reads ${REPORT_SCHEMA_ID}: upgrade jitterscope`);
  if (theirs < mine) throw new UsageError(`${file}: ${schema} is an older format this version does not read; record it again`);
  // ajv only here: the tracing commands never load it
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded here only, never by the tracing commands
  const Ajv = require('ajv').default;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
  const addFormats = require('ajv-formats').default;
  const ajv = new Ajv({ allErrors: false, strict: true });
  addFormats(ajv);
  const validate = ajv.compile(JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8')));
  if (!validate(data)) {
    const e = validate.errors[0];
    throw new UsageError(`${file}: not a valid ${REPORT_SCHEMA_ID} report: ${e.instancePath || '(top)'} ${e.message}`);
  }
  return data as Report;
}
