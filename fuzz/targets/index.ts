// The fuzz targets by name. Loaded lazily, so coverage is on before their modules compile.

import type { FuzzTarget } from '../target.ts';

export const TARGETS: Record<string, () => Promise<FuzzTarget>> = {
  switch: async () => (await import('./switch.ts')).target(),
  'vhost-blk': async () => (await import('./vhost-blk.ts')).target(),
  'vhost-user': async () => (await import('./vhost-user.ts')).target(),
  xenstore: async () => (await import('./xenstore.ts')).target(),
  'save-file': async () => (await import('./save-file.ts')).target(),
  migrate: async () => (await import('./migrate.ts')).target(),
  api: async () => (await import('./api.ts')).target(),
  xlcfg: async () => (await import('./xlcfg.ts')).target(),
  qmp: async () => (await import('./qmp.ts')).target(),
  // The harness's own tests (not part of `all`).
  planted: async () => (await import('./planted.ts')).planted(),
  'planted-hang': async () => (await import('./planted.ts')).plantedHang(),
};

export const TARGET_NAMES = Object.keys(TARGETS).filter((n) => !n.startsWith('planted'));
