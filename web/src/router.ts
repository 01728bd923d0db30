// A small history-API router: the URL path is a signal; links and code
// navigate without reloading the page.

import { signal } from '@preact/signals';

export const path = signal(window.location.pathname);

export function navigate(to: string, replace = false): void {
  if (to === window.location.pathname) return;
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  path.value = to;
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => {
  path.value = window.location.pathname;
});

/** Same-origin <a href> clicks become in-app navigation. */
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = (ev.target as Element | null)?.closest('a');
  if (!a || a.target || a.origin !== window.location.origin || a.hasAttribute('download')) return;
  ev.preventDefault();
  navigate(a.pathname);
});

export type Route =
  | { page: 'list' }
  | { page: 'create' }
  | { page: 'usage' }
  | { page: 'tokens' }
  | { page: 'audit' }
  | { page: 'domain'; dom: string; tab: DomainTab }
  | { page: 'missing' };

export type DomainTab = 'overview' | 'console' | 'devices' | 'transfer' | 'history' | 'config' | 'store' | 'audit';
const TABS: DomainTab[] = ['overview', 'console', 'devices', 'transfer', 'history', 'config', 'store', 'audit'];

export function parseRoute(p: string): Route {
  if (p === '/' || p === '') return { page: 'list' };
  if (p === '/create') return { page: 'create' };
  if (p === '/usage') return { page: 'usage' };
  if (p === '/tokens') return { page: 'tokens' };
  if (p === '/audit') return { page: 'audit' };
  const m = /^\/domains\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(p);
  if (m) {
    const tab = (m[2] ?? 'overview') as DomainTab;
    if (TABS.includes(tab)) return { page: 'domain', dom: decodeURIComponent(m[1]), tab };
  }
  return { page: 'missing' };
}
