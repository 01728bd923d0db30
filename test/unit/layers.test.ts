// The layer rules that `npm run lint` checks (.dependency-cruiser.cjs and
// scripts/check-engine-boundary.ts): a deliberate core→feature import, a
// feature→feature import, an import circle, QMP outside the engine and a QEMU
// option spelled outside the engine are each rejected, and src/ passes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { engineBoundaryViolations } from '../../scripts/check-engine-boundary.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

interface Violation {
  rule: string;
  from: string;
  to: string;
}

function depcruise(dir: string, outputType: string) {
  return spawnSync(process.execPath, [DEPCRUISE, 'src', '--config', CONFIG, '--output-type', outputType], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Run the real rule set over `dir`/src, as `npm run lint` does; the violations it reports. */
function cruise(dir: string): Violation[] {
  const r = depcruise(dir, 'json');
  assert.ok(r.stdout, `depcruise printed nothing: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as {
    summary: { violations: Array<{ rule: { name: string }; from: string; to: string }> };
  };
  return out.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to }));
}

/** The exit status of the command `npm run lint` runs, and what it printed. */
function lintStatus(dir: string): { status: number | null; output: string } {
  const r = depcruise(dir, 'err-long');
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function writeTree(dir: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

const scratch: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'xenode-layers-'));
  scratch.push(d);
  return d;
}
after(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

describe('layer rules (npm run lint)', () => {
  it('reject core→feature, feature→feature, circles, QMP and upward imports in a small tree', () => {
    const dir = tempDir();
    writeTree(dir, {
      'src/errors.ts': 'export const E = 1;\n',
      'src/engine/qmp.ts': 'export const QMP = 1;\n',
      'src/engine/machine.ts': "import { QMP } from './qmp.ts';\nexport const M = QMP;\n",
      // The core names a feature: refused.
      'src/toolstack/lifecycle.ts': "import { A } from '../features/alpha/plugin.ts';\nexport const L = A;\n",
      // The one list of features may name them.
      'src/toolstack/plugins.ts':
        "import { A } from '../features/alpha/plugin.ts';\nimport { B } from '../features/beta/plugin.ts';\nexport const P = [A, B];\n",
      'src/features/alpha/plugin.ts':
        "import { E } from '../../errors.ts';\nimport { I } from './internal.ts';\nexport const A = E + I;\n",
      'src/features/alpha/internal.ts': 'export const I = 2;\n',
      // A feature reaches into another: refused.
      'src/features/beta/plugin.ts':
        "import { I } from '../alpha/internal.ts';\nimport { M } from '../../engine/machine.ts';\nexport const B = I + M;\n",
      // A feature speaks QMP itself: refused.
      'src/features/beta/hotplug.ts': "import { QMP } from '../../engine/qmp.ts';\nexport const H = QMP;\n",
      // A circle through a type-only import: refused.
      'src/api/a.ts': "import type { Bt } from './b.ts';\nexport type At = { b?: Bt };\n",
      'src/api/b.ts': "import type { At } from './a.ts';\nexport type Bt = { a?: At };\n",
      // Config reaching up into the engine: refused.
      'src/config/parse.ts': "import { M } from '../engine/machine.ts';\nexport const C = M;\n",
    });
    const got = cruise(dir)
      .map((v) => `${v.rule}: ${v.from} -> ${v.to}`)
      .sort();
    assert.deepEqual(got, [
      'config-is-the-bottom: src/config/parse.ts -> src/engine/machine.ts',
      'core-not-to-feature: src/toolstack/lifecycle.ts -> src/features/alpha/plugin.ts',
      'feature-not-to-feature: src/features/beta/plugin.ts -> src/features/alpha/internal.ts',
      'no-circular: src/api/a.ts -> src/api/b.ts',
      'only-engine-speaks-qmp: src/features/beta/hotplug.ts -> src/engine/qmp.ts',
    ]);
    const lint = lintStatus(dir);
    assert.notEqual(lint.status, 0, 'the lint command must fail on them');
    assert.match(lint.output, /core-not-to-feature/);
  });

  it('reject a deliberate core→feature and feature→feature import added to a copy of src/', () => {
    const dir = tempDir();
    cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
    writeTree(dir, {
      'src/toolstack/zz-probe.ts':
        "import { storagePlugin } from '../features/storage/plugin.ts';\nexport const probe = storagePlugin;\n",
      'src/features/zz-probe/plugin.ts':
        "import { NAME_RE } from '../storage/names.ts';\nexport const probe = NAME_RE;\n",
    });
    const probes = cruise(dir)
      .filter((v) => v.from.includes('zz-probe'))
      .map((v) => `${v.rule}: ${v.from} -> ${v.to}`)
      .sort();
    assert.deepEqual(probes, [
      'core-not-to-feature: src/toolstack/zz-probe.ts -> src/features/storage/plugin.ts',
      'feature-not-to-feature: src/features/zz-probe/plugin.ts -> src/features/storage/names.ts',
    ]);
  });

  it('reject a QEMU option or QMP command spelled outside src/engine', () => {
    const dir = tempDir();
    writeTree(dir, {
      'src/engine/disk-args.ts': "export const args = (f: string) => ['-drive', 'file=' + f];\n",
      'src/features/disks/plugin.ts':
        "// QEMU's '-drive' is rendered by the engine.\nexport const args = (f: string) => ['-drive', f];\n",
      'src/features/disks/hotplug.ts':
        "export const unplug = (m: { qmpClient: { execute(c: string): void } }) => m.qmpClient.execute('device_del');\n",
    });
    const got = engineBoundaryViolations(dir).map((v) => `${v.file}:${v.line}: ${v.why}`);
    assert.deepEqual(got.sort(), [
      'src/features/disks/hotplug.ts:1: a QMP command',
      'src/features/disks/plugin.ts:2: a QEMU command-line option',
    ]);
  });

  it('pass on src/', () => {
    assert.deepEqual(cruise(ROOT), []);
    const lint = lintStatus(ROOT);
    assert.equal(lint.status, 0, lint.output);
    assert.deepEqual(engineBoundaryViolations(ROOT), []);
  });
});
