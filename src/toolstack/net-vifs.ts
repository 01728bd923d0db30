// A domain's network devices at runtime, kept in its run directory so they
// survive a daemon restart and a QEMU restart (hot-plugged vifs included).

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VifSpec } from '../config/types.ts';

export interface VifRecord {
  devid: number;
  mac: string;
  /** Xenode's switch, or a Linux bridge through a TAP. */
  backend: 'switch' | 'bridge';
  /** The Linux bridge (backend bridge), or what the config named (xenbr0) for the switch. */
  bridge?: string;
  /** Switch port id (`d3.0`) or the TAP's name (`vif3.0`). */
  ifname: string;
  ip?: string;
  model?: string;
  rate?: string;
  mtu?: number;
  vifname?: string;
  /** vlan=: an access port of this VLAN on Xenode's switch. */
  vlan?: number;
  /** Attached with network-attach rather than from the config. */
  hotplugged?: boolean;
}

const FILE = 'vifs.json';

export function loadVifs(runDir: string): VifRecord[] | undefined {
  try {
    return JSON.parse(readFileSync(join(runDir, FILE), 'utf8')) as VifRecord[];
  } catch {
    return undefined;
  }
}

export function saveVifs(runDir: string, vifs: readonly VifRecord[]): void {
  const p = join(runDir, FILE);
  writeFileSync(`${p}.tmp`, JSON.stringify(vifs, null, 1));
  renameSync(`${p}.tmp`, p);
}

/** The config's view of a vif, so `list -l`, save and restore see the devices the domain has. */
export function vifToSpec(v: VifRecord): VifSpec {
  const s: VifSpec = { mac: v.mac };
  if (v.bridge) s.bridge = v.bridge;
  if (v.ip) s.ip = v.ip;
  if (v.model) s.model = v.model;
  if (v.rate) s.rate = v.rate;
  if (v.vifname) s.vifname = v.vifname;
  if (v.mtu) s.mtu = v.mtu;
  if (v.vlan) s.vlan = v.vlan;
  return s;
}
