// The domain's serial console in xterm.js, attached over WebSocket to
// /v1/domains/:dom/console: binary frames both ways; the daemon sends the
// scroll-back first, so the screen shows what the guest printed before.

import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { enc, wsUrl } from '../api.ts';

type ConnState = 'connecting' | 'connected' | 'closed';

export function Console({ dom }: { dom: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<ConnState>('connecting');
  const [reason, setReason] = useState('');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#0f1419', foreground: '#d8dee9', cursor: '#8fbcbb', selectionBackground: '#3b4252' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    const ws = new WebSocket(wsUrl(`/v1/domains/${enc(dom)}/console`));
    ws.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    ws.onopen = () => {
      setState('connected');
      term.focus();
    };
    ws.onmessage = (ev) => {
      term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onclose = (ev) => {
      setState('closed');
      setReason(ev.reason || (ev.code === 1006 ? 'connection lost' : `closed (${ev.code})`));
    };
    const input = term.onData((s) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(s));
    });
    const ro = new ResizeObserver(() => fit.fit());
    ro.observe(el);
    return () => {
      ro.disconnect();
      input.dispose();
      ws.onclose = null;
      ws.close();
      term.dispose();
    };
  }, [dom, attempt]);

  return (
    <div class="console-panel">
      <div class="console-bar">
        <span class={`conn conn-${state}`} data-console-state={state}>
          {state === 'connected' ? 'Connected' : state === 'connecting' ? 'Connecting…' : `Disconnected: ${reason}`}
        </span>
        <span class="muted">
          Serial console (ttyS0). Click the terminal and type; output is shared with `xenode console`.
        </span>
        {state === 'closed' && (
          <button
            type="button"
            class="btn btn-small"
            onClick={() => {
              setState('connecting');
              setAttempt((n) => n + 1);
            }}
          >
            Reconnect
          </button>
        )}
      </div>
      <div class="terminal-host" ref={host} />
    </div>
  );
}
