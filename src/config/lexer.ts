// Lexer for xl.cfg, following upstream libxlu_cfg_l.l (tools/libs/util):
//   IDENT  [a-z][._0-9a-z]*      keys are lowercase; an upper-case letter is a lexical error
//   NUMBER [0-9][0-9a-fx]*       checked for a real value by the parser, not here
//   STRING '...' or "..." on one line, C escapes (decoded here)
//   = += , [ ] ;  newline;  # comment to end of line;  blanks are space and tab
// Anything else — bare `+ - . ( ) :`, upper-case letters, `/` — is a lexical error.
//
// Deliberate differences from upstream, all in the accepting direction or fixing
// upstream bugs: a `\r` before a newline and a leading BOM are ignored (CRLF files
// from Windows editors), a comment may end at end of file, `\xHH` and octal escapes
// produce the byte they name (upstream parses them but drops the character, and
// reads octal digits as decimal). A NUL produced by an escape is refused, because
// every string ends up in a path, a command line or a name.

import { configError, type Loc } from './location.ts';

export type TokenKind = 'ident' | 'number' | 'string' | '=' | '+=' | ',' | '[' | ']' | ';' | 'newline' | 'eof';

export interface Token {
  kind: TokenKind;
  /** Source text of the token (for strings: including the quotes). */
  text: string;
  /** Decoded string for 'string', the text otherwise. */
  value: string;
  loc: Loc;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  "'": "'",
  '\\': '\\',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

const PYTHONISH = '+-.():';

export interface LexerOptions {
  /** Line number of the first line (command-line overrides use the argument index). */
  firstLine?: number;
}

export class Lexer {
  private pos = 0;
  private line: number;
  /** Kind of the last token returned, to tell a key position from a value position in hints. */
  private last: TokenKind = 'newline';
  private lineStart = 0;

  constructor(
    private readonly src: string,
    private readonly file: string,
    opts: LexerOptions = {},
  ) {
    this.line = opts.firstLine ?? 1;
    if (src.charCodeAt(0) === 0xfeff) {
      this.pos = 1;
      this.lineStart = 1;
    }
  }

  private locAt(pos: number): Loc {
    return { file: this.file, line: this.line, column: pos - this.lineStart + 1 };
  }

  next(): Token {
    const t = this.scan();
    this.last = t.kind;
    return t;
  }

  private scan(): Token {
    const src = this.src;
    // Blanks and comments; a comment stops before its newline so the newline is still a token.
    for (;;) {
      const c = src[this.pos];
      if (c === ' ' || c === '\t' || c === '\r') {
        this.pos++;
      } else if (c === '#') {
        while (this.pos < src.length && src[this.pos] !== '\n') this.pos++;
      } else {
        break;
      }
    }
    const start = this.pos;
    const loc = this.locAt(start);
    if (start >= src.length) return { kind: 'eof', text: '', value: '', loc };
    const c = src[start] as string;

    if (c === '\n') {
      this.pos++;
      this.line++;
      this.lineStart = this.pos;
      return { kind: 'newline', text: '\n', value: '\n', loc };
    }
    if (c >= 'a' && c <= 'z') {
      let end = start + 1;
      while (end < src.length && /[._0-9a-z]/.test(src[end] as string)) end++;
      return this.take('ident', end, loc);
    }
    if (c >= '0' && c <= '9') {
      let end = start + 1;
      while (end < src.length && /[0-9a-fx]/.test(src[end] as string)) end++;
      return this.take('number', end, loc);
    }
    if (c === '"' || c === "'") return this.string(c, loc);
    if (c === '+' && src[start + 1] === '=') return this.take('+=', start + 2, loc);
    if (c === '=' || c === ',' || c === '[' || c === ']' || c === ';') return this.take(c, start + 1, loc);
    throw this.unexpected(start, loc);
  }

  private take(kind: TokenKind, end: number, loc: Loc): Token {
    const text = this.src.slice(this.pos, end);
    this.pos = end;
    return { kind, text, value: text, loc };
  }

  private unexpected(start: number, loc: Loc): Error {
    const c = String.fromCodePoint(this.src.codePointAt(start) ?? 0);
    const word = /^[^\s,;[\]=#]*/.exec(this.src.slice(start))?.[0] ?? c;
    let hint: string;
    if (PYTHONISH.includes(c)) {
      hint = "xl.cfg is not Python: numbers are plain integers, strings are quoted, and only '=' and '+=' assign";
    } else if (this.last === 'newline' || this.last === ';') {
      const lower = word.toLowerCase();
      hint = /^[a-z][._0-9a-z]*$/.test(lower)
        ? `keys are lower-case: write '${lower}'`
        : 'a statement is key = value; keys start with a-z and contain only a-z 0-9 _ .';
    } else {
      hint = `string values must be quoted, e.g. "${word.slice(0, 40)}"`;
    }
    return configError(`unexpected character ${describeChar(c)}`, loc, hint);
  }

  /** A quoted string: decoded, on one line, closed by the same quote. */
  private string(quote: string, loc: Loc): Token {
    const src = this.src;
    const start = this.pos;
    let i = start + 1;
    let out = '';
    for (;;) {
      const c = src[i];
      if (c === undefined || c === '\n') {
        throw configError('unterminated string', loc, `close it with ${quote} on the same line`);
      }
      if (c === quote) break;
      if (c === '\0') throw configError('NUL character in string', this.locAt(i), 'strings cannot contain \\0');
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const escLoc = this.locAt(i);
      const e = src[i + 1];
      if (e === undefined || e === '\n') {
        throw configError('unterminated string', loc, `close it with ${quote} on the same line`);
      }
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'x') {
        const hex = /^[0-9a-fA-F]{1,2}/.exec(src.slice(i + 2, i + 4))?.[0];
        if (!hex) throw configError("'\\x' escape needs hex digits", escLoc, 'write a byte as \\xHH, e.g. \\x41');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        i += 2 + hex.length;
      } else if (e >= '0' && e <= '7') {
        const oct = /^[0-7]{1,3}/.exec(src.slice(i + 1, i + 4))?.[0] ?? e;
        const code = Number.parseInt(oct, 8);
        if (code > 0xff)
          throw configError(`octal escape '\\${oct}' is out of range`, escLoc, 'octal escapes go up to \\377');
        out += String.fromCharCode(code);
        i += 1 + oct.length;
      } else {
        throw configError(
          `invalid escape '\\${e}' in string`,
          escLoc,
          'valid escapes: \\n \\t \\r \\\\ \\" \\\' \\xHH \\ooo (write \\\\ for a backslash)',
        );
      }
      if (out.endsWith('\0')) throw configError('NUL character in string', escLoc, 'strings cannot contain \\0');
    }
    const end = i + 1;
    const text = src.slice(start, end);
    this.pos = end;
    return { kind: 'string', text, value: out, loc };
  }
}

export function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f || (code > 0x7e && code < 0xa0)) {
    return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return `'${c}'`;
}

/** Every token of `src` up to and including 'eof' (for tests and tools). */
export function tokenize(src: string, file: string, opts: LexerOptions = {}): Token[] {
  const lexer = new Lexer(src, file, opts);
  const out: Token[] = [];
  for (;;) {
    const t = lexer.next();
    out.push(t);
    if (t.kind === 'eof') return out;
  }
}
