// Finding a domain's QEMU from its command line alone (xenoded --recover).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQemuCmdline } from '../../src/engine/qemu-scan.ts';

const DIR = '/var/lib/xenode/domains';

function cmdline(name: string, domid: number, dir = DIR, mem = ['-m', '128M,slots=4,maxmem=512M']): string {
  return [
    'qemu-system-x86_64',
    '-name',
    `${name},process=xenode-d${domid},debug-threads=on`,
    '-uuid',
    '5b0c4a4e-8f5c-4f6e-9d0e-0d1c0e7e7a11',
    '-smp',
    '1,maxcpus=4',
    ...mem,
    '-qmp',
    `unix:${dir}/${domid}/qmp.sock,server=on,wait=off`,
    '',
  ].join('\0');
}

describe('parseQemuCmdline', () => {
  it('reads domid, name, uuid, memory and vCPUs', () => {
    assert.deepEqual(parseQemuCmdline(42, cmdline('web.1', 7), DIR), {
      pid: 42,
      domid: 7,
      runDir: `${DIR}/7`,
      name: 'web.1',
      uuid: '5b0c4a4e-8f5c-4f6e-9d0e-0d1c0e7e7a11',
      memoryMiB: 128,
      maxmemMiB: 512,
      vcpus: 1,
      maxvcpus: 4,
    });
  });

  it('undoes QEMU’s doubled commas in the name', () => {
    assert.equal(parseQemuCmdline(1, cmdline('a,,b', 3), DIR)?.name, 'a,b');
  });

  it('ignores another XENODE_DIR’s QEMUs and other processes', () => {
    assert.equal(parseQemuCmdline(1, cmdline('x', 3, '/tmp/other/domains'), DIR), undefined);
    assert.equal(
      parseQemuCmdline(1, ['qemu-system-x86_64', '-name', 'plain', '-m', '128M', ''].join('\0'), DIR),
      undefined,
    );
    // A directory whose name only starts like this one's is another.
    assert.equal(parseQemuCmdline(1, cmdline('x', 3, `${DIR}2`), DIR), undefined);
  });

  it('takes maxmem as memory when there is no hot-plug', () => {
    const q = parseQemuCmdline(1, cmdline('x', 2, DIR, ['-m', '256M']), DIR);
    assert.equal(q?.memoryMiB, 256);
    assert.equal(q?.maxmemMiB, 256);
  });
});
