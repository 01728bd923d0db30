// Builds (or finds in the cache) the default guest and prints where it is:
//   node --import tsx guest/cli.ts [--force]
// Progress goes to stderr so stdout stays machine-readable.

import { errorMessage } from '../src/errors.ts';
import { defaultGuestCacheDir, ensureDefaultGuest } from './build.ts';
import { clearBuiltGuests } from './cache.ts';

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--force');
  if (unknown.length > 0) {
    process.stderr.write(`usage: guest/cli.ts [--force]\nunknown argument: ${unknown[0]}\n`);
    return 2;
  }
  const onProgress = (msg: string) => process.stderr.write(`guest: ${msg}\n`);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  if (argv.includes('--force')) {
    // Downloaded .debs stay: --force rebuilds, it does not re-fetch unchanged packages.
    const removed = await clearBuiltGuests(defaultGuestCacheDir());
    if (removed.length > 0) onProgress(`removed ${removed.join(', ')}`);
  }
  const g = await ensureDefaultGuest({ onProgress, signal: controller.signal });
  process.stdout.write(
    `dir=${g.dir}\nkernel=${g.kernel}\nvmlinux=${g.vmlinux}\ninitrd=${g.initrd}\nkernelVersion=${g.kernelVersion}\nreadyMarker=${g.readyMarker}\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`guest: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  },
);
