// Every WebSocket open on the TCP listener, with the principal (token and web
// session) that opened it, so that revoking the token or logging out closes
// what it opened, whichever route the socket belongs to.

import type { WebSocket } from 'ws';
import type { Principal } from '../toolstack/principal.ts';

/** Close code sent when the credential behind a socket ends (like HTTP 401). */
export const CLOSE_UNAUTHORIZED = 4001;
/** A peer that does not answer the close frame is cut off after this long. */
const CLOSE_GRACE_MS = 1000;

export class SocketRegistry {
  private sockets = new Map<WebSocket, Principal>();

  add(ws: WebSocket, p: Principal): void {
    this.sockets.set(ws, p);
    ws.once('close', () => this.sockets.delete(ws));
  }

  /** Close every socket opened with token `tokenId`; returns how many. */
  closeToken(tokenId: string, reason: string): number {
    return this.closeWhere((p) => p.tokenId === tokenId, reason);
  }

  /** Close every socket opened through web session `sessionId`. */
  closeSession(sessionId: string, reason: string): number {
    return this.closeWhere((p) => p.sessionId === sessionId, reason);
  }

  private closeWhere(match: (p: Principal) => boolean, reason: string): number {
    let n = 0;
    for (const [ws, p] of this.sockets) {
      if (!match(p)) continue;
      n++;
      this.sockets.delete(ws);
      endSocket(ws, reason);
    }
    return n;
  }
}

/**
 * Stop acting on the socket now, and close it: no route sees another message
 * from it (ws still delivers them while closing), and a peer that never
 * answers the close frame is cut off after a second.
 */
export function endSocket(ws: WebSocket, reason: string): void {
  ws.removeAllListeners('message');
  ws.close(CLOSE_UNAUTHORIZED, reason);
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}
