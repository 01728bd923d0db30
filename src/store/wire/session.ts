// One wire connection: decodes each request's arguments the way xenstored does
// (onearg, get_strings, atoi), runs it against the ControlStore as the
// connection's caller, and answers with xenstored's reply or errno name.
// Watches and transactions belong to the connection and end with it.

import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { DOMID_GUEST_MAX, domainPath } from '../domain-layout.ts';
import { isStoreError } from '../errors.ts';
import { parsePerm } from '../perms.ts';
import type { ControlStore } from '../store.ts';
import type { Caller, Perm } from '../types.ts';
import { atoi, countStrings, encodeFrame, encodeTextFrame, payloadStrings, singleArg } from './codec.ts';
import { controlCommand } from './control.ts';
import { DOMID_SELF, PAYLOAD_MAX, type WireErrno, type WireMessage, XsType } from './protocol.ts';

/** Who a connection speaks for: dom0's privileged socket, or one domain. */
export interface WireIdentity {
  readonly domid: number;
  readonly privileged: boolean;
}

/** Where a session's output goes (a socket, a guest channel). */
export interface WireSink {
  /**
   * Queues one frame for the peer. Watch events ('event') may be refused under
   * back-pressure (return false); replies never are.
   */
  send(frame: Buffer, kind: 'reply' | 'event'): boolean;
  /** The server ends the connection (e.g. its domain was released). */
  close(): void;
}

/** What a session needs of the server that owns it. */
export interface SessionHost {
  readonly store: ControlStore;
  targetOf(domid: number): number | undefined;
  setTarget(domid: number, target: number): void;
  log(message: string): void;
  forget(session: WireSession): void;
}

/** An error to answer with an errno name. */
class WireError extends Error {
  constructor(readonly errno: WireErrno) {
    super(errno);
  }
}

const OK = Buffer.from('OK\0');
const T = Buffer.from('T\0');
const F = Buffer.from('F\0');
const EMPTY = Buffer.alloc(0);

/** Requests only a privileged connection may send (xenstored's XS_FLAG_PRIV). */
const PRIVILEGED = new Set<number>([
  XsType.CONTROL,
  XsType.INTRODUCE,
  XsType.RELEASE,
  XsType.IS_DOMAIN_INTRODUCED,
  XsType.RESUME,
  XsType.SET_TARGET,
]);

/** Requests whose tx_id is ignored (XS_FLAG_NOTID). */
const NO_TRANSACTION = new Set<number>([XsType.WATCH, XsType.UNWATCH]);

/** Open transactions a privileged connection may hold (an unprivileged one has the store's quota). */
const PRIVILEGED_TRANSACTIONS = 1024;

interface SessionWatch {
  readonly path: string;
  readonly token: Buffer;
  readonly storeToken: string;
  readonly relative: boolean;
}

let nextSessionId = 1;

function fail(errno: WireErrno): never {
  throw new WireError(errno);
}

/** A domid argument as xenstored reads it: exactly one string, through atoi. */
function domidArg(payload: Buffer): number {
  const s = singleArg(payload);
  if (s === undefined) fail('EINVAL');
  return atoi(s);
}

function nulJoined(names: readonly string[]): Buffer {
  let len = 0;
  for (const n of names) len += Buffer.byteLength(n, 'latin1') + 1;
  const out = Buffer.allocUnsafe(len);
  let at = 0;
  for (const n of names) {
    at += out.write(n, at, 'latin1');
    out[at++] = 0;
  }
  return out;
}

export class WireSession {
  readonly id = nextSessionId++;
  private readonly home: string;
  private readonly baseCaller: Caller;
  private readonly transactions = new Set<number>();
  private readonly watches = new Map<string, SessionWatch>();
  private _closed = false;

  constructor(
    private readonly host: SessionHost,
    readonly identity: WireIdentity,
    private readonly sink: WireSink,
  ) {
    this.home = domainPath(identity.domid);
    this.baseCaller = Object.freeze({ domid: identity.domid, privileged: identity.privileged });
  }

  get closed(): boolean {
    return this._closed;
  }

  /**
   * Answers one request. Never throws: every failure becomes an error reply.
   * Its changes are group-committed (ControlStore.deferCommits): live and
   * answered at once, in SQLite within the store's window, as xenstored
   * answers before anything is on disk.
   */
  handle(msg: WireMessage): void {
    if (this._closed) return;
    try {
      if (msg.type === XsType.READ && msg.txId === 0) {
        // The commonest request, answered without an intermediate buffer.
        const value = this.host.store.read(this.caller(), this.path(singleArg(msg.payload)));
        this.replyText(msg, value);
        return;
      }
      this.reply(
        msg,
        this.host.store.deferCommits(() => this.dispatch(msg)),
      );
    } catch (e) {
      this.error(msg, this.errnoOf(e));
    }
  }

  /** Drops the connection's watches and aborts its transactions. Idempotent. */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this.reset();
    this.host.forget(this);
  }

  // ---- dispatch -----------------------------------------------------------------

  /** The reply's payload; throws to answer with an error. */
  private dispatch(msg: WireMessage): Buffer {
    const { type, payload } = msg;
    if (PRIVILEGED.has(type) && !this.identity.privileged) fail('EACCES');
    let tx = 0;
    if (!NO_TRANSACTION.has(type) && msg.txId !== 0) {
      if (!this.transactions.has(msg.txId)) fail('ENOENT');
      tx = msg.txId;
    }
    const store = this.host.store;
    switch (type) {
      case XsType.READ:
        return Buffer.from(store.read(this.caller(), this.path(singleArg(payload)), tx), 'utf8');
      case XsType.WRITE:
        return this.write(msg, tx);
      case XsType.MKDIR:
        store.mkdir(this.caller(), this.path(singleArg(payload)), tx);
        return OK;
      case XsType.RM:
        store.rm(this.caller(), this.path(singleArg(payload)), tx);
        return OK;
      case XsType.DIRECTORY: {
        const names = store.directory(this.caller(), this.path(singleArg(payload)), tx);
        return names.length === 0 ? EMPTY : nulJoined(names);
      }
      case XsType.DIRECTORY_PART:
        return this.directoryPart(msg, tx);
      case XsType.GET_PERMS: {
        const perms = store.getPerms(this.caller(), this.path(singleArg(payload)), tx);
        return nulJoined(perms.map((p) => `${p.perm}${p.id}`));
      }
      case XsType.SET_PERMS:
        return this.setPerms(msg, tx);
      case XsType.WATCH:
        return this.watch(msg);
      case XsType.UNWATCH:
        return this.unwatch(msg);
      case XsType.TRANSACTION_START:
        return this.transactionStart(msg);
      case XsType.TRANSACTION_END:
        return this.transactionEnd(msg);
      case XsType.GET_DOMAIN_PATH:
        return Buffer.from(`${domainPath(domidArg(payload))}\0`, 'latin1');
      case XsType.RESET_WATCHES:
        this.reset();
        return OK;
      case XsType.INTRODUCE:
        return this.introduce(msg);
      case XsType.RELEASE: {
        const domid = this.knownDomain(payload);
        store.releaseDomain(domid);
        return OK;
      }
      case XsType.RESUME:
        // Xenode sends @releaseDomain when a domain is released, not at shutdown: nothing to re-arm.
        this.knownDomain(payload);
        return OK;
      case XsType.IS_DOMAIN_INTRODUCED: {
        const domid = domidArg(payload);
        const yes =
          domid === 0 || domid === DOMID_SELF || (domid <= DOMID_GUEST_MAX && store.isDomainIntroduced(domid));
        return yes ? T : F;
      }
      case XsType.SET_TARGET:
        return this.setTarget(msg);
      case XsType.CONTROL:
        return controlCommand(store, payloadStrings(payload), this.host.log);
      default:
        fail('ENOSYS');
    }
  }

  // ---- requests -----------------------------------------------------------------

  private write(msg: WireMessage, tx: number): Buffer {
    const nul = msg.payload.indexOf(0);
    if (nul < 0) fail('EINVAL');
    const path = this.path(msg.payload.toString('latin1', 0, nul));
    const value = msg.payload.subarray(nul + 1);
    // The store holds text shared with the API and the CLI: octets that are not UTF-8 would not survive.
    if (!isUtf8(value)) fail('EINVAL');
    this.host.store.write(this.caller(), path, value.toString('utf8'), tx);
    return OK;
  }

  private directoryPart(msg: WireMessage, tx: number): Buffer {
    if (countStrings(msg.payload) !== 2) fail('EINVAL');
    const [rawPath, rawOff] = payloadStrings(msg.payload, 2) as [Buffer, Buffer];
    const names = this.host.store.directory(this.caller(), this.path(rawPath.toString('latin1')), tx);
    const children = nulJoined(names);
    const off = atoi(rawOff.toString('latin1'));
    // Stands in for xenstored's node generation: it changes whenever the child list does.
    const gen = BigInt(`0x${createHash('sha1').update(children).digest('hex').slice(0, 15)}`).toString();
    const genBytes = Buffer.from(`${gen}\0`, 'latin1');
    if (off >= children.length) return Buffer.concat([genBytes, Buffer.from([0])]);
    // As send_directory_part: whole names from `off` while they fit, a final extra NUL at the end of the list.
    const maxlen = PAYLOAD_MAX - genBytes.length - 1;
    let len = 0;
    let at = off;
    while (at < children.length) {
      const end = children.indexOf(0, at);
      const nameLen = end - at;
      if (len + nameLen >= maxlen) break;
      len += nameLen + 1;
      at = end + 1;
    }
    const last = off + len === children.length;
    const body = [genBytes, children.subarray(off, off + len)];
    if (last) body.push(Buffer.from([0]));
    return Buffer.concat(body);
  }

  private setPerms(msg: WireMessage, tx: number): Buffer {
    const n = countStrings(msg.payload);
    if (n < 2) fail('EINVAL');
    const store = this.host.store;
    if (!this.identity.privileged && store.quotas.perms > 0 && n - 1 > store.quotas.perms) fail('ENOSPC');
    const [rawPath, ...rawPerms] = payloadStrings(msg.payload, n) as [Buffer, ...Buffer[]];
    const perms: Perm[] = rawPerms.map((b) => parsePerm(b.toString('latin1')));
    const owner = (perms[0] as Perm).id;
    // xenstored refuses an owner that is no domain it knows.
    if (owner !== 0 && (owner > DOMID_GUEST_MAX || !store.isDomainIntroduced(owner))) fail('ENOENT');
    store.setPerms(this.caller(), this.path(rawPath.toString('latin1')), perms, tx);
    return OK;
  }

  private watch(msg: WireMessage): Buffer {
    if (countStrings(msg.payload) !== 2) fail('EINVAL');
    const [rawPath, rawToken] = payloadStrings(msg.payload, 2) as [Buffer, Buffer];
    const raw = rawPath.toString('latin1');
    const relative = !raw.startsWith('/') && !raw.startsWith('@');
    const path = this.path(raw);
    const tokenText = rawToken.toString('latin1');
    const key = `${path}\0${tokenText}`;
    if (this.watches.has(key)) fail('EEXIST');
    const token = Buffer.from(rawToken);
    // The store keys watches by principal, path and token: the session id keeps connections apart.
    const storeToken = `wire/${this.id}/${tokenText}`;
    try {
      this.host.store.watch(this.caller(), path, storeToken, (ev) => this.event(ev.path, token, relative));
    } catch (e) {
      // xenstored answers a full watch quota with E2BIG.
      if (isStoreError(e, 'ENOSPC')) fail('E2BIG');
      throw e;
    }
    this.watches.set(key, { path, token, storeToken, relative });
    return OK;
  }

  private unwatch(msg: WireMessage): Buffer {
    if (countStrings(msg.payload) !== 2) fail('EINVAL');
    const [rawPath, rawToken] = payloadStrings(msg.payload, 2) as [Buffer, Buffer];
    const key = `${this.path(rawPath.toString('latin1'))}\0${rawToken.toString('latin1')}`;
    const w = this.watches.get(key);
    if (!w) fail('ENOENT');
    this.watches.delete(key);
    this.dropWatch(w);
    return OK;
  }

  private transactionStart(msg: WireMessage): Buffer {
    if (msg.txId !== 0) fail('EBUSY');
    if (this.identity.privileged && this.transactions.size >= PRIVILEGED_TRANSACTIONS) fail('ENOSPC');
    const id = this.host.store.transactionStart(this.caller());
    this.transactions.add(id);
    return Buffer.from(`${id}\0`, 'latin1');
  }

  private transactionEnd(msg: WireMessage): Buffer {
    const arg = singleArg(msg.payload);
    if (arg !== 'T' && arg !== 'F') fail('EINVAL');
    if (msg.txId === 0) fail('ENOENT');
    this.transactions.delete(msg.txId);
    this.host.store.transactionEnd(this.caller(), msg.txId, arg === 'T');
    return OK;
  }

  private introduce(msg: WireMessage): Buffer {
    const args = payloadStrings(msg.payload, 3);
    if (args.length < 3) fail('EINVAL');
    const domid = atoi((args[0] as Buffer).toString('latin1'));
    // The gfn (args[1]) names a ring page; Xenode's domains talk over a socket or channel instead.
    const port = atoi((args[2] as Buffer).toString('latin1'));
    if (port === 0 || domid === 0 || domid > DOMID_GUEST_MAX) fail('EINVAL');
    const store = this.host.store;
    // Introducing again is fine (xenstored rebinds the event channel).
    if (!store.isDomainIntroduced(domid)) store.introduceDomain(domid);
    return OK;
  }

  private setTarget(msg: WireMessage): Buffer {
    const args = payloadStrings(msg.payload, 2);
    if (args.length < 2) fail('EINVAL');
    const domid = atoi((args[0] as Buffer).toString('latin1'));
    const target = atoi((args[1] as Buffer).toString('latin1'));
    for (const d of [domid, target]) {
      if (d !== 0 && (d > DOMID_GUEST_MAX || !this.host.store.isDomainIntroduced(d))) fail('ENOENT');
    }
    this.host.setTarget(domid, target);
    return OK;
  }

  /** RELEASE and RESUME: a domain that is not 0 and is introduced. */
  private knownDomain(payload: Buffer): number {
    const domid = domidArg(payload);
    if (domid === 0) fail('EINVAL');
    if (domid > DOMID_GUEST_MAX || !this.host.store.isDomainIntroduced(domid)) fail('ENOENT');
    return domid;
  }

  // ---- helpers ------------------------------------------------------------------

  private caller(): Caller {
    if (this.identity.privileged) return this.baseCaller;
    const target = this.host.targetOf(this.identity.domid);
    return target === undefined ? this.baseCaller : { ...this.baseCaller, target };
  }

  /** xenstored's canonicalize(): absolute and special paths as they are, others below the home. */
  private path(raw: string | undefined): string {
    if (raw === undefined) fail('EINVAL');
    if (raw.startsWith('/') || raw.startsWith('@')) return raw;
    return `${this.home}/${raw}`;
  }

  private event(path: string, token: Buffer, relative: boolean): void {
    if (this._closed) return;
    let p = path;
    if (relative && p.startsWith(this.home)) {
      p = p.slice(this.home.length);
      if (p.startsWith('/')) p = p.slice(1);
    }
    const pathLen = Buffer.byteLength(p, 'latin1');
    const len = pathLen + 1 + token.length + 1;
    // xenstored does not send an event too long for one message.
    if (len > PAYLOAD_MAX) return;
    const body = Buffer.allocUnsafe(len);
    body.write(p, 0, 'latin1');
    body[pathLen] = 0;
    token.copy(body, pathLen + 1);
    body[len - 1] = 0;
    this.sink.send(encodeFrame(XsType.WATCH_EVENT, 0, 0, body), 'event');
  }

  private replyText(msg: WireMessage, value: string): void {
    if (Buffer.byteLength(value, 'utf8') > PAYLOAD_MAX) this.error(msg, 'E2BIG');
    else this.sink.send(encodeTextFrame(msg.type, msg.reqId, msg.txId, value, 'utf8'), 'reply');
  }

  private reply(msg: WireMessage, payload: Buffer): void {
    // As send_reply: a reply that does not fit one message is E2BIG.
    if (payload.length > PAYLOAD_MAX) this.error(msg, 'E2BIG');
    else this.sink.send(encodeFrame(msg.type, msg.reqId, msg.txId, payload), 'reply');
  }

  private error(msg: WireMessage, errno: WireErrno): void {
    this.sink.send(encodeFrame(XsType.ERROR, msg.reqId, msg.txId, Buffer.from(`${errno}\0`, 'latin1')), 'reply');
  }

  private errnoOf(e: unknown): WireErrno {
    if (e instanceof WireError) return e.errno;
    if (isStoreError(e)) return e.errno;
    this.host.log(`xenstored: request failed: ${e instanceof Error ? e.message : String(e)}`);
    return 'EIO';
  }

  private dropWatch(w: SessionWatch): void {
    try {
      this.host.store.unwatch(this.baseCaller, w.path, w.storeToken);
    } catch {
      // Already gone with its domain (release drops a domain's watches).
    }
  }

  /** RESET_WATCHES and close: every watch and transaction of this connection. */
  private reset(): void {
    for (const w of this.watches.values()) this.dropWatch(w);
    this.watches.clear();
    for (const id of this.transactions) {
      try {
        this.host.store.transactionEnd(this.baseCaller, id, false);
      } catch {
        // Ended with its domain's release, or the store is closed.
      }
    }
    this.transactions.clear();
  }
}
