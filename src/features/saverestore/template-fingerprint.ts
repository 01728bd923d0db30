// What a template's guest is made of, as one hash: a create whose config hashes
// the same starts from the template; any change to the guest's inputs (kernel,
// initrd, command line, QEMU, the keys that shape the machine) gives another
// hash, so a stale template is simply never matched (and `template list` says so).

import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import type { DomainConfig } from '../../config/types.ts';
import { resolveBoot } from '../../toolstack/boot-plan.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';

/** Bump when what a template holds changes in a way the inputs below do not show. */
const TEMPLATE_FORMAT = 1;

/** Keys that name or place a domain, or set policy around it: a clone may differ in these. */
const IDENTITY_KEYS: ReadonlySet<string> = new Set([
  'name',
  'uuid',
  'sponsor',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'on_watchdog',
  'on_memory_noncompliance',
  'cpu_weight',
  'cap',
  'cpus',
  'cpus_per_vcpu',
  'cpus_soft',
  'cpus_soft_per_vcpu',
  'ha',
]);

function fileId(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    const st = statSync(path);
    return `${path}:${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return `${path}:missing`;
  }
}

/** The config without what a clone may change; a vif keeps its shape, not its MAC or limits. */
export function machineShape(cfg: DomainConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg)) {
    if (IDENTITY_KEYS.has(k) || v === undefined) continue;
    out[k] = v;
  }
  out.vif = cfg.vif.map(({ mac: _mac, rate: _rate, vifname: _vifname, ...shape }) => shape);
  return out;
}

export async function templateFingerprint(ts: Toolstack, cfg: DomainConfig): Promise<string> {
  const { plan } = await resolveBoot(cfg, ts.hostAccel);
  const inputs = {
    format: TEMPLATE_FORMAT,
    accel: plan.accel,
    machine: plan.machine,
    cpu: plan.cpu,
    firmware: plan.firmware,
    kernel: fileId(plan.kernel),
    initrd: fileId(plan.initrd),
    // The guest's name is on its command line; a clone takes its own after the restore.
    cmdline: plan.cmdline.replace(/\bxenode\.name=\S*/g, 'xenode.name='),
    qemu: fileId(cfg.device_model_override ?? ts.qemuBinary),
    config: machineShape(cfg),
  };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 32);
}
