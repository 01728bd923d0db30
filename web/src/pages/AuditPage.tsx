// Every audit event the session may see: the admin's, all of them; a sponsor's,
// its own domains' only (the daemon filters). A rule filter on top.

import { useState } from 'preact/hooks';
import { AuditTable, useAuditEvents } from '../components/AuditEvents.tsx';
import type { Principal } from '../types.ts';

export function AuditPage({ who }: { who: Principal | undefined }) {
  const { events, error } = useAuditEvents();
  const [rule, setRule] = useState('');
  const rules = [...new Set((events ?? []).map((e) => e.rule))].sort();
  const shown = (events ?? []).filter((e) => rule === '' || e.rule === rule);
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>Network audit</h1>
          <p class="muted">
            {who?.admin ? 'Every sponsor' : `Sponsor ${who?.sponsor ?? '…'}`}: what the switch's rules did, newest first
            (refused connections, throttles, quarantines, spoofed frames). The flows themselves: xenode flows.
          </p>
        </div>
        <select value={rule} onChange={(e) => setRule((e.target as HTMLSelectElement).value)} aria-label="rule">
          <option value="">All rules</option>
          {rules.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </div>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      <section class="card table-card" data-audit-page>
        {events ? <AuditTable events={shown} withDomain /> : <p class="muted audit-title">Loading…</p>}
      </section>
    </div>
  );
}
