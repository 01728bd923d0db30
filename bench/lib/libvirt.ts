// libvirt as a peer toolstack: `virsh create` of a domain equivalent to Xenode's
// (TCG, pc, same kernel, initrd and command line, memfd RAM, no USB/balloon/graphics),
// timed from spawning virsh to the ready line on the serial socket.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext, BootSample, Contender } from './contender.ts';
import {
  bootClock,
  connectWhenReady,
  cpuSeconds,
  peakRssMiB,
  qemuFacts,
  ReadyScanner,
  readPid,
  rejectOnExit,
  run,
  stopPid,
  withTimeout,
} from './proc.ts';

export const LIBVIRT_URI = 'qemu:///system';

function which(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin:/usr/sbin:/sbin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])
    .some((d) => existsSync(join(d, cmd)));
}

async function running(name: string): Promise<boolean> {
  return (await run('pgrep', ['-x', name])).code === 0;
}

/** Why libvirt cannot be benchmarked here, or undefined when it is up. Starts its daemons if needed. */
export async function ensureLibvirt(log: (s: string) => void): Promise<string | undefined> {
  if (!which('virsh')) return 'virsh is not installed';
  for (const d of ['virtlogd', 'libvirtd']) {
    if (await running(d)) continue;
    if (!which(d)) return `${d} is not installed`;
    log(`starting ${d} -d (no init system starts it here)`);
    const r = await run(d, ['-d'], { timeoutMs: 10_000 });
    if (r.code !== 0) return `${d} -d failed: ${r.stderr.trim()}`;
  }
  for (let i = 0; i < 100; i++) {
    const r = await run('virsh', ['-c', LIBVIRT_URI, 'version'], { timeoutMs: 10_000 });
    if (r.code === 0) return undefined;
    await sleep(100);
  }
  return `virsh -c ${LIBVIRT_URI} does not answer`;
}

/** A note when libvirt's QEMU user cannot open /dev/kvm (libvirt then re-probes QEMU on every start here). */
export function libvirtUserNote(): string | undefined {
  try {
    const conf = readFileSync('/etc/libvirt/qemu.conf', 'utf8');
    if (/^\s*user\s*=\s*"(root|\+0)"/m.test(conf)) return undefined;
  } catch {
    return undefined;
  }
  return (
    'libvirt runs QEMU as libvirt-qemu here. If /dev/kvm is root-only, libvirt 9.0 decides on every start that ' +
    '"KVM was enabled when probing … but it is not available now" and re-probes QEMU (~45 s per `virsh create`). ' +
    'Set user = "root" and group = "root" in /etc/libvirt/qemu.conf and restart libvirtd.'
  );
}

export interface LibvirtOptions {
  kernel: string;
  initrd: string;
  /** Kernel command line; NAME is replaced by the domain's name. */
  cmdline: string;
}

/** Guest-visible devices beyond the base machine, so a libvirt domain can mirror Xenode's. */
export interface GuestDevices {
  /** libvirt's name for the machine type: pc or q35. */
  machine: string;
  /** QEMU -cpu value, e.g. max or Nehalem,+rdrand. */
  cpu: string;
  balloon: boolean;
  freePageReporting: boolean;
  rng: boolean;
  pciBridges: number;
}

/** Which of those devices a QEMU command line has. */
export function devicesFromQemuArgv(argv: readonly string[]): GuestDevices {
  const devs = argv.flatMap((a, i) => (argv[i - 1] === '-device' ? [a] : []));
  const balloon = devs.find((d) => d.includes('virtio-balloon'));
  const machine = argv[argv.indexOf('-machine') + 1] ?? '';
  return {
    machine: machine.startsWith('pc-q35') || machine.startsWith('q35') ? 'q35' : 'pc',
    cpu: argv[argv.indexOf('-cpu') + 1] ?? 'max',
    balloon: balloon !== undefined,
    freePageReporting: balloon !== undefined && /free-page-reporting(=|":\s*)(on|true)/.test(balloon),
    rng: devs.some((d) => d.includes('virtio-rng')),
    pciBridges: devs.filter((d) => d.includes('pci-bridge')).length,
  };
}

/** The same machine without any of those devices. */
export function withoutDevices(d: GuestDevices | undefined): GuestDevices | undefined {
  return d && { machine: d.machine, cpu: d.cpu, balloon: false, freePageReporting: false, rng: false, pciBridges: 0 };
}

export function describeDevices(d: GuestDevices | undefined): string {
  if (!d) return 'none';
  const out = [
    d.balloon ? `virtio balloon${d.freePageReporting ? ' with free page reporting' : ''}` : '',
    d.rng ? 'virtio-rng from /dev/urandom' : '',
    d.pciBridges ? `${d.pciBridges} PCI bridge${d.pciBridges > 1 ? 's' : ''}` : '',
  ].filter(Boolean);
  return out.length ? out.join(', ') : 'none';
}

/** libvirt's <cpu> for a QEMU -cpu value: max, or a named model with +features. */
export function cpuXml(cpu: string): string {
  const [model, ...flags] = cpu.split(',');
  if (model === 'max') return "<cpu mode='maximum'/>";
  const features = flags
    .filter((f) => f.startsWith('+'))
    .map((f) => `<feature policy='require' name='${f.slice(1)}'/>`)
    .join('');
  return `<cpu mode='custom' match='exact'><model fallback='forbid'>${model}</model>${features}</cpu>`;
}

function xmlEscape(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
}

export interface LibvirtContenderOptions {
  id: string;
  informational: boolean;
  /** Devices to add beyond the base machine; undefined = none (USB and balloon explicitly off). */
  devices: () => GuestDevices | undefined;
}

export class LibvirtContender implements Contender {
  readonly id: string;
  readonly informational: boolean;

  constructor(
    private readonly ctx: BenchContext,
    private readonly o: () => LibvirtOptions,
    private readonly c: LibvirtContenderOptions,
  ) {
    this.id = c.id;
    this.informational = c.informational;
  }

  domainXml(name: string, serialSock: string): string {
    const { ctx } = this;
    const o = this.o();
    const d = this.c.devices();
    const extra = [
      // libvirt puts a pci-bridge on q35 behind a DMI-to-PCI bridge of its own.
      ...(d?.machine === 'q35' && d.pciBridges
        ? ["    <controller type='pci' index='1' model='dmi-to-pci-bridge'/>"]
        : []),
      ...Array.from(
        { length: d?.pciBridges ?? 0 },
        (_, i) => `    <controller type='pci' index='${i + (d?.machine === 'q35' ? 2 : 1)}' model='pci-bridge'/>`,
      ),
      d?.rng ? "    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>" : '',
      d?.balloon
        ? `    <memballoon model='virtio'${d.freePageReporting ? " freePageReporting='on'" : ''}/>`
        : "    <memballoon model='none'/>",
    ].filter(Boolean);
    return `<domain type='qemu'>
  <name>${xmlEscape(name)}</name>
  <memory unit='MiB'>${ctx.memoryMiB}</memory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <vcpu>${ctx.vcpus}</vcpu>
  ${cpuXml(d?.cpu ?? 'max')}
  <os>
    <type arch='x86_64' machine='${d?.machine ?? 'pc'}'>hvm</type>
    <kernel>${xmlEscape(o.kernel)}</kernel>
    <initrd>${xmlEscape(o.initrd)}</initrd>
    <cmdline>${xmlEscape(o.cmdline.replaceAll('NAME', name))}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='unix'><source mode='bind' path='${xmlEscape(serialSock)}'/><target port='0'/></serial>
${extra.join('\n')}
  </devices>
</domain>
`;
  }

  describe(): string {
    return (
      `\`virsh -c qemu:///system create dom.xml\` (type='qemu' i.e. TCG, machine ${this.c.devices()?.machine ?? 'pc'}, \`${cpuXml(this.c.devices()?.cpu ?? 'max')}\`, memfd ` +
      'shared RAM, ACPI, direct kernel boot of the same vmlinux + initrd + command line as Xenode, serial on a unix ' +
      `socket, \`<controller type='usb' model='none'/>\`, no graphics; extra devices: ${describeDevices(this.c.devices())}` +
      `${this.c.devices()?.balloon ? '' : ", `<memballoon model='none'/>`"}); then \`virsh destroy\``
    );
  }

  async run(tag: string): Promise<BootSample> {
    const { ctx } = this;
    const name = `bench${this.id.replace(/[^a-z0-9]/g, '')}${tag}`;
    const dir = join(ctx.tmp, `libvirt-${tag}`);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o777);
    const sockPath = join(dir, 'serial.sock');
    const xmlPath = join(dir, 'dom.xml');
    writeFileSync(xmlPath, this.domainXml(name, sockPath));
    const scanner = new ReadyScanner();
    let virshErr = '';
    let sock: Socket | undefined;
    let stopped = false;
    let qemuPid: number | undefined;

    const undo = ctx.cleanup.add(`virsh destroy ${name}`, async () => {
      await run('virsh', ['-c', LIBVIRT_URI, 'destroy', name], { timeoutMs: 20_000 });
      if (qemuPid) await stopPid(qemuPid);
    });
    const daemons = ['libvirtd', 'virtlogd'].map((n) => readPid(`/run/${n}.pid`));
    const daemonCpu0 = daemons.map(cpuSeconds);
    let virshCpu = 0;
    const u0 = bootClock();
    const t0 = performance.now();
    const child = spawn('virsh', ['-c', LIBVIRT_URI, 'create', xmlPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => {
      virshErr += d.toString();
    });
    // virsh exits long before the ready line: take its CPU time while it is a zombie-to-be.
    const sampleVirsh = setInterval(() => {
      const c = cpuSeconds(child.pid);
      if (!Number.isNaN(c)) virshCpu = c;
    }, 20);
    try {
      const failed = rejectOnExit(child, 'virsh create', () => virshErr.trim(), true);
      const serial = connectWhenReady(sockPath, (d) => scanner.feed(d), {
        until: Date.now() + ctx.timeoutMs,
        cancelled: () => stopped,
      }).then((s) => {
        sock = s;
      });
      serial.catch(() => {});
      const hit = await withTimeout(
        Promise.race([Promise.all([serial, scanner.ready]).then(([, h]) => h), failed]),
        ctx.timeoutMs,
        `XENODE-READY from libvirt domain ${name}`,
      );
      qemuPid = readPid(`/run/libvirt/qemu/${name}.pid`);
      const rssMiB = qemuPid ? peakRssMiB(qemuPid) : undefined;
      if (qemuPid) ctx.ourPids.add(qemuPid);
      const facts = qemuFacts(qemuPid, u0);
      const toolCpu =
        virshCpu + daemons.reduce<number>((sum, pid, i) => sum + cpuSeconds(pid) - (daemonCpu0[i] ?? 0), 0);
      return { wall: (hit.at - t0) / 1000, uptime: hit.uptime, rssMiB, ...facts, toolCpu };
    } finally {
      clearInterval(sampleVirsh);
      stopped = true;
      sock?.destroy();
      const r = await run('virsh', ['-c', LIBVIRT_URI, 'destroy', name], { timeoutMs: 20_000 });
      if (r.code !== 0 && !/not found|no domain|not running/i.test(r.stderr)) {
        ctx.log(`  virsh destroy ${name}: ${r.stderr.trim()}`);
      }
      if (qemuPid) await stopPid(qemuPid);
      if (child.exitCode === null) child.kill('SIGKILL');
      undo();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
