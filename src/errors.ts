// Errors a user can cause. Each carries a one-line message, an optional hint and
// an exit code, so the CLI and the API can report them without a stack trace.

export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
}

export type ErrorKind =
  | 'config' // bad xl.cfg content or override
  | 'usage' // bad CLI arguments (xl exits 2)
  | 'not-found' // unknown domain, file, device
  | 'conflict' // name taken, transaction conflict
  | 'permission' // token/sponsor/store permission
  | 'unauthorized' // no or bad token
  | 'engine' // QEMU missing, failed to start, QMP failure
  | 'state' // operation not valid in the domain's current state
  | 'quota' // store or resource quota exceeded
  | 'internal';

const HTTP_STATUS: Record<ErrorKind, number> = {
  config: 400,
  usage: 400,
  'not-found': 404,
  conflict: 409,
  permission: 403,
  unauthorized: 401,
  engine: 500,
  state: 409,
  quota: 507,
  internal: 500,
};

export class XenodeError extends Error {
  readonly kind: ErrorKind;
  readonly hint?: string;
  readonly location?: SourceLocation;
  readonly exitCode: number;

  constructor(
    kind: ErrorKind,
    message: string,
    opts: { hint?: string; location?: SourceLocation; exitCode?: number } = {},
  ) {
    super(message);
    this.name = 'XenodeError';
    this.kind = kind;
    this.hint = opts.hint;
    this.location = opts.location;
    this.exitCode = opts.exitCode ?? (kind === 'usage' ? 2 : 1);
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.kind];
  }

  /** One line: `file:line:col: message (hint)`. */
  format(): string {
    const loc = this.location;
    let where = '';
    if (loc) {
      where = loc.file;
      if (loc.line !== undefined) where += `:${loc.line}`;
      if (loc.line !== undefined && loc.column !== undefined) where += `:${loc.column}`;
      where += ': ';
    }
    return `${where}${this.message}${this.hint ? ` (${this.hint})` : ''}`;
  }

  toJSON(): WireError {
    return {
      kind: this.kind,
      message: this.message,
      hint: this.hint,
      location: this.location,
      exitCode: this.exitCode,
    };
  }

  static fromWire(w: WireError): XenodeError {
    return new XenodeError(w.kind, w.message, { hint: w.hint, location: w.location, exitCode: w.exitCode });
  }
}

/** How an error travels over the API. */
export interface WireError {
  kind: ErrorKind;
  message: string;
  hint?: string;
  location?: SourceLocation;
  exitCode?: number;
}

export function isXenodeError(e: unknown): e is XenodeError {
  return e instanceof XenodeError;
}

export function errorMessage(e: unknown): string {
  if (e instanceof XenodeError) return e.format();
  if (e instanceof Error) return e.message;
  return String(e);
}
