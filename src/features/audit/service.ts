// The daemon's side of network auditing: the flow log the switch's records go
// into, the admin's rules (kept in $XENODE_DIR/audit-rules.json and put in force
// through the network feature's NetAuditLink), and the rules' events (the
// daemon log, the domain's store home, and a ring for `flows events`).

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XenodeError } from '../../errors.ts';
import type { AuditEvent, FlowRecord, NetAuditLink, PluginHost } from '../../toolstack/lifecycle-hooks.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import { ADMIN_SPONSOR, type Principal } from '../../toolstack/principal.ts';
import type { DomainStoreSink } from '../../toolstack/store-sink.ts';
import { FlowLog, type FlowQuery, type VerifyReport } from './flow-log.ts';

/** Events kept in memory for `flows events` (all of them are in the daemon log). */
const EVENT_RING = 5000;
/** How often a quiet log is checked for a segment old enough to close. */
const ROTATE_CHECK_MS = 60_000;

export class AuditService {
  private flowLog?: FlowLog;
  private log?: DaemonLog;
  private store?: DomainStoreSink;
  private rulesPath = '';
  private rules: unknown;
  private readonly ring: AuditEvent[] = [];
  private timer?: NodeJS.Timeout;
  /** Records written since the daemon started, for `flows verify` and the log. */
  written = 0;

  constructor(private readonly link?: NetAuditLink) {}

  async start(host: PluginHost): Promise<void> {
    this.log = host.log;
    this.store = host.store;
    this.flowLog = new FlowLog({
      dir: join(host.dirs.base, 'audit', 'flows'),
      // The head of every closed segment goes to the daemon log too: an anchor outside the log's directory.
      onSeal: (seq, head, n) => host.log.info(`flow log: segment ${seq} closed, ${n} records, head ${head}`),
    });
    for (const line of this.flowLog.recovered) host.log.warn(`flow log: ${line}`);
    this.timer = setInterval(() => {
      try {
        this.flowLog?.rotateIfDue();
      } catch (e) {
        host.log.error(`flow log: ${(e as Error).message}`);
      }
    }, ROTATE_CHECK_MS);
    this.timer.unref();
    this.rulesPath = join(host.dirs.base, 'audit-rules.json');
    let raw: unknown = {};
    if (existsSync(this.rulesPath)) {
      try {
        raw = JSON.parse(readFileSync(this.rulesPath, 'utf8'));
      } catch (e) {
        host.log.error(`audit rules: ${this.rulesPath} is not JSON (${(e as Error).message}); using the defaults`);
      }
    }
    if (this.link) {
      this.link.setAuditSink({ flows: (r) => this.onFlows(r), events: (e) => this.onEvents(e) });
      try {
        this.rules = await this.link.setAuditRules(raw);
      } catch (e) {
        host.log.error(`audit rules in ${this.rulesPath}: ${(e as Error).message}; using the defaults`);
        this.rules = await this.link.setAuditRules({}).catch(() => undefined);
      }
    }
  }

  private onFlows(records: FlowRecord[]): void {
    try {
      this.flowLog?.append(records);
      this.written += records.length;
    } catch (e) {
      this.log?.error(`flow log: ${records.length} records not written: ${(e as Error).message}`);
    }
  }

  private onEvents(events: AuditEvent[]): void {
    for (const e of events) {
      this.ring.push(e);
      const level = e.action === 'accept' ? 'info' : 'warn';
      this.log?.write(
        level,
        `audit: ${e.rule}: ${e.action}: vif ${e.domid}.${e.devid} (sponsor ${e.sponsor}): ${e.detail}`,
        e.domid,
      );
      // The newest action under the domain's home, for watchers (the web UI, a sponsor's tools).
      this.store?.writeDomainKey(e.domid, 'audit/last-action', JSON.stringify(e));
    }
    if (this.ring.length > EVENT_RING) this.ring.splice(0, this.ring.length - EVENT_RING);
  }

  private get flows(): FlowLog {
    if (!this.flowLog) throw new XenodeError('internal', 'audit plugin not started');
    return this.flowLog;
  }

  /** A sponsor sees only its own flows; asking for another's is refused, not answered empty. */
  scoped(p: Principal, q: FlowQuery): FlowQuery | undefined {
    if (p.admin) return q;
    if (q.sponsor !== undefined && q.sponsor !== p.sponsor)
      throw new XenodeError('permission', 'a sponsor sees only its own flows', { hint: 'leave out --sponsor' });
    // A non-admin token named `admin` (made before the name was reserved) owns nothing.
    if (p.sponsor === ADMIN_SPONSOR) return undefined;
    return { ...q, sponsor: p.sponsor };
  }

  async query(p: Principal, q: FlowQuery): Promise<FlowRecord[]> {
    const s = this.scoped(p, q);
    return s ? this.flows.query(s) : [];
  }

  events(p: Principal, limit: number, domid?: number): AuditEvent[] {
    const mine = p.admin
      ? this.ring
      : p.sponsor === ADMIN_SPONSOR
        ? []
        : this.ring.filter((e) => e.sponsor === p.sponsor);
    if (domid !== undefined) {
      const one = mine.filter((e) => e.domid === domid);
      return one.slice(Math.max(0, one.length - limit));
    }
    return mine.slice(Math.max(0, mine.length - limit));
  }

  verify(): Promise<VerifyReport> {
    return this.flows.verify();
  }

  /** Close the open segment now (to archive it, or before checking it): its number, or none if nothing was open. */
  rotate(): { segment?: number } {
    const open = this.flows.openSegment();
    this.flows.seal();
    this.flows.prune();
    return open === undefined ? {} : { segment: open };
  }

  stats(): { segments: number; records: number; bytes: number } {
    return this.flows.stats();
  }

  currentRules(): unknown {
    if (!this.link) throw new XenodeError('state', 'no network switch: audit rules have nothing to apply to');
    return this.rules;
  }

  /** Check, apply and keep the admin's rules (absent fields take the defaults). */
  async setRules(raw: unknown): Promise<unknown> {
    if (!this.link) throw new XenodeError('state', 'no network switch: audit rules have nothing to apply to');
    const rules = await this.link.setAuditRules(raw);
    const tmp = `${this.rulesPath}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(rules, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.rulesPath);
    this.rules = rules;
    this.log?.info('audit rules changed');
    return rules;
  }

  stop(): void {
    clearInterval(this.timer);
    this.flowLog?.close();
  }
}
