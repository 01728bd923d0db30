// Ethernet frames from guests (and the uplink) into the switch core with its
// audit engine (flow table, rules, RST replies), plus the frame parsers alone.
// Input: records of [ctl][len u16 LE][frame]; ctl picks the port (ctl % 5) and,
// with bit 7, first advances the clock by (ctl & 0x70) seconds and ticks the audit.
// Invariants: nothing throws; no frame crosses sponsors or VLANs between vifs;
// what leaves a vif carries that vif's MAC; the MAC table stays bounded.

import fc from 'fast-check';
import { AuditEngine } from '../../src/net/audit/engine.ts';
import { newPeek, peek } from '../../src/net/audit/peek.ts';
import { defaultRules } from '../../src/net/audit/rules.ts';
import { parseFrame, srcMac } from '../../src/net/frame.ts';
import { HOST_SPONSOR, type PortInfo, SponsorIsolation } from '../../src/net/policy.ts';
import { SwitchCore, type SwitchPort, sourceMacOf, zeroCounters } from '../../src/net/switch-core.ts';
import { type FuzzTarget, invariant } from '../target.ts';
import { arbFrame, MACS, macBytes } from './frames.ts';

const MAX_MACS = 8;

interface Delivery {
  from: SwitchPort;
  to: SwitchPort;
  frame: Buffer;
}

class Port implements SwitchPort {
  readonly counters = zeroCounters();
  readonly sourceMac: number | undefined;
  constructor(
    readonly info: PortInfo,
    private readonly log: Delivery[],
    private readonly current: { from?: SwitchPort },
  ) {
    this.sourceMac = sourceMacOf(info);
  }
  send(frame: Uint8Array): boolean {
    this.log.push({ from: this.current.from as SwitchPort, to: this, frame: Buffer.from(frame) });
    return true;
  }
}

export function encode(records: Array<[number, Uint8Array]>): Buffer {
  return Buffer.concat(
    records.map(([ctl, f]) => {
      const h = Buffer.alloc(3);
      h[0] = ctl;
      h.writeUInt16LE(f.length, 1);
      return Buffer.concat([h, f]);
    }),
  );
}

export function target(): FuzzTarget {
  const rules = defaultRules();
  rules.connLimits.push({ name: 'web', ports: [80], per: 'domain', connections: 2, perSec: 1, action: 'drop' });
  rules.portScan.maxPorts = 4;
  rules.synFlood.maxHalfOpen = 3;
  rules.synFlood.action = 'quarantine';
  rules.flows.maxFlowsPerVif = 8;
  rules.ackSymmetry.maxUnackedBytes = 200;
  return {
    name: 'switch',
    about: 'frames into the switch core and its audit: no exception, no cross-sponsor/VLAN delivery, no spoofed source',
    files: ['src/net/'],
    maxLen: 8192,
    dict: [
      ...MACS.map((m) => Uint8Array.from(macBytes(m))),
      Uint8Array.from([0x08, 0x00, 0x45]),
      Uint8Array.from([0x08, 0x06, 0, 1, 8, 0, 6, 4]),
      Uint8Array.from([0x81, 0x00]),
      Uint8Array.from([0x86, 0xdd]),
      Uint8Array.from([10, 0, 0, 1]),
      Uint8Array.from([0, 25]),
      Uint8Array.from([0x02]),
      Uint8Array.from([0x12]),
    ],
    generate: fc
      .array(fc.tuple(fc.integer({ min: 0, max: 255 }), arbFrame), { minLength: 1, maxLength: 12 })
      .map((rs) => new Uint8Array(encode(rs))),
    run(data) {
      let now = 1_000_000;
      const deliveries: Delivery[] = [];
      const current: { from?: SwitchPort } = {};
      const audit = new AuditEngine(rules, { now: () => now });
      const core = new SwitchCore(new SponsorIsolation(), { now: () => now, macAgeMs: 30_000, maxMacs: MAX_MACS });
      core.audit = audit;
      const infos: PortInfo[] = [
        { id: 'd1.0', kind: 'vif', sponsor: 'alice', mac: MACS[0], ips: ['10.0.0.1'], domid: 1, devid: 0 },
        { id: 'd2.0', kind: 'vif', sponsor: 'alice', mac: MACS[1], domid: 2, devid: 0 },
        { id: 'd3.0', kind: 'vif', sponsor: 'bob', mac: MACS[2], domid: 3, devid: 0 },
        { id: 'host', kind: 'host', sponsor: HOST_SPONSOR },
        { id: 'd4.0', kind: 'vif', sponsor: 'bob', mac: MACS[3], vlan: 7, domid: 4, devid: 0 },
      ];
      const ports = infos.map((i) => new Port(i, deliveries, current));
      for (const p of ports) core.addPort(p);
      for (let off = 0; off + 3 <= data.length; ) {
        const ctl = data[off] as number;
        const len = data.readUInt16LE(off + 1);
        const frame = data.subarray(off + 3, off + 3 + len);
        off += 3 + len;
        if (ctl & 0x80) {
          now += ((ctl & 0x70) >> 4) * 7000;
          audit.tick();
        }
        parseFrame(frame);
        peek(frame, newPeek());
        const src = ports[ctl % ports.length] as Port;
        current.from = src;
        deliveries.length = 0;
        core.input(src, Uint8Array.from(frame));
        for (const d of deliveries) {
          const a = d.from.info;
          const b = d.to.info;
          if (d.to === d.from) continue; // a RST answering the sender
          if (a.kind === 'vif' && b.kind === 'vif') {
            invariant(a.sponsor === b.sponsor, `frame from ${a.id} (${a.sponsor}) delivered to ${b.id} (${b.sponsor})`);
            invariant((a.vlan ?? 0) === (b.vlan ?? 0), `frame from ${a.id} crossed VLANs to ${b.id}`);
          }
          if (a.kind === 'vif')
            invariant(srcMac(d.frame) === d.from.sourceMac, `frame from ${a.id} left with another source MAC`);
        }
        invariant(core.macTable().length <= MAX_MACS, `MAC table grew to ${core.macTable().length}`);
      }
      audit.tick();
      audit.drain();
    },
  };
}
