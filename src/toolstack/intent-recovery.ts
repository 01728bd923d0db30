// What a restarted daemon does with the intents (intents.ts) an earlier one
// left: each operation is completed or rolled back to exactly one outcome.
// The entries are read before reattaching (a domain torn down then takes its
// run directory, and the entry, with it) and settled after, when every QEMU
// that lives on is attached again.
//
//   save          committed once the file is whole under its name: the domain
//                 is destroyed (or left running/paused as asked); before that,
//                 the partial file goes and the guest runs again.
//   migrate-out   committed once the source QEMU completed (it does only after
//                 the target QEMU loaded every byte): the copy here goes;
//                 otherwise a migration still running is cancelled and the
//                 guest runs again here, under its own name.
//   migrate-in    committed once the incoming QEMU has loaded the state
//                 (reattach keeps such a domain): it takes its name and runs;
//                 before that the half-made domain goes (reattach, `creating`).
//   mem-set       the target was recorded; the devices are driven to it again
//                 and the deadline counts on: met, or its action applies.

import type { Domain } from './domain.ts';
import type { DomainRecord, DomainState } from './domain-table.ts';
import { clearIntent, type Intent, readIntents } from './intents.ts';
import { MemoryControl } from './memory.ts';
import { resolveMigrateOut } from './migrate.ts';
import { resolveMigrateIn } from './migrate-target.ts';

export { incomingLoaded } from './migrate-target.ts';

import { resolveSave } from './saverestore.ts';
import type { Toolstack } from './toolstack.ts';

const ADMIN = { sponsor: 'admin', admin: true } as const;

/** What the resolution needs of the toolstack beyond its public API. */
export class IntentHost {
  constructor(
    readonly ts: Toolstack,
    /** The lifecycle's own transition: recorded in the table and the store. */
    readonly setState: (d: Domain, state: DomainState) => void,
  ) {}

  domain(domid: number): Domain | undefined {
    return this.ts.list(ADMIN).find((x) => x.domid === domid);
  }

  /** Run the guest again (unless QEMU already does) and record it running. */
  resume(d: Domain): Promise<void> {
    return d.serial(async () => {
      const m = d.machine;
      if (!m?.alive) return;
      if ((await m.runState()) !== 'running') await m.resume();
      if (d.rec.state !== 'running') this.setState(d, 'running');
    });
  }
}

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

async function resolveOne(host: IntentHost, d: Domain | undefined, it: Intent): Promise<string | undefined> {
  switch (it.op) {
    case 'save':
      return resolveSave(host, d, it);
    case 'migrate-out':
      return resolveMigrateOut(host, d, it);
    case 'migrate-in':
      return resolveMigrateIn(host, d, it);
    case 'mem-set': {
      const mem = host.ts.plugins.find((p): p is MemoryControl => p instanceof MemoryControl);
      if (!d || !mem) return undefined;
      return mem.resumeDeadline(d, host.ts, it);
    }
  }
}

/** After reattaching: settle every operation an earlier daemon left unfinished. */
export async function resolveIntents(host: IntentHost, pending: PendingIntent[]): Promise<void> {
  for (const p of pending) {
    const d = host.domain(p.domid);
    try {
      const what = await resolveOne(host, d, p.intent);
      if (what) host.ts.log.warn(`${p.name}: ${what}`, p.domid);
    } catch (e) {
      // Said loudly and dropped: an entry that cannot be settled must not be retried forever.
      host.ts.log.error(
        `${p.name}: settling the ${p.intent.op} cut short at ${p.intent.step} failed: ${e instanceof Error ? e.message : String(e)}`,
        p.domid,
      );
      clearIntent(p.runDir, p.intent.op);
    }
  }
}
