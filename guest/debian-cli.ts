// Builds (or finds in the cache) the Debian 12 guest image and prints where it is:
//   npm run image:debian [-- --rebuild]
// Progress goes to stderr so stdout stays machine-readable.

import { errorMessage } from '../src/errors.ts';
import { ensureDebianImage } from './debian-image.ts';

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--rebuild');
  if (unknown.length > 0) {
    process.stderr.write(`usage: guest/debian-cli.ts [--rebuild]\nunknown argument: ${unknown[0]}\n`);
    return 2;
  }
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const img = await ensureDebianImage({
    rebuild: argv.includes('--rebuild'),
    signal: controller.signal,
    onProgress: (msg) => process.stderr.write(`${msg}\n`),
  });
  process.stdout.write(`dir=${img.dir}\ndisk=${img.disk}\nkernelVersion=${img.kernelVersion}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`debian image: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  },
);
