// Property tests of the config surface a user (or an API client) controls:
// whatever the text, the parser and validator either succeed or throw a located
// XenodeError('config'); printed configs parse back to the same values; the spec
// parsers never crash.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseCpuList } from '../../src/config/cpulist.ts';
import { parseDiskSpec, vdevNumber } from '../../src/config/disk.ts';
import {
  type PlainValue,
  parseConfig,
  parseOverrides,
  plainConfig,
  printValue,
  quoteString,
} from '../../src/config/parser.ts';
import { CONFIG_KEYS } from '../../src/config/schema.ts';
import { parseStaticShmSpec } from '../../src/config/shm.ts';
import { validateConfig } from '../../src/config/validate.ts';
import { parseVifRate, parseVifSpec } from '../../src/config/vif.ts';
import { XenodeError } from '../../src/errors.ts';

const RUNS = 2000;

/** Runs `fn`; anything thrown must be a config XenodeError (with a sane location if it has one). */
function onlyConfigErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (!(e instanceof XenodeError) || e.kind !== 'config') throw e;
    const loc = e.location;
    if (loc?.line !== undefined) assert.ok(loc.line >= 1 && (loc.column ?? 1) >= 1, JSON.stringify(loc));
    assert.ok(e.message.length > 0 && !e.message.includes('\n'), `one-line message: ${e.message}`);
    return false;
  }
}

/** Text made of xl.cfg-ish pieces, so generated inputs get past the first character. */
const xlPieces = fc.constantFrom(
  'name',
  'memory',
  'disk',
  'vif',
  'cpus',
  'type',
  'static_shm',
  'hap',
  'pci',
  'x.y',
  ' ',
  '\t',
  '\n',
  '\r\n',
  '=',
  '+=',
  ';',
  ',',
  '[',
  ']',
  '#',
  '"',
  "'",
  '\\',
  '\\x4',
  '\\777',
  '0',
  '0x',
  '0x1f',
  '017',
  '09',
  '512',
  '99999999999999999999',
  '"web1"',
  "'hvm'",
  '"pv"',
  "'file:/x,xvda,w'",
  "'mac=00:16:3e:00:00:01'",
  '"id=a, begin=0x1000, size=0x1000"',
  '"0-3,^1"',
  'A',
  '-',
  '.',
  ':',
  '(',
  'é',
  '\u0000',
);
const xlText = fc.array(fc.oneof(xlPieces, fc.string({ maxLength: 3 })), { maxLength: 40 }).map((a) => a.join(''));

describe('config fuzz', () => {
  it('parseConfig and validateConfig throw only config XenodeErrors for arbitrary text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), xlText), (text) => {
        onlyConfigErrors(() => {
          const raw = parseConfig(text, 'fuzz.cfg');
          validateConfig(raw, { file: 'fuzz.cfg', baseDir: '/', checkFiles: false });
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('parseOverrides throws only config XenodeErrors for arbitrary arguments', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(xlText, fc.string({ maxLength: 30 })), { maxLength: 4 }), (args) => {
        onlyConfigErrors(() => parseOverrides(args));
      }),
      { numRuns: RUNS },
    );
  });

  it('a well-formed config prints and parses back to the same values', () => {
    const key = fc.stringMatching(/^[a-z][._0-9a-z]{0,12}$/);
    const str = fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => !s.includes('\0'));
    const atom = fc.oneof(str, fc.nat({ max: Number.MAX_SAFE_INTEGER }));
    const { value } = fc.letrec<{ value: PlainValue }>((tie) => ({
      value: fc.oneof({ depthSize: 'small', maxDepth: 3 }, atom, fc.array(tie('value'), { maxLength: 4 })),
    }));
    const style = fc.record({
      sep: fc.constantFrom('\n', ';\n', ' ; ', '\n\n# comment\n'),
      listNl: fc.boolean(),
      trailing: fc.boolean(),
      single: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 8 }), style, (cfg, st) => {
        // A second printer with xl's optional layout: newlines inside lists, trailing commas, comments.
        const print = (v: PlainValue): string => {
          if (!Array.isArray(v)) return typeof v === 'string' && st.single ? quoteString(v, "'") : printValue(v);
          const sep = st.listNl ? ',\n   ' : ', ';
          const body = v.map(print).join(sep);
          return `[${st.listNl ? '\n   ' : ''}${body}${st.trailing && v.length > 0 ? ',' : ''}${st.listNl ? '\n' : ''}]`;
        };
        const text = Object.entries(cfg)
          .map(([k, v]) => `${k} = ${print(v)}`)
          .join(st.sep);
        // fc.dictionary may build null-prototype objects; compare own properties only.
        assert.deepEqual(plainConfig(parseConfig(text, 'rt.cfg')), { ...cfg });
      }),
      { numRuns: RUNS },
    );
  });

  it('validation of every known key with arbitrary values throws only config errors', () => {
    const names = CONFIG_KEYS.map((k) => k.name);
    const atom = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.nat(),
      fc.constantFrom(
        'pvh',
        'hvm',
        'pv',
        'destroy',
        'file:/x,xvda,w',
        'mac=00:16:3e:00:00:01',
        '0-3',
        'pty',
        '-1',
        '0x10',
      ),
    );
    const val = fc.oneof(atom, fc.array(atom, { maxLength: 3 }));
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), val, { maxKeys: 6 }), (cfg) => {
        const text = `name = "fz"\n${Object.entries(cfg)
          .map(([k, v]) => `${k} = ${printValue(v)}`)
          .join('\n')}`;
        onlyConfigErrors(() =>
          validateConfig(parseConfig(text, 'k.cfg'), { file: 'k.cfg', baseDir: '/', checkFiles: false }),
        );
      }),
      { numRuns: RUNS },
    );
  });

  const diskPieces = fc.constantFrom(
    'file:',
    'phy:',
    'tap:',
    'aio:',
    'raw:',
    'qcow2:',
    'vhd:',
    'nbd:',
    'x:',
    ',',
    '=',
    ' ',
    'target=',
    'vdev=',
    'format=',
    'access=',
    'devtype=',
    'cdrom',
    'discard',
    'xvda',
    'hdc:cdrom',
    'd0p1',
    'sdz',
    'raw',
    'qcow2',
    'ro',
    'rw',
    '/srv/a.img',
    'rel/b.img',
  );
  const specText = (pieces: fc.Arbitrary<string>) =>
    fc.array(fc.oneof(pieces, fc.string({ maxLength: 4 })), { maxLength: 12 }).map((a) => a.join(''));

  it('arbitrary disk specs parse to a valid DiskSpec or a config error', () => {
    fc.assert(
      fc.property(fc.oneof(specText(diskPieces), fc.string({ unit: 'binary', maxLength: 60 })), (spec) => {
        onlyConfigErrors(() => {
          const d = parseDiskSpec(spec, { baseDir: '/base' });
          assert.ok(vdevNumber(d.vdev) !== undefined, `vdev ${d.vdev}`);
          assert.ok(d.target === '' || d.target.startsWith('/'), `absolute target ${d.target}`);
          assert.ok(d.target !== '' || d.devtype === 'cdrom', 'only a cdrom is empty');
          assert.ok(d.devtype !== 'cdrom' || d.access === 'ro', 'cdroms are read-only');
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('vdevNumber never throws and numbers xvd disks as the vbd interface says', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 10 }), (s) => {
        const n = vdevNumber(s);
        assert.ok(n === undefined || (Number.isInteger(n) && n >= 0));
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), (disk, part) => {
        const name = `xvd${String.fromCharCode(97 + disk)}${part === 0 ? '' : part}`;
        assert.equal(vdevNumber(name), (202 << 8) | (disk << 4) | part);
        assert.equal(vdevNumber(`d${disk}p${part}`), (202 << 8) | (disk << 4) | part);
      }),
      { numRuns: 200 },
    );
  });

  const vifPieces = fc.constantFrom(
    'mac=',
    'bridge=',
    'ip=',
    'model=',
    'rate=',
    'vifname=',
    'mtu=',
    'script=',
    'type=',
    ',',
    ' ',
    '00:16:3e:00:00:01',
    'xenbr0',
    '10.0.0.1',
    'virtio',
    '10MB/s',
    '@20ms',
    '1500',
    'trusted',
  );

  it('arbitrary vif specs parse or give a config error', () => {
    fc.assert(
      fc.property(fc.oneof(specText(vifPieces), fc.string({ unit: 'binary', maxLength: 60 })), (spec) => {
        onlyConfigErrors(() => {
          const v = parseVifSpec(spec);
          if (v.mac !== undefined) assert.match(v.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
          if (v.rate !== undefined) parseVifRate(v.rate);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary rates, static_shm specs and CPU lists never crash', () => {
    const shmPieces = fc.constantFrom(
      'id=',
      'begin=',
      'size=',
      'offset=',
      'role=',
      'owner',
      'borrower',
      '0x1000',
      '4096',
      ',',
      ' ',
    );
    const cpuPieces = fc.constantFrom('all', '^', 'node:', 'nodes:', '0', '3', '-', ',', '4095', '4096');
    fc.assert(
      fc.property(
        fc.string({ maxLength: 20 }),
        fc.oneof(specText(shmPieces), fc.string({ maxLength: 40 })),
        fc.oneof(specText(cpuPieces), fc.string({ maxLength: 20 })),
        (rate, shm, cpus) => {
          onlyConfigErrors(() => {
            const r = parseVifRate(rate);
            assert.ok(r.bytesPerSec > 0 && r.intervalUs > 0 && r.bytesPerInterval >= 0);
          });
          onlyConfigErrors(() => {
            const s = parseStaticShmSpec(shm);
            assert.equal(s.begin % 4096, 0);
            assert.equal(s.size % 4096, 0);
          });
          onlyConfigErrors(() => parseCpuList(cpus));
        },
      ),
      { numRuns: RUNS },
    );
  });
});
