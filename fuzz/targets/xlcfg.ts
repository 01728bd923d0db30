// xl.cfg text (a file, the web UI's pasted config, `-o` style overrides) into
// the lexer, parser and validator: the result is a config or a located
// XenodeError('config') with a one-line message, never another exception.

import fc from 'fast-check';
import { CONFIG_KEYS, loadConfigText } from '../../src/config/index.ts';
import { configToJson } from '../../src/config/validate.ts';
import { XenodeError } from '../../src/errors.ts';
import { type FuzzTarget, invariant } from '../target.ts';

const clean = (e: unknown): boolean => e instanceof XenodeError && (e.kind === 'config' || e.kind === 'not-found');

export function target(): FuzzTarget {
  const keys = CONFIG_KEYS.map((k) => k.name);
  const values = [
    '"web1"',
    "'hvm'",
    '1',
    '512',
    '0x1f',
    "['file:/x,xvda,w']",
    "['mac=00:16:3e:00:00:01,bridge=xenbr0,rate=10Mb/s']",
    '["id=a, begin=0x1000, size=0x1000"]',
    '"0-3,^1"',
    "['backendtype=xenode,vdev=xvdb,target=/tmp/x.img']",
    '[ ]',
    '"all"',
  ];
  return {
    name: 'xlcfg',
    about: 'xl.cfg text through lexer, parser and validator: a config or a located config XenodeError',
    files: ['src/config/'],
    dict: [
      ...keys,
      ...values,
      ' = ',
      '\n',
      '#',
      '"',
      "'",
      '[',
      ']',
      ',',
      '\\',
      '+=',
      ';',
      '0x',
      '99999999999999999999',
    ],
    generate: fc
      .array(fc.tuple(fc.constantFrom(...keys), fc.constantFrom(...values)), { maxLength: 12 })
      .map((kv) => new Uint8Array(Buffer.from(kv.map(([k, v]) => `${k} = ${v}\n`).join('')))),
    run(data) {
      const text = data.toString('utf8');
      let loaded: ReturnType<typeof loadConfigText>;
      try {
        loaded = loadConfigText(text, { file: 'fuzz.cfg', baseDir: '/nonexistent-fuzz', checkFiles: false });
      } catch (e) {
        if (!clean(e)) throw e;
        const x = e as XenodeError;
        invariant(!x.message.includes('\n'), `a config error spans lines: ${JSON.stringify(x.message)}`);
        return;
      }
      // A config that validated must print as JSON (create -n) without throwing.
      configToJson(loaded.config);
    },
  };
}
