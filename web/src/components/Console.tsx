// The domain's serial console in xterm.js, attached over WebSocket to
// /v1/domains/:dom/console?mark=1: binary frames both ways. The daemon sends
// the scroll-back first, then a text frame marking its end.
//
// - The scroll-back is replayed with the terminal's answers switched off: old
//   queries in it (a shell's cursor-position request, ESC [ 6 n) would make
//   xterm.js answer again, and those answers would be typed into the guest.
// - The connection comes back by itself (with backoff) when the daemon
//   restarts or the network drops; the bar says what happened in words.
// - A serial line carries no window size: "Send size" types `stty rows R cols C`
//   for the guest's shell, and the guest's own `resize` gets an answer too.
// - Tab belongs to the guest (completion); Escape then Tab (or Shift+Tab)
//   moves the focus out of the terminal.

import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { enc, wsUrl } from '../api.ts';

type ConnState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** How long after Escape a Tab leaves the terminal instead of reaching the guest. */
const ESCAPE_WINDOW_MS = 1500;
const PAGE_BOTTOM_PX = 24;

/** What a close means to a user, and whether trying again can help. */
export function describeClose(code: number, reason: string): { text: string; retry: boolean } {
  if (code === 4001) return { text: `session ended (${reason || 'logged out'}); log in again`, retry: false };
  if (code === 4004) return { text: 'this domain no longer exists', retry: false };
  if (code === 1000 && reason === 'domain destroyed') return { text: 'the domain was destroyed', retry: false };
  if (code === 1009) return { text: 'a paste over 64 KiB was refused', retry: true };
  if (code === 1001) return { text: 'xenoded is restarting', retry: true };
  return { text: 'connection to xenoded lost', retry: true };
}

function focusable(): HTMLElement[] {
  return [
    ...document.querySelectorAll<HTMLElement>(
      'a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex]:not([tabindex="-1"])',
    ),
  ].filter((e) => e.offsetParent !== null || e.classList.contains('xterm-helper-textarea'));
}

/** Move the focus to the next (or previous) focusable element outside `box`. */
function leave(box: HTMLElement, back: boolean): void {
  const all = focusable();
  const inside = all.filter((e) => box.contains(e));
  const first = inside[0];
  const last = inside.at(-1);
  if (!first || !last) return;
  const i = all.indexOf(back ? first : last);
  const next = back
    ? all
        .slice(0, i)
        .reverse()
        .find((e) => !box.contains(e))
    : all.slice(i + 1)[0];
  if (next) next.focus();
  else (document.activeElement as HTMLElement | null)?.blur();
}

export function Console({ dom }: { dom: string }) {
  const panel = useRef<HTMLDivElement>(null);
  const host = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | undefined>(undefined);
  const sendRef = useRef<(s: string) => void>(() => undefined);
  const [state, setState] = useState<ConnState>('connecting');
  const [reason, setReason] = useState('');
  const [size, setSize] = useState({ cols: 0, rows: 0 });
  const [attempt, setAttempt] = useState(0);

  // The panel fills the window below it, so the page never scrolls.
  useEffect(() => {
    const el = panel.current;
    if (!el) return;
    const fit = () => {
      const top = el.getBoundingClientRect().top + window.scrollY;
      el.style.height = `${Math.max(260, window.innerHeight - top - PAGE_BOTTOM_PX)}px`;
    };
    fit();
    window.addEventListener('resize', fit);
    return () => window.removeEventListener('resize', fit);
  }, []);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      // At 1.0 the cell is exactly the font's ascent + descent and the DOM
      // renderer's rows clip the underscore, drawn at the very bottom.
      lineHeight: 1.2,
      scrollback: 5000,
      // Lets a guest ask for the size in characters (CSI 18 t), as `resize -s` does.
      windowOptions: { getWinSizeChars: true },
      theme: { background: '#0f1419', foreground: '#d8dee9', cursor: '#8fbcbb', selectionBackground: '#3b4252' },
    });
    termRef.current = term;
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    setSize({ cols: term.cols, rows: term.rows });
    const resized = term.onResize(({ cols, rows }) => setSize({ cols, rows }));

    let escapedAt = 0;
    term.attachCustomKeyEventHandler((ev) => {
      // Shift on its way to Shift+Tab must not end the Escape window.
      if (ev.type !== 'keydown' || ['Shift', 'Control', 'Alt', 'Meta'].includes(ev.key)) return true;
      if (ev.key === 'Escape') {
        escapedAt = Date.now();
        return true;
      }
      if (ev.key === 'Tab' && Date.now() - escapedAt < ESCAPE_WINDOW_MS) {
        escapedAt = 0;
        ev.preventDefault();
        leave(el, ev.shiftKey);
        return false;
      }
      escapedAt = 0;
      return true;
    });

    const encoder = new TextEncoder();
    let ws: WebSocket | undefined;
    let replaying = true;
    let delay = 500;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let disposed = false;
    let everConnected = false;

    const connect = () => {
      replaying = true;
      const sock = new WebSocket(wsUrl(`/v1/domains/${enc(dom)}/console?mark=1`));
      ws = sock;
      sock.binaryType = 'arraybuffer';
      sock.onopen = () => {
        delay = 500;
        setState('connected');
        setReason('');
        // The scroll-back that follows is the whole story again.
        if (everConnected) term.reset();
        everConnected = true;
        term.focus();
      };
      sock.onmessage = (ev) => {
        if (typeof ev.data === 'string') {
          // The end of the scroll-back: answers count again once it is parsed.
          if (ev.data.includes('scrollback-end')) term.write('', () => (replaying = false));
          return;
        }
        term.write(new Uint8Array(ev.data as ArrayBuffer));
      };
      sock.onclose = (ev) => {
        if (disposed) return;
        const what = describeClose(ev.code, ev.reason);
        if (!what.retry) {
          setState('closed');
          setReason(what.text);
          return;
        }
        setState('reconnecting');
        setReason(`${what.text}; reconnecting in ${Math.round(delay / 1000) || 1} s…`);
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 8000);
      };
    };
    sendRef.current = (s: string) => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(s));
    };
    const input = term.onData((s) => {
      if (!replaying) sendRef.current(s);
    });
    connect();

    const ro = new ResizeObserver(() => fit.fit());
    ro.observe(el);
    return () => {
      disposed = true;
      clearTimeout(timer);
      ro.disconnect();
      input.dispose();
      resized.dispose();
      ws?.close();
      term.dispose();
      termRef.current = undefined;
    };
  }, [dom, attempt]);

  const label =
    state === 'connected'
      ? 'Connected'
      : state === 'connecting'
        ? 'Connecting…'
        : state === 'reconnecting'
          ? `Reconnecting: ${reason}`
          : `Disconnected: ${reason}`;
  return (
    <div class="console-panel" ref={panel}>
      <div class="console-bar">
        <span class={`conn conn-${state}`} data-console-state={state} role="status">
          {label}
        </span>
        <span class="muted console-help">Serial console (ttyS0), shared with xenode console. Esc then Tab leaves.</span>
        <button
          type="button"
          class="btn btn-small btn-console"
          data-console-size={`${size.cols}x${size.rows}`}
          disabled={state !== 'connected'}
          title={`Types "stty rows ${size.rows} cols ${size.cols}" into the guest's shell`}
          onClick={() => {
            sendRef.current(`stty rows ${size.rows} cols ${size.cols}\r`);
            termRef.current?.focus();
          }}
        >
          Send size {size.cols}×{size.rows}
        </button>
        {state === 'closed' && (
          <button
            type="button"
            class="btn btn-small btn-console"
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
