// Restore overrides: what may change on restore and what the saved machine fixes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { XenodeError } from '../../src/errors.ts';
import {
  applyOverrides,
  parseMeta,
  pinMachine,
  savedCpuModel,
} from '../../src/features/saverestore/domain-transfer.ts';

const saved = loadConfigText(
  'name = "web1"\nmemory = 256\nvif = ["mac=00:16:3e:00:00:01,ip=10.0.0.5"]\ndisk = ["/img/a.img,raw,xvdb,rw"]\n',
  { file: 'web1.cfg', baseDir: '/', checkFiles: false },
).config;

function refused(overrides: string[], re: RegExp): void {
  assert.throws(
    () => applyOverrides(saved, overrides, '/'),
    (e: unknown) => e instanceof XenodeError && re.test(e.message),
  );
}

describe('restore overrides', () => {
  it('no overrides: the saved config as it is', () => {
    assert.equal(applyOverrides(saved, []), saved);
  });

  it('name, uuid, on_* and scheduling may change', () => {
    const c = applyOverrides(
      saved,
      ['name=web2', 'uuid=12345678-1234-1234-1234-123456789abc', 'on_crash="preserve"', 'cpu_weight=512'],
      '/',
    );
    assert.equal(c.name, 'web2');
    assert.equal(c.uuid, '12345678-1234-1234-1234-123456789abc');
    assert.equal(c.on_crash, 'preserve');
    assert.equal(c.cpu_weight, 512);
    assert.equal(c.memory, 256, 'the rest stays');
    assert.deepEqual(c.disk, saved.disk);
  });

  it('a disk may point at another image, relative paths from the caller', () => {
    const c = applyOverrides(saved, ['disk=["b.img,raw,xvdb,rw"]'], '/elsewhere');
    assert.equal(c.disk[0]?.target, '/elsewhere/b.img');
  });

  it('refuses what the machine state fixes', () => {
    refused(['memory=512'], /'memory' cannot be changed on restore/);
    refused(['vcpus=2'], /'vcpus' cannot be changed on restore/);
    refused(['kernel=/boot/vmlinuz'], /'kernel' cannot be changed/);
    refused(['disk=["/img/a.img,raw,xvdc,rw"]'], /disk= must keep the saved devices \(xvdb\/disk\)/);
    refused(['vif=[]'], /vif= must keep the saved 1 network device/);
  });

  it('a bad value is a config error with its location', () => {
    refused(['on_crash="explode"'], /on_crash/);
  });

  it('metadata must have its fields', () => {
    assert.throws(() => parseMeta({ name: 'x' }, 'save file'), /metadata field '\w+' is missing/);
  });

  it('keeps the machine and CPU model the state was saved with', () => {
    const base = {
      name: 'web1',
      uuid: 'u',
      sponsor: 'admin',
      sourceHost: 'h',
      sourceDomid: 3,
      qemuVersion: '7.2.22',
      accel: 'tcg',
      savedAt: 'now',
      writer: 'xenode',
      targetMiB: 256,
      maxMiB: 256,
    };
    const oldPc = parseMeta({ ...base, machine: 'pc' }, 'save file');
    assert.equal(pinMachine(saved, oldPc).machine, 'pc', 'auto stays the machine it was saved on');
    assert.equal(pinMachine({ ...saved, machine: 'q35' }, oldPc).machine, 'q35', 'an explicit machine is kept');
    assert.equal(savedCpuModel(oldPc), 'max', 'files without a CPU model ran max under TCG');
    const now = parseMeta({ ...base, machine: 'q35', cpu: 'Nehalem,+rdrand' }, 'save file');
    assert.equal(savedCpuModel(now), 'Nehalem,+rdrand');
    assert.equal(savedCpuModel(parseMeta({ ...base, accel: 'kvm', machine: 'q35' }, 'save file')), 'host');
    assert.throws(
      () => parseMeta({ ...base, machine: 'q35', cpu: 'max -device evil' }, 'save file'),
      /metadata field 'cpu' is not a CPU model/,
    );
  });
});
