// What the audit costs the switch's forwarding, in-process (no QEMU, no
// sockets): frames per second through SwitchCore between two vifs, TCP data one
// way and ACKs back over 64 flows, with the flow log and all rules on against
// the same core without them. docs/audit.md quotes it; `npm run bench:net`
// measures whole guests.
//
//   node --import tsx bench/audit-switch.ts [seconds=3]

import { AuditEngine } from '../src/net/audit/engine.ts';
import { parseRules } from '../src/net/audit/rules.ts';
import { type PortInfo, SponsorIsolation } from '../src/net/policy.ts';
import { SwitchCore, type SwitchPort, sourceMacOf, zeroCounters } from '../src/net/switch-core.ts';

const SECONDS = Number(process.argv[2] ?? 3);

class Sink implements SwitchPort {
  readonly counters = zeroCounters();
  readonly sourceMac: number | undefined;
  constructor(readonly info: PortInfo) {
    this.sourceMac = sourceMacOf(info);
  }
  send(): boolean {
    return true;
  }
}

function mac(n: number): number[] {
  return [0x00, 0x16, 0x3e, 0, 0, n];
}

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

function frame(
  from: number,
  to: number,
  sport: number,
  dport: number,
  flags: number,
  seq: number,
  ack: number,
  data: number,
) {
  const l4 = [
    sport >> 8,
    sport & 255,
    dport >> 8,
    dport & 255,
    ...u32(seq),
    ...u32(ack),
    0x50,
    flags,
    0xff,
    0xff,
    0,
    0,
    0,
    0,
  ];
  const total = 20 + l4.length + data;
  const ip = [0x45, 0, total >> 8, total & 255, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, from, 10, 0, 0, to];
  const b = new Uint8Array(14 + total);
  b.set([...mac(to), ...mac(from), 8, 0, ...ip, ...l4]);
  return b;
}

function run(audit: boolean): number {
  const core = new SwitchCore(new SponsorIsolation());
  const a = new Sink({ id: 'd1.0', kind: 'vif', sponsor: 'alice', domid: 1, devid: 0, mac: '00:16:3e:00:00:01' });
  const b = new Sink({ id: 'd2.0', kind: 'vif', sponsor: 'alice', domid: 2, devid: 0, mac: '00:16:3e:00:00:02' });
  core.addPort(a);
  core.addPort(b);
  let tick = () => {};
  if (audit) {
    const e = new AuditEngine(parseRules({}));
    core.audit = e;
    tick = () => {
      e.tick();
      e.drain();
    };
  }
  const FLOWS = 64;
  // One template per flow and direction, its sequence numbers patched in place; each
  // frame handed over is a fresh view, as the ports hand over views of their reads.
  const data = Array.from({ length: FLOWS }, (_, f) => frame(1, 2, 40000 + f, 5001, 0x10, 0, 1, 1448));
  const acks = Array.from({ length: FLOWS }, (_, f) => frame(2, 1, 5001, 40000 + f, 0x10, 1, 0, 0));
  const seqs = new Array(FLOWS).fill(0);
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset);
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  let nextTick = performance.now() + 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      const f = n % FLOWS;
      // 1448-byte segments from a to b, an ACK back every other segment.
      const d = data[f] as Uint8Array;
      dv(d).setUint32(38, seqs[f]);
      core.input(a, d.subarray(0));
      seqs[f] += 1448;
      if (n % 2 === 0) {
        const k = acks[f] as Uint8Array;
        dv(k).setUint32(42, seqs[f]);
        core.input(b, k.subarray(0));
      }
      n++;
    }
    if (performance.now() > nextTick) {
      tick();
      nextTick += 1000;
    }
  }
  return (n * 1.5) / SECONDS;
}

// Interleaved, so both see the same machine.
const off: number[] = [];
const on: number[] = [];
for (let r = 0; r < 3; r++) {
  off.push(run(false));
  on.push(run(true));
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[1] as number;
console.log(`switch core, no audit:        ${Math.round(med(off))} frames/s`);
console.log(`switch core, flow log + rules: ${Math.round(med(on))} frames/s (${(med(on) / med(off)).toFixed(2)}x)`);
