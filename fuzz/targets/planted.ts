// Targets with planted bugs, for the harness's own tests: a crash coverage
// feedback finds in seconds (four nested nibble comparisons), and a hang.

import type { FuzzTarget } from '../target.ts';

export function planted(): FuzzTarget {
  return {
    name: 'planted',
    about: 'throws on input whose first four bytes have low nibbles 6, 5, 10, 1 (as in "FUZ!")',
    files: ['fuzz/targets/planted.ts'],
    maxLen: 64,
    run(d) {
      // One in 16 per level: found level by level with coverage feedback, one in 65536 blindly.
      if (((d[0] ?? 0) & 15) === 6) {
        if (((d[1] ?? 0) & 15) === 5) {
          if (((d[2] ?? 0) & 15) === 10) {
            if (((d[3] ?? 0) & 15) === 1) throw new RangeError('planted bug');
          }
        }
      }
    },
  };
}

export function plantedHang(): FuzzTarget {
  return {
    name: 'planted-hang',
    about: 'loops for ever on input starting with H',
    files: ['fuzz/targets/planted.ts'],
    maxLen: 16,
    run(d) {
      if (d[0] === 0x48) for (;;);
    },
  };
}
