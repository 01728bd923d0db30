// The live view of the daemon: one WebSocket (/v1/events) keeps the domain
// table and the newest sample of each domain in signals; pages read them and
// re-render on change. Reconnects with backoff if the daemon restarts.

import { signal } from '@preact/signals';
import { wsUrl } from './api.ts';
import type { DomainView, LiveEvent, MetricsSample } from './types.ts';

export type LinkState = 'connecting' | 'live' | 'offline';

export const domains = signal<ReadonlyMap<number, DomainView>>(new Map());
export const latestSamples = signal<ReadonlyMap<number, MetricsSample>>(new Map());
export const linkState = signal<LinkState>('connecting');
/** Ticks once a second so uptimes count up between events. */
export const now = signal(Date.now());

type SampleListener = (domid: number, s: MetricsSample) => void;
const sampleListeners = new Set<SampleListener>();

/** Called for every new sample (charts append to their series). */
export function onSample(fn: SampleListener): () => void {
  sampleListeners.add(fn);
  return () => sampleListeners.delete(fn);
}

function apply(e: LiveEvent): void {
  switch (e.type) {
    case 'snapshot': {
      domains.value = new Map(e.domains.map((d) => [d.domid, d]));
      latestSamples.value = new Map(Object.entries(e.samples).map(([k, s]) => [Number(k), s]));
      break;
    }
    case 'change': {
      const m = new Map(domains.value);
      m.set(e.domain.domid, e.domain);
      domains.value = m;
      break;
    }
    case 'gone': {
      const m = new Map(domains.value);
      m.delete(e.domid);
      domains.value = m;
      const s = new Map(latestSamples.value);
      s.delete(e.domid);
      latestSamples.value = s;
      break;
    }
    case 'sample': {
      const s = new Map(latestSamples.value);
      s.set(e.domid, e.sample);
      latestSamples.value = s;
      for (const fn of sampleListeners) fn(e.domid, e.sample);
      break;
    }
  }
}

let started = false;

export function startLive(): void {
  if (started) return;
  started = true;
  setInterval(() => {
    now.value = Date.now();
  }, 1000);
  let delay = 500;
  const connect = () => {
    // Offline stays offline until the stream is back (no flicker on each retry).
    if (linkState.value !== 'offline') linkState.value = 'connecting';
    const ws = new WebSocket(wsUrl('/v1/events'));
    ws.onopen = () => {
      delay = 500;
      linkState.value = 'live';
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') apply(JSON.parse(ev.data) as LiveEvent);
    };
    ws.onclose = () => {
      linkState.value = 'offline';
      // The session may have ended: a quick API call redirects to /login on 401.
      void fetch('/v1/whoami', { credentials: 'same-origin' }).then((r) => {
        if (r.status === 401) window.location.assign('/login');
      });
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10_000);
    };
  };
  connect();
}
