// API tokens. A sponsor sees its own (GET /v1/whoami/tokens) and may revoke
// them; the admin sees every sponsor's (GET /v1/tokens), creates and revokes.
// A token's secret is shown once, right after it is made, never again.

import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api.ts';
import { confirmAction } from '../components/ConfirmDialog.tsx';
import type { Principal } from '../types.ts';

interface TokenRow {
  id: string;
  sponsor: string;
  admin: boolean;
  created: number;
  label: string;
  current?: boolean;
}

function CreateToken({ onMade }: { onMade: () => void }) {
  const [sponsor, setSponsor] = useState('');
  const [label, setLabel] = useState('');
  const [admin, setAdmin] = useState(false);
  const [made, setMade] = useState<{ token: string; sponsor: string } | undefined>(undefined);
  const [error, setError] = useState('');
  return (
    <section class="card tokens-card" aria-labelledby="tok-new">
      <h2 id="tok-new">New token</h2>
      <form
        class="op-form"
        data-token-create
        onSubmit={(e) => {
          e.preventDefault();
          setError('');
          api<{ token: string; info: TokenRow }>('POST', '/v1/tokens', { sponsor: sponsor.trim(), label, admin }).then(
            (r) => {
              setMade({ token: r.token, sponsor: r.info.sponsor });
              setSponsor('');
              setLabel('');
              setAdmin(false);
              onMade();
            },
            (err: unknown) => setError(errorText(err)),
          );
        }}
      >
        <input
          aria-label="Sponsor"
          placeholder="sponsor"
          value={sponsor}
          onInput={(e) => setSponsor((e.currentTarget as HTMLInputElement).value)}
        />
        <input
          aria-label="Label"
          placeholder="label (optional)"
          value={label}
          onInput={(e) => setLabel((e.currentTarget as HTMLInputElement).value)}
        />
        <label class="check">
          <input
            type="checkbox"
            checked={admin}
            onChange={(e) => setAdmin((e.currentTarget as HTMLInputElement).checked)}
          />{' '}
          admin
        </label>
        <button type="submit" class="btn btn-primary" disabled={!sponsor.trim()}>
          Create
        </button>
      </form>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {made && (
        <div class="alert alert-ok" role="status" data-token-made>
          Token for {made.sponsor} (shown once, copy it now):{' '}
          <code class="mono" data-token-secret>
            {made.token}
          </code>
        </div>
      )}
    </section>
  );
}

export function TokensPage({ who }: { who: Principal | undefined }) {
  const [rows, setRows] = useState<TokenRow[] | undefined>(undefined);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const admin = who?.admin === true;
  useEffect(() => {
    if (!who) return;
    api<TokenRow[]>('GET', admin ? '/v1/tokens' : '/v1/whoami/tokens').then(setRows, (e: unknown) =>
      setError(errorText(e)),
    );
  }, [who, admin, tick]);
  const revoke = async (t: TokenRow) => {
    const ask = t.current
      ? 'This is the token of this session: you are logged out at once.'
      : 'Every program and browser session using it stops working at once.';
    if (!(await confirmAction(`Revoke token ${t.id}${t.label ? ` (${t.label})` : ''}?`, ask, 'Revoke'))) return;
    try {
      await api(
        'DELETE',
        admin ? `/v1/tokens/${encodeURIComponent(t.id)}` : `/v1/whoami/tokens/${encodeURIComponent(t.id)}`,
      );
      setTick((n) => n + 1);
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>API tokens</h1>
          <p class="muted">
            {admin
              ? 'Every sponsor’s tokens. Secrets are never stored: a lost token is revoked and replaced.'
              : `Tokens of sponsor ${who?.sponsor ?? '…'}. Ask the host’s admin for a new one.`}
          </p>
        </div>
      </div>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {admin && <CreateToken onMade={() => setTick((n) => n + 1)} />}
      <section class="card table-card" aria-label="tokens">
        <table class="domains tokens">
          <thead>
            <tr>
              <th>ID</th>
              <th>Sponsor</th>
              <th class="hide-sm">Label</th>
              <th class="hide-sm">Created</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(rows ?? []).map((t) => (
              <tr key={t.id} data-token={t.id}>
                <td class="mono">
                  {t.id}
                  {t.current ? <span class="muted"> (this session)</span> : null}
                </td>
                <td>
                  {t.sponsor}
                  {t.admin ? ' (admin)' : ''}
                </td>
                <td class="hide-sm">{t.label || '–'}</td>
                <td class="hide-sm">{new Date(t.created).toLocaleString()}</td>
                <td>
                  <div class="row-actions">
                    <button type="button" class="btn btn-small btn-danger-outline" onClick={() => void revoke(t)}>
                      Revoke
                    </button>
                  </div>
                </td>
              </tr>
            ))}
            {rows && rows.length === 0 && (
              <tr>
                <td colSpan={5} class="empty">
                  No tokens.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </div>
  );
}
