// `npm run bench:store`: the control store's per-operation times through
// xenoded's xenstored wire protocol, measured by Xen's own `test-xenstore -i N`
// (from xen-utils-4.17), next to the same operations through Xenode's HTTP API
// (the local Unix socket, as the CLI uses it), in one run, rounds alternating.
// For context, in the same run: the transport floor (test-xenstore against a
// Node server that answers every request at once, with no store behind it)
// and the store's own cost (the same operations in process, no transport).
//
//   npm run bench:store -- [--iterations 1000] [--rounds 3] [--no-doc]
//
// Results replace the "## Store (bench:store)" section of docs/benchmarks.md.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { getPriority, homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlStore, TOOLSTACK } from '../src/store/index.ts';
import { ROOT, TestHost } from '../test/helpers/host.ts';
import { replaceSection } from './lib/doc.ts';
import { hostFacts, loadAvg1 } from './lib/host.ts';
import { fmt, markdownTable, median, min } from './lib/stats.ts';

const HEADING = '## Store (bench:store)';
const GOAL_US = 50;
/** ControlStore's default group-commit window, which xenoded uses. */
const GROUP_COMMIT_MS = 2;

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '5' },
    'no-doc': { type: 'boolean', default: false },
  },
});
const ITER = Number(args.iterations);
const ROUNDS = Number(args.rounds);

const TEST_XENSTORE = [
  '/usr/lib/xen-4.17/bin/test-xenstore',
  join(homedir(), '.cache', 'xenode', 'xen-utils', 'usr', 'lib', 'xen-4.17', 'bin', 'test-xenstore'),
].find((p) => existsSync(p));

/** test-xenstore's tests, in its order, with what each does per timed iteration. */
const OPS: ReadonlyArray<{ name: string; what: string }> = [
  { name: 'read 1', what: 'READ of a 1-byte node' },
  { name: 'read 2000', what: 'READ of a 2000-byte node' },
  { name: 'write 1', what: 'WRITE 1 byte' },
  { name: 'write 2000', what: 'WRITE 2000 bytes' },
  { name: 'dir', what: 'DIRECTORY of 10 children' },
  { name: 'rm node', what: 'RM of a leaf' },
  { name: 'rm dir', what: 'RM of a node with 10 children' },
  { name: 'ta empty', what: 'START + END (commit)' },
  { name: 'ta empty x', what: 'START + END (abort)' },
  { name: 'ta rmw', what: 'START, READ, WRITE, READ in tx, READ outside, END commit' },
  { name: 'ta rmw x', what: 'the same, END abort' },
  { name: 'ta err', what: 'START, READ, conflicting WRITE outside, READ, WRITE, READ, END → EAGAIN' },
];

/** Requests on the wire per timed iteration (test-xenstore's own calls). */
const ROUND_TRIPS: Record<string, number> = {
  'read 1': 1,
  'read 2000': 1,
  'write 1': 1,
  'write 2000': 1,
  dir: 1,
  'rm node': 1,
  'rm dir': 1,
  'ta empty': 2,
  'ta empty x': 2,
  'ta rmw': 6,
  'ta rmw x': 6,
  'ta err': 7,
};

interface Timing {
  avgNs: number;
  minNs: number;
  maxNs: number;
}
type Results = Map<string, Timing[]>;

function add(results: Results, op: string, t: Timing): void {
  const list = results.get(op) ?? [];
  list.push(t);
  results.set(op, list);
}

// ---- the wire protocol: Xen's test-xenstore ----------------------------------------

function testXenstore(socket: string, only?: string): Promise<Map<string, Timing>> {
  return new Promise((resolve, reject) => {
    execFile(
      TEST_XENSTORE as string,
      ['-i', String(ITER), ...(only ? ['-t', only] : [])],
      { env: { ...process.env, XENSTORED_PATH: socket }, timeout: 600_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`test-xenstore failed: ${stdout}${stderr}`));
        const out = new Map<string, Timing>();
        for (const line of stdout.split('\n')) {
          const m = /^(.+?)\s*: avg: (\d+) ns \((\d+) ns \.\. (\d+) ns\)/.exec(line);
          if (m) out.set(m[1] as string, { avgNs: Number(m[2]), minNs: Number(m[3]), maxNs: Number(m[4]) });
        }
        if (out.size !== (only ? 1 : OPS.length))
          return reject(new Error(`test-xenstore output not understood:\n${stdout}`));
        resolve(out);
      },
    );
  });
}

/** The tests the floor server can pass: it stores nothing, so no test that reads back what it wrote. */
const FLOOR_OPS = ['read 1', 'read 2000', 'write 1', 'dir', 'rm node', 'rm dir', 'ta empty', 'ta empty x'];

/** A server that answers every request at once with no store behind it: what the transport alone costs. */
function floorServer(path: string): Promise<Server> {
  const server = createServer((s) => {
    let buf: Buffer = Buffer.alloc(0);
    let tx = 0;
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 16) {
        const len = buf.readUInt32LE(12);
        if (buf.length < 16 + len) break;
        const type = buf.readUInt32LE(0);
        const h = Buffer.from(buf.subarray(0, 16));
        // Enough for FLOOR_OPS: an id for TRANSACTION_START, 'a' for READ, test-xenstore's ten names for DIRECTORY.
        let p = Buffer.from('OK\0');
        if (type === 6) p = Buffer.from(`${++tx}\0`);
        else if (type === 2) p = Buffer.from('a');
        else if (type === 1) p = Buffer.from('a\0b\0c\0d\0e\0f\0g\0h\0i\0j\0');
        h.writeUInt32LE(p.length, 12);
        s.write(Buffer.concat([h, p]));
        buf = buf.subarray(16 + len);
      }
    });
  });
  return new Promise((r) => server.listen(path, () => r(server)));
}

// ---- the same operations through the HTTP API --------------------------------------

class Api {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  constructor(private readonly socket: string) {}

  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string> = {};
      if (payload) headers['content-type'] = 'application/json';
      const req = request({ socketPath: this.socket, method, path, headers, agent: this.agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
      });
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

const q = (p: string, tx?: number) => `path=${encodeURIComponent(p)}${tx === undefined ? '' : `&tx=${tx}`}`;

async function httpOps(api: Api): Promise<Map<string, Timing>> {
  const base = `/local/domain/0/xenstore-bench/${process.pid}`;
  const paths = Array.from({ length: 10 }, (_, i) => `${base}/${String.fromCharCode(97 + i)}`);
  const p0 = paths[0] as string;
  const must = async (r: Promise<{ status: number; json: Record<string, unknown> }>, what: string, want = 200) => {
    const got = await r;
    if (got.status !== want) throw new Error(`${what}: HTTP ${got.status} ${JSON.stringify(got.json)}`);
    return got.json;
  };
  const read = (p: string, tx?: number) => must(api.call('GET', `/v1/store/read?${q(p, tx)}`), `read ${p}`);
  const write = (p: string, value: string, tx?: number) =>
    must(
      api.call('PUT', '/v1/store/write', { path: p, value, tx: tx === undefined ? undefined : String(tx) }),
      'write',
    );
  const rm = (p: string) => must(api.call('DELETE', `/v1/store?${q(p)}`), `rm ${p}`);
  const start = async () => Number((await must(api.call('POST', '/v1/store/transaction', {}), 'start')).tx);
  const end = (tx: number, commit: boolean, want = 200) =>
    must(api.call('POST', `/v1/store/transaction/${tx}`, { commit }), 'end', want);
  const ta = async (commit: boolean) => {
    const tx = await start();
    await end(tx, commit);
  };
  const rmw = async (commit: boolean) => {
    const tx = await start();
    await read(p0, tx);
    await write(p0, 'b', tx);
    await read(p0, tx);
    await read(p0);
    await end(tx, commit);
  };
  const tests: Record<string, { init: () => Promise<unknown>; run: () => Promise<unknown> }> = {
    'read 1': { init: () => write(p0, 'a'), run: () => read(p0) },
    'read 2000': { init: () => write(p0, 'a'.repeat(2000)), run: () => read(p0) },
    'write 1': { init: async () => {}, run: () => write(p0, 'a') },
    'write 2000': { init: async () => {}, run: () => write(p0, 'a'.repeat(2000)) },
    // The API has no bare DIRECTORY: `ls` lists the children with their values.
    dir: {
      init: async () => {
        for (const p of paths) await write(p, 'a');
      },
      run: () => must(api.call('GET', `/v1/store/ls?${q(base)}`), 'ls'),
    },
    'rm node': { init: async () => {}, run: () => rm(base) },
    'rm dir': {
      init: async () => {
        for (const p of paths) await write(p, 'a');
      },
      run: () => rm(base),
    },
    'ta empty': { init: async () => {}, run: () => ta(true) },
    'ta empty x': { init: async () => {}, run: () => ta(false) },
    'ta rmw': { init: () => write(p0, 'a'), run: () => rmw(true) },
    'ta rmw x': { init: () => write(p0, 'a'), run: () => rmw(false) },
    'ta err': {
      init: () => write(p0, 'a'),
      run: async () => {
        const tx = await start();
        await read(p0, tx);
        await write(p0, 'b');
        await read(p0, tx);
        await write(p0, 'c', tx);
        await read(p0, tx);
        await end(tx, true, 409);
      },
    },
  };
  const out = new Map<string, Timing>();
  for (const { name } of OPS) {
    const t = tests[name] as { init: () => Promise<unknown>; run: () => Promise<unknown> };
    let sum = 0;
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (let i = 0; i < ITER; i++) {
      // As test-xenstore: a fresh node before each iteration, the set-up untimed.
      await api.call('DELETE', `/v1/store?${q(base)}`); // absent the first time, as test-xenstore's pre-init
      await write(base, '');
      await t.init();
      const t0 = process.hrtime.bigint();
      await t.run();
      const ns = Number(process.hrtime.bigint() - t0);
      sum += ns;
      lo = Math.min(lo, ns);
      hi = Math.max(hi, ns);
    }
    out.set(name, { avgNs: sum / ITER, minNs: lo, maxNs: hi });
  }
  await rm(`/local/domain/0/xenstore-bench`);
  return out;
}

// ---- the store alone, in process -------------------------------------------------------

function inProcess(dbPath: string): Map<string, number> {
  const store = new ControlStore({ dbPath });
  const base = '/local/domain/0/xenstore-bench/inproc';
  const p0 = `${base}/a`;
  // The median of 20 batches' averages: other people's guests share the CPUs.
  const time = (n: number, fn: () => void) => {
    for (let i = 0; i < 200; i++) fn();
    const batches: number[] = [];
    for (let b = 0; b < 20; b++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn();
      batches.push(Number(process.hrtime.bigint() - t0) / n);
    }
    return median(batches);
  };
  store.write(TOOLSTACK, p0, 'a');
  const out = new Map<string, number>();
  out.set(
    'read',
    time(ITER * 5, () => store.read(TOOLSTACK, p0)),
  );
  out.set(
    'write, write-through (the HTTP API, the toolstack)',
    time(ITER * 5, () => store.write(TOOLSTACK, p0, 'a')),
  );
  // As the wire protocol writes: live at once, in SQLite with the rest of its group-commit window.
  out.set(
    'write, group-committed (the wire protocol), commit included',
    time(ITER * 5, () => {
      store.deferCommits(() => store.write(TOOLSTACK, p0, 'a'));
      if (store.unflushedChanges >= 32) store.flush();
    }),
  );
  out.set(
    'directory',
    time(ITER * 5, () => store.directory(TOOLSTACK, base)),
  );
  out.set(
    'transaction start + commit',
    time(ITER, () => store.transactionEnd(TOOLSTACK, store.transactionStart(TOOLSTACK), true)),
  );
  store.close();
  return out;
}

// ---- main --------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!TEST_XENSTORE) throw new Error('test-xenstore not found: run scripts/setup.sh (it installs xen-utils-4.17)');
  const facts = hostFacts();
  const startedAt = new Date();
  const loadAtStart = loadAvg1();
  const host = new TestHost({ XENODE_LISTEN: 'none' });
  const scratch = mkdtempSync(join(tmpdir(), 'xsb-'));
  const floorSock = join(scratch, 'floor.sock');
  const floor = await floorServer(floorSock);
  const wire: Results = new Map();
  const http: Results = new Map();
  const floorRes: Results = new Map();
  const loads: number[] = [];
  let inproc = new Map<string, number>();
  try {
    await host.ok(['list']);
    const socket = join(host.dir, 'xenstored.sock');
    const api = new Api(host.socket);
    for (let r = 0; r < ROUNDS; r++) {
      loads.push(loadAvg1());
      // Alternate who goes first, so a change in the machine's load hits both.
      const order = r % 2 === 0 ? ['wire', 'http'] : ['http', 'wire'];
      for (const who of order) {
        process.stderr.write(`round ${r + 1}/${ROUNDS}: ${who}\n`);
        const res = who === 'wire' ? await testXenstore(socket) : await httpOps(api);
        for (const [op, t] of res) add(who === 'wire' ? wire : http, op, t);
      }
      process.stderr.write(`round ${r + 1}/${ROUNDS}: transport floor\n`);
      for (const only of FLOOR_OPS) for (const [op, t] of await testXenstore(floorSock, only)) add(floorRes, op, t);
    }
    api.close();
    loads.push(loadAvg1());
    inproc = inProcess(join(scratch, 'store.db'));
  } finally {
    floor.close();
    await host.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  }

  const us = (ns: number) => ns / 1000;
  const avgOf = (res: Results, op: string) => median((res.get(op) ?? []).map((t) => t.avgNs));
  const minOf = (res: Results, op: string) => min((res.get(op) ?? []).map((t) => t.minNs));
  const rows = OPS.map(({ name, what }) => {
    const w = avgOf(wire, name);
    const h = avgOf(http, name);
    const trips = ROUND_TRIPS[name] ?? 1;
    const fl = avgOf(floorRes, name);
    return [
      name,
      what,
      String(trips),
      `${fmt(us(w), 1)} (${fmt(us(minOf(wire, name)), 1)})`,
      fmt(us(w) / trips, 1),
      `${fmt(us(fl), 1)} (${fmt(us(minOf(floorRes, name)), 1)})`,
      fmt(us(w - fl), 1),
      `${fmt(us(h), 1)} (${fmt(us(minOf(http, name)), 1)})`,
      `${fmt(h / w, 1)}×`,
    ];
  });
  const table = markdownTable(
    [
      'test-xenstore op',
      'what one iteration does',
      'requests',
      'wire µs avg (min)',
      'wire µs per request',
      'transport floor µs avg (min)',
      'wire − floor µs',
      'HTTP API µs avg (min)',
      'HTTP / wire',
    ],
    rows,
  );
  const singles = FLOOR_OPS.filter((op) => (ROUND_TRIPS[op] ?? 1) === 1);
  const floorAvg = median(singles.map((op) => avgOf(floorRes, op)));
  const floorMin = min(singles.map((op) => minOf(floorRes, op)));
  const met = OPS.filter(({ name }) => us(avgOf(wire, name)) < GOAL_US).map((o) => o.name);
  const perRequestMet = OPS.filter(({ name }) => us(avgOf(wire, name)) / (ROUND_TRIPS[name] ?? 1) < GOAL_US).map(
    (o) => o.name,
  );
  const inprocTable = markdownTable(
    ['store operation (in process, SQLite file, no transport)', 'µs'],
    [...inproc].map(([k, v]) => [k, fmt(us(v), 1)]),
  );
  const body = [
    `Run ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${facts.cpuModel}, ${facts.nproc} CPUs, ${facts.ramGiB.toFixed(0)} GiB, Linux ${facts.kernel}, Node ${facts.nodeVersion}. ${ROUNDS} rounds of ${ITER} iterations per operation, wire and HTTP alternating which goes first; run at nice ${getPriority()} (the daemon and test-xenstore inherit it); 1-minute load average ${fmt(loadAtStart, 1)} at the start, ${fmt(min(loads), 1)}–${fmt(Math.max(...loads), 1)} during the run (other people's guests share the CPUs).`,
    '',
    `- **wire**: Xen's own \`test-xenstore -i ${ITER}\` (Debian xen-utils-4.17, unmodified, libxenstore) with \`XENSTORED_PATH\` at xenoded's \`xenstored.sock\`: its average per iteration (the median of the rounds' averages) and its fastest iteration. An iteration of the transaction tests is several requests, each a round trip.`,
    '- **transport floor**: the same `test-xenstore` against a Node server on a Unix socket that answers every request immediately, with no store: what libxenstore, the socket and a Node event loop cost before any work.',
    "- **HTTP API**: the same operations, set-up and timing loop, through xenoded's HTTP API on its Unix socket (keep-alive, the local admin, as the CLI talks to it), from Node. `dir` is `GET /v1/store/ls`, which also reads each child's value (the API has no bare directory listing).",
    '',
    table,
    '',
    inprocTable,
    '',
    `Goal: every operation under ${GOAL_US} µs on the wire protocol. Met by the average for: ${met.length ? met.join(', ') : 'none'}; per request (the average divided by the requests an iteration makes) for: ${perRequestMet.length ? perRequestMet.join(', ') : 'none'}.`,
    '',
    `Where the time goes: the transport alone (libxenstore, the Unix socket, a Node event loop answering at once) averaged ${fmt(us(floorAvg), 1)} µs per request in this run (fastest ${fmt(us(floorMin), 1)} µs), so on this machine no request through a Node server averages under ${GOAL_US} µs whatever the server does; xenoded's own share is the "wire − floor" column, and in the fastest iterations a READ took ${fmt(us(minOf(wire, 'read 1') - minOf(floorRes, 'read 1')), 1)} µs more than the floor. A write on the wire is group-committed: answered once it is live in memory, written to SQLite with the others of its ${GROUP_COMMIT_MS} ms window (${fmt(us(inproc.get('write, group-committed (the wire protocol), commit included') ?? Number.NaN), 1)} µs per write in process with the commit shared by 32 writes, against ${fmt(us(inproc.get('write, write-through (the HTTP API, the toolstack)') ?? Number.NaN), 1)} µs for a write-through one and ${fmt(us(inproc.get('read') ?? Number.NaN), 1)} µs for a read); a daemon killed inside the window loses that window's writes (docs/xenstored.md, "Durability"). The transaction tests make 2 to 7 requests per iteration, each a round trip. Averages include the scheduler's stalls on a shared 2-CPU machine (the maxima reach milliseconds); the minima show the unloaded cost.`,
  ].join('\n');
  console.log(body);
  if (!args['no-doc']) replaceSection(join(ROOT, 'docs', 'benchmarks.md'), HEADING, body);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
