// A domain's History tab: what was asked of it through the API (who, the
// result) and the states it went through, newest first (GET
// /v1/domains/:dom/history). Read again every 5 s and on every state change.

import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api.ts';
import { linkState } from '../live.ts';
import type { DomainView } from '../types.ts';

interface HistoryEntry {
  t: number;
  kind: 'action' | 'state';
  what: string;
  by?: string;
  result?: 'ok' | 'error';
  detail?: string;
  domid: number;
}

export function HistoryPanel({ d }: { d: DomainView }) {
  const [events, setEvents] = useState<HistoryEntry[] | undefined>(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    const load = () =>
      api<{ events: HistoryEntry[] }>('GET', `/v1/domains/${d.domid}/history`).then(
        (h) => !stop && setEvents(h.events),
        (e: unknown) => !stop && setError(errorText(e)),
      );
    void load();
    const t = setInterval(() => linkState.value === 'live' && void load(), 5000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [d.domid, d.state, d.memMiB]);
  const list = [...(events ?? [])].reverse();
  return (
    <section class="card history-card" aria-labelledby="hist-h">
      <h3 id="hist-h">History</h3>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {!events ? (
        <p class="muted">Loading…</p>
      ) : list.length === 0 ? (
        <p class="muted">Nothing recorded yet.</p>
      ) : (
        <ol class="history-list">
          {list.map((e) => (
            <li key={`${e.t}-${e.kind}-${e.what}`} data-history={e.kind} data-what={e.what} data-result={e.result}>
              <time dateTime={new Date(e.t).toISOString()}>{new Date(e.t).toLocaleString()}</time>
              <span class={e.result === 'error' ? 'lvl-error' : 'muted'}>
                {e.kind === 'state' ? 'state' : e.result === 'error' ? 'failed' : 'done'}
              </span>
              <span>
                {e.kind === 'state' ? (
                  <>
                    became <b>{e.what}</b>
                  </>
                ) : (
                  <>
                    <b>{e.what}</b> by {e.by}
                    {e.detail ? `: ${e.detail}` : ''}
                  </>
                )}
                {e.domid !== d.domid ? <span class="muted"> (as domid {e.domid})</span> : null}
              </span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
