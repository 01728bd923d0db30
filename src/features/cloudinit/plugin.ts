// cloud-init NoCloud seed as a toolstack plugin: for a domain with cloud_init_*
// keys, the seed ISO is built in its run directory before each QEMU start and
// attached as a read-only CD-ROM (docs/guests.md).

import { join } from 'node:path';
import { seedCdromArgs } from '../../engine/seed-args.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { LaunchContribution, ToolstackPlugin } from '../../toolstack/plugin.ts';
import { buildSeedIso } from './seed.ts';

export function cloudInitPlugin(): ToolstackPlugin {
  return {
    name: 'cloud-init',
    async beforeLaunch(d: Domain): Promise<LaunchContribution | undefined> {
      const spec = d.rec.config.cloud_init;
      if (!spec) return undefined;
      const iso = join(d.rec.runDir, 'cidata.iso');
      await buildSeedIso({ spec, instanceId: d.rec.uuid, name: d.rec.config.name }, iso);
      return { qemuArgs: seedCdromArgs(iso) };
    },
  };
}
