// Long operations (save, restore, migrate) over their WebSocket: the request
// is the first message, then {progress} frames, then {result} or {error}
// (src/features/saverestore/routes.ts).

import { ApiError, wsUrl } from '../api.ts';
import type { WireError } from '../types.ts';

export interface OpProgress {
  phase: 'save' | 'verify' | 'restore' | 'migrate';
  bytes: number;
  totalBytes?: number;
  mbps?: number;
  passes?: number;
}

export function runOp<T>(path: string, body: unknown, onProgress: (p: OpProgress) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const ws = new WebSocket(wsUrl(path));
    let done = false;
    ws.onopen = () => ws.send(JSON.stringify(body));
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      const m = JSON.parse(ev.data) as { progress?: OpProgress; result?: T; error?: WireError };
      if (m.progress) onProgress(m.progress);
      else if (m.error) {
        done = true;
        reject(new ApiError(400, m.error));
      } else if ('result' in m) {
        done = true;
        resolve(m.result as T);
      }
    };
    ws.onclose = (ev) => {
      if (done) return;
      const why =
        ev.code === 4001 ? 'the session ended' : 'the connection to xenoded was lost (the operation may still finish)';
      reject(new ApiError(0, { kind: 'internal', message: why }));
    };
  });
}

/** "1.2 GiB of 2.0 GiB (60 %)" or "340 MiB" when the total is not known. */
export function progressText(p: OpProgress): string {
  const mib = (n: number) => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MiB`;
  const pct = p.totalBytes ? ` (${Math.min(100, Math.round((p.bytes / p.totalBytes) * 100))} %)` : '';
  const rate = p.mbps ? ` · ${p.mbps.toFixed(0)} Mb/s` : '';
  const passes = p.passes ? ` · pass ${p.passes}` : '';
  return `${p.phase}: ${mib(p.bytes)}${p.totalBytes ? ` of ${mib(p.totalBytes)}` : ''}${pct}${rate}${passes}`;
}
