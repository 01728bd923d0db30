// Parser for xl.cfg, following upstream libxlu_cfg_y.y:
//   file       := stmt* assignment?
//   stmt       := assignment (NEWLINE | ';') | NEWLINE | ';'
//   assignment := IDENT ('=' | '+=') value
//   value      := STRING | NUMBER | '[' NL* (value NL* (',' NL* value NL*)* (',' NL*)?)? ']'
// Later assignments win; `+=` concatenates strings and lists (libxlu_cfg.c
// xlu__cfg_concat_vals). Upstream keeps numbers as text and rejects `+=` only when a
// number is read; here numbers are typed at parse time, so `+=` with a number is
// refused straight away. Upstream recovers after a syntax error to report more;
// Xenode stops at the first error, which always carries file:line:column.

import { Lexer, type LexerOptions, type Token } from './lexer.ts';
import { COMMAND_LINE, configError, type Loc } from './location.ts';

export interface RawString {
  kind: 'string';
  value: string;
  loc: Loc;
}

export interface RawNumber {
  kind: 'number';
  value: number;
  /** The number as written (`0x10`, `010`), which string-typed keys use. */
  text: string;
  loc: Loc;
}

export interface RawList {
  kind: 'list';
  items: RawValue[];
  loc: Loc;
}

export type RawValue = RawString | RawNumber | RawList;

export interface RawSetting {
  key: string;
  /**
   * '+=' only when the value still has to be appended to an earlier config's
   * value (an override `vif+=[...]` applied to a file); within one text every
   * `+=` is already folded into the value.
   */
  op: '=' | '+=';
  value: RawValue;
  keyLoc: Loc;
  valueLoc: Loc;
}

/** Settings by key, in order of first appearance. */
export type RawConfig = Map<string, RawSetting>;

/** A value without locations: what tests and `create -n` compare. */
export type PlainValue = string | number | PlainValue[];

/** Numbers as upstream's strtol(..., 0) reads the NUMBER token: decimal, 0x hex, 0 octal. */
function numberValue(tok: Token): number {
  const t = tok.text;
  let n: number;
  if (/^(0|[1-9][0-9]*)$/.test(t)) n = Number(t);
  else if (/^0[0-7]+$/.test(t)) n = Number.parseInt(t.slice(1), 8);
  else if (/^0x[0-9a-f]+$/.test(t)) n = Number.parseInt(t.slice(2), 16);
  else {
    throw configError(
      `invalid number '${t}'`,
      tok.loc,
      'numbers are decimal (512), hex (0x200) or octal with a leading 0 (01000); quote anything else',
    );
  }
  if (!Number.isSafeInteger(n)) throw configError(`number '${t}' is too large`, tok.loc);
  return n;
}

function describe(tok: Token): string {
  switch (tok.kind) {
    case 'eof':
      return 'end of file';
    case 'newline':
      return 'end of line';
    case 'ident':
      return `'${tok.text}'`;
    case 'number':
      return `number ${tok.text}`;
    case 'string':
      return `string ${tok.text.length > 30 ? `${tok.text.slice(0, 30)}…` : tok.text}`;
    default:
      return `'${tok.text}'`;
  }
}

class Parser {
  private tok: Token;

  constructor(private readonly lexer: Lexer) {
    this.tok = lexer.next();
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lexer.next();
    return t;
  }

  private skipNewlines(): void {
    while (this.tok.kind === 'newline') this.advance();
  }

  /** Every statement of the text, applied in order to `into`. */
  parseInto(into: RawConfig): void {
    for (;;) {
      const t = this.tok;
      if (t.kind === 'eof') return;
      if (t.kind === 'newline' || t.kind === ';') {
        this.advance();
        continue;
      }
      if (t.kind !== 'ident') {
        const hint = t.kind === '=' ? 'a statement is key = value' : undefined;
        throw configError(`expected a key, found ${describe(t)}`, t.loc, hint);
      }
      const setting = this.assignment();
      const end = this.tok;
      if (end.kind === 'newline' || end.kind === ';') this.advance();
      else if (end.kind !== 'eof') {
        throw configError(
          `expected end of line or ';' after the value of '${setting.key}', found ${describe(end)}`,
          end.loc,
          end.kind === 'ident' ? "put one setting per line or separate them with ';'" : undefined,
        );
      }
      applySetting(into, setting);
    }
  }

  private assignment(): RawSetting {
    const keyTok = this.advance();
    const key = keyTok.text;
    const opTok = this.tok;
    if (opTok.kind !== '=' && opTok.kind !== '+=') {
      throw configError(`expected '=' after key '${key}'`, opTok.loc, `write ${key} = value`);
    }
    this.advance();
    const valueTok = this.tok;
    if (valueTok.kind === 'newline' || valueTok.kind === 'eof' || valueTok.kind === ';') {
      throw configError(
        `expected a value after '${key} ${opTok.text}'`,
        valueTok.loc,
        'a value is a quoted string, a number or a [list]',
      );
    }
    const value = this.value(key);
    return { key, op: opTok.kind, value, keyLoc: keyTok.loc, valueLoc: value.loc };
  }

  private value(key: string): RawValue {
    const t = this.tok;
    switch (t.kind) {
      case 'string':
        this.advance();
        return { kind: 'string', value: t.value, loc: t.loc };
      case 'number':
        this.advance();
        return { kind: 'number', value: numberValue(t), text: t.text, loc: t.loc };
      case '[':
        return this.list(key);
      case 'ident':
        throw configError(`bare word '${t.text}' is not a value`, t.loc, `quote strings: ${key} = "${t.text}"`);
      default:
        throw configError(
          `expected a value for '${key}', found ${describe(t)}`,
          t.loc,
          'a value is a quoted string, a number or a [list]',
        );
    }
  }

  private list(key: string): RawList {
    const open = this.advance();
    const items: RawValue[] = [];
    this.skipNewlines();
    for (;;) {
      if (this.tok.kind === ']') break;
      if (this.tok.kind === 'eof') {
        throw configError(`unterminated list for '${key}'`, open.loc, "close the list with ']'");
      }
      items.push(this.value(key));
      this.skipNewlines();
      const sep = this.tok;
      if (sep.kind === ',') {
        this.advance();
        this.skipNewlines();
        continue;
      }
      if (sep.kind === ']') break;
      if (sep.kind === 'eof') {
        throw configError(`unterminated list for '${key}'`, open.loc, "close the list with ']'");
      }
      throw configError(`expected ',' or ']' in the list for '${key}', found ${describe(sep)}`, sep.loc);
    }
    this.advance();
    return { kind: 'list', items, loc: open.loc };
  }
}

function kindName(v: RawValue): string {
  return v.kind === 'list' ? 'a list' : v.kind === 'string' ? 'a string' : 'a number';
}

/**
 * Applies one statement to a config: `=` replaces, `+=` appends to the value of
 * the same key (string to string, list to list) or, with no earlier value,
 * is kept as a pending append for mergeConfigs.
 */
export function applySetting(into: RawConfig, s: RawSetting): void {
  const prev = into.get(s.key);
  if (s.op === '+=' && s.value.kind === 'number') {
    throw configError(`can't use += with a number for '${s.key}'`, s.valueLoc, `use ${s.key} = <number>`);
  }
  if (s.op === '=' || !prev) {
    into.set(s.key, s);
    return;
  }
  const a = prev.value;
  const b = s.value;
  let value: RawValue;
  if (a.kind === 'string' && b.kind === 'string') {
    value = { kind: 'string', value: a.value + b.value, loc: b.loc };
  } else if (a.kind === 'list' && b.kind === 'list') {
    value = { kind: 'list', items: [...a.items, ...b.items], loc: a.loc };
  } else if (a.kind === 'number') {
    throw configError(`can't use += on '${s.key}', which is a number`, s.valueLoc, `use ${s.key} = <number>`);
  } else {
    throw configError(
      `can't add ${kindName(b)} to ${kindName(a)} for '${s.key}'`,
      s.valueLoc,
      `'+=' joins a string to a string or a list to a list`,
    );
  }
  into.set(s.key, { key: s.key, op: prev.op, value, keyLoc: prev.keyLoc, valueLoc: s.valueLoc });
}

/** Parses an xl.cfg text. Every error is a XenodeError('config') located in `file`. */
export function parseConfig(text: string, file: string, opts: LexerOptions = {}): RawConfig {
  const out: RawConfig = new Map();
  new Parser(new Lexer(text, file, opts)).parseInto(out);
  return out;
}

const BARE_OVERRIDE = /^([ \t]*)([a-z][._0-9a-z]*)([ \t]*)(\+?=)([ \t]*)(.*?)[ \t]*$/s;

/**
 * `key=value` arguments of `create`, as xl appends them to the config text, so
 * `+=` extends the file's value. Each argument is located as `<command line>`,
 * line = its position among the arguments (1-based), column within it.
 * For convenience a value that is not quoted, not a list and not a number is
 * taken as a string up to the end of the argument (`name=web1`, `kernel=/boot/vmlinuz`);
 * xl itself would require quotes.
 */
export function parseOverrides(args: readonly string[]): RawConfig {
  const out: RawConfig = new Map();
  args.forEach((arg, i) => {
    const line = i + 1;
    const m = BARE_OVERRIDE.exec(arg);
    const rest = m?.[6] ?? '';
    if (m && rest !== '' && !/^["'[]/.test(rest) && !/^[0-9][0-9a-fx]*$/.test(rest)) {
      const [, lead = '', key = '', gap = '', op = '=', gap2 = ''] = m;
      const keyLoc: Loc = { file: COMMAND_LINE, line, column: lead.length + 1 };
      const valueLoc: Loc = {
        file: COMMAND_LINE,
        line,
        column: lead.length + key.length + gap.length + op.length + gap2.length + 1,
      };
      if (rest.includes('\n')) {
        throw configError(`value of '${key}' spans lines`, valueLoc, 'quote it or put it on one line');
      }
      if (rest.includes('\0')) throw configError(`NUL character in the value of '${key}'`, valueLoc);
      applySetting(out, {
        key,
        op: op === '+=' ? '+=' : '=',
        value: { kind: 'string', value: rest, loc: valueLoc },
        keyLoc,
        valueLoc,
      });
      return;
    }
    new Parser(new Lexer(arg, COMMAND_LINE, { firstLine: line })).parseInto(out);
  });
  return out;
}

/** The file's settings with the overrides applied after them (xl appends overrides to the file). */
export function mergeConfigs(base: RawConfig, overrides: RawConfig): RawConfig {
  const out: RawConfig = new Map(base);
  for (const s of overrides.values()) applySetting(out, s);
  return out;
}

export function plainValue(v: RawValue): PlainValue {
  if (v.kind === 'list') return v.items.map(plainValue);
  return v.value;
}

export function plainConfig(raw: RawConfig): Record<string, PlainValue> {
  const out: Record<string, PlainValue> = {};
  for (const [k, s] of raw) out[k] = plainValue(s.value);
  return out;
}

/** An xl.cfg string literal (double-quoted unless asked otherwise) that parses back to `s`. */
export function quoteString(s: string, quote: '"' | "'" = '"'): string {
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}${quote}`;
}

export function printValue(v: PlainValue | RawValue): string {
  if (typeof v === 'string') return quoteString(v);
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.map(printValue).join(', ')}]`;
  if (v.kind === 'list') return `[${v.items.map(printValue).join(', ')}]`;
  return printValue(v.value);
}

/** xl.cfg text for a config: one `key = value` per line. */
export function printConfig(raw: RawConfig | Record<string, PlainValue>): string {
  const entries: [string, PlainValue | RawValue][] =
    raw instanceof Map ? [...raw].map(([k, s]) => [k, s.value]) : Object.entries(raw);
  return entries.map(([k, v]) => `${k} = ${printValue(v)}\n`).join('');
}
