// Generated MACs, host port settings, guest addressing and xl's network-list layout.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseMac } from '../../src/config/vif.ts';
import { netdevAddArgs, nicArgs, nicDriver } from '../../src/engine/net-args.ts';
import { guestIpCmdline, hostPortFromEnv } from '../../src/features/network/addressing.ts';
import { networkListHeader, networkListRow } from '../../src/features/network/commands.ts';
import type { VifView } from '../../src/features/network/manager.ts';
import { generateMac, hostPortMac, macFromString, macToString } from '../../src/net/mac.ts';

describe('MAC generation', () => {
  it('uses Xen OUI 00:16:3e with the top bit of octet 4 clear, and is a valid unicast MAC', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30 }), fc.nat(64), (name, devid) => {
        const mac = generateMac(name, devid, new Set());
        assert.match(mac, /^00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$/);
        assert.equal(parseMac(mac), mac);
      }),
      { numRuns: 500 },
    );
  });

  it('is stable per domain name and device index', () => {
    assert.equal(generateMac('web', 0, new Set()), generateMac('web', 0, new Set()));
    assert.notEqual(generateMac('web', 0, new Set()), generateMac('web', 1, new Set()));
    assert.notEqual(generateMac('web', 0, new Set()), generateMac('db', 0, new Set()));
  });

  it('picks another MAC when the stable one is taken on the host', () => {
    const first = generateMac('web', 0, new Set());
    const inUse = new Set([first]);
    const second = generateMac('web', 0, inUse);
    assert.notEqual(second, first);
    assert.equal(generateMac('web', 0, inUse), second, 'still deterministic');
  });

  it('gives a thousand domains a thousand different MACs', () => {
    const inUse = new Set<string>();
    for (let i = 0; i < 1000; i++) inUse.add(generateMac(`d${i}`, 0, inUse));
    assert.equal(inUse.size, 1000);
  });

  it('converts between text and integers', () => {
    assert.equal(macToString(macFromString('00:16:3e:0a:0b:0c')), '00:16:3e:0a:0b:0c');
    assert.equal(macFromString('ff:ff:ff:ff:ff:ff'), 0xffffffffffff);
    assert.throws(() => macFromString('00:16:3e'));
  });

  it('gives the host port a stable, locally administered MAC', () => {
    assert.equal(hostPortMac('xn0'), hostPortMac('xn0'));
    assert.notEqual(hostPortMac('xn0'), hostPortMac('xn1'));
    assert.match(hostPortMac('xn0'), /^02:/);
  });
});

describe('host port and guest addressing', () => {
  it('defaults to xn0 with 10.200.0.1/24, and reads XENODE_NET_HOSTPORT', () => {
    assert.deepEqual(hostPortFromEnv(undefined), { name: 'xn0', address: '10.200.0.1/24', mtu: 1500 });
    assert.equal(hostPortFromEnv('none'), undefined);
    assert.deepEqual(hostPortFromEnv('xnt,10.9.0.1/16,mtu=9000'), { name: 'xnt', address: '10.9.0.1/16', mtu: 9000 });
    assert.throws(() => hostPortFromEnv('a-name-far-too-long-for-linux'), /invalid host port name/);
    assert.throws(() => hostPortFromEnv('xn0,10.0.0.300/24'), /invalid host port address/);
  });

  it('passes the first vif address with a /24 default and the host port as gateway when on its subnet', () => {
    const hp = { name: 'xn0', address: '10.200.0.1/24', mtu: 1500 };
    assert.deepEqual(guestIpCmdline('10.200.0.5', true, hp), ['xenode.ip=10.200.0.5/24', 'xenode.gw=10.200.0.1']);
    assert.deepEqual(guestIpCmdline('10.200.0.5/28', true, hp), ['xenode.ip=10.200.0.5/28', 'xenode.gw=10.200.0.1']);
    assert.deepEqual(guestIpCmdline('192.168.1.5', true, hp), ['xenode.ip=192.168.1.5/24']);
    assert.deepEqual(guestIpCmdline('10.200.0.5', false, hp), ['xenode.ip=10.200.0.5/24'], 'bridge vif: no gw');
    assert.deepEqual(guestIpCmdline('fd00::5 10.200.0.6', true, undefined), ['xenode.ip=10.200.0.6/24']);
    assert.deepEqual(guestIpCmdline(undefined, true, hp), []);
  });
});

describe('QEMU NIC arguments', () => {
  it('maps xl models to QEMU drivers', () => {
    assert.equal(nicDriver(undefined), 'virtio-net-pci');
    assert.equal(nicDriver('virtio'), 'virtio-net-pci');
    assert.equal(nicDriver('e1000'), 'e1000');
    assert.equal(nicDriver('rtl8139'), 'rtl8139');
  });

  it('builds a stream netdev (QEMU listens) and a TAP netdev with vhost off', () => {
    const s = nicArgs({
      devid: 1,
      mac: '00:16:3e:00:00:01',
      mtu: 9000,
      backend: { kind: 'stream', path: '/r/vif1.sock' },
    });
    assert.deepEqual(s, [
      '-netdev',
      'stream,id=vif1,server=on,addr.type=unix,addr.path=/r/vif1.sock',
      '-device',
      'virtio-net-pci,id=vif1-nic,netdev=vif1,mac=00:16:3e:00:00:01,host_mtu=9000',
    ]);
    const t = nicArgs({
      devid: 0,
      mac: '00:16:3e:00:00:02',
      model: 'e1000',
      mtu: 9000,
      backend: { kind: 'tap', ifname: 'vif3.0' },
    });
    assert.deepEqual(t, [
      '-netdev',
      'tap,id=vif0,ifname=vif3.0,script=no,downscript=no,vhost=off',
      '-device',
      'e1000,id=vif0-nic,netdev=vif0,mac=00:16:3e:00:00:02',
    ]);
    assert.deepEqual(netdevAddArgs({ devid: 2, mac: 'x', backend: { kind: 'stream', path: '/p' } }), {
      type: 'stream',
      id: 'vif2',
      server: true,
      addr: { type: 'unix', path: '/p' },
    });
  });
});

describe('network-list layout', () => {
  it("matches xl's columns", () => {
    const v = {
      devid: 0,
      mac: '00:16:3e:5a:01:02',
      state: 4,
      backend_path: '/local/domain/0/backend/vif/3/0',
    } as VifView;
    assert.equal(
      networkListHeader(),
      'Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref BE-path                       ',
    );
    assert.equal(
      networkListRow(v),
      '0   0  00:16:3e:5a:01:02     0     4     -1    -1/-1          /local/domain/0/backend/vif/3/0',
    );
  });
});
