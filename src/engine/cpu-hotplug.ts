// vCPU hot-plug over QMP (xl vcpu-set): the machine's CPU slots from
// query-hotpluggable-cpus, device_add of a CPU device into a free slot, and
// device_del of a present one, which completes when the guest has offlined and
// ejected it (ACPI) and QEMU reports DEVICE_DELETED. QEMU must have been started
// with -smp N,maxcpus=M (qemu-args.ts): the slots are the M possible CPUs.

import { XenodeError } from '../errors.ts';
import type { QemuMachine } from './qemu-machine.ts';
import { QmpError } from './qmp.ts';

/** One CPU slot of the machine. */
export interface CpuSlot {
  /** The vCPU number: the slot's place in topology order (QEMU's cpu-index on x86). */
  index: number;
  /** QEMU's CPU device type for the slot, e.g. Nehalem-x86_64-cpu. */
  type: string;
  /** Topology properties (socket-id, core-id, thread-id, ...) that place a CPU in the slot. */
  props: Record<string, number>;
  /** Set when a CPU is present in the slot. */
  qomPath?: string;
}

interface RawSlot {
  type: string;
  'vcpus-count': number;
  props: Record<string, number>;
  'qom-path'?: string;
}

/** Topology properties from the outermost in; node-id (NUMA) does not number CPUs. */
const TOPOLOGY_ORDER = ['drawer-id', 'book-id', 'socket-id', 'die-id', 'cluster-id', 'core-id', 'thread-id'];

function engineError(what: string, e: unknown): XenodeError {
  const why = e instanceof QmpError ? e.desc : e instanceof Error ? e.message : String(e);
  return new XenodeError('engine', `${what}: ${why}`);
}

/** Order slots as the guest numbers CPUs: by socket, then die, core, thread (node-id does not count). */
export function orderCpuSlots(raw: readonly RawSlot[]): CpuSlot[] {
  const key = (s: RawSlot) => TOPOLOGY_ORDER.map((k) => s.props[k] ?? 0);
  const sorted = [...raw].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return (ka[i] as number) - (kb[i] as number);
    return 0;
  });
  return sorted.map((s, index) => ({
    index,
    type: s.type,
    props: { ...s.props },
    ...(s['qom-path'] ? { qomPath: s['qom-path'] } : {}),
  }));
}

/** The machine's CPU slots, vCPU 0 first. */
export async function cpuSlots(m: QemuMachine): Promise<CpuSlot[]> {
  try {
    return orderCpuSlots(await m.qmpClient.execute<RawSlot[]>('query-hotpluggable-cpus'));
  } catch (e) {
    throw engineError('cannot list CPU slots', e);
  }
}

/** Put a CPU into an empty slot; its vCPU thread exists when this resolves. */
export async function plugCpu(m: QemuMachine, slot: CpuSlot): Promise<void> {
  if (slot.qomPath) return;
  try {
    await m.qmpClient.execute('device_add', { driver: slot.type, id: `vcpu${slot.index}`, ...slot.props });
  } catch (e) {
    throw engineError(`cannot add vCPU ${slot.index}`, e);
  }
}

/**
 * Take the CPU out of a slot: ask the guest (ACPI eject) and wait until QEMU
 * has removed it. A guest that does not give it back keeps it (error).
 */
export async function unplugCpu(m: QemuMachine, slot: CpuSlot, timeoutMs = 30_000): Promise<void> {
  const path = slot.qomPath;
  if (!path) return;
  const qmp = m.qmpClient;
  const deleted = qmp.waitEvent('DEVICE_DELETED', timeoutMs, (e) => e.data?.path === path);
  deleted.catch(() => undefined);
  try {
    // device_del takes an id or a QOM path: CPUs from -smp have only the latter.
    await qmp.execute('device_del', { id: path });
  } catch (e) {
    if (e instanceof QmpError && e.errorClass === 'DeviceNotFound') return;
    throw engineError(`cannot remove vCPU ${slot.index}`, e);
  }
  try {
    await deleted;
  } catch {
    const still = (await cpuSlots(m)).find((s) => s.index === slot.index)?.qomPath;
    if (still) {
      throw new XenodeError('state', `the guest did not give back vCPU ${slot.index} within ${timeoutMs / 1000} s`, {
        hint: 'a guest offlines and ejects a CPU only while it runs and has ACPI CPU hot-plug',
      });
    }
  }
}
