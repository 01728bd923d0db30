// What a save file or a migration carries besides QEMU's state: the config, the
// metadata and the store subtree, checked as restore and the migration target
// check them (parseMeta, parseConfigJson, pinMachine, checkMetaMemory,
// checkHostFiles), and the store subtree imported under the domain's home.

import { loadConfigText } from '../../src/config/index.ts';
import { XenodeError } from '../../src/errors.ts';
import {
  checkHostFiles,
  checkMetaMemory,
  parseConfigJson,
  parseMeta,
  pinMachine,
} from '../../src/features/saverestore/domain-transfer.ts';
import { StoreError } from '../../src/store/errors.ts';
import { ControlStore, TOOLSTACK } from '../../src/store/index.ts';
import { invariant } from '../target.ts';

export const CONFIG = JSON.parse(
  JSON.stringify(
    loadConfigText("name = 'web1'\nmemory = 256\nvcpus = 2\n", { file: 'fuzz.cfg', baseDir: '/', checkFiles: false })
      .config,
  ),
) as unknown;

export const META = {
  name: 'web1',
  uuid: '6c1f6f4e-8c1c-4f63-9d2a-0f0e0b0a0c0d',
  sponsor: 'alice',
  sourceHost: 'h1',
  sourceDomid: 3,
  qemuVersion: '7.2.0',
  machine: 'pc-q35-7.2',
  cpu: 'qemu64,+ssse3',
  accel: 'tcg',
  savedAt: '2026-12-07T00:00:00Z',
  writer: 'xenode 0.1.0',
  targetMiB: 256,
  maxMiB: 256,
  wasRunning: true,
};

export const STORE = {
  format: 'xenode-store-snapshot',
  version: 1,
  nodes: [
    { path: '', value: '', perms: [{ id: 3, perm: 'n' }] },
    { path: 'data', value: 'x', perms: [{ id: 3, perm: 'n' }] },
    {
      path: 'data/k',
      value: 'v',
      perms: [
        { id: 3, perm: 'r' },
        { id: 7, perm: 'r' },
      ],
    },
  ],
};

export const cleanRefusal = (e: unknown): boolean => e instanceof XenodeError || e instanceof StoreError;

/** The checks a restore or an incoming migration applies to config and metadata. */
export function checkTransfer(config: unknown, meta: unknown): void {
  const m = parseMeta(meta, 'fuzz');
  const cfg = pinMachine(parseConfigJson(config, 'fuzz'), m);
  checkMetaMemory(cfg, m, 'fuzz');
  checkHostFiles(cfg);
}

/** A saved store subtree imported under a fresh domain's home: nothing outside that home may change. */
export function importStore(saved: unknown): void {
  const cs = new ControlStore();
  try {
    cs.introduceDomain(9);
    cs.write(TOOLSTACK, '/local/domain/8/secret', 's');
    cs.write(TOOLSTACK, '/tool/x', 'y');
    const other = () => JSON.stringify([cs.exportSubtree('/local/domain/8'), cs.exportSubtree('/tool')]);
    const before = other();
    cs.importSubtree('/local/domain/9', saved as never, { domidMap: new Map([[3, 9]]) });
    invariant(other() === before, 'a saved store subtree changed nodes outside the domain home');
  } finally {
    cs.close();
  }
}
