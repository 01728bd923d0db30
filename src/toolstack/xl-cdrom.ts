// xl's cd-insert and cd-eject: change the medium of a devtype=cdrom disk of a
// running domain, and keep the domain's config saying what is in the drive.
// A sponsor may insert only its own volumes (the storage feature's file gate);
// the admin any regular file. Media are opened raw and read-only.

import { realpathSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { DiskSpec } from '../config/types.ts';
import { CdromMedia } from '../engine/cdrom.ts';
import { devnumOf } from '../engine/disk-args.ts';
import { XenodeError } from '../errors.ts';
import { sponsorFile } from './admission.ts';
import type { Domain } from './domain.ts';
import type { Principal } from './principal.ts';
import type { Toolstack } from './toolstack.ts';

function cdrom(d: Domain, vdev: string): DiskSpec {
  const disk = d.rec.config.disk.find((x) => x.vdev === vdev);
  if (!disk) throw new XenodeError('not-found', `domain ${d.name} has no disk ${vdev.slice(0, 32)}`);
  if (disk.devtype !== 'cdrom')
    throw new XenodeError('usage', `${vdev} of domain ${d.name} is not a CD-ROM`, {
      hint: 'give the CD-ROM in the config: disk = ["vdev=xvdc,devtype=cdrom,target="]',
      exitCode: 1,
    });
  return disk;
}

function liveMachine(d: Domain) {
  if (!d.machine?.alive || (d.rec.state !== 'running' && d.rec.state !== 'paused'))
    throw new XenodeError('state', `domain ${d.name} is not running`);
  return d.machine;
}

/** The canonical path of the medium `p` may insert. */
function mediumPath(ts: Toolstack, p: Principal, file: string): string {
  if (!p.admin) return sponsorFile(ts.fileGates, p.sponsor, file, { kind: 'disk', write: false, format: 'raw' });
  if (!isAbsolute(file)) throw new XenodeError('usage', `'${file}' is not an absolute path`);
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    throw new XenodeError('not-found', `no such file: ${file}`);
  }
  if (!statSync(real).isFile()) throw new XenodeError('usage', `${file} is not a regular file`, { exitCode: 1 });
  return real;
}

function setTarget(ts: Toolstack, d: Domain, vdev: string, target: string): void {
  d.rec.config = {
    ...d.rec.config,
    disk: d.rec.config.disk.map((x) => (x.vdev === vdev ? { ...x, target, format: 'raw' as const } : x)),
  };
  ts.touch(d);
}

export async function cdInsert(ts: Toolstack, d: Domain, p: Principal, vdev: string, file: string): Promise<void> {
  const path = mediumPath(ts, p, file);
  await d.serial(async () => {
    const disk = cdrom(d, vdev);
    await new CdromMedia(liveMachine(d)).insert(devnumOf(disk), path, 'raw');
    setTarget(ts, d, vdev, path);
  });
}

export async function cdEject(ts: Toolstack, d: Domain, vdev: string): Promise<void> {
  await d.serial(async () => {
    const disk = cdrom(d, vdev);
    await new CdromMedia(liveMachine(d)).eject(devnumOf(disk));
    setTarget(ts, d, vdev, '');
  });
}
