// docs/benchmarks.md holds one `## ` section per benchmark; each benchmark
// rewrites only its own section and leaves the others as they are.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const PREAMBLE = `# Benchmarks

Each section below is written by one benchmark script (\`npm run bench:<name>\`); rerunning a
benchmark replaces only its own section. Numbers are from the machine named in the section.
`;

/**
 * Replace the section whose heading line is exactly `heading` (e.g. "## Boot (bench:boot)")
 * with `body`, or append it. A section runs until the next `## ` heading.
 */
export function replaceSection(file: string, heading: string, body: string): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : PREAMBLE;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === heading);
  const section = `${heading}\n\n${body.trim()}\n`;
  let out: string;
  if (start < 0) {
    out = `${text.trimEnd()}\n\n${section}`;
  } else {
    let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
    if (end < 0) end = lines.length;
    const before = lines.slice(0, start).join('\n').trimEnd();
    const after = lines.slice(end).join('\n').trim();
    out = `${before}\n\n${section}${after ? `\n${after}\n` : ''}`;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, out);
}
