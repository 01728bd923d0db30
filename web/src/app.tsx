// The app shell: header with navigation and session, then the current page.

import { useEffect, useState } from 'preact/hooks';
import { api, logout } from './api.ts';
import { ConfirmDialog } from './components/ConfirmDialog.tsx';
import { linkState } from './live.ts';
import { AuditPage } from './pages/AuditPage.tsx';
import { CreatePage } from './pages/CreatePage.tsx';
import { DomainList } from './pages/DomainList.tsx';
import { DomainPage } from './pages/DomainPage.tsx';
import { TokensPage } from './pages/TokensPage.tsx';
import { UsagePage } from './pages/UsagePage.tsx';
import { parseRoute, path } from './router.ts';
import type { HostInfo, Principal } from './types.ts';

function Header({ who, host }: { who: Principal | undefined; host: HostInfo | undefined }) {
  const route = parseRoute(path.value);
  return (
    <header class="topbar">
      <a class="brand" href="/">
        <svg viewBox="0 0 32 32" width="24" height="24" aria-hidden="true">
          <rect x="2" y="2" width="28" height="28" rx="7" fill="#2f7de1" />
          <path d="M9 9l14 14M23 9L9 23" stroke="#fff" stroke-width="3.2" stroke-linecap="round" />
        </svg>
        <span>Xenode</span>
      </a>
      <nav class="topnav">
        <a href="/" class={route.page === 'list' || route.page === 'domain' ? 'active' : ''}>
          Domains
        </a>
        <a href="/create" class={route.page === 'create' ? 'active' : ''}>
          Create
        </a>
        <a href="/usage" class={route.page === 'usage' ? 'active' : ''}>
          Usage
        </a>
        <a href="/tokens" class={route.page === 'tokens' ? 'active' : ''}>
          Tokens
        </a>
        <a href="/audit" class={route.page === 'audit' ? 'active' : ''}>
          Audit
        </a>
      </nav>
      <div class="topbar-right">
        {host && (
          <span class="host-pill" title={host.accel_reason}>
            {host.host} · {host.accel.toUpperCase()}
          </span>
        )}
        <span class={`live-dot live-${linkState.value}`} title={`event stream: ${linkState.value}`} />
        {who && (
          <span class="who" data-sponsor={who.sponsor}>
            {who.sponsor}
            {who.admin ? ' (admin)' : ''}
          </span>
        )}
        <button type="button" class="btn btn-ghost" onClick={() => void logout()}>
          Log out
        </button>
      </div>
    </header>
  );
}

const PAGE_TITLE: Record<'list' | 'create' | 'usage' | 'tokens' | 'audit' | 'missing', string> = {
  list: 'Domains',
  create: 'Create a domain',
  usage: 'Usage',
  tokens: 'API tokens',
  audit: 'Network audit',
  missing: 'No such page',
};

export function App() {
  const [who, setWho] = useState<Principal | undefined>(undefined);
  const [host, setHost] = useState<HostInfo | undefined>(undefined);
  useEffect(() => {
    api<Principal>('GET', '/v1/whoami').then(setWho, () => undefined);
    // Free memory changes: read the host again every 10 s.
    const readHost = () => api<HostInfo>('GET', '/v1/info').then(setHost, () => undefined);
    void readHost();
    const t = setInterval(() => {
      if (linkState.value === 'live') void readHost();
    }, 10_000);
    return () => clearInterval(t);
  }, []);
  const route = parseRoute(path.value);
  useEffect(() => {
    // A domain's page sets its own title (it knows the name behind an id).
    if (route.page !== 'domain') document.title = `${PAGE_TITLE[route.page]} · Xenode`;
  }, [route.page]);
  return (
    <>
      <Header who={who} host={host} />
      {linkState.value === 'offline' && (
        <div class="offline-banner" role="alert" data-offline-banner>
          xenoded is not answering. What you see is the last known state; actions come back with it.
        </div>
      )}
      <main>
        {route.page === 'list' && <DomainList host={host} />}
        {route.page === 'create' && <CreatePage />}
        {route.page === 'usage' && <UsagePage who={who} />}
        {route.page === 'tokens' && <TokensPage who={who} />}
        {route.page === 'audit' && <AuditPage who={who} />}
        {route.page === 'domain' && <DomainPage dom={route.dom} tab={route.tab} />}
        {route.page === 'missing' && (
          <div class="page">
            <div class="alert alert-error">No such page.</div>
            <a href="/">← All domains</a>
          </div>
        )}
      </main>
      <ConfirmDialog />
    </>
  );
}
