// The daemon's own log. Each event is one JSON line (pino) in xenoded.log, with
// its level and, when it concerns one, the domain (domid, name) and its sponsor
// as fields; a ring of the same entries is kept in memory for `xenode dmesg`.
// In the foreground (xenoded.service runs it so) each event also goes to stderr:
// to systemd's journal as an entry with fields when stderr is the journal
// (journal.ts), as JSON lines with XENODE_LOG_FORMAT=json, else as text.
// Tokens never reach it (callers log sponsor names only).

import { appendFileSync } from 'node:fs';
import { type Logger, pino } from 'pino';
import { encodeEntry, isJournalStream, JournalSocket, PRIORITY } from './journal.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What an event concerns, beyond its message. */
export interface LogFields {
  domid?: number;
  /** The domain's name; filled in from the domid when the daemon knows it. */
  domain?: string;
  /** The sponsor concerned (of the domain, when a domid is given and known). */
  sponsor?: string;
}

export interface LogEntry extends LogFields {
  time: number;
  level: LogLevel;
  msg: string;
}

/** Name and sponsor of a live domain, for the fields of events that give only its domid. */
export type DomainLabeler = (domid: number) => { name: string; sponsor: string } | undefined;

/** Where the foreground daemon's stderr copy goes. */
export type EchoMode = 'text' | 'json' | 'journal';

export interface EchoSinks {
  /** stderr (or a test's stand-in). */
  stderr: { write(s: string): unknown };
  /** journald's native socket (or a test's); absent: the `<N>`-prefixed stream only. */
  journal?: { send(entry: Buffer): boolean };
}

/** The stderr mode of a foreground daemon: the journal when systemd connected stderr to it. */
export function echoModeOf(env: NodeJS.ProcessEnv = process.env, fd = 2): EchoMode {
  if (isJournalStream(env, fd)) return 'journal';
  return env.XENODE_LOG_FORMAT === 'json' ? 'json' : 'text';
}

/** One line, whatever a message holds: control characters (a newline a name smuggled in) are escaped. */
export function oneLine(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** ` domid=3 domain=web sponsor=alice`, logfmt style (values with spaces or quotes quoted). */
export function fieldSuffix(e: LogFields): string {
  const q = (v: string) => (/^[\w.@:/+-]+$/.test(v) ? v : JSON.stringify(v));
  let s = '';
  if (e.domid !== undefined) s += ` domid=${e.domid}`;
  if (e.domain !== undefined) s += ` domain=${q(e.domain)}`;
  if (e.sponsor !== undefined) s += ` sponsor=${q(e.sponsor)}`;
  return oneLine(s);
}

/** The journal entry of one event: message, priority, identifier and the event's fields. */
export function journalFields(e: LogEntry): Array<[string, string]> {
  const f: Array<[string, string]> = [
    ['MESSAGE', oneLine(e.msg)],
    ['PRIORITY', String(PRIORITY[e.level])],
    ['SYSLOG_IDENTIFIER', 'xenoded'],
  ];
  if (e.domid !== undefined) f.push(['XENODE_DOMID', String(e.domid)]);
  if (e.domain !== undefined) f.push(['XENODE_DOMAIN', e.domain]);
  if (e.sponsor !== undefined) f.push(['XENODE_SPONSOR', e.sponsor]);
  return f;
}

export class DaemonLog {
  private ring: LogEntry[] = [];
  private readonly logger: Logger<never, boolean>;
  private readonly echoMode: EchoMode | undefined;
  private readonly sinks: EchoSinks;
  private labeler?: DomainLabeler;
  /** Last known name and sponsor per domid: events after a domain is gone still carry them. */
  private readonly labels = new Map<number, { name: string; sponsor: string }>();
  private lastLine = '';

  /**
   * @param echo copy every event to stderr (the foreground daemon): true picks the mode from the
   * environment (echoModeOf), or a mode.
   */
  constructor(
    private readonly file: string | undefined,
    private readonly capacity = 2000,
    echo: boolean | EchoMode = false,
    sinks?: Partial<EchoSinks>,
  ) {
    this.echoMode = echo === true ? echoModeOf() : echo === false ? undefined : echo;
    const journal =
      sinks?.journal ??
      (this.echoMode === 'journal' ? new JournalSocket(process.env.XENODE_JOURNAL_SOCKET || undefined) : undefined);
    this.sinks = { stderr: sinks?.stderr ?? process.stderr, journal };
    // pino renders the line; the destination keeps what it wrote, and appends it to the file by
    // name (so a rotated file is followed, and a full disk costs the line, never the daemon).
    this.logger = pino(
      {
        level: 'debug',
        base: { pid: process.pid },
        formatters: { level: (label) => ({ level: label }) },
      },
      {
        write: (line: string) => {
          this.lastLine = line;
          if (!this.file) return;
          try {
            appendFileSync(this.file, line);
          } catch {
            /* a full disk must not take the daemon down */
          }
        },
      },
    );
  }

  /** How to name a domid's domain and sponsor in the events that give only the domid. */
  setDomainLabeler(f: DomainLabeler): void {
    this.labeler = f;
  }

  private fieldsOf(at: number | LogFields | undefined): LogFields {
    const f: LogFields = typeof at === 'number' ? { domid: at } : { ...at };
    if (f.domid === undefined) return f;
    let label: { name: string; sponsor: string } | undefined;
    try {
      label = this.labeler?.(f.domid);
    } catch {
      label = undefined;
    }
    if (label) {
      this.labels.delete(f.domid);
      this.labels.set(f.domid, label);
      if (this.labels.size > 4096) this.labels.delete(this.labels.keys().next().value as number);
    } else label = this.labels.get(f.domid);
    if (label) {
      f.domain ??= label.name;
      f.sponsor ??= label.sponsor;
    }
    return f;
  }

  write(level: LogLevel, msg: string, at?: number | LogFields): void {
    const f = this.fieldsOf(at);
    const e: LogEntry = { time: Date.now(), level, msg, ...f };
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    // One JSON line: pino escapes the message, so a newline in it never starts another line.
    this.logger[level]({ ...f }, msg);
    if (this.echoMode) this.echo(e);
  }

  private echo(e: LogEntry): void {
    try {
      if (this.echoMode === 'json') this.sinks.stderr.write(this.lastLine);
      else if (this.echoMode === 'journal') {
        if (this.sinks.journal?.send(encodeEntry(journalFields(e)))) return;
        this.sinks.stderr.write(`<${PRIORITY[e.level]}>${oneLine(e.msg)}${fieldSuffix(e)}\n`);
      } else this.sinks.stderr.write(`${formatLogEntry(e)}\n`);
    } catch {
      /* a closed stderr must not take the daemon down */
    }
  }

  debug(msg: string, at?: number | LogFields): void {
    this.write('debug', msg, at);
  }
  info(msg: string, at?: number | LogFields): void {
    this.write('info', msg, at);
  }
  warn(msg: string, at?: number | LogFields): void {
    this.write('warn', msg, at);
  }
  error(msg: string, at?: number | LogFields): void {
    this.write('error', msg, at);
  }

  entries(): LogEntry[] {
    return [...this.ring];
  }

  clear(): void {
    this.ring = [];
  }
}

/** `xenode dmesg`'s line: `[time] LEVEL d<domid>: message  domain=… sponsor=…`. */
export function formatLogEntry(e: LogEntry): string {
  const t = new Date(e.time).toISOString().replace('T', ' ').replace('Z', '');
  const rest = fieldSuffix({ domain: e.domain, sponsor: e.sponsor });
  return `[${t}] ${e.level.toUpperCase().padEnd(5)} ${e.domid !== undefined ? `d${e.domid}: ` : ''}${oneLine(e.msg)}${rest ? ` ${rest}` : ''}`;
}
