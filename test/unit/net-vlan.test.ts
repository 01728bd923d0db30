// vlan= on the switch core: a vif with vlan=N is an access port of VLAN N (its
// guest sends and receives untagged frames); the host port is a trunk (VLAN N
// tagged, the untagged vifs untagged). Frames never cross VLANs, and a guest's
// own 802.1Q or 802.1ad tag cannot carry it into another.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PortInfo, SponsorIsolation } from '../../src/net/policy.ts';
import { SwitchCore, type SwitchPort, sourceMacOf, zeroCounters } from '../../src/net/switch-core.ts';
import { ethernet } from '../helpers/frames.ts';

class FakePort implements SwitchPort {
  readonly counters = zeroCounters();
  readonly got: Buffer[] = [];
  readonly info: PortInfo;
  readonly sourceMac: number | undefined;
  constructor(id: string, kind: PortInfo['kind'], mac: string | undefined, vlan?: number) {
    this.info = { id, kind, sponsor: kind === 'host' ? '@host' : 'alice', mac, ...(vlan ? { vlan } : {}) };
    this.sourceMac = sourceMacOf(this.info);
  }
  send(frame: Uint8Array): boolean {
    this.got.push(Buffer.from(frame));
    return true;
  }
}

const MAC = (n: number) => `00:16:3e:00:00:${n.toString(16).padStart(2, '0')}`;
const HOST_MAC = '02:00:00:00:00:01';
const BCAST = 'ff:ff:ff:ff:ff:ff';

/** `frame` with an 802.1Q (or other TPID) tag of `vid` after the MACs. */
function tagged(frame: Uint8Array, vid: number, tpid = 0x8100): Buffer {
  const f = Buffer.from(frame);
  const tag = Buffer.from([tpid >> 8, tpid & 0xff, (vid >> 8) & 0x0f, vid & 0xff]);
  return Buffer.concat([f.subarray(0, 12), tag, f.subarray(12)]);
}

function setup() {
  const core = new SwitchCore(new SponsorIsolation(), { now: () => 0 });
  const a10 = new FakePort('a10', 'vif', MAC(1), 10);
  const b10 = new FakePort('b10', 'vif', MAC(2), 10);
  const c20 = new FakePort('c20', 'vif', MAC(3), 20);
  const u = new FakePort('u', 'vif', MAC(4));
  const v = new FakePort('v', 'vif', MAC(5));
  const h = new FakePort('host', 'host', undefined);
  for (const p of [a10, b10, c20, u, v, h]) core.addPort(p);
  return { core, a10, b10, c20, u, v, h };
}

describe('vlan= on the switch', () => {
  it('a broadcast stays in its VLAN; the host port gets it tagged', () => {
    const { core, a10, b10, c20, u, v, h } = setup();
    const f = ethernet(BCAST, MAC(1), 0x0800, [1, 2, 3]);
    core.input(a10, f);
    assert.deepEqual(b10.got, [Buffer.from(f)], 'the other vif of VLAN 10, untagged');
    assert.equal(c20.got.length + u.got.length + v.got.length, 0);
    assert.equal(h.got.length, 1);
    assert.deepEqual(h.got[0], tagged(f, 10), 'to the trunk with its VLAN tag');
  });

  it('unicast to a MAC learned in another VLAN is not delivered', () => {
    const { core, a10, c20, u, h } = setup();
    core.input(c20, ethernet(BCAST, MAC(3), 0x0800));
    core.input(u, ethernet(BCAST, MAC(4), 0x0800));
    const before = h.got.length;
    core.input(a10, ethernet(MAC(3), MAC(1), 0x0800, [9]));
    core.input(a10, ethernet(MAC(4), MAC(1), 0x0800, [9]));
    assert.equal(c20.got.length, 0);
    assert.equal(u.got.length, 0);
    // Flooded within VLAN 10 instead: the trunk sees it, tagged 10.
    assert.equal(h.got.length, before + 2);
    assert.ok(h.got.slice(before).every((g) => g.readUInt16BE(12) === 0x8100 && (g.readUInt16BE(14) & 0xfff) === 10));
  });

  it('a tagged frame from a vif with vlan= is dropped (no hop), counted as spoofed', () => {
    const { core, a10, b10, c20, u, v, h } = setup();
    for (const tpid of [0x8100, 0x88a8, 0x9100]) {
      core.input(a10, tagged(ethernet(BCAST, MAC(1), 0x0800, [7]), 20, tpid));
      core.input(a10, tagged(ethernet(MAC(3), MAC(1), 0x0800, [7]), 20, tpid));
    }
    for (const p of [b10, c20, u, v, h]) assert.equal(p.got.length, 0, p.info.id);
    assert.equal(a10.counters.spoofDrops, 6);
  });

  it('a tagged frame from an untagged vif stays with the untagged vifs and never reaches the trunk', () => {
    const { core, a10, b10, c20, u, v, h } = setup();
    const f = tagged(ethernet(BCAST, MAC(4), 0x0800, [5]), 10);
    core.input(u, f);
    assert.deepEqual(v.got, [f], 'as it was, to the other untagged vif');
    for (const p of [a10, b10, c20, h]) assert.equal(p.got.length, 0, p.info.id);
    // An untagged frame still reaches the host, untagged.
    const g = ethernet(BCAST, MAC(4), 0x0800, [6]);
    core.input(u, g);
    assert.deepEqual(h.got, [Buffer.from(g)]);
  });

  it("the trunk's tagged frames reach their VLAN's vifs untagged; its untagged frames the untagged vifs", () => {
    const { core, a10, b10, c20, u, v, h } = setup();
    const inner = ethernet(BCAST, HOST_MAC, 0x0800, [1, 1]);
    core.input(h, tagged(inner, 10));
    assert.deepEqual(a10.got, [Buffer.from(inner)]);
    assert.deepEqual(b10.got, [Buffer.from(inner)]);
    assert.equal(c20.got.length + u.got.length + v.got.length, 0);
    core.input(h, inner);
    assert.deepEqual(u.got, [Buffer.from(inner)]);
    assert.deepEqual(v.got, [Buffer.from(inner)]);
    assert.equal(a10.got.length, 1);
    assert.equal(c20.got.length, 0);
    // Unicast back: the host MAC learned in VLAN 10 and untagged both; replies take their VLAN's tag.
    core.input(b10, ethernet(HOST_MAC, MAC(2), 0x0800, [3]));
    assert.equal(h.got.at(-1)?.readUInt16BE(12), 0x8100);
    assert.equal((h.got.at(-1)?.readUInt16BE(14) ?? 0) & 0xfff, 10);
    core.input(u, ethernet(HOST_MAC, MAC(4), 0x0800, [3]));
    assert.equal(h.got.at(-1)?.readUInt16BE(12), 0x0800);
    // A host frame tagged for a VLAN nobody is in goes nowhere.
    const n = a10.got.length + b10.got.length + c20.got.length + u.got.length + v.got.length;
    core.input(h, tagged(inner, 99));
    assert.equal(a10.got.length + b10.got.length + c20.got.length + u.got.length + v.got.length, n);
  });
});
