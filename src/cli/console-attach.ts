// `xenode console` / `create -c`: the terminal attached to a domain's serial
// console through xenoded. Ctrl-] detaches, as in xl console.

import { XenodeError } from '../errors.ts';
import type { ApiClient } from './client.ts';

const ESCAPE = 0x1d; // Ctrl-]

export async function attachConsole(
  client: ApiClient,
  dom: string,
  opts: { scrollback?: boolean } = {},
): Promise<number> {
  const ws = await client.websocket(
    `/v1/domains/${encodeURIComponent(dom)}/console${opts.scrollback === false ? '?scrollback=0' : ''}`,
  );
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    const tty = stdin.isTTY === true;
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      if (tty) stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onInput);
      process.off('SIGTERM', onSignal);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
      resolve(code);
    };
    const onSignal = () => finish(0);
    const onInput = (d: Buffer) => {
      const i = d.indexOf(ESCAPE);
      if (i >= 0) {
        if (i > 0) ws.send(d.subarray(0, i));
        finish(0);
        return;
      }
      ws.send(d);
    };
    ws.on('open', () => {
      if (tty) stdin.setRawMode(true);
      stdin.on('data', onInput);
      stdin.resume();
      process.on('SIGTERM', onSignal);
    });
    ws.on('message', (data: Buffer) => {
      process.stdout.write(data);
    });
    ws.on('unexpected-response', (_req, res) => {
      finish(1);
      reject(new XenodeError('not-found', `Unable to attach console (HTTP ${res.statusCode})`));
    });
    ws.on('close', (code, reason) => {
      if (code === 4004) {
        finished = true;
        reject(new XenodeError('not-found', reason.toString() || 'Unable to attach console'));
        return;
      }
      finish(0);
    });
    ws.on('error', (e) => {
      if (!finished) {
        finish(1);
        reject(new XenodeError('engine', `Unable to attach console: ${e.message}`));
      }
    });
  });
}
