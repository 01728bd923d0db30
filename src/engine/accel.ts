// Accelerator probe: KVM only where it is real hardware virtualization.
// kvm_pvm (a software KVM) makes a stock kernel fault on INT3 and crawl, so it
// counts as "no KVM" and we use TCG.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Accel } from '../config/types.ts';

export interface AccelChoice {
  accel: 'kvm' | 'tcg';
  reason: string;
}

export interface AccelProbeInput {
  /** Where /sys/module lives (tests may point elsewhere). */
  sysModule?: string;
  devKvm?: string;
  cpuinfo?: string;
  /** Run a short KVM probe boot; injected so it can be skipped. */
  probeBoot?: () => Promise<string | undefined>;
}

function cpuFlags(cpuinfo: string): Set<string> {
  const line = cpuinfo.split('\n').find((l) => l.startsWith('flags'));
  return new Set(line ? line.split(':')[1].trim().split(/\s+/) : []);
}

/** Decide between KVM and TCG for this host. Cached by the caller. */
export async function probeAccelerator(input: AccelProbeInput = {}): Promise<AccelChoice> {
  const sysModule = input.sysModule ?? '/sys/module';
  const devKvm = input.devKvm ?? '/dev/kvm';
  if (!existsSync(devKvm)) return { accel: 'tcg', reason: `${devKvm} does not exist` };
  if (existsSync(`${sysModule}/kvm_pvm`)) {
    return {
      accel: 'tcg',
      reason: `${devKvm} is provided by kvm_pvm (software KVM without hardware virtualization; stock kernels fault under it)`,
    };
  }
  const vendor = existsSync(`${sysModule}/kvm_intel`)
    ? 'kvm_intel'
    : existsSync(`${sysModule}/kvm_amd`)
      ? 'kvm_amd'
      : undefined;
  if (!vendor) return { accel: 'tcg', reason: `${devKvm} exists but neither kvm_intel nor kvm_amd is loaded` };
  let flags: Set<string>;
  try {
    flags = cpuFlags(input.cpuinfo ?? readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    flags = new Set();
  }
  if (!flags.has('vmx') && !flags.has('svm')) {
    return { accel: 'tcg', reason: `${vendor} is loaded but the CPU reports neither vmx nor svm` };
  }
  const failure = await (input.probeBoot ?? kvmProbeBoot)();
  if (failure) return { accel: 'tcg', reason: `KVM probe boot failed: ${failure}` };
  return { accel: 'kvm', reason: `${vendor} with hardware virtualization; probe boot succeeded` };
}

/**
 * Start QEMU with KVM on an empty machine and ask it over QMP (on stdio) whether
 * KVM is enabled. Returns undefined on success or a reason on failure.
 */
export function kvmProbeBoot(qemu = 'qemu-system-x86_64', timeoutMs = 5000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(qemu, ['-accel', 'kvm', '-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let done = false;
    const finish = (r: string | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(r);
    };
    const timer = setTimeout(() => finish('timed out'), timeoutMs);
    child.on('error', (e) => finish(e.message));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', () => finish(err.trim().split('\n')[0] || 'QEMU exited'));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"QMP"') && !out.includes('query-kvm-sent')) {
        out += 'query-kvm-sent';
        child.stdin.write('{"execute":"qmp_capabilities"}\n{"execute":"query-kvm"}\n');
      }
      const m = /"enabled":\s*(true|false)/.exec(out);
      if (m) finish(m[1] === 'true' ? undefined : 'QEMU reports KVM disabled');
    });
  });
}

/** Apply a config's `accel=` override on top of the host probe. */
export function resolveAccel(requested: Accel, host: AccelChoice): AccelChoice {
  if (requested === 'auto') return host;
  if (requested === 'tcg') return { accel: 'tcg', reason: 'accel="tcg" in the domain config' };
  return {
    accel: 'kvm',
    reason:
      host.accel === 'kvm'
        ? 'accel="kvm" in the domain config'
        : `accel="kvm" in the domain config (overrides the probe, which chose TCG: ${host.reason})`,
  };
}
