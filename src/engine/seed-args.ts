// The cloud-init NoCloud seed as a read-only CD-ROM: a virtio-scsi HBA of its own
// (the Debian cloud kernel has virtio_scsi and sr_mod but no AHCI driver, and the
// disks feature's HBA is that feature's) and one scsi-cd on it.

/** Root-bus slot of the seed's HBA: clear of the other fixed slots (0x1a-0x1e, 0x10-0x17). */
export const SEED_HBA_SLOT = 0x19;

export function seedCdromArgs(isoPath: string): string[] {
  const blockdev = {
    driver: 'raw',
    'node-name': 'cidata',
    'read-only': true,
    file: { driver: 'file', filename: isoPath, 'read-only': true },
  };
  return [
    '-device',
    JSON.stringify({ driver: 'virtio-scsi-pci', id: 'cidata-hba', addr: `0x${SEED_HBA_SLOT.toString(16)}` }),
    '-blockdev',
    JSON.stringify(blockdev),
    '-device',
    JSON.stringify({ driver: 'scsi-cd', id: 'cidata-cd', bus: 'cidata-hba.0', drive: 'cidata' }),
  ];
}
