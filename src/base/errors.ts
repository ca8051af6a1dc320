// Error classes that carry what the user needs to act on.

/** A libbpf or kernel step failed. Constructed by the addon. */
export class BpfError extends Error {
  readonly step: string;
  readonly errno: number;
  readonly code: string;
  readonly detail: string;
  constructor(message: string, info: { step: string; errno: number; code: string; detail?: string }) {
    super(message);
    this.name = 'BpfError';
    this.step = info.step;
    this.errno = info.errno;
    this.code = info.code;
    this.detail = info.detail ?? '';
  }
}

/** Bad input from the user: one line, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The environment lacks something (capabilities, kernel features): one line, exit 2. */
export class EnvironmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvironmentError';
  }
}
