// Bundle the CLI and the daemon so `xenode` starts fast: resolving a few
// hundred ESM files (typebox, commander, ws) costs more than running them.
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // ws's optional native speedups; native addons stay external.
  external: ['bufferutil', 'utf-8-validate', 'better-sqlite3', 'koffi', '@node-rs/xxhash'],
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __xnCreateRequire } from 'node:module'; const require = __xnCreateRequire(import.meta.url);" },
};
await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/xenode.mjs' });
await build({ ...common, entryPoints: ['src/daemon-main.ts'], outfile: 'dist/xenoded.mjs' });
await build({ ...common, entryPoints: ['src/net/switch-main.ts'], outfile: 'dist/xenode-switch.mjs' });
