// Issue: suspend to file, resume. A real guest (TCG) counting in a loop, with
// a data disk and a TCP connection to the host, is saved and restored: the
// counter continues, the connection still answers, the store subtree and the
// console log carry over. Damaged files start nothing.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

// A host port and subnet of this test's own (the switch's TAP; needs root).
const TAG = String(process.pid % 100000);
const NET = '10.233.0';
const root = process.getuid?.() === 0;
const NAME = 'sr';

let host: TestHost;
let con: ConsoleSession;
let img: string;
let saveFile: string;
let server: Server | undefined;
let peer: Socket | undefined;
let fromGuest = '';

/** The domain's id as `xenode domid` prints it. */
async function domid(name: string): Promise<number> {
  return Number((await host.ok(['domid', name])).trim());
}

async function listNames(): Promise<string[]> {
  return (await host.ok(['list']))
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0] as string);
}

async function counter(c: ConsoleSession): Promise<number> {
  return Number(await c.run('cat /tmp/c'));
}

/** Wait (in the guest) until the counter passes `n`, then read it. */
async function counterAbove(c: ConsoleSession, n: number): Promise<number> {
  return Number(await c.run(`while [ "$(cat /tmp/c)" -le ${n} ]; do sleep 0.05; done; cat /tmp/c`, 60_000));
}

async function uptime(c: ConsoleSession): Promise<number> {
  return Number((await c.run('cat /proc/uptime')).split(' ')[0]);
}

async function openConsole(name: string): Promise<ConsoleSession> {
  const c = await host.console(name);
  await c.expect(new RegExp(`${name}:/# `), 120_000);
  return c;
}

/** Send a line to the guest over the TCP connection and wait for its answer. */
async function ping(n: number): Promise<string> {
  assert.ok(peer, 'no TCP connection');
  const from = fromGuest.length;
  peer.write(`ping ${n}\n`);
  for (let i = 0; i < 600; i++) {
    const m = /pong ping (\d+)/.exec(fromGuest.slice(from));
    if (m) return m[0];
    await new Promise<void>((r) => {
      const t = setTimeout(r, 100);
      peer?.once('data', () => {
        clearTimeout(t);
        r();
      });
    });
  }
  throw new Error(`no answer to ping ${n}; got ${JSON.stringify(fromGuest.slice(from))}`);
}

function oneLine(stderr: string): string {
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  // Progress lines come first, as with xl; the error is the one line after them.
  const progress = /^(Loading new save file|Checking save file|Restoring:|Saving domain|Saving:)/;
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => !progress.test(l));
  assert.equal(lines.length, 1, `expected one error line, got: ${stderr}`);
  return lines[0] as string;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: `xns${TAG},${NET}.1/24` });
  mkdirSync(join(host.dir, 'img'));
  const seed = join(host.dir, 'seed');
  mkdirSync(seed);
  writeFileSync(join(seed, 'hello'), 'data disk survives\n');
  img = join(host.dir, 'img', 'data.img');
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', seed, '-F', img, '16M']);
  saveFile = join(host.dir, 'sr.save');
  const cfg = host.writeConfig(
    'sr.cfg',
    `name = "${NAME}"\nmemory = 256\nvif = ['ip=${NET}.11']\ndisk = [ "${img},raw,xvdb,rw" ]\n`,
  );
  const r = await host.xl(['create', cfg]);
  assert.equal(r.code, 0, r.stderr);
  con = await openConsole(NAME);
  await con.run('i=0; while true; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; sleep 0.1; done & :');
  await counterAbove(con, 0);
});

after(async () => {
  con?.close();
  peer?.destroy();
  server?.close();
  for (const n of await listNames().catch(() => [])) if (n !== 'Domain-0') await host.xl(['destroy', n]);
  await host.cleanup();
});

describe('save and restore', () => {
  it('the guest holds a TCP connection to the host', { skip: !root && 'the host port needs root' }, async () => {
    let connected: () => void = () => {};
    const connection = new Promise<void>((r) => {
      connected = r;
    });
    server = createServer((s) => {
      peer = s;
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        fromGuest += d;
      });
      connected();
    });
    await new Promise<void>((r) => server?.listen(7101, `${NET}.1`, r));
    // The guest answers every line with "pong <line>" on the same connection (nc -e runs the loop on the socket).
    await con.run(
      `printf '#!/bin/sh\\nwhile read l; do echo "pong $l"; done\\n' > /tmp/pong; chmod +x /tmp/pong; nc ${NET}.1 7101 -e /tmp/pong >/dev/null 2>&1 & :`,
    );
    const timeout = new Promise<void>((r) => setTimeout(r, 60_000).unref());
    await Promise.race([connection, timeout]);
    assert.ok(peer, `the guest did not connect: ${await con.run(`ping -c 1 -W 2 ${NET}.1 | tail -2; jobs`)}`);
    assert.equal(await ping(1), 'pong ping 1');
  });

  it('save stops and destroys the domain; restore continues it where it was', async () => {
    const id1 = await domid(NAME);
    await host.ok(['store', 'write', `/local/domain/${id1}/data/color`, 'blue']);
    await con.run('echo MARK-BEFORE-SAVE');
    const before = await counter(con);
    const up1 = await uptime(con);

    const s = await host.xl(['save', NAME, saveFile]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /Saved [\d.]+ MiB in [\d.]+ s; domain sr destroyed/);
    assert.ok(!(await listNames()).includes(NAME), 'the domain is gone after save');
    assert.ok(statSync(saveFile).size > 1024 * 1024);
    con.close();

    const r = await host.xl(['restore', saveFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Restored domain sr \(domid \d+\)/);
    const id2 = await domid(NAME);
    assert.notEqual(id2, id1, 'a new domid');

    con = await host.console(NAME);
    // The console log continues: the old output, then a note.
    await con.expect(/MARK-BEFORE-SAVE[\s\S]*\[xenode: restored from /, 10_000);
    const after = await counter(con);
    assert.ok(after >= before, `counter went from ${before} to ${after}`);
    assert.ok(after < before + 100, `counter ${after} continued from ${before}, it did not restart`);
    assert.ok((await counterAbove(con, after)) > after, 'and keeps counting');
    assert.ok((await uptime(con)) >= up1, 'no reboot');
    assert.equal(await con.run('cat /mnt/data/hello'), 'data disk survives');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id2}/data/color`])).trim(), 'blue');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id2}/domid`])).trim(), String(id2));
  });

  it('the TCP connection still works after restore', { skip: !root && 'the host port needs root' }, async () => {
    assert.equal(await ping(2), 'pong ping 2');
  });

  it('a truncated, corrupted or wrong-version file gives one clear line and starts nothing', async () => {
    const bytes = readFileSync(saveFile);
    const damaged: Array<[string, Buffer, RegExp]> = [
      ['truncated', bytes.subarray(0, bytes.length >> 1), /is truncated or incomplete/],
      [
        'corrupted',
        (() => {
          const b = Buffer.from(bytes);
          b[b.length - 100_000] ^= 0x10;
          return b;
        })(),
        /is corrupted \(checksum mismatch in the QEMU state\)/,
      ],
      [
        'version',
        (() => {
          const b = Buffer.from(bytes);
          b.writeUInt16LE(7, 16);
          return b;
        })(),
        /has format version 7\.1; this Xenode reads version 1\.x \(restore it with a newer Xenode\)/,
      ],
    ];
    const qemus = host.qemuPids().length;
    for (const [what, content, re] of damaged) {
      const p = join(host.dir, `${what}.save`);
      writeFileSync(p, content);
      const r = await host.xl(['restore', p, 'name=damaged']);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.match(oneLine(r.stderr), re, what);
      assert.ok(!(await listNames()).includes('damaged'), `${what}: nothing restored`);
      assert.equal(host.qemuPids().length, qemus, `${what}: no QEMU started`);
    }
  });

  it('restore names a missing disk image and starts nothing', async () => {
    const away = `${img}.away`;
    renameSync(img, away);
    try {
      const r = await host.xl(['restore', saveFile, 'name=nodisk']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneLine(r.stderr), new RegExp(`disk xvdb: image '${img}' does not exist on this host`));
      assert.ok(!(await listNames()).includes('nodisk'));
    } finally {
      renameSync(away, img);
    }
  });

  it('restore refuses to change what the machine state fixes', async () => {
    const r = await host.xl(['restore', saveFile, 'name=big', 'memory=512']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /'memory' cannot be changed on restore/);
  });

  it('save -c keeps the domain running; the checkpoint restores beside it under another name', async () => {
    const ckpt = join(host.dir, 'ckpt.save');
    const before = await counter(con);
    const s = await host.xl(['save', '-c', NAME, ckpt]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /domain sr left running/);
    assert.ok((await counterAbove(con, before)) > before, 'still counting after the checkpoint');
    // Paused, with its own MAC and its own copy of the disk, so it does not fight the original.
    const img2 = join(host.dir, 'img', 'copy.img');
    copyFileSync(img, img2);
    const r = await host.xl([
      'restore',
      '-p',
      ckpt,
      'name=sr-copy',
      `vif=['ip=${NET}.12']`,
      `disk=["${img2},raw,xvdb,rw"]`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await host.ok(['list', 'sr-copy']), /^sr-copy\s+\d+\s+256\s+1\s+--p---/m);
    await host.ok(['destroy', 'sr-copy']);
    // A second checkpoint of the same domain works too (QEMU left it in postmigrate).
    const again = await host.xl(['save', '-c', NAME, ckpt]);
    assert.equal(again.code, 0, again.stderr);
  });

  it('user errors: bad directory, unknown domain, missing file; the domain is untouched', async () => {
    const r1 = await host.xl(['save', NAME, '/nonexistent-dir/x.save']);
    assert.equal(r1.code, 1);
    assert.match(oneLine(r1.stderr), /cannot write save file '\/nonexistent-dir\/x\.save': no such directory/);
    const r2 = await host.xl(['save', 'nosuch', join(host.dir, 'n.save')]);
    assert.equal(r2.code, 1);
    assert.match(oneLine(r2.stderr), /nosuch is an invalid domain identifier/);
    const r3 = await host.xl(['restore', join(host.dir, 'missing.save')]);
    assert.equal(r3.code, 1);
    assert.match(oneLine(r3.stderr), /save file '.*missing\.save' not found/);
    assert.match(await host.ok(['list', NAME]), /^sr\s+\d+\s+256\s+1\s+[rb-]{2}----/m);
    const n = await counter(con);
    assert.ok((await counterAbove(con, n)) > n);
  });

  it('refuses to save a domain that shares memory through static_shm', async () => {
    const cfg = host.writeConfig(
      'shm.cfg',
      'name = "shm1"\nmemory = 128\nstatic_shm = ["id=srshm, begin=0x100000, size=0x100000, role=owner"]\n',
    );
    const c = await host.xl(['create', '-p', cfg]);
    assert.equal(c.code, 0, c.stderr);
    const r = await host.xl(['save', 'shm1', join(host.dir, 'shm.save')]);
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      /domain shm1 uses static_shm 'srshm'; saving domains with shared memory is not supported/,
    );
    assert.match(await host.ok(['list', 'shm1']), /^shm1\s/m);
    await host.ok(['destroy', 'shm1']);
  });
});
