// The switch core without QEMU: learning, forwarding, flooding, aging,
// anti-spoofing, the sponsor policy and its counters; and a stream port against
// a Unix socket server that speaks QEMU's length-prefixed framing.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HOST_SPONSOR, type PortInfo, SponsorIsolation } from '../../src/net/policy.ts';
import { StreamPort } from '../../src/net/stream-port.ts';
import { SwitchCore, type SwitchPort, sourceMacOf, zeroCounters } from '../../src/net/switch-core.ts';
import { arpRequest, ethernet, macBytes } from '../helpers/frames.ts';

class FakePort implements SwitchPort {
  readonly counters = zeroCounters();
  readonly got: Buffer[] = [];
  accept = true;
  readonly info: PortInfo;
  readonly sourceMac: number | undefined;
  /** A vif sends from `mac` only; a host port from any MAC. */
  constructor(id: string, sponsor = 'admin', kind: PortInfo['kind'] = 'vif', mac?: string) {
    this.info = { id, kind, sponsor, mac };
    this.sourceMac = sourceMacOf(this.info);
  }
  send(frame: Uint8Array): boolean {
    if (!this.accept) return false;
    this.got.push(Buffer.from(frame));
    return true;
  }
}

const MAC = (n: number) => `00:16:3e:00:00:${n.toString(16).padStart(2, '0')}`;

function setup(sponsors: string[], now = () => 0) {
  const policy = new SponsorIsolation();
  const core = new SwitchCore(policy, { now, macAgeMs: 1000 });
  // Port i is the vif with MAC i + 1.
  const ports = sponsors.map((s, i) => new FakePort(`p${i}`, s, 'vif', MAC(i + 1)));
  for (const p of ports) core.addPort(p);
  return { core, ports, policy };
}

describe('learning switch', () => {
  it('floods unknown destinations and then forwards to the learned port only', () => {
    const { core, ports } = setup(['admin', 'admin', 'admin']);
    const [a, b, c] = ports as [FakePort, FakePort, FakePort];
    core.input(a, ethernet(MAC(2), MAC(1), 0x0800, [1]));
    assert.equal(b.got.length, 1);
    assert.equal(c.got.length, 1);
    assert.equal(a.got.length, 0, 'never back out of the ingress port');
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800, [2]));
    assert.equal(a.got.length, 1, 'MAC 1 was learned on port a');
    assert.equal(c.got.length, 1, 'no flood once learned');
    core.input(a, ethernet(MAC(2), MAC(1), 0x0800, [3]));
    assert.equal(b.got.length, 2);
    assert.equal(c.got.length, 1);
    assert.deepEqual(
      core
        .macTable()
        .map((e) => e.port)
        .sort(),
      ['p0', 'p1'],
    );
  });

  it('floods broadcast and multicast, even to learned MACs', () => {
    const { core, ports } = setup(['admin', 'admin', 'admin']);
    const [a, b, c] = ports as [FakePort, FakePort, FakePort];
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800));
    core.input(a, arpRequest(MAC(1), '10.0.0.1', '10.0.0.2'));
    assert.equal(b.got.length, 1);
    assert.equal(c.got.length, 2);
    core.input(a, ethernet('01:00:5e:00:00:01', MAC(1), 0x0800));
    assert.equal(b.got.length, 2);
  });

  it('follows a MAC that moves to another port and drops frames for a MAC behind the ingress port', () => {
    const { core, ports } = setup(['admin', 'admin']);
    const [a, b] = ports as [FakePort, FakePort];
    const h = new FakePort('host', HOST_SPONSOR, 'host');
    core.addPort(h);
    // MAC 1 first behind the host port (say, before its domain migrated in), then on its vif.
    core.input(h, ethernet(MAC(9), MAC(1), 0x0800));
    core.input(a, ethernet(MAC(9), MAC(1), 0x0800));
    const [atA, atH] = [a.got.length, h.got.length];
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800));
    assert.equal(a.got.length, atA + 1, 'MAC 1 now lives behind a');
    assert.equal(h.got.length, atH, 'and no longer behind the host port');
    core.input(h, ethernet(MAC(9), MAC(7), 0x0800));
    const before = a.got.length + b.got.length;
    core.input(h, ethernet(MAC(7), MAC(8), 0x0800));
    assert.equal(a.got.length + b.got.length, before, 'destination is on the ingress port: filtered');
  });

  it('forgets MACs after the ageing time and floods again', () => {
    let t = 0;
    const { core, ports } = setup(['admin', 'admin', 'admin'], () => t);
    const [a, b, c] = ports as [FakePort, FakePort, FakePort];
    core.input(a, ethernet(MAC(2), MAC(1), 0x0800));
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800));
    t = 5000;
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800));
    assert.equal(c.got.length, 2, 'aged out: flooded to c as well');
    assert.equal(a.got.length, 2);
  });

  it('forgets the MACs of a removed port', () => {
    const { core, ports } = setup(['admin', 'admin']);
    const [a, b] = ports as [FakePort, FakePort];
    core.input(a, ethernet(MAC(2), MAC(1), 0x0800));
    core.removePort('p0');
    assert.equal(core.macTable().length, 0);
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800));
    assert.equal(a.got.length, 0);
  });

  it('caps the MAC table so cycling source MACs cannot grow it', () => {
    const core = new SwitchCore(new SponsorIsolation(), { maxMacs: 4 });
    // Only the host port may send from many MACs.
    const a = new FakePort('host', HOST_SPONSOR, 'host');
    core.addPort(a);
    for (let i = 0; i < 50; i++) core.input(a, ethernet(MAC(200), MAC(i + 1), 0x0800));
    assert.equal(core.macTable().length, 4);
  });

  it('counts packets, bytes, short frames and congestion drops', () => {
    const { core, ports } = setup(['admin', 'admin']);
    const [a, b] = ports as [FakePort, FakePort];
    const f = ethernet(MAC(2), MAC(1), 0x0800, [0, 0, 0, 0]);
    core.input(a, f);
    core.input(a, Buffer.alloc(10));
    b.accept = false;
    core.input(a, f);
    assert.deepEqual(a.counters, {
      ...zeroCounters(),
      rxPackets: 3,
      rxBytes: 2 * f.length + 10,
      errors: 1,
    });
    assert.deepEqual(b.counters, { ...zeroCounters(), txPackets: 1, txBytes: f.length, txDrops: 1 });
  });
});

describe('anti-spoofing', () => {
  /** Switch with vifs a (MAC 1) and b (MAC 2) of one sponsor, and the host port. */
  function spoofSetup() {
    const { core, ports } = setup(['admin', 'admin']);
    const [a, b] = ports as [FakePort, FakePort];
    const h = new FakePort('host', HOST_SPONSOR, 'host');
    core.addPort(h);
    return { core, a, b, h };
  }

  /** An ARP request whose Ethernet source is `eth` but whose sender hardware address is `sender`. */
  function arpFrom(eth: string, sender: string): Buffer {
    const f = arpRequest(sender, '10.0.0.2', '10.0.0.1');
    Buffer.from(macBytes(eth)).copy(f, 6);
    return f;
  }

  it("drops and counts a vif's frames from another domain's MAC, and never learns it there", () => {
    const { core, a, b, h } = spoofSetup();
    core.input(b, ethernet(MAC(9), MAC(2), 0x0800));
    const [atA, atB, atH] = [a.got.length, b.got.length, h.got.length];
    // a sends as b, unicast and broadcast: nobody gets either.
    core.input(a, ethernet(MAC(9), MAC(2), 0x0800));
    core.input(a, ethernet('ff:ff:ff:ff:ff:ff', MAC(2), 0x0800));
    assert.deepEqual([a.got.length, b.got.length, h.got.length], [atA, atB, atH]);
    assert.equal(a.counters.spoofDrops, 2);
    assert.equal(a.counters.rxPackets, 2, 'still counted as received from the port');
    // The host's traffic for b's MAC still reaches b only.
    core.input(h, ethernet(MAC(2), '02:00:00:00:00:01', 0x0800));
    assert.equal(b.got.length, atB + 1);
    assert.equal(a.got.length, atA);
    assert.deepEqual(
      core.macTable().map((e) => [e.mac, e.port]),
      [
        [0x00163e000002, 'p1'],
        [0x020000000001, 'host'],
      ],
    );
    assert.equal(b.counters.spoofDrops, 0);
  });

  it('drops a vif frame from a made-up or group source MAC', () => {
    const { core, a, b, h } = spoofSetup();
    core.input(a, ethernet(MAC(9), '00:16:3e:7f:00:01', 0x0800));
    core.input(a, ethernet(MAC(9), '01:00:5e:00:00:01', 0x0800));
    assert.equal(b.got.length + h.got.length, 0);
    assert.equal(a.counters.spoofDrops, 2);
    assert.equal(core.macTable().length, 0);
  });

  it("drops ARP whose sender hardware address is not the vif's own, tagged or not", () => {
    const { core, a, b, h } = spoofSetup();
    const tag = (f: Buffer) =>
      Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x05]), f.subarray(12)]);
    core.input(a, arpFrom(MAC(1), MAC(2)));
    core.input(a, tag(arpFrom(MAC(1), MAC(2))));
    // Cut right after the sender address: still checked.
    core.input(a, arpFrom(MAC(1), MAC(2)).subarray(0, 28));
    assert.equal(b.got.length + h.got.length, 0);
    assert.equal(a.counters.spoofDrops, 3);
    // Its own ARP, plain and tagged, goes through; so does one cut before the sender
    // address (it claims nothing, and every receiver discards it).
    core.input(a, arpFrom(MAC(1), MAC(1)));
    core.input(a, tag(arpFrom(MAC(1), MAC(1))));
    core.input(a, arpFrom(MAC(1), MAC(2)).subarray(0, 22));
    assert.equal(b.got.length, 3);
    // The host port is a VLAN trunk: a guest's own tagged frame never reaches it (test/unit/net-vlan.test.ts).
    assert.equal(h.got.length, 2);
    assert.equal(a.counters.spoofDrops, 3);
  });

  it('lets the host port send from any MAC', () => {
    const { core, a, b, h } = spoofSetup();
    core.input(h, ethernet('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', 0x0806));
    core.input(h, arpFrom('02:00:00:00:00:02', '02:00:00:00:00:03'));
    assert.equal(a.got.length, 2);
    assert.equal(b.got.length, 2);
    assert.equal(h.counters.spoofDrops, 0);
  });

  it('forwards nothing from a vif port without a valid MAC', () => {
    const core = new SwitchCore(new SponsorIsolation());
    const other = new FakePort('o', 'admin', 'vif', MAC(2));
    const none = new FakePort('n');
    const bad = new FakePort('x', 'admin', 'vif', 'not-a-mac');
    for (const p of [other, none, bad]) core.addPort(p);
    core.input(none, ethernet(MAC(2), MAC(1), 0x0800));
    core.input(bad, ethernet(MAC(2), MAC(1), 0x0800));
    assert.equal(other.got.length, 0);
    assert.equal(none.counters.spoofDrops + bad.counters.spoofDrops, 2);
  });

  it('knows a port by its info: vifs by their MAC, the host port as any', () => {
    assert.equal(sourceMacOf({ id: 'd1.0', kind: 'vif', sponsor: 'a', mac: '00:16:3e:00:00:0a' }), 0x00163e00000a);
    assert.equal(sourceMacOf({ id: 'host', kind: 'host', sponsor: HOST_SPONSOR }), undefined);
    assert.ok(Number.isNaN(sourceMacOf({ id: 'd1.0', kind: 'vif', sponsor: 'a' })));
  });
});

describe('sponsor isolation', () => {
  it('drops and counts frames between sponsors, both unicast and flooded', () => {
    const { core, ports } = setup(['a', 'b', 'a']);
    const [a1, b1, a2] = ports as [FakePort, FakePort, FakePort];
    core.input(a1, arpRequest(MAC(1), '10.0.0.1', '10.0.0.2'));
    assert.equal(b1.got.length, 0);
    assert.equal(a2.got.length, 1, 'same sponsor still reached');
    assert.equal(a1.counters.policyDrops, 1);
    core.input(b1, ethernet(MAC(1), MAC(2), 0x0800));
    assert.equal(a1.got.length, 0);
    assert.equal(b1.counters.policyDrops, 1);
  });

  it('lets an allowed pair through in both directions, and denies again', () => {
    const { core, ports, policy } = setup(['a', 'b']);
    const [a, b] = ports as [FakePort, FakePort];
    policy.setAllowed([['b', 'a']]);
    core.input(a, ethernet(MAC(2), MAC(1), 0x0800));
    core.input(b, ethernet(MAC(1), MAC(2), 0x0800));
    assert.equal(a.got.length, 1);
    assert.equal(b.got.length, 1);
    policy.setAllowed([]);
    core.input(a, ethernet(MAC(2), MAC(1), 0x0800));
    assert.equal(b.got.length, 1);
    assert.equal(a.counters.policyDrops, 1);
  });

  it('lets every sponsor reach the host port', () => {
    const policy = new SponsorIsolation();
    assert.ok(policy.allows('a', HOST_SPONSOR));
    assert.ok(policy.allows(HOST_SPONSOR, 'zed'));
    assert.ok(!policy.allows('a', 'zed'));
  });
});

describe('stream port (QEMU framing)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xn-net-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function frameOnWire(f: Buffer): Buffer {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(f.length);
    return Buffer.concat([h, f]);
  }

  it('reassembles frames split across reads, sends length-prefixed frames, and reconnects', async () => {
    const path = join(dir, 'q.sock');
    const conns: Socket[] = [];
    const received: Buffer[] = [];
    const server = createServer((s) => {
      conns.push(s);
      s.on('data', (d: Buffer) => received.push(d));
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
    const core = new SwitchCore(new SponsorIsolation());
    const other = new FakePort('other', HOST_SPONSOR, 'host');
    core.addPort(other);
    const port = new StreamPort({ id: 'd1.0', kind: 'vif', sponsor: 'admin', mac: MAC(1) }, path, core);
    core.addPort(port);
    port.start();
    assert.ok(await port.whenConnected(5000));

    // Three frames, delivered byte-split in awkward places.
    const frames = [1, 2, 3].map((n) => ethernet(MAC(9), MAC(1), 0x0800, new Array(50 * n).fill(n)));
    const wire = Buffer.concat(frames.map(frameOnWire));
    const conn = conns[0] as Socket;
    const cuts = [0, 3, 17, 70, wire.length];
    for (let i = 1; i < cuts.length; i++) {
      conn.write(wire.subarray(cuts[i - 1], cuts[i]));
      await new Promise((r) => setTimeout(r, 5));
    }
    for (let i = 0; i < 100 && other.got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(other.got, frames);

    // Toward QEMU: one frame, 4-byte big-endian length first.
    const back = ethernet(MAC(1), MAC(9), 0x0806, [7, 7, 7]);
    core.input(other, back);
    for (let i = 0; i < 100 && Buffer.concat(received).length < back.length + 4; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(Buffer.concat(received), frameOnWire(back));

    // QEMU drops the connection (switch side sees EOF): the port reconnects by itself.
    conn.destroy();
    for (let i = 0; i < 200 && conns.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(conns.length, 2);
    assert.ok(await port.whenConnected(2000));
    assert.equal(port.connects, 2);

    port.stop();
    await new Promise<void>((r) => server.close(() => r()));
    for (const c of conns) c.destroy();
  });

  it('resets a link whose framing is garbage', async () => {
    const path = join(dir, 'bad.sock');
    const conns: Socket[] = [];
    const server = createServer((s) => conns.push(s));
    await new Promise<void>((r) => server.listen(path, () => r()));
    const core = new SwitchCore(new SponsorIsolation());
    const port = new StreamPort({ id: 'd2.0', kind: 'vif', sponsor: 'admin', mac: MAC(2) }, path, core);
    core.addPort(port);
    port.start();
    assert.ok(await port.whenConnected(5000));
    (conns[0] as Socket).write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    for (let i = 0; i < 200 && conns.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(port.counters.errors, 1);
    assert.equal(conns.length, 2, 'reconnected after the reset');
    port.stop();
    await new Promise<void>((r) => server.close(() => r()));
    for (const c of conns) c.destroy();
  });
});
