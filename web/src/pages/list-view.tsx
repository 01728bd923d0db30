// The domain list's search, state filter and column sort. Kept in signals of
// this module, so they survive going to a domain's page and back.

import { signal } from '@preact/signals';
import type { ComponentChildren } from 'preact';
import type { DomainState, DomainView, MetricsSample } from '../types.ts';

export type SortKey = 'name' | 'id' | 'state' | 'memory' | 'vcpus' | 'cpu' | 'uptime' | 'sponsor';

export const search = signal('');
export const stateFilter = signal<'' | DomainState>('');
export const sortBy = signal<{ key: SortKey; dir: 1 | -1 }>({ key: 'id', dir: 1 });

const STATES: DomainState[] = ['running', 'paused', 'shutdown', 'crashed', 'creating', 'dying'];

function sortValue(d: DomainView, key: SortKey, s: MetricsSample | undefined): string | number {
  switch (key) {
    case 'name':
      return d.name.toLowerCase();
    case 'id':
      return d.domid;
    case 'state':
      return d.state;
    case 'memory':
      return d.memMiB;
    case 'vcpus':
      return d.vcpus;
    case 'cpu':
      return s?.cpuPct ?? -1;
    case 'uptime':
      return d.state === 'running' || d.state === 'paused' ? -d.startTime : Number.NEGATIVE_INFINITY;
    case 'sponsor':
      return d.sponsor.toLowerCase();
  }
}

/** The rows to show: searched (name, sponsor, id, uuid), filtered by state, sorted; ties by domid. */
export function viewOf(list: DomainView[], samples: ReadonlyMap<number, MetricsSample>): DomainView[] {
  const q = search.value.trim().toLowerCase();
  const st = stateFilter.value;
  const { key, dir } = sortBy.value;
  return list
    .filter(
      (d) =>
        (!st || d.state === st) &&
        (!q ||
          d.name.toLowerCase().includes(q) ||
          d.sponsor.toLowerCase().includes(q) ||
          String(d.domid) === q ||
          d.uuid.startsWith(q)),
    )
    .sort((a, b) => {
      const x = sortValue(a, key, samples.get(a.domid));
      const y = sortValue(b, key, samples.get(b.domid));
      return (x < y ? -1 : x > y ? 1 : 0) * dir || a.domid - b.domid;
    });
}

export function ListControls({ shown, total }: { shown: number; total: number }) {
  return (
    <div class="list-controls">
      <input
        type="search"
        class="list-search"
        placeholder="Search name, sponsor, id"
        aria-label="Search domains"
        data-list-search
        value={search.value}
        onInput={(e) => {
          search.value = (e.currentTarget as HTMLInputElement).value;
        }}
      />
      <select
        aria-label="Show domains in state"
        data-list-state
        value={stateFilter.value}
        onChange={(e) => {
          stateFilter.value = (e.currentTarget as HTMLSelectElement).value as '' | DomainState;
        }}
      >
        <option value="">All states</option>
        {STATES.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      {shown !== total && (
        <span class="muted" aria-live="polite">
          {shown} of {total} shown
        </span>
      )}
    </div>
  );
}

/** A column header that sorts by `k`: click once ascending, again descending. */
export function SortHeader({ k, cls, children }: { k: SortKey; cls?: string; children: ComponentChildren }) {
  const cur = sortBy.value;
  const on = cur.key === k;
  return (
    <th class={cls} data-sort={k} aria-sort={on ? (cur.dir === 1 ? 'ascending' : 'descending') : undefined}>
      <button
        type="button"
        class="sort-btn"
        onClick={() => {
          sortBy.value = { key: k, dir: on && cur.dir === 1 ? -1 : 1 };
        }}
      >
        {children}
        <span aria-hidden="true" class="sort-mark">
          {on ? (cur.dir === 1 ? '▲' : '▼') : ''}
        </span>
      </button>
    </th>
  );
}
