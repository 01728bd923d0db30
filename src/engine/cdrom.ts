// QMP for xl's cd-insert and cd-eject: the medium of a CD-ROM that is already
// in the machine (a scsi-cd, found by its device id), opened read-only.

import { diskIds } from './disk-args.ts';
import type { QemuMachine } from './qemu-machine.ts';

export class CdromMedia {
  constructor(private readonly m: QemuMachine) {}

  private get qmp() {
    return this.m.qmpClient;
  }

  /**
   * Put the image at `file` (a canonical path the caller vouched for) into the
   * CD-ROM with Xen device number `devnum`. raw is opened as raw, so a header
   * in the file never makes QEMU open another file.
   */
  async insert(devnum: number, file: string, format: 'raw' | 'qcow2'): Promise<void> {
    await this.qmp.execute(
      'blockdev-change-medium',
      { id: diskIds(devnum).device, filename: file, format, 'read-only-mode': 'read-only' },
      30_000,
    );
  }

  /** Eject, even if the guest locked the tray (xl's cd-eject does not ask the guest either). */
  async eject(devnum: number): Promise<void> {
    await this.qmp.execute('eject', { id: diskIds(devnum).device, force: true });
  }
}
