// Only src/engine knows QEMU's command line and QMP. dependency-cruiser checks
// the imports (.dependency-cruiser.cjs); this checks what imports cannot show:
// no module outside src/engine spells a QEMU option or a QMP command, or
// reaches a machine's QMP client, so no config string can become a QEMU option
// anywhere but in the engine's renderers, which escape it.
// Run: node --import tsx scripts/check-engine-boundary.ts [root]   (part of `npm run lint`)

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** QEMU command-line options, as a quoted word of their own (an argv element). */
const QEMU_OPTION =
  /(['"`])-(device|netdev|drive|blockdev|object|chardev|machine|incoming|accel|append|initrd|kernel|qmp|smp|global|numa|monitor|mon|mem-path|mem-prealloc|cpu|serial|display|nographic|nodefaults|vga|boot|rtc|uuid|pidfile|daemonize|sandbox|overcommit|fsdev|virtfs|audiodev|add-fd)\1/;
/** QMP commands whose names are QEMU's own (generic words such as 'stop' are left out). */
const QMP_COMMAND =
  /(['"`])(device_add|device_del|netdev_add|netdev_del|object-add|object-del|blockdev-add|blockdev-del|qmp_capabilities|human-monitor-command|dump-guest-memory|migrate-incoming|migrate_cancel|migrate-set-capabilities|migrate-set-parameters|query-[a-z-]+|qom-(get|set|list)|getfd|closefd|chardev-add|chardev-remove|system_powerdown|system_reset)\1/;
/** A machine's QMP client, reached past the engine's methods. */
const QMP_CLIENT = /\bqmpClient\b|\bQmpClient\b/;

export interface BoundaryViolation {
  file: string;
  line: number;
  text: string;
  why: string;
}

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

/** Every line under `root`/src, outside src/engine, that speaks QEMU. */
export function engineBoundaryViolations(root: string): BoundaryViolation[] {
  const out: BoundaryViolation[] = [];
  const src = join(root, 'src');
  for (const abs of tsFiles(src)) {
    const file = relative(root, abs);
    if (file.startsWith(join('src', 'engine'))) continue;
    const lines = readFileSync(abs, 'utf8').split('\n');
    lines.forEach((text, i) => {
      const code = text.replace(/^\s*(\/\/|\*|\/\*).*$/, ''); // comments may name QEMU's words
      const why = QEMU_OPTION.test(code)
        ? 'a QEMU command-line option'
        : QMP_COMMAND.test(code)
          ? 'a QMP command'
          : QMP_CLIENT.test(code)
            ? "a machine's QMP client"
            : undefined;
      if (why) out.push({ file, line: i + 1, text: text.trim(), why });
    });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = process.argv[2] ?? process.cwd();
  const found = engineBoundaryViolations(root);
  for (const v of found) {
    process.stderr.write(`${v.file}:${v.line}: ${v.why} outside src/engine: ${v.text}\n`);
  }
  if (found.length > 0) {
    process.stderr.write(
      `\n${found.length} line(s) speak QEMU outside src/engine: describe the device as data and let an engine helper render it.\n`,
    );
    process.exit(1);
  }
  process.stdout.write('engine boundary: no QEMU options or QMP commands outside src/engine\n');
}
