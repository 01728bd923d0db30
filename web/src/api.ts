// Calls to xenoded's API. The session cookie goes along by itself; a 401
// means the session ended, so the browser goes back to the login page.

import type { WireError } from './types.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly wire: WireError,
  ) {
    super(wire.message);
  }

  /** `message (hint)`, as the CLI prints it. */
  get text(): string {
    return this.wire.hint ? `${this.wire.message} (${this.wire.hint})` : this.wire.message;
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    window.location.assign('/login');
    throw new ApiError(401, { kind: 'unauthorized', message: 'session ended; log in again' });
  }
  if (!res.ok) {
    const err = (json as { error?: WireError } | undefined)?.error;
    throw new ApiError(res.status, err ?? { kind: 'internal', message: `${res.status} ${res.statusText}` });
  }
  return json as T;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.text;
  // fetch() rejects with a TypeError ("Failed to fetch") when nothing answers.
  if (e instanceof TypeError) return 'xenoded is not answering; try again once it is back';
  return e instanceof Error ? e.message : String(e);
}

export const enc = encodeURIComponent;

/** ws:// or wss:// URL on this origin. */
export function wsUrl(path: string): string {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}${path}`;
}

export async function logout(): Promise<void> {
  await fetch('/v1/logout', { method: 'POST', credentials: 'same-origin' });
  window.location.assign('/login');
}
