// Confirmation for destructive actions: a modal <dialog>, asked for with
// `await confirmAction(...)` from anywhere.

import { signal } from '@preact/signals';
import { useEffect, useRef } from 'preact/hooks';

interface Ask {
  title: string;
  body: string;
  confirmLabel: string;
  resolve: (ok: boolean) => void;
}

const pending = signal<Ask | undefined>(undefined);

export function confirmAction(title: string, body: string, confirmLabel: string): Promise<boolean> {
  pending.value?.resolve(false);
  return new Promise((resolve) => {
    pending.value = { title, body, confirmLabel, resolve };
  });
}

export function ConfirmDialog() {
  const ref = useRef<HTMLDialogElement>(null);
  const ask = pending.value;
  useEffect(() => {
    const dlg = ref.current;
    if (ask && dlg && !dlg.open) dlg.showModal();
  }, [ask]);
  if (!ask) return null;
  const done = (ok: boolean) => {
    ref.current?.close();
    pending.value = undefined;
    ask.resolve(ok);
  };
  return (
    <dialog
      ref={ref}
      class="confirm"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        done(false);
      }}
    >
      <h2 id="confirm-title">{ask.title}</h2>
      <p>{ask.body}</p>
      <div class="dialog-actions">
        <button type="button" class="btn" onClick={() => done(false)}>
          Cancel
        </button>
        <button type="button" class="btn btn-danger" data-confirm onClick={() => done(true)}>
          {ask.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
