// The QEMU guest agent of each running domain that has the agent's port: one
// client per domain, what the agent last said about itself (alive, addresses),
// and the operations the toolstack asks of it. Everything the agent answers is
// untrusted; every call has a deadline, so a guest that answers garbage or nothing
// costs a timeout, never a hang.

import { QgaClient, type QgaInterface, qgaSocketPath } from '../../engine/qga.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { DomainStoreSink } from '../../toolstack/store-sink.ts';

/** How often a domain's agent is asked for its addresses. */
const POLL_MS = 10_000;
/** A ping: the agent is there, or the request goes the other way (ACPI). */
const PING_MS = 2000;
/** After a restore or migration: how often, and how far apart, the thaw is tried. */
const THAW_TRIES = 12;
const THAW_RETRY_MS = 5000;

export interface AgentInfo {
  /** The agent answered its last ping. */
  alive: boolean;
  interfaces: QgaInterface[];
  /** When it last answered (ms since the epoch). */
  seen?: number;
}

interface Entry {
  client: QgaClient;
  info: AgentInfo;
  timer?: NodeJS.Timeout;
  domid: number;
  /** Store keys this agent's reports wrote, and their values. */
  published: Map<string, string>;
}

export class GuestAgents {
  private readonly byDomid = new Map<number, Entry>();
  private log: DaemonLog | undefined;
  private store: DomainStoreSink | undefined;

  start(log: DaemonLog, store: DomainStoreSink): void {
    this.log = log;
    this.store = store;
  }

  attach(d: Domain): void {
    this.detach(d.domid);
    const e: Entry = {
      client: new QgaClient(qgaSocketPath(d.rec.runDir)),
      info: { alive: false, interfaces: [] },
      domid: d.domid,
      published: new Map(),
    };
    this.byDomid.set(d.domid, e);
    const tick = () => {
      void this.poll(e).finally(() => {
        if (this.byDomid.get(e.domid) === e) e.timer = setTimeout(tick, POLL_MS).unref();
      });
    };
    e.timer = setTimeout(tick, 1000).unref();
  }

  detach(domid: number): void {
    const e = this.byDomid.get(domid);
    if (!e) return;
    clearTimeout(e.timer);
    e.client.close();
    this.byDomid.delete(domid);
  }

  stopAll(): void {
    for (const domid of [...this.byDomid.keys()]) this.detach(domid);
  }

  info(domid: number): AgentInfo | undefined {
    return this.byDomid.get(domid)?.info;
  }

  private async poll(e: Entry): Promise<void> {
    try {
      await e.client.ping(PING_MS);
      const ifs = await e.client.interfaces();
      const wasAlive = e.info.alive;
      e.info = { alive: true, interfaces: ifs, seen: Date.now() };
      if (!wasAlive) this.log?.info('QEMU guest agent is answering', e.domid);
      this.publish(e);
    } catch {
      if (e.info.alive) {
        e.info = { ...e.info, alive: false };
        this.publish(e);
      }
    }
  }

  /**
   * Written to the store where Xen's guest utilities put them (attr/vif/<n>/ipv4/<i>,
   * <n> in the guest's own interface order, loopback left out), so `list -l`, the
   * web UI and store watchers see them whichever agent reported; qga/state says
   * whether the agent answers.
   */
  private publish(e: Entry): void {
    const store = this.store;
    if (!store) return;
    store.writeDomainKey(e.domid, 'qga/state', e.info.alive ? 'running' : 'unresponsive');
    const nics = e.info.interfaces.filter((i) => i.name !== 'lo').slice(0, 8);
    for (let n = 0; n < 8; n++) {
      const v4 = (nics[n]?.addresses ?? []).filter((a) => a.type === 'ipv4').slice(0, 8);
      for (let i = 0; i < 8; i++) {
        const key = `attr/vif/${n}/ipv4/${i}`;
        const want = v4[i]?.address;
        if (want !== e.published.get(key)) {
          store.writeDomainKey(e.domid, key, want);
          if (want === undefined) e.published.delete(key);
          else e.published.set(key, want);
        }
      }
    }
  }

  /** Asks the agent to power off or reboot; false when it does not answer a ping. */
  async power(domid: number, kind: 'poweroff' | 'reboot'): Promise<boolean> {
    const e = this.byDomid.get(domid);
    if (!e) return false;
    try {
      await e.client.ping(PING_MS);
      await e.client.shutdown(kind === 'poweroff' ? 'powerdown' : 'reboot');
      return true;
    } catch (err) {
      this.log?.info(
        `QEMU guest agent: ${kind} not taken (${err instanceof Error ? err.message : String(err)})`,
        domid,
      );
      return false;
    }
  }

  /** Freezes the guest's file systems; the thaw, or undefined when there is no agent. */
  async freeze(domid: number): Promise<(() => Promise<void>) | undefined> {
    const e = this.byDomid.get(domid);
    if (!e) return undefined;
    try {
      await e.client.ping(PING_MS);
    } catch {
      return undefined;
    }
    const thaw = async () => {
      try {
        const n = await e.client.thaw();
        this.log?.info(`QEMU guest agent: thawed ${n} file systems`, domid);
      } catch (err) {
        this.log?.warn(`QEMU guest agent: thaw failed (${err instanceof Error ? err.message : String(err)})`, domid);
      }
    };
    try {
      const n = await e.client.freeze();
      this.log?.info(`QEMU guest agent: froze ${n} file systems`, domid);
    } catch (err) {
      // A freeze that failed or timed out may have frozen some: thawed all the same.
      this.log?.warn(`QEMU guest agent: freeze failed (${err instanceof Error ? err.message : String(err)})`, domid);
    }
    return thaw;
  }

  /**
   * After a restore or migration the guest may come back frozen (it was saved so):
   * thawed. Tried again for a while: right after the load the agent may not answer
   * yet (a busy TCG host), and a guest nobody thaws stays frozen.
   */
  async thawIfFrozen(domid: number): Promise<void> {
    for (let i = 0; i < THAW_TRIES; i++) {
      const e = this.byDomid.get(domid);
      if (!e) return;
      try {
        await e.client.ping(PING_MS);
        const n = await e.client.thaw();
        if (n > 0) this.log?.info(`QEMU guest agent: thawed ${n} file systems after restore`, domid);
        return;
      } catch {
        /* no agent (yet) */
      }
      await new Promise((r) => setTimeout(r, THAW_RETRY_MS).unref());
    }
  }
}
