// The TCP listener's port. Left to the system (port 0, the default), a
// restarted daemon would come back on another port and every open browser tab
// and bookmark would lose it; so the port it had last time is taken again
// when it is still free.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** `wanted`, or for 0 the port recorded in `tcpInfoFile` for this host if it is free. */
export async function stickyPort(tcpInfoFile: string, host: string, wanted: number): Promise<number> {
  if (wanted !== 0) return wanted;
  let last: { host?: unknown; port?: unknown };
  try {
    last = JSON.parse(readFileSync(tcpInfoFile, 'utf8')) as { host?: unknown; port?: unknown };
  } catch {
    return 0;
  }
  const port = last.port;
  if (last.host !== host || typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) return 0;
  return (await portFree(host, port)) ? port : 0;
}
