// The NoCloud seed's files and the keys that make it, and firmware= / bios=.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { seedFiles } from '../../src/features/cloudinit/seed.ts';

const dir = mkdtempSync('/tmp/ci-seed-');
after(() => rmSync(dir, { recursive: true, force: true }));
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx0eW5uZ2Zvb2JhcmJhemJhcmZvb2JhcmJhemJh me@host';

function cfg(text: string, fileCheck = false) {
  return loadConfigText(`name = "t"\n${text}\n`, {
    file: join(dir, 't.cfg'),
    baseDir: dir,
    overrides: [],
    fileCheck: fileCheck ? () => undefined : undefined,
  }).config;
}

describe('firmware= and bios=', () => {
  it('type="hvm" boots SeaBIOS by default, OVMF with firmware="uefi" or bios="ovmf"', () => {
    assert.equal(cfg('type = "hvm"').firmware, 'seabios');
    assert.equal(cfg('type = "hvm"\nfirmware = "uefi"').firmware, 'ovmf');
    assert.equal(cfg('type = "hvm"\nbios = "ovmf"').firmware, 'ovmf');
    assert.equal(cfg('type = "hvm"\nfirmware = "bios"').firmware, 'seabios');
    assert.equal(cfg('').firmware, undefined);
  });
  it('refuses what would not apply', () => {
    assert.throws(() => cfg('firmware = "uefi"'), /applies to type="hvm"/);
    assert.throws(() => cfg('type = "hvm"\nfirmware = "uefi"\nbios = "seabios"'), /contradicting/);
    assert.throws(() => cfg('type = "hvm"\nfirmware = "pvgrub64"'), /firmware/);
    assert.throws(() => cfg('type = "hvm"\nkernel = "/bin/true"\nfirmware = "uefi"'), /UEFI firmware with kernel=/);
  });
});

describe('cloud_init_* keys and the seed', () => {
  it('hostname and keys go into meta-data as JSON; no key, no seed', () => {
    assert.equal(cfg('').cloud_init, undefined);
    const c = cfg(`cloud_init_hostname = "web1"\ncloud_init_ssh_keys = ['${KEY}']`);
    assert.deepEqual(c.cloud_init, { hostname: 'web1', ssh_keys: [KEY] });
    const f = seedFiles({ spec: c.cloud_init ?? {}, instanceId: 'u-1', name: 't' });
    assert.deepEqual(JSON.parse(f['meta-data']), {
      'instance-id': 'u-1',
      'local-hostname': 'web1',
      'public-keys': [KEY],
    });
    assert.match(f['user-data'], /^#cloud-config/);
  });
  it('refuses a hostname or key that could break out of its place', () => {
    assert.throws(() => cfg('cloud_init_hostname = "a\\nruncmd: [reboot]"'), /hostname/);
    assert.throws(() => cfg('cloud_init_hostname = "-bad"'), /hostname/);
    assert.throws(() => cfg(`cloud_init_ssh_keys = ['${KEY}\\nssh-rsa AAAA']`), /invalid cloud_init_ssh_keys/);
  });
  it('user-data inline, or from a file the CLI reads; a file is refused where files are checked for a sponsor', () => {
    assert.equal(
      cfg('cloud_init_user_data = "#cloud-config\\nruncmd: [true]\\n"').cloud_init?.user_data,
      '#cloud-config\nruncmd: [true]\n',
    );
    writeFileSync(join(dir, 'ud.yaml'), '#cloud-config\npackages: []\n');
    assert.equal(cfg('cloud_init_user_data = "ud.yaml"').cloud_init?.user_data, '#cloud-config\npackages: []\n');
    assert.throws(() => cfg('cloud_init_user_data = "/etc/shadow"', true), /only the CLI or the admin/);
    assert.throws(() => cfg('cloud_init_user_data = "missing.yaml"'), /cannot read user-data file/);
    writeFileSync(join(dir, 'big.yaml'), `#cloud-config\n${'x'.repeat(70_000)}`);
    assert.throws(() => cfg('cloud_init_user_data = "big.yaml"'), /64 KiB/);
  });
});
