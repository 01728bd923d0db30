// A domain's state as a coloured badge, with xl's state letters as tooltip.

import type { DomainState } from '../types.ts';

const LABEL: Record<DomainState, string> = {
  creating: 'creating',
  running: 'running',
  paused: 'paused',
  shutdown: 'shut down',
  crashed: 'crashed',
  dying: 'dying',
};

export function StateBadge({ state, letters }: { state: DomainState; letters?: string }) {
  return (
    <span class={`badge badge-${state}`} title={letters ? `xl state: ${letters}` : undefined} data-state={state}>
      <span class="badge-dot" />
      {LABEL[state]}
    </span>
  );
}
