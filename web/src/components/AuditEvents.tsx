// What the switch's audit rules did (GET /v1/audit/events): refused SMTP
// connections, throttles, quarantines, spoofed frames, first addresses bound.
// The daemon filters by who asks: a sponsor's session gets its own events only;
// `domid` narrows to one domain (its page). Read again every 3 s while live.

import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api.ts';
import { domains, linkState } from '../live.ts';
import '../audit.css';

/** Mirrors AuditEvent in src/toolstack/lifecycle-hooks.ts. */
export interface AuditEvent {
  time: number;
  domid: number;
  devid: number;
  sponsor: string;
  rule: string;
  action: 'accept' | 'throttle' | 'drop' | 'reject' | 'quarantine';
  detail: string;
}

const REFRESH_MS = 3000;
/** The newest this many: the daemon keeps 5000, a page shows what one can read. */
const LIMIT = 500;

/** `YYYY-MM-DD HH:MM:SS` UTC, as `xenode flows events` prints it. */
export function eventTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

export function useAuditEvents(domid?: number): { events: AuditEvent[] | undefined; error: string } {
  const [events, setEvents] = useState<AuditEvent[] | undefined>(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    setEvents(undefined);
    const q = `limit=${LIMIT}${domid === undefined ? '' : `&domid=${domid}`}`;
    const load = () =>
      api<{ events: AuditEvent[] }>('GET', `/v1/audit/events?${q}`).then(
        (r) => {
          if (stop) return;
          setEvents(r.events.slice().reverse());
          setError('');
        },
        (e: unknown) => !stop && setError(errorText(e)),
      );
    void load();
    const t = setInterval(() => {
      if (linkState.value === 'live') void load();
    }, REFRESH_MS);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [domid]);
  return { events, error };
}

function domainName(domid: number): string {
  return domains.value.get(domid)?.name ?? `#${domid}`;
}

/** Newest first. `withDomain`: a column naming the domain (the all-domains view). */
export function AuditTable({ events, withDomain }: { events: AuditEvent[]; withDomain: boolean }) {
  const cols = withDomain ? 7 : 6;
  return (
    <table class="domains audit-events">
      <thead>
        <tr>
          <th>Time (UTC)</th>
          {withDomain && <th>Domain</th>}
          <th>Vif</th>
          <th>Sponsor</th>
          <th>Rule</th>
          <th>Action</th>
          <th>What</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e, i) => (
          <tr
            key={`${e.time}-${e.domid}-${e.devid}-${e.rule}-${i}`}
            data-audit-event
            data-rule={e.rule}
            data-action={e.action}
            data-domid={e.domid}
            data-sponsor={e.sponsor}
          >
            <td class="mono">{eventTime(e.time)}</td>
            {withDomain && (
              <td>
                {domains.value.has(e.domid) ? (
                  <a href={`/domains/${e.domid}/audit`}>{domainName(e.domid)}</a>
                ) : (
                  domainName(e.domid)
                )}
              </td>
            )}
            <td class="mono">
              {e.domid}.{e.devid}
            </td>
            <td>{e.sponsor}</td>
            <td class="mono">{e.rule}</td>
            <td>
              <span class={`audit-action audit-${e.action}`}>{e.action}</span>
            </td>
            <td class="audit-detail" title={e.detail}>
              {e.detail}
            </td>
          </tr>
        ))}
        {events.length === 0 && (
          <tr>
            <td colSpan={cols} class="empty" data-audit-empty>
              No audit events: no rule has acted on this traffic.
            </td>
          </tr>
        )}
      </tbody>
    </table>
  );
}

/** A domain's own events (its Audit tab). */
export function DomainAuditEvents({ domid }: { domid: number }) {
  const { events, error } = useAuditEvents(domid);
  return (
    <section class="card table-card" data-domain-audit={domid}>
      <h3 class="audit-title">Network audit events</h3>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {events ? <AuditTable events={events} withDomain={false} /> : <p class="muted audit-title">Loading…</p>}
    </section>
  );
}
