// Writing a report: check before tracing that the file can be created, then
// write it atomically (temp file in the same directory + rename), so a crash
// or Ctrl-C never leaves a truncated report.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../base/errors';

function tempName(file: string): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
}

/**
 * Fails early (before anything is traced) if `file` cannot be written later:
 * creates and removes the very temp file the write will use, so /proc, a
 * read-only mount or a full directory are caught now, not after the trace.
 */
export function checkWritable(file: string, option = '--out'): void {
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UsageError(`${option} ${file}: directory ${dir} does not exist; create it or choose another path`);
  }
  if (!st.isDirectory()) throw new UsageError(`${option} ${file}: ${dir} is not a directory`);
  try {
    if (fs.statSync(file).isDirectory()) throw new UsageError(`${option} ${file}: is a directory; give a file name`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = tempName(file);
  try {
    fs.closeSync(fs.openSync(tmp, 'wx', 0o644));
    fs.rmSync(tmp, { force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new UsageError(`${option} ${file}: cannot create files in ${dir} (${code}); choose a writable path`);
  }
}

/** Writes via a temporary file in the same directory and rename(2): never a partial file. */
export function writeAtomic(file: string, text: string): void {
  const tmp = tempName(file);
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
