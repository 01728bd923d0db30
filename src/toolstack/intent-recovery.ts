// What a restarted daemon does with the journal entries (intents.ts) an
// earlier one left: each operation is completed or rolled back to exactly one
// outcome by the feature that journaled it (LifecycleHooks.settleIntent). The
// entries are read before reattaching (a domain torn down then takes its run
// directory, and the entry, with it) and settled after, when every QEMU that
// lives on is attached again.
//
//   save          committed once the file is whole under its name: the domain
//                 is destroyed (or left running/paused as asked); before that,
//                 the partial file goes and the guest runs again.
//   migrate-out   committed once the source QEMU completed (it does only after
//                 the target QEMU loaded every byte): the copy here goes;
//                 otherwise the migration is cancelled if no device state went
//                 out yet (else its outcome waited for) and the guest runs here.
//   migrate-in    committed once the incoming QEMU has loaded the state
//                 (reattach keeps such a domain: keepUnfinished): it takes its
//                 name and runs; before that the half-made domain goes.
//   mem-set       the target was recorded; the devices are driven to it again
//                 and the deadline counts on: met, or its action applies.

import type { QemuMachine } from '../engine/qemu-machine.ts';
import type { Domain } from './domain.ts';
import type { DomainRecord } from './domain-table.ts';
import { clearIntent, type Intent, type IntentHost, readIntents } from './intents.ts';
import type { LifecycleHooks } from './lifecycle-hooks.ts';

export interface PendingIntent {
  domid: number;
  name: string;
  runDir: string;
  intent: Intent;
}

/** Before reattaching: every recorded domain's journal entries, in the order they are settled. */
export function collectIntents(recs: DomainRecord[], warn: (msg: string, domid: number) => void): PendingIntent[] {
  const out: PendingIntent[] = [];
  for (const rec of recs) {
    const { intents, unreadable } = readIntents(rec.runDir);
    for (const f of unreadable) warn(`journal entry ${f} was unreadable; removed it`, rec.domid);
    for (const intent of intents) out.push({ domid: rec.domid, name: rec.name, runDir: rec.runDir, intent });
  }
  // Whole-domain outcomes first: a mem-set deadline only matters for a domain that stays.
  return out.sort((a, b) => Number(a.intent.op === 'mem-set') - Number(b.intent.op === 'mem-set'));
}

/**
 * At reattach, for a domain whose record says it is still being created: true
 * when a feature keeps it (an incoming migration whose state has loaded was
 * handed over) rather than have it torn down.
 */
export async function keptUnfinished(hooks: LifecycleHooks[], d: Domain, m: QemuMachine): Promise<boolean> {
  for (const h of hooks) if (await h.keepUnfinished?.(d, m)) return true;
  return false;
}

/** After reattaching: settle every operation an earlier daemon left unfinished. */
export async function resolveIntents(
  hooks: LifecycleHooks[],
  host: IntentHost,
  pending: PendingIntent[],
  domain: (domid: number) => Domain | undefined,
): Promise<void> {
  for (const p of pending) {
    const owner = hooks.find((h) => h.intentOps?.includes(p.intent.op));
    try {
      const what = owner?.settleIntent ? await owner.settleIntent(host, domain(p.domid), p.intent) : undefined;
      if (!owner) clearIntent(p.runDir, p.intent.op);
      if (what) host.log.warn(`${p.name}: ${what}`, p.domid);
    } catch (e) {
      // Said loudly and dropped: an entry that cannot be settled must not be retried forever.
      host.log.error(
        `${p.name}: settling the ${p.intent.op} cut short at ${p.intent.step} failed: ${e instanceof Error ? e.message : String(e)}`,
        p.domid,
      );
      clearIntent(p.runDir, p.intent.op);
    }
  }
}
