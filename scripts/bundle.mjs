// Bundle the CLI and the daemon so `xenode` starts fast: resolving a few
// hundred ESM files (typebox, commander, ws) costs more than running them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // ws's optional native speedups; native addons stay external (etcd3 too: it reads its .proto files beside itself).
  external: ['bufferutil', 'utf-8-validate', 'better-sqlite3', 'koffi', '@node-rs/xxhash', 'etcd3'],
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __xnCreateRequire } from 'node:module'; const require = __xnCreateRequire(import.meta.url);" },
};
// The CLI is CommonJS so bin/xenode-cli.cjs can run it through V8's code cache;
// import.meta.url (locating xenoded.mjs next to it) becomes the file's own URL.
rmSync('dist/xenode.mjs', { force: true });
rmSync('dist/xenode.mjs.map', { force: true });
rmSync('dist/xenode.cjs.cache', { force: true });
await build({
  ...common,
  format: 'cjs',
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/xenode.cjs',
  define: { 'import.meta.url': '__xnImportMetaUrl' },
  banner: { js: "const __xnImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
await build({ ...common, entryPoints: ['src/daemon-main.ts'], outfile: 'dist/xenoded.mjs' });
await build({ ...common, entryPoints: ['src/net/switch-main.ts'], outfile: 'dist/xenode-switch.mjs' });
await build({ ...common, entryPoints: ['src/backends/vhost-blk/main.ts'], outfile: 'dist/xenode-blk.mjs' });

// V8 keeps a script's source in memory, as one byte per character only when every
// character is Latin-1: a single arrow in a kept comment doubles the daemon's 3.5 MB.
// esbuild escapes strings but keeps comments (and some regexps) as written, so
// escape what is left; \uXXXX means the same in strings, regexps and identifiers.
for (const f of ['dist/xenode.cjs', 'dist/xenoded.mjs', 'dist/xenode-switch.mjs', 'dist/xenode-blk.mjs']) {
  const text = readFileSync(f, 'utf8');
  const latin1 = text.replace(/[^\x00-\xff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (latin1 !== text) writeFileSync(f, latin1);
}

// bin/xenode-cli.cjs runs the bundle as a vm.Script, which has no loader for a
// real import(): esbuild turns import() of bundled code into require(), but not of
// Node's own modules. Catch one at build time rather than in a user's command.
const dynamic = /[^\w.$]import\(/.exec(readFileSync('dist/xenode.cjs', 'utf8'));
if (dynamic) throw new Error(`dist/xenode.cjs has a dynamic import() (use a static import): ...${dynamic.input.slice(dynamic.index, dynamic.index + 60)}`);

// Warm V8's code cache with a command that parses a config (no daemon needed):
// the cache then holds the functions a create runs, not only the top level.
const warm = mkdtempSync(join(tmpdir(), 'xenode-build-'));
try {
  writeFileSync(join(warm, 'warm.cfg'), 'name = "warm"\nmemory = 256\n');
  execFileSync(process.execPath, ['bin/xenode-cli.cjs', 'create', '-n', join(warm, 'warm.cfg')], { stdio: 'ignore' });
} finally {
  rmSync(warm, { recursive: true, force: true });
}
