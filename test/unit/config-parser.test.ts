// xl.cfg lexer and parser: the fixture corpus (valid configs in Xen's published
// style, invalid ones with their expected error and position), plus the syntax
// corners of libxlu_cfg_l.l / libxlu_cfg_y.y and the command-line overrides.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Value } from 'typebox/value';
import { DomainConfigSchema } from '../../src/config/domain-schema.ts';
import { tokenize } from '../../src/config/lexer.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import {
  mergeConfigs,
  parseConfig,
  parseOverrides,
  plainConfig,
  printConfig,
  type RawConfig,
} from '../../src/config/parser.ts';
import { configToJson } from '../../src/config/validate.ts';
import { XenodeError } from '../../src/errors.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/xlcfg');
const VALID = path.join(FIXTURES, 'valid');
const INVALID = path.join(FIXTURES, 'invalid');

interface ValidExpectation {
  config: Record<string, unknown>;
  warnings: string[];
}
interface InvalidExpectation {
  message: string;
  line: number | null;
  column: number | null;
}

function readJson<T>(file: string): Record<string, T> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, T>;
}

function cfgFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cfg'))
    .sort();
}

/** The XenodeError thrown by `fn`, failing the test if it throws nothing or something else. */
function configErrorOf(fn: () => unknown): XenodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof XenodeError, `expected a XenodeError, got ${String(e)}`);
    assert.equal(e.kind, 'config');
    return e;
  }
  assert.fail('expected a config error');
}

function parse(text: string): RawConfig {
  return parseConfig(text, 'test.cfg');
}

describe('fixture corpus: valid configs', () => {
  const expected = readJson<ValidExpectation>(path.join(VALID, 'expected.json'));

  it('has an expectation for every fixture and a fixture for every expectation', () => {
    assert.deepEqual(Object.keys(expected).sort(), cfgFiles(VALID));
  });

  for (const file of cfgFiles(VALID)) {
    it(`${file} loads with the expected values and warnings`, () => {
      const exp = expected[file];
      assert.ok(exp, `no expectation for ${file}`);
      const { config, warnings } = loadConfigFile(path.join(VALID, file), [], { checkFiles: false });
      const actual = config as unknown as Record<string, unknown>;
      for (const [key, want] of Object.entries(exp.config)) {
        const resolved = JSON.parse(JSON.stringify(want).replaceAll('<dir>', VALID));
        assert.deepEqual(actual[key], resolved, `${file}: ${key}`);
      }
      assert.equal(warnings.length, exp.warnings.length, `${file} warnings: ${warnings.join(' | ')}`);
      for (const w of exp.warnings) {
        assert.ok(
          warnings.some((got) => got.includes(w)),
          `${file}: no warning containing "${w}" in ${warnings.join(' | ')}`,
        );
      }
      assert.ok(Value.Check(DomainConfigSchema, config), `${file}: config does not match DomainConfigSchema`);
    });

    it(`${file} survives print -> parse unchanged`, () => {
      const raw = parseConfig(fs.readFileSync(path.join(VALID, file), 'utf8'), file);
      const again = parseConfig(printConfig(raw), 'printed.cfg');
      assert.deepEqual(plainConfig(again), plainConfig(raw));
    });
  }
});

describe('fixture corpus: invalid configs', () => {
  const expected = readJson<InvalidExpectation>(path.join(INVALID, 'expected.json'));

  it('has an expectation for every fixture and a fixture for every expectation', () => {
    assert.deepEqual(Object.keys(expected).sort(), cfgFiles(INVALID));
  });

  for (const file of cfgFiles(INVALID)) {
    it(`${file} is refused at the right place`, () => {
      const exp = expected[file];
      assert.ok(exp, `no expectation for ${file}`);
      const full = path.join(INVALID, file);
      const err = configErrorOf(() => loadConfigFile(full, [], { checkFiles: false }));
      assert.ok(err.message.includes(exp.message), `${file}: "${err.message}" does not contain "${exp.message}"`);
      assert.equal(err.location?.file, full);
      assert.equal(err.location?.line ?? null, exp.line, `${file}: line`);
      assert.equal(err.location?.column ?? null, exp.column, `${file}: column`);
      assert.ok(err.hint === undefined || err.hint.length > 0);
    });
  }
});

describe('lexer', () => {
  it('splits a statement line into tokens with 1-based positions', () => {
    const toks = tokenize("disk += [ 'a', 0x10 ] ; x.y_1 = 7 # c\n", 'f');
    assert.deepEqual(
      toks.map((t) => [t.kind, t.value, t.loc.line, t.loc.column]),
      [
        ['ident', 'disk', 1, 1],
        ['+=', '+=', 1, 6],
        ['[', '[', 1, 9],
        ['string', 'a', 1, 11],
        [',', ',', 1, 14],
        ['number', '0x10', 1, 16],
        [']', ']', 1, 21],
        [';', ';', 1, 23],
        ['ident', 'x.y_1', 1, 25],
        ['=', '=', 1, 31],
        ['number', '7', 1, 33],
        ['newline', '\n', 1, 38],
        ['eof', '', 2, 1],
      ],
    );
  });

  const escapes: [string, string][] = [
    ['\\n', '\n'],
    ['\\t', '\t'],
    ['\\r', '\r'],
    ['\\a', '\x07'],
    ['\\b', '\b'],
    ['\\f', '\f'],
    ['\\v', '\v'],
    ['\\\\', '\\'],
    ['\\"', '"'],
    ["\\'", "'"],
    ['\\x41', 'A'],
    ['\\x4', '\x04'],
    ['\\x4g', '\x04g'],
    ['\\101', 'A'],
    ['\\7', '\x07'],
    ['\\0101', '\x081'],
    ['\\377', '\xff'],
  ];
  for (const [src, want] of escapes) {
    it(`decodes the escape ${src}`, () => {
      const [tok] = tokenize(`"${src}"`, 'f');
      assert.equal(tok?.kind, 'string');
      assert.equal(tok?.value, want);
    });
  }

  it('keeps quotes of the other kind and non-ASCII text inside strings', () => {
    assert.equal(tokenize(`'say "hi" — ünïcode'`, 'f')[0]?.value, 'say "hi" — ünïcode');
    assert.equal(tokenize(`"it's"`, 'f')[0]?.value, "it's");
  });

  const lexErrors: [string, string, number][] = [
    ['"abc', 'unterminated string', 1],
    ['"abc\n"', 'unterminated string', 1],
    ['x = "a\\\nb"', 'unterminated string', 5],
    ['"\\q"', "invalid escape '\\q'", 2],
    ['"\\x"', "'\\x' escape needs hex digits", 2],
    ['"\\400"', "octal escape '\\400' is out of range", 2],
    ['"a\\0b"', 'NUL character in string', 3],
    ['"a\0b"', 'NUL character in string', 3],
    ['a = -1', "unexpected character '-'", 5],
    ['a = (1)', "unexpected character '('", 5],
    ['a = b:c', "unexpected character ':'", 6],
    ['a + 1', "unexpected character '+'", 3],
    ['A = 1', "unexpected character 'A'", 1],
    ['_a = 1', "unexpected character '_'", 1],
    ['a = 1\x01', 'unexpected character U+0001', 6],
  ];
  for (const [src, msg, column] of lexErrors) {
    it(`refuses ${JSON.stringify(src)}: ${msg}`, () => {
      const err = configErrorOf(() => tokenize(src, 'lex.cfg'));
      assert.ok(err.message.includes(msg), err.message);
      assert.equal(err.location?.file, 'lex.cfg');
      assert.equal(err.location?.column, column);
    });
  }

  it('says how to write an upper-case key', () => {
    const err = configErrorOf(() => tokenize('Memory = 512', 'f'));
    assert.match(err.hint ?? '', /write 'memory'/);
  });

  it('says to quote an unquoted path', () => {
    const err = configErrorOf(() => tokenize('kernel = /boot/vmlinuz', 'f'));
    assert.match(err.hint ?? '', /"\/boot\/vmlinuz"/);
  });

  it('ignores a BOM, CR before LF and a final comment without newline', () => {
    const toks = tokenize('\ufeffa = 1\r\n# end', 'f');
    assert.deepEqual(
      toks.map((t) => t.kind),
      ['ident', '=', 'number', 'newline', 'eof'],
    );
    assert.equal(toks[0]?.loc.column, 1);
  });
});

describe('parser', () => {
  it('reads strings, numbers in three bases and nested lists', () => {
    const raw = parse(`a = "s"\nb = 'q'\nc = 42\nd = 0x1f\ne = 017\nf = 0\ng = [1, ["x", []], 'y']\n`);
    assert.deepEqual(plainConfig(raw), { a: 's', b: 'q', c: 42, d: 31, e: 15, f: 0, g: [1, ['x', []], 'y'] });
    const c = raw.get('c');
    assert.equal(c?.value.kind, 'number');
    assert.equal(c?.value.kind === 'number' ? c.value.text : '', '42');
  });

  it('accepts lists over many lines with comments, blank lines and a trailing comma', () => {
    const raw = parse(`disk = [\n  'a',   # first\n\n  'b'\n  ,\n  'c',\n]\nvif = [ ]\n`);
    assert.deepEqual(plainConfig(raw), { disk: ['a', 'b', 'c'], vif: [] });
  });

  it("separates statements with ';' and allows a last statement without newline", () => {
    assert.deepEqual(plainConfig(parse('a = 1; b = 2;;\n;c = 3')), { a: 1, b: 2, c: 3 });
  });

  it('lets a later assignment win and records where it was', () => {
    const raw = parse('memory = 256\n# again\nmemory = 512\n');
    const s = raw.get('memory');
    assert.equal(s?.value.kind === 'number' ? s.value.value : undefined, 512);
    assert.deepEqual(s?.keyLoc, { file: 'test.cfg', line: 3, column: 1 });
    assert.deepEqual(s?.valueLoc, { file: 'test.cfg', line: 3, column: 10 });
  });

  it('+= concatenates strings and lists, keeping each list item where it was written', () => {
    const raw = parse(`extra = "a"\nextra += " b"\ndisk = ['x']\ndisk += ['y', 'z']\nvif += ['only']\n`);
    assert.deepEqual(plainConfig(raw), { extra: 'a b', disk: ['x', 'y', 'z'], vif: ['only'] });
    const disk = raw.get('disk');
    assert.equal(disk?.op, '=');
    assert.deepEqual(disk?.value.kind === 'list' ? disk.value.items.map((i) => i.loc.line) : [], [3, 4, 4]);
    assert.equal(raw.get('vif')?.op, '+=', 'a += with nothing before stays pending for an override merge');
  });

  it('refuses += between a string and a list, and with numbers', () => {
    assert.match(configErrorOf(() => parse('a = "s"\na += ["l"]')).message, /can't add a list to a string/);
    assert.match(configErrorOf(() => parse('a = ["l"]\na += "s"')).message, /can't add a string to a list/);
    assert.match(configErrorOf(() => parse('a = 1\na += "s"')).message, /which is a number/);
    assert.match(configErrorOf(() => parse('a += 1')).message, /can't use \+= with a number/);
  });

  const syntaxErrors: [string, string, number, number][] = [
    ['memory 512', "expected '=' after key 'memory'", 1, 8],
    ['memory', "expected '=' after key 'memory'", 1, 7],
    ['memory =\n', "expected a value after 'memory ='", 1, 9],
    ['memory = ;', "expected a value after 'memory ='", 1, 10],
    ['name = web1', "bare word 'web1' is not a value", 1, 8],
    ['a = 1 2', "expected end of line or ';' after the value of 'a'", 1, 7],
    ['= 5', "expected a key, found '='", 1, 1],
    ['"a" = 5', 'expected a key, found string "a"', 1, 1],
    ['a = [1 2]', "expected ',' or ']' in the list for 'a'", 1, 8],
    ['a = [1,,2]', "expected a value for 'a', found ','", 1, 8],
    ['a = [\n1,\n', "unterminated list for 'a'", 1, 5],
    ['a = [[1]', "unterminated list for 'a'", 1, 5],
    ['a = ]', "expected a value for 'a', found ']'", 1, 5],
    ['a = 08', "invalid number '08'", 1, 5],
    ['a = 1e5', "invalid number '1e5'", 1, 5],
    ['a = 0xfff', '', 0, 0],
    ['a = 0x1F', "unexpected character 'F'", 1, 8],
    ['a = 99999999999999999999', "number '99999999999999999999' is too large", 1, 5],
  ];
  for (const [src, msg, line, column] of syntaxErrors) {
    if (msg === '') {
      it(`accepts ${JSON.stringify(src)}`, () => {
        assert.equal(plainConfig(parse(src)).a, 0xfff);
      });
      continue;
    }
    it(`refuses ${JSON.stringify(src)}: ${msg}`, () => {
      const err = configErrorOf(() => parse(src));
      assert.ok(err.message.includes(msg), err.message);
      assert.equal(err.location?.line, line);
      assert.equal(err.location?.column, column);
    });
  }

  it('formats errors as file:line:column: message (hint)', () => {
    const err = configErrorOf(() => parseConfig('a = 1\nname = web1\n', '/etc/xen/web.cfg'));
    assert.equal(
      err.format(),
      '/etc/xen/web.cfg:2:8: bare word \'web1\' is not a value (quote strings: name = "web1")',
    );
  });
});

describe('command-line overrides', () => {
  it('parses xl-style quoted values, numbers and lists', () => {
    const o = parseOverrides(['memory=512', 'name="web2"', "vif=['mac=00:16:3e:00:00:02']", 'maxmem = 0x400']);
    assert.deepEqual(plainConfig(o), { memory: 512, name: 'web2', vif: ['mac=00:16:3e:00:00:02'], maxmem: 1024 });
  });

  it('takes an unquoted, non-numeric value as a string up to the end of the argument', () => {
    const o = parseOverrides(['name=web1', 'kernel=/boot/vmlinuz-6.1', 'cmdline=console=ttyS0 quiet', 'memory=1.5']);
    assert.deepEqual(plainConfig(o), {
      name: 'web1',
      kernel: '/boot/vmlinuz-6.1',
      cmdline: 'console=ttyS0 quiet',
      memory: '1.5',
    });
    assert.deepEqual(o.get('kernel')?.valueLoc, { file: '<command line>', line: 2, column: 8 });
  });

  it('accepts several statements in one argument, as in xl create cfg \'cpus="0-3"; vcpus=4\'', () => {
    assert.deepEqual(plainConfig(parseOverrides(['cpus="0-3"; vcpus=4'])), { cpus: '0-3', vcpus: 4 });
  });

  it('locates errors as <command line>, line = argument number, column within it', () => {
    const err = configErrorOf(() => parseOverrides(['memory=512', "vif=['a' 'b']"]));
    assert.equal(err.location?.file, '<command line>');
    assert.equal(err.location?.line, 2);
    assert.equal(err.location?.column, 10);
    const err2 = configErrorOf(() => parseOverrides(['memory']));
    assert.equal(err2.message, "expected '=' after key 'memory'");
    assert.equal(err2.location?.line, 1);
  });

  it('overrides the file and appends to it with +=', () => {
    const base = parse(`name = "web1"\nmemory = 256\nvif = ['bridge=xenbr0']\nextra = "quiet"\n`);
    const merged = mergeConfigs(
      base,
      parseOverrides(['memory=1024', "vif+=['bridge=xenbr1']", 'extra+=" debug"', 'vcpus+=["x"]']),
    );
    assert.deepEqual(plainConfig(merged), {
      name: 'web1',
      memory: 1024,
      vif: ['bridge=xenbr0', 'bridge=xenbr1'],
      extra: 'quiet debug',
      vcpus: ['x'],
    });
    assert.equal(merged.get('memory')?.valueLoc.file, '<command line>');
    assert.equal(merged.get('vif')?.op, '=');
    assert.equal(plainConfig(base).memory, 256, 'the base config is not modified');
  });

  it('refuses an override += that does not match the file value', () => {
    const base = parse('extra = "quiet"\n');
    const err = configErrorOf(() => mergeConfigs(base, parseOverrides(['extra+=["x"]'])));
    assert.equal(err.location?.file, '<command line>');
  });
});

describe('configToJson', () => {
  it('prints keys in schema order, whatever order the object was built in', () => {
    const { config } = loadConfigFile(path.join(VALID, 'full.cfg'), [], { checkFiles: false });
    const shuffled = Object.fromEntries(Object.entries(config).reverse()) as typeof config;
    const json = configToJson(shuffled);
    assert.equal(json, configToJson(config));
    assert.deepEqual(Object.keys(JSON.parse(json)).slice(0, 4), ['name', 'uuid', 'sponsor', 'type']);
    assert.deepEqual(JSON.parse(json), config);
    assert.deepEqual(Object.keys(JSON.parse(json).disk[0]), ['target', 'format', 'vdev', 'access', 'devtype']);
  });
});
