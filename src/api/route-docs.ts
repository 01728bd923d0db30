// What each API route does, for the OpenAPI document (src/api/openapi.ts), keyed
// "METHOD /url" exactly as the route is registered. A route may carry its own
// fastify `schema` instead; one with neither fails the route check.

import { THROTTLE_KEYS } from '../config/disk-throttle.ts';
import { DomainConfigSchema } from '../config/domain-schema.ts';
import { LIMIT_KEYS, RATE_KEYS } from '../toolstack/sponsors.ts';

export interface RouteDoc {
  summary: string;
  description?: string;
  tags?: readonly string[];
  /** JSON Schema of the request body (TypeBox or a literal). */
  body?: unknown;
  bodyRequired?: boolean;
  /** JSON Schema (type object) of the query string. */
  query?: unknown;
  /** JSON Schema of a 200 answer. */
  response?: unknown;
  responseDescription?: string;
  contentType?: string;
}

export function routeKey(method: string, url: string): string {
  return `${method.toUpperCase()} ${url}`;
}

const obj = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  properties,
  ...(required.length ? { required } : {}),
});
const str = { type: 'string' };
const int = { type: 'integer' };
const bool = { type: 'boolean' };

const storeQuery = obj({
  path: str,
  as: { type: 'string', description: 'act as this domid (a guest connection)' },
  tx: str,
});
const op = (summary: string, extra: Partial<RouteDoc> = {}): RouteDoc => ({ summary, ...extra });
const ws = (summary: string, extra: Partial<RouteDoc> = {}): RouteDoc => ({ summary, ...extra });
const page = (summary: string): RouteDoc => ({ summary, tags: ['web'], contentType: 'text/html' });
const saveBody = obj({ file: str, checkpoint: bool, paused: bool });
const num = { type: 'number' };
const described = (schema: Record<string, unknown>, description: string) => ({ ...schema, description });
const strList = { type: 'array', items: str };
/** An object whose keys are only those listed (the handler refuses others). */
const closed = (properties: Record<string, unknown>, required: string[] = []) => ({
  ...obj(properties, required),
  additionalProperties: false,
});
const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });
const quotaBody = closed({
  ...Object.fromEntries([...LIMIT_KEYS, ...RATE_KEYS].map((k) => [k, nullable(num)])),
  bridges: nullable(strList),
  vlans: nullable({ type: 'array', items: int }),
});
const throttleSchema = described(
  closed(Object.fromEntries(THROTTLE_KEYS.map((k) => [k, num]))),
  "the disk's limits, as disk= spells them; {} or 0 values: none",
);
const joinBody = obj(
  {
    pool: described(str, 'the pool name (at most 64 characters)'),
    etcd: described(strList, "etcd endpoints' URLs"),
    host: described(str, "this host's name in the pool (default: its hostname)"),
    secret: described(str, "the pool's secret (pool join)"),
    address: described(str, 'address the other hosts reach this one at'),
    shared: described(str, 'a directory all hosts share'),
    ttl: described(num, "seconds before a silent host's entry lapses"),
  },
  ['pool', 'etcd'],
);
const migrateKnobs = {
  downtimeMs: described(num, 'the longest pause the final copy may take'),
  bandwidthMbps: described(num, 'a cap on the migration stream'),
  paused: described(bool, 'leave the domain paused on arrival'),
};

export const ROUTE_DOCS: Record<string, RouteDoc> = {
  'GET /v1/openapi.json': op('This OpenAPI document', { tags: ['host'] }),
  // host
  'GET /v1/info': op('Host and daemon information (xl info)', { tags: ['host'] }),
  'GET /v1/whoami': op('The calling principal: sponsor, admin, token id', { tags: ['host'] }),
  'GET /v1/log': op("The daemon's log entries (xl dmesg); admin only", { tags: ['host'] }),
  'DELETE /v1/log': op('Read and clear the log (xl dmesg -c); admin only', { tags: ['host'] }),
  'POST /v1/tokens': op('Create an API token for a sponsor; admin only', {
    tags: ['tokens'],
    body: obj({ sponsor: str, admin: bool, label: str }, ['sponsor']),
  }),
  'GET /v1/tokens': op('List tokens (ids, sponsors, labels; never the secrets); admin only', { tags: ['tokens'] }),
  'DELETE /v1/tokens/:id': op('Revoke a token; its open WebSockets close; admin only', { tags: ['tokens'] }),
  'GET /v1/whoami/tokens': op("The caller's own tokens, without admin ones unless admin; `current` is the one in use", {
    tags: ['tokens'],
  }),
  'DELETE /v1/whoami/tokens/:id': op('Revoke one of your own tokens; any other id is 404', { tags: ['tokens'] }),
  'GET /v1/domains/:dom/history': op("The domain's event history: API actions (who, result) and states entered", {
    tags: ['domains'],
  }),
  // domains
  'GET /v1/domains': op("List the caller's domains (xl list)", { tags: ['domains'] }),
  'POST /v1/domains': op('Create a domain from a typed config or xl.cfg text (xl create)', {
    tags: ['domains'],
    body: obj({
      config: DomainConfigSchema,
      configText: { type: 'string', description: 'xl.cfg text, instead of config' },
      filename: str,
      overrides: { type: 'array', items: str },
      paused: bool,
    }),
  }),
  'GET /v1/domains/:dom': op('One domain, by id or name, with its guest information', { tags: ['domains'] }),
  'POST /v1/domains/:dom/pause': op('Pause a domain', { tags: ['domains'] }),
  'POST /v1/domains/:dom/unpause': op('Unpause a domain', { tags: ['domains'] }),
  'POST /v1/domains/:dom/destroy': op('Destroy a domain at once', { tags: ['domains'] }),
  'POST /v1/domains/:dom/reboot': op('Reboot a domain (ACPI), optionally waiting', {
    tags: ['domains'],
    body: obj({ wait: bool, timeoutMs: int, fallback: bool }),
    bodyRequired: false,
  }),
  'POST /v1/domains/:dom/shutdown': op('Shut a domain down (ACPI), optionally waiting', {
    tags: ['domains'],
    body: obj({ wait: bool, timeoutMs: int, fallback: bool }),
    bodyRequired: false,
  }),
  'POST /v1/domains/:dom/rename': op('Rename a domain', { tags: ['domains'], body: obj({ name: str }, ['name']) }),
  'POST /v1/domains/:dom/mem-set': op('Set the memory target, with an optional deadline (balloon, hot-plug)', {
    tags: ['domains'],
    body: obj({ mib: int, deadlineMs: int }, ['mib']),
  }),
  'POST /v1/domains/:dom/mem-max': op('Set the maximum memory', {
    tags: ['domains'],
    body: obj({ mib: int }, ['mib']),
  }),
  'GET /v1/domains/:dom/console': ws(
    'The serial console as a WebSocket: binary frames both ways, scroll-back first unless ?scrollback=0',
    { tags: ['domains'], query: obj({ scrollback: str, mark: str }) },
  ),
  'POST /v1/domains/:dom/trigger': op('Send a trigger (nmi, reset, init, power, sleep) (xl trigger)', {
    tags: ['domains'],
    body: obj({ kind: str, vcpu: int }, ['kind']),
  }),
  'POST /v1/domains/:dom/sysrq': op('Send a SysRq letter to the guest (xl sysrq)', {
    tags: ['domains'],
    body: obj({ letter: str }, ['letter']),
  }),
  'POST /v1/domains/:dom/cd-insert': op('Insert a CD image (xl cd-insert); admin only', {
    tags: ['domains'],
    body: obj({ vdev: str, file: str }, ['vdev', 'file']),
  }),
  'POST /v1/domains/:dom/cd-eject': op('Eject a CD (xl cd-eject)', {
    tags: ['domains'],
    body: obj({ vdev: str }, ['vdev']),
  }),
  'POST /v1/domains/:dom/dump-core': op("Write the guest's memory to a file (xl dump-core); admin only", {
    tags: ['domains'],
    body: obj({ file: str }, ['file']),
  }),
  'POST /v1/domains/:dom/monitor': op(
    "A QMP or HMP command to the domain's QEMU (xl qemu-monitor-command); admin only",
    {
      tags: ['domains'],
      body: obj({ command: str }, ['command']),
    },
  ),
  // quotas
  'GET /v1/quotas': op('Per-sponsor limits and usage (quota-list)', { tags: ['quotas'] }),
  'PUT /v1/quotas/:sponsor': op("Set a sponsor's limits (quota-set); admin only", {
    tags: ['quotas'],
    description: 'Keys given are set; null removes a limit; keys left out keep their value.',
    body: quotaBody,
  }),
  'DELETE /v1/quotas/:sponsor': op("Remove a sponsor's limits (quota-unset); admin only", { tags: ['quotas'] }),
  // control store
  'GET /v1/store/read': op('Read a store node', { tags: ['store'], query: storeQuery }),
  'GET /v1/store/ls': op("List a node's children", { tags: ['store'], query: storeQuery }),
  'GET /v1/store/perms': op("A node's permissions", { tags: ['store'], query: storeQuery }),
  'POST /v1/store/perms': op("Set a node's permissions", {
    tags: ['store'],
    body: obj({ path: str, perms: { type: 'array', items: str }, as: str, tx: str }, ['path', 'perms']),
  }),
  'PUT /v1/store/write': op('Write a store node', {
    tags: ['store'],
    body: obj({ path: str, value: str, as: str, tx: str }, ['path', 'value']),
  }),
  'DELETE /v1/store': op('Remove a node and its children', { tags: ['store'], query: storeQuery }),
  'POST /v1/store/transaction': op('Open a transaction', {
    tags: ['store'],
    body: obj({ as: str }),
    bodyRequired: false,
  }),
  'POST /v1/store/transaction/:tx': op('Commit or abort a transaction', {
    tags: ['store'],
    body: obj({ commit: bool, as: str }),
  }),
  'GET /v1/store/watch': ws('A watch as a WebSocket: one message per change under the path', {
    tags: ['store'],
    query: storeQuery,
  }),
  // accounting
  'GET /v1/account': op('Usage per domain and sponsor over a period (xenode account)', { tags: ['accounting'] }),
  'GET /v1/bill': op("A sponsor's bill over a period", { tags: ['accounting'] }),
  'GET /v1/prices': op('Current prices', { tags: ['accounting'] }),
  'PUT /v1/prices': op('Set prices; admin only', {
    tags: ['accounting'],
    body: closed(
      {
        prices: described(
          { type: 'object', maxProperties: 32, additionalProperties: nullable(str) },
          'key: "amount/unit" (as `xenode prices set` spells it), or null to remove',
        ),
        replace: described(bool, 'replace the whole price list rather than change these keys'),
      },
      ['prices'],
    ),
  }),
  'GET /metrics': op('Prometheus metrics (text exposition format)', {
    tags: ['accounting'],
    contentType: 'text/plain',
  }),
  // metrics
  'GET /v1/domains/:dom/metrics': op("A domain's recent samples (CPU, memory, disk, network) for the charts", {
    tags: ['metrics'],
  }),
  'GET /v1/events': ws('Domain events as a WebSocket (state changes, samples)', { tags: ['metrics'] }),
  // memory
  'GET /v1/domains/:dom/memory': op("A domain's memory: target, balloon, hot-plugged, compliance", {
    tags: ['memory'],
  }),
  'GET /v1/shm': op('static_shm regions the caller owns or was granted', { tags: ['memory'] }),
  'GET /v1/shm/grants': op('Grants of static_shm regions', { tags: ['memory'] }),
  'POST /v1/shm/grants': op('Grant (or revoke) a region to another sponsor; admin only', {
    tags: ['memory'],
    body: obj({ region: str, sponsor: str, revoke: bool }, ['region', 'sponsor']),
  }),
  // network
  'GET /v1/domains/:dom/capture': op('A pcap stream of a vif (net-capture)', {
    tags: ['network'],
    contentType: 'application/vnd.tcpdump.pcap',
    query: obj({ vif: str, count: str, seconds: str }),
  }),
  'GET /v1/domains/:dom/net': op("A domain's vifs (network-list)", { tags: ['network'] }),
  'POST /v1/domains/:dom/net': op('Attach a vif (network-attach)', {
    tags: ['network'],
    body: obj({ spec: described(str, "xl's vif spec, e.g. mac=00:16:3e:00:00:01,ip=10.200.0.5") }, ['spec']),
  }),
  'DELETE /v1/domains/:dom/net/:dev': op('Detach a vif (network-detach)', { tags: ['network'] }),
  'PUT /v1/domains/:dom/net/:dev/rate': op("Change a vif's rate limit (network-rate)", {
    tags: ['network'],
    body: obj(
      {
        rate: described(
          nullable({ type: 'string', minLength: 1, maxLength: 64 }),
          "xl's rate=, e.g. 10Mb/s@20ms; null: none",
        ),
      },
      ['rate'],
    ),
  }),
  'GET /v1/net': op("The switch's state (network-status)", { tags: ['network'] }),
  'POST /v1/net/start': op('Start the switch; admin only', { tags: ['network'] }),
  'GET /v1/net/policy': op('Which sponsor pairs may talk (network-policy)', { tags: ['network'] }),
  'POST /v1/net/policy': op('Allow or deny a sponsor pair; admin only', {
    tags: ['network'],
    body: obj({ a: described(str, 'a sponsor'), b: described(str, 'another sponsor'), allow: bool }, [
      'a',
      'b',
      'allow',
    ]),
  }),
  // audit
  'GET /v1/flows': op('The flow log, filtered (flows)', { tags: ['audit'] }),
  'GET /v1/flows/verify': op("Check the flow log's hash chain (flows verify)", { tags: ['audit'] }),
  'POST /v1/flows/rotate': op('Close the current flow log segment; admin only', { tags: ['audit'] }),
  'GET /v1/audit/events': op('Audit rule events (throttles, quarantines)', {
    tags: ['audit'],
    query: obj({ limit: str, domid: { type: 'string', description: "only this domain's events" } }),
  }),
  'GET /v1/audit/rules': op('The audit rules', { tags: ['audit'] }),
  'PUT /v1/audit/rules': op('Replace the audit rules; admin only', {
    tags: ['audit'],
    body: obj({ rules: {} }, ['rules']),
  }),
  // storage
  'GET /v1/storage': op('Storage pools (storage-list)', { tags: ['storage'] }),
  'POST /v1/storage': op('Declare a pool (storage-add); admin only', {
    tags: ['storage'],
    body: obj(
      { name: str, dir: described(str, 'an absolute host directory'), sponsors: described(strList, 'granted at once') },
      ['name', 'dir'],
    ),
  }),
  'DELETE /v1/storage/:pool': op('Remove a pool (storage-remove); admin only', {
    tags: ['storage'],
    query: obj({ force: str }),
  }),
  'PUT /v1/storage/:pool/sponsors/:sponsor': op('Grant a pool to a sponsor; admin only', { tags: ['storage'] }),
  'DELETE /v1/storage/:pool/sponsors/:sponsor': op("Revoke a sponsor's grant of a pool; admin only", {
    tags: ['storage'],
  }),
  'GET /v1/volumes': op("The caller's volumes", { tags: ['storage'], query: obj({ pool: str, sponsor: str }) }),
  'POST /v1/volumes': op('Create a volume', {
    tags: ['storage'],
    body: obj(
      {
        pool: str,
        name: str,
        size: described({ anyOf: [int, str] }, 'bytes, or a size such as "1G"'),
        format: described(str, 'raw or qcow2'),
        sponsor: described(str, "whose volume it is (admin only; default: the caller's)"),
      },
      ['pool', 'name', 'size'],
    ),
  }),
  'DELETE /v1/volumes/:pool/:name': op('Delete a volume', { tags: ['storage'], query: obj({ sponsor: str }) }),
  'POST /v1/volumes/:pool/:name/upload': op('Upload an image as a new volume (raw request body)', {
    tags: ['storage'],
    query: obj({ format: str, sponsor: str }),
  }),
  // disks
  'GET /v1/domains/:dom/block': op("A domain's disks (block-list)", { tags: ['disks'] }),
  'GET /v1/domains/:dom/block/stats': op('Disk I/O counters (block-stats)', { tags: ['disks'] }),
  'GET /v1/domains/:dom/block/throttle': op('Disk limits (block-throttle)', { tags: ['disks'] }),
  'PUT /v1/domains/:dom/block/:vdev/throttle': op("Change a disk's limits (block-set-throttle)", {
    tags: ['disks'],
    body: obj({ throttle: throttleSchema }, ['throttle']),
  }),
  'POST /v1/domains/:dom/block-attach': op('Attach a disk (block-attach)', {
    tags: ['disks'],
    body: obj({ spec: described(str, "xl's disk spec, e.g. /srv/d.img,raw,xvdc,rw (an absolute target)") }, ['spec']),
  }),
  'POST /v1/domains/:dom/block-detach': op('Detach a disk (block-detach)', {
    tags: ['disks'],
    body: obj(
      {
        vdev: described({ anyOf: [str, int] }, 'xvdc, or its Xen device number (51744)'),
        force: described(bool, 'detach even if the guest does not release it'),
      },
      ['vdev'],
    ),
  }),
  // save, restore, migrate: each a POST, and the same as a WebSocket reporting progress
  'POST /v1/domains/:dom/save': op('Save a domain to a file (xl save)', { tags: ['saverestore'], body: saveBody }),
  'GET /v1/domains/:dom/save': ws('Save, as a WebSocket: the request as the first message, then progress', {
    tags: ['saverestore'],
  }),
  'POST /v1/restore': op('Restore a domain from a save file (xl restore)', {
    tags: ['saverestore'],
    body: obj(
      {
        file: described(str, 'the save file (an absolute host path; admin only)'),
        paused: described(bool, 'leave the domain paused'),
        overrides: described(strList, 'key=value changes to the saved config, as `xl restore` takes them'),
        cwd: described(str, 'directory relative paths in the overrides are resolved from'),
      },
      ['file'],
    ),
  }),
  'GET /v1/restore': ws('Restore, as a WebSocket with progress', { tags: ['saverestore'] }),
  'POST /v1/domains/:dom/migrate': op('Live-migrate a domain to another daemon (xl migrate)', {
    tags: ['saverestore'],
    body: obj(
      {
        host: described(str, 'the receiving daemon'),
        port: described({ type: 'integer', minimum: 1, maximum: 65535 }, "its API's TCP port"),
        token: described(str, "an admin token of the receiving daemon's"),
        ...migrateKnobs,
      },
      ['host', 'port'],
    ),
  }),
  'GET /v1/domains/:dom/migrate': ws('Migrate, as a WebSocket with progress', { tags: ['saverestore'] }),
  'GET /v1/migrate/incoming': ws("The receiving side of a migration (the receiving host's admin only)", {
    tags: ['saverestore'],
  }),
  // templates (saverestore)
  'GET /v1/templates': op("The caller's templates (stale: made from inputs that changed since)", {
    tags: ['saverestore'],
  }),
  'POST /v1/templates': op('Make a template from a domain or a config', {
    tags: ['saverestore'],
    description: 'Give either domain (an existing domain of the caller) or config.',
    body: obj(
      {
        name: described(str, 'the template name'),
        domain: described({ type: 'string', minLength: 1, maxLength: 64 }, 'a domain name or id to make it from'),
        config: DomainConfigSchema,
      },
      ['name'],
    ),
  }),
  'DELETE /v1/templates/:name': op("Delete a template (the admin names another sponsor's as SPONSOR/NAME)", {
    tags: ['saverestore'],
  }),
  // sched
  'GET /v1/sched': op('Scheduler parameters of every domain (sched-credit)', { tags: ['sched'] }),
  'GET /v1/domains/:dom/sched': op("A domain's weight and cap", { tags: ['sched'] }),
  'POST /v1/domains/:dom/sched': op("Set a domain's weight and cap", {
    tags: ['sched'],
    body: obj({ weight: int, cap: int }),
  }),
  'GET /v1/domains/:dom/vcpus': op('vCPUs with their threads and affinity (vcpu-list)', { tags: ['sched'] }),
  'POST /v1/domains/:dom/vcpu-pin': op('Pin a vCPU (vcpu-pin)', {
    tags: ['sched'],
    body: obj({ vcpu: {}, hard: str, soft: str, force: bool }),
  }),
  'POST /v1/domains/:dom/vcpu-set': op('Set the number of online vCPUs (vcpu-set)', {
    tags: ['sched'],
    body: obj({ vcpus: int, ignoreHost: bool }, ['vcpus']),
  }),
  // guest agent
  'GET /v1/domains/:dom/guest-agent': op("What the domain's guest agent reports", { tags: ['domains'] }),
  // pool
  'GET /v1/pool': op('The pool this host belongs to', { tags: ['pool'] }),
  'POST /v1/pool/create': op('Create a pool; admin only', { tags: ['pool'], body: joinBody }),
  'POST /v1/pool/join': op('Join a pool; admin only', { tags: ['pool'], body: joinBody }),
  'POST /v1/pool/leave': op('Leave the pool; admin only', { tags: ['pool'] }),
  'GET /v1/pool/domains': op("The pool's domains on every host", { tags: ['pool'] }),
  'POST /v1/pool/domains': op('Create a domain where the pool places it', {
    tags: ['pool'],
    body: obj(
      {
        config: DomainConfigSchema,
        antiAffinity: described({ ...strList, maxItems: 64 }, 'domains it must not share a host with'),
      },
      ['config'],
    ),
  }),
  'POST /v1/pool/domains/:dom/migrate': op('Move a domain to another host of the pool', {
    tags: ['pool'],
    body: obj({ host: described(str, "the pool host's name"), ...migrateKnobs }, ['host']),
  }),
  'POST /v1/pool/refresh': op("Refresh this host's entry in the pool", { tags: ['pool'] }),
  // web UI (TCP listener only)
  'POST /v1/login': op('Log in with a token; sets the session cookie', {
    tags: ['web'],
    body: obj({ token: str }, ['token']),
  }),
  'POST /v1/logout': op('End the web session', { tags: ['web'] }),
  'GET /login': page('The login page'),
  'GET /': page('The web UI: domain list'),
  'GET /create': page('The web UI: create a domain'),
  'GET /usage': page('The web UI: usage and bill'),
  'GET /audit': page('The web UI: network audit events'),
  'GET /tokens': page('The web UI: API tokens (a sponsor its own)'),
  'GET /domains/*': page('The web UI: one domain (console, charts)'),
  'GET /assets/:file': op("The web UI's scripts and styles", {
    tags: ['web'],
    contentType: 'application/octet-stream',
  }),
  'GET /favicon.svg': op("The web UI's icon", { tags: ['web'], contentType: 'image/svg+xml' }),
};
