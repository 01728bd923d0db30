// The NoCloud seed: meta-data and user-data on an ISO 9660 volume labelled
// `cidata`, the layout cloud-init's NoCloud datasource looks for. meta-data is
// written as JSON, which is YAML too, so no value from the config can change its
// structure; user-data is the user's own text, for the guest only.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloudInitSpec } from '../../config/types.ts';
import { XenodeError } from '../../errors.ts';

export interface SeedInput {
  spec: CloudInitSpec;
  /** The domain's uuid: cloud-init runs its once-per-instance steps once per uuid. */
  instanceId: string;
  /** The domain's name, the hostname when cloud_init_hostname is not given. */
  name: string;
}

export function seedFiles(i: SeedInput): { 'meta-data': string; 'user-data': string } {
  const meta: Record<string, unknown> = {
    'instance-id': i.instanceId,
    'local-hostname': i.spec.hostname ?? i.name,
  };
  if (i.spec.ssh_keys?.length) meta['public-keys'] = i.spec.ssh_keys;
  return {
    'meta-data': `${JSON.stringify(meta, null, 2)}\n`,
    'user-data': i.spec.user_data ?? '#cloud-config\n{}\n',
  };
}

/** Writes the seed ISO to `isoPath` (genisoimage, from Debian's genisoimage package). */
export async function buildSeedIso(i: SeedInput, isoPath: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'xenode-cidata-'));
  try {
    for (const [name, text] of Object.entries(seedFiles(i))) await writeFile(join(dir, name), text);
    await run(
      'genisoimage',
      ['-quiet', '-output', isoPath, '-volid', 'cidata', '-joliet', '-rock', 'user-data', 'meta-data'],
      dir,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', (e) => {
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? new XenodeError('not-found', `${cmd} not found on this host`, { hint: `apt-get install ${cmd}` })
          : e,
      );
    });
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new XenodeError('internal', `${cmd} failed: ${err.trim().slice(-200)}`)),
    );
  });
}
