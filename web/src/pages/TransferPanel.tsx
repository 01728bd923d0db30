// Save a domain to a host file, or live-migrate it to another xenoded, with
// progress; and restore a saved domain. These name host files or make the
// daemon connect out, so the API gives them to the admin only: a sponsor's
// page says so instead of offering them.

import { signal } from '@preact/signals';
import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api.ts';
import { confirmAction } from '../components/ConfirmDialog.tsx';
import { type OpProgress, progressText, runOp } from '../components/op-socket.ts';
import { linkState } from '../live.ts';
import { navigate } from '../router.ts';
import type { DomainView, Principal } from '../types.ts';

/** The last save/migrate outcome: a domain that was saved or migrated away loses its page
 *  (the page shows it is gone), so the outcome is shown there too. */
const lastOutcome = signal<{ text: string; ok: boolean } | undefined>(undefined);

export function OpOutcome() {
  const o = lastOutcome.value;
  if (!o) return null;
  return o.ok ? (
    <div class="alert alert-ok" role="status" data-op-done>
      {o.text}
    </div>
  ) : (
    <div class="alert alert-error" role="alert" data-op-error>
      {o.text}
    </div>
  );
}

function useOp() {
  const [progress, setProgress] = useState<OpProgress | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const run = async <T,>(path: string, body: unknown, ok: (r: T) => string): Promise<T | undefined> => {
    setBusy(true);
    setError('');
    setDone('');
    setProgress(undefined);
    lastOutcome.value = undefined;
    try {
      const r = await runOp<T>(path, body, setProgress);
      setDone(ok(r));
      lastOutcome.value = { text: ok(r), ok: true };
      return r;
    } catch (e) {
      setError(errorText(e));
      lastOutcome.value = { text: errorText(e), ok: false };
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  const status = (
    <>
      {busy && (
        <div class="alert alert-info" role="status" data-op-progress>
          {progress ? progressText(progress) : 'Starting…'}
          {progress?.totalBytes ? (
            <progress max={progress.totalBytes} value={progress.bytes} aria-label="progress" />
          ) : null}
        </div>
      )}
      {error && (
        <div class="alert alert-error" role="alert" data-op-error>
          {error}
        </div>
      )}
      {done && (
        <div class="alert alert-ok" role="status" data-op-done>
          {done}
        </div>
      )}
    </>
  );
  return { busy, run, status };
}

const field = (label: string, value: string, set: (v: string) => void, placeholder: string, name: string) => (
  <label class="field">
    <span>{label}</span>
    <input
      name={name}
      value={value}
      placeholder={placeholder}
      onInput={(e) => set((e.currentTarget as HTMLInputElement).value)}
    />
  </label>
);

function useWho(): Principal | undefined {
  const [who, setWho] = useState<Principal | undefined>(undefined);
  useEffect(() => {
    api<Principal>('GET', '/v1/whoami').then(setWho, () => undefined);
  }, []);
  return who;
}

export function TransferPanel({ d }: { d: DomainView }) {
  const who = useWho();
  const [file, setFile] = useState('');
  const [keep, setKeep] = useState(false);
  const [target, setTarget] = useState('');
  const [token, setToken] = useState('');
  const save = useOp();
  const mig = useOp();
  if (!who) return null;
  if (!who.admin) {
    return (
      <section class="card op-card">
        <h3>Save and migrate</h3>
        <p class="muted" data-op-admin-only>
          Saving to a host file and live migration are the host admin's: ask them to save or move {d.name}.
        </p>
      </section>
    );
  }
  const live = linkState.value === 'live' && (d.state === 'running' || d.state === 'paused');
  return (
    <div class="ops">
      <section class="card op-card" aria-labelledby="save-h">
        <h3 id="save-h">Save to a file</h3>
        <p class="muted">
          The guest's memory and devices go to a file on the host (xl save); the domain is then gone unless it is kept
          running. Restore it from the Host page.
        </p>
        <form
          class="op-form"
          data-save-form
          onSubmit={(e) => {
            e.preventDefault();
            void (async () => {
              if (
                !keep &&
                !(await confirmAction(
                  `Save ${d.name} and stop it?`,
                  `It is written to ${file} and then destroyed.`,
                  'Save',
                ))
              )
                return;
              await save.run<{ file: string; bytes: number; ms: number; domain: string }>(
                `/v1/domains/${d.domid}/save`,
                { file, checkpoint: keep },
                (r) =>
                  `Saved ${d.name} to ${r.file}: ${(r.bytes / 1048576).toFixed(0)} MiB in ${(r.ms / 1000).toFixed(1)} s; domain ${r.domain}.`,
              );
            })();
          }}
        >
          {field('File on the host', file, setFile, '/path/to/file.xsave', 'save-file')}
          <label class="check">
            <input
              type="checkbox"
              checked={keep}
              onChange={(e) => setKeep((e.currentTarget as HTMLInputElement).checked)}
            />{' '}
            keep it running (checkpoint)
          </label>
          <button type="submit" class="btn btn-primary" disabled={save.busy || !live || !file.startsWith('/')}>
            Save
          </button>
        </form>
        {save.status}
      </section>
      <section class="card op-card" aria-labelledby="mig-h">
        <h3 id="mig-h">Live migration</h3>
        <p class="muted">
          Copies the running guest to another host's xenoded while it runs, then switches over (xl migrate). Give that
          host's address and one of its admin tokens.
        </p>
        <form
          class="op-form"
          data-migrate-form
          onSubmit={(e) => {
            e.preventDefault();
            const m = /^(.+):(\d+)$/.exec(target.trim());
            void (async () => {
              if (!m) return;
              if (
                !(await confirmAction(`Migrate ${d.name} to ${target}?`, 'It leaves this host when done.', 'Migrate'))
              )
                return;
              const r = await mig.run<{ target: string; targetDomid: number; ms: number }>(
                `/v1/domains/${d.domid}/migrate`,
                { host: m[1], port: Number(m[2]), token: token.trim() || undefined },
                (x) =>
                  `Migrated ${d.name} to ${x.target} (domid ${x.targetDomid} there) in ${(x.ms / 1000).toFixed(1)} s.`,
              );
              if (r) setTimeout(() => navigate('/'), 3000);
            })();
          }}
        >
          {field('Target host:port', target, setTarget, '10.0.0.2:41234', 'migrate-target')}
          <label class="field">
            <span>Target's admin token</span>
            <input
              name="migrate-token"
              type="password"
              autocomplete="off"
              value={token}
              onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
            />
          </label>
          <button type="submit" class="btn btn-primary" disabled={mig.busy || !live || !/^.+:\d+$/.test(target.trim())}>
            Migrate
          </button>
        </form>
        {mig.status}
      </section>
    </div>
  );
}

/** Restore a saved domain from a host file (the admin's; nothing for a sponsor). */
export function RestoreForm() {
  const who = useWho();
  const [file, setFile] = useState('');
  const [paused, setPaused] = useState(false);
  const op = useOp();
  if (!who?.admin) return null;
  return (
    <section class="card op-card" aria-labelledby="restore-h">
      <h3 id="restore-h">Restore a saved domain</h3>
      <form
        class="op-form"
        data-restore-form
        onSubmit={(e) => {
          e.preventDefault();
          void op.run<{ domid: number; name: string; ms: number }>(
            '/v1/restore',
            { file, paused },
            (r) => `Restored ${r.name} (domid ${r.domid}) in ${(r.ms / 1000).toFixed(1)} s.`,
          );
        }}
      >
        {field('Save file on the host', file, setFile, '/path/to/file.xsave', 'restore-file')}
        <label class="check">
          <input
            type="checkbox"
            checked={paused}
            onChange={(e) => setPaused((e.currentTarget as HTMLInputElement).checked)}
          />{' '}
          leave it paused
        </label>
        <button type="submit" class="btn btn-primary" disabled={op.busy || !file.startsWith('/')}>
          Restore
        </button>
      </form>
      {op.status}
    </section>
  );
}
