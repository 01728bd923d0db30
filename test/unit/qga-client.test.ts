// QgaClient against fake agents on a Unix socket: a well-behaved one, and hostile
// ones (garbage, silence, a flood, late answers). Every call must end by its deadline.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseInterfaces, QgaClient } from '../../src/engine/qga.ts';

const dir = mkdtempSync('/tmp/qga-');
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

type Handler = (sock: Socket, req: { execute: string; arguments?: { id?: number } }, raw: Buffer) => void;

/** A fake agent: parses requests as qemu-ga does (0xFF resets), answers through `h`. */
function agent(h: Handler): Promise<{ path: string; server: Server; log: string[] }> {
  const path = join(dir, `a${n++}.sock`);
  const log: string[] = [];
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      for (;;) {
        const ff = buf.lastIndexOf(0xff);
        if (ff >= 0) buf = buf.subarray(ff + 1);
        const nl = buf.indexOf(0x0a);
        if (nl < 0) return;
        const line = buf.subarray(0, nl);
        buf = buf.subarray(nl + 1);
        const req = JSON.parse(line.toString());
        log.push(req.execute);
        h(sock, req, line);
      }
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ path, server, log })));
}

const good: Handler = (sock, req) => {
  switch (req.execute) {
    case 'guest-sync-delimited':
      sock.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${req.arguments?.id}}\n`)]));
      return;
    case 'guest-ping':
      sock.write('{"return": {}}\n');
      return;
    case 'guest-fsfreeze-freeze':
      sock.write('{"return": 2}\n');
      return;
    case 'guest-fsfreeze-thaw':
      sock.write('{"return": 2}\n');
      return;
    case 'guest-network-get-interfaces':
      sock.write(
        `${JSON.stringify({
          return: [
            { name: 'lo', 'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', prefix: 8 }] },
            {
              name: 'ens3',
              'hardware-address': '52:54:00:12:34:56',
              'ip-addresses': [
                { 'ip-address-type': 'ipv4', 'ip-address': '10.0.2.15', prefix: 24 },
                { 'ip-address-type': 'ipv4', 'ip-address': '$(reboot)', prefix: 24 },
                { 'ip-address-type': 'ipv6', 'ip-address': 'fe80::5054:ff:fe12:3456', prefix: 64 },
              ],
            },
            { name: '../../etc', 'ip-addresses': [] },
          ],
        })}\n`,
      );
      return;
    case 'guest-shutdown':
      return; // no answer on success, as qemu-ga
  }
};

describe('QgaClient', () => {
  it('talks to a well-behaved agent: ping, freeze, thaw, interfaces, shutdown', async () => {
    const a = await agent(good);
    const c = new QgaClient(a.path);
    await c.ping();
    assert.equal(await c.freeze(), 2);
    assert.equal(await c.thaw(), 2);
    const ifs = await c.interfaces();
    assert.deepEqual(
      ifs.map((i) => i.name),
      ['lo', 'ens3'],
    );
    assert.deepEqual(
      ifs[1].addresses.map((x) => x.address),
      ['10.0.2.15', 'fe80::5054:ff:fe12:3456'],
    );
    await c.shutdown('powerdown');
    // Nothing comes back from guest-shutdown: wait until the agent has read it.
    for (let i = 0; i < 100 && !a.log.includes('guest-shutdown'); i++) await new Promise((r) => setImmediate(r));
    assert.ok(a.log.includes('guest-shutdown'));
    c.close();
    a.server.close();
  });

  it('an agent that never answers costs a timeout, not a hang', async () => {
    const a = await agent(() => undefined);
    const c = new QgaClient(a.path);
    const t0 = Date.now();
    await assert.rejects(c.ping(500), /did not answer/);
    assert.ok(Date.now() - t0 < 5000);
    await assert.rejects(c.freeze(500), /did not answer/);
    c.close();
    a.server.close();
  });

  it('garbage, a flood without newlines and a wrong sync id are survived', async () => {
    // Garbage before the delimiter, then a stale id, then the right one.
    const a = await agent((sock, req) => {
      if (req.execute === 'guest-sync-delimited') {
        sock.write(Buffer.from('\x00garbage{"return":'));
        sock.write(Buffer.concat([Buffer.from([0xff]), Buffer.from('{"return": 1}\nnot json\n')]));
        sock.write(`{"return": ${req.arguments?.id}}\n`);
      } else if (req.execute === 'guest-ping') sock.write('[1,2,3]\n');
      else if (req.execute === 'guest-fsfreeze-freeze') sock.write('{"return": "lots"}\n');
      else if (req.execute === 'guest-network-get-interfaces') sock.write(Buffer.alloc(400 * 1024, 0x41));
    });
    const c = new QgaClient(a.path);
    await assert.rejects(c.ping(2000), /malformed/);
    await assert.rejects(c.freeze(2000), /malformed/);
    await assert.rejects(c.interfaces(2000), /oversized|did not answer|closed/);
    c.close();
    a.server.close();
  });

  it('an error answer is reported with its description, cut short', async () => {
    const a = await agent((sock, req) => {
      if (req.execute === 'guest-sync-delimited') {
        sock.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${req.arguments?.id}}\n`)]));
      } else sock.write(`${JSON.stringify({ error: { class: 'GenericError', desc: `no ${'x'.repeat(5000)}` } })}\n`);
    });
    const c = new QgaClient(a.path);
    const e = await c.freeze(2000).catch((x: Error) => x);
    assert.ok(e instanceof Error && /guest-fsfreeze-freeze: no x/.test(e.message) && e.message.length < 400);
    c.close();
    a.server.close();
  });

  it('no socket: fails at once', async () => {
    const c = new QgaClient(join(dir, 'missing.sock'));
    await assert.rejects(c.ping(1000), /socket/);
    c.close();
  });

  it('parseInterfaces keeps only well-formed names and addresses', () => {
    const got = parseInterfaces([
      {
        name: 'eth0',
        'hardware-address': 'zz',
        'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '1.2.3.4', prefix: 99 }],
      },
      { name: 7 },
      'x',
    ]);
    assert.deepEqual(got, [{ name: 'eth0', addresses: [] }]);
  });
});
