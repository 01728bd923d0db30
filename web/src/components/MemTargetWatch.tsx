// After a memory target is set: follow the guest's actual size (GET
// /v1/domains/:dom/memory) and say whether it got there. A target the guest
// cannot reach (memory it cannot give back, no balloon driver) used to be
// accepted without a word.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { formatMiB } from '../format.ts';

interface MemoryStatus {
  targetKiB: number;
  actualKiB: number;
}

/** How long the guest gets before the notice says it has not got there. */
const GRACE_MS = 30_000;
/** Followed this long in all (it may still arrive late). */
const FOLLOW_MS = 120_000;

/** The memory controller's own tolerance (src/features/memory/policy.ts): 8 MiB or 2 %. */
function tolerance(targetKiB: number): number {
  return Math.max(8 * 1024, Math.ceil(targetKiB * 0.02));
}

export function MemTargetWatch({
  dom,
  name,
  targetMiB,
  since,
}: {
  dom: number;
  name: string;
  targetMiB: number;
  since: number;
}) {
  const [actualKiB, setActualKiB] = useState<number | undefined>(undefined);
  const [nowMs, setNow] = useState(Date.now());
  const targetKiB = targetMiB * 1024;
  const reached = actualKiB !== undefined && Math.abs(actualKiB - targetKiB) <= tolerance(targetKiB);
  useEffect(() => {
    let stop = false;
    let t: ReturnType<typeof setTimeout> | undefined;
    const poll = () => {
      api<MemoryStatus>('GET', `/v1/domains/${dom}/memory`).then(
        (m) => {
          if (stop) return;
          setActualKiB(m.actualKiB);
          setNow(Date.now());
          const done = Math.abs(m.actualKiB - targetKiB) <= tolerance(targetKiB);
          if (!done && Date.now() - since < FOLLOW_MS) t = setTimeout(poll, 1000);
        },
        () => {
          if (!stop && Date.now() - since < FOLLOW_MS) t = setTimeout(poll, 2000);
        },
      );
    };
    poll();
    return () => {
      stop = true;
      if (t) clearTimeout(t);
    };
  }, [dom, targetKiB, since]);
  if (actualKiB === undefined) return null;
  const secs = Math.round((nowMs - since) / 1000);
  if (reached) {
    return (
      <div class="alert alert-ok mem-notice" role="status" data-mem-reached>
        {name} is at its memory target of {formatMiB(targetMiB)}.
      </div>
    );
  }
  if (nowMs - since < GRACE_MS) {
    return (
      <div class="alert alert-info mem-notice" role="status" data-mem-moving>
        Moving {name} to {formatMiB(targetMiB)}: now {formatMiB(actualKiB / 1024)} ({secs} s)…
      </div>
    );
  }
  return (
    <div class="alert alert-warn mem-notice" role="status" data-mem-unreached>
      {name} has not reached {formatMiB(targetMiB)} after {secs} s: it holds {formatMiB(actualKiB / 1024)}. The guest
      may not be able to give that much back (memory in use, or no balloon driver); the target stays set.
    </div>
  );
}
