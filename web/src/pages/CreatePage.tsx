// Create a domain from xl.cfg text (the CLI's parser runs in the daemon) or
// from a short form that writes the same text. Errors point at their line.

import { useState } from 'preact/hooks';
import { ApiError, api, errorText } from '../api.ts';
import { ConfigEditor } from '../components/ConfigEditor.tsx';
import { navigate } from '../router.ts';
import type { DomainView } from '../types.ts';
import { lineOfNamedFile } from './error-line.ts';
import { RestoreForm } from './TransferPanel.tsx';

const TEMPLATE = `# xl.cfg: the same syntax as for xenode create
name = "web1"
memory = 256
vcpus = 1
# Without kernel= the domain boots Xenode's default Debian guest.
# kernel = "/boot/vmlinuz"
# cmdline = "console=ttyS0"
on_reboot = "restart"
`;

interface FormFields {
  name: string;
  memory: string;
  vcpus: string;
  kernel: string;
  cmdline: string;
  /** A disk image (a volume of yours), empty for none. */
  disk: string;
  diskFormat: string;
  /** Bridge of one network interface: '' none, 'default' the switch's default. */
  vif: string;
  vifIp: string;
  on_poweroff: string;
  on_reboot: string;
  on_crash: string;
}

const ACTIONS = ['destroy', 'restart', 'preserve', 'rename-restart', 'coredump-destroy', 'coredump-restart'];
const DEFAULT_ACTION: Record<'on_poweroff' | 'on_reboot' | 'on_crash', string> = {
  on_poweroff: 'destroy',
  on_reboot: 'restart',
  on_crash: 'destroy',
};

function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The form as xl.cfg text, so both paths go through the one parser. */
export function formToConfig(f: FormFields): string {
  const lines = [
    `name = ${quote(f.name.trim())}`,
    `memory = ${f.memory.trim() || '0'}`,
    `vcpus = ${f.vcpus.trim() || '0'}`,
  ];
  if (f.kernel.trim()) lines.push(`kernel = ${quote(f.kernel.trim())}`);
  if (f.cmdline.trim()) lines.push(`cmdline = ${quote(f.cmdline.trim())}`);
  if (f.disk.trim()) lines.push(`disk = [ ${quote(`${f.disk.trim()},${f.diskFormat},xvda,rw`)} ]`);
  if (f.vif) {
    const items = [f.vif === 'default' ? '' : `bridge=${f.vif.trim()}`, f.vifIp.trim() ? `ip=${f.vifIp.trim()}` : ''];
    lines.push(`vif = [ ${quote(items.filter(Boolean).join(','))} ]`);
  }
  for (const k of ['on_poweroff', 'on_reboot', 'on_crash'] as const) {
    if (f[k] !== DEFAULT_ACTION[k]) lines.push(`${k} = ${quote(f[k])}`);
  }
  return `${lines.join('\n')}\n`;
}

interface CreateError {
  text: string;
  line?: number;
  column?: number;
}

export function CreatePage() {
  const [mode, setMode] = useState<'text' | 'form'>('text');
  const [text, setText] = useState(TEMPLATE);
  const [form, setForm] = useState<FormFields>({
    name: 'vm1',
    memory: '256',
    vcpus: '1',
    kernel: '',
    cmdline: '',
    disk: '',
    diskFormat: 'raw',
    vif: '',
    vifIp: '',
    ...DEFAULT_ACTION,
  });
  const [paused, setPaused] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<CreateError | undefined>(undefined);
  const [warnings, setWarnings] = useState<string[]>([]);
  const configText = mode === 'text' ? text : formToConfig(form);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setWarnings([]);
    try {
      const d = await api<DomainView & { warnings: string[] }>('POST', '/v1/domains', {
        configText,
        filename: 'xl.cfg',
        paused,
      });
      // Warnings (accepted but ignored settings) stay on screen with a link onwards.
      if (d.warnings.length) setWarnings([...d.warnings, `created ${d.name} (domid ${d.domid})`]);
      else navigate(`/domains/${d.domid}`);
    } catch (err) {
      const loc = err instanceof ApiError ? err.wire.location : undefined;
      const line = loc?.line || (err instanceof ApiError ? lineOfNamedFile(err.wire.message, configText) : undefined);
      setError({ text: errorText(err), line, column: loc?.column || undefined });
    } finally {
      setBusy(false);
    }
  };

  const choice = (k: keyof FormFields, label: string, options: Array<[string, string]>) => (
    <label class="field">
      <span>{label}</span>
      <select
        name={k}
        value={form[k]}
        onChange={(e) => {
          setForm({ ...form, [k]: (e.currentTarget as HTMLSelectElement).value });
          setError(undefined);
        }}
      >
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );

  const field = (k: keyof FormFields, label: string, attrs: Record<string, string | number> = {}) => (
    <label class="field">
      <span>{label}</span>
      <input
        name={k}
        value={form[k]}
        onInput={(e) => {
          setForm({ ...form, [k]: (e.currentTarget as HTMLInputElement).value });
          setError(undefined);
        }}
        {...attrs}
      />
    </label>
  );

  return (
    <div class="page">
      <nav class="crumbs">
        <a href="/">Domains</a> <span>/</span> <span>Create</span>
      </nav>
      <div class="page-head">
        <div>
          <h1>Create a domain</h1>
          <p class="muted">Paste an xl.cfg file or fill in the form; the daemon checks it with the CLI's parser.</p>
        </div>
      </div>
      <div class="tabs" role="tablist">
        <button
          type="button"
          role="tab"
          aria-selected={mode === 'text'}
          class={mode === 'text' ? 'tab active' : 'tab'}
          onClick={() => setMode('text')}
        >
          xl.cfg
        </button>
        <button
          type="button"
          role="tab"
          aria-selected={mode === 'form'}
          class={mode === 'form' ? 'tab active' : 'tab'}
          onClick={() => setMode('form')}
        >
          Form
        </button>
      </div>
      <form class="card create-form" onSubmit={submit}>
        {mode === 'text' ? (
          <ConfigEditor
            label="xl.cfg"
            value={text}
            errorLine={error?.line}
            onInput={(t) => {
              setText(t);
              setError(undefined);
            }}
          />
        ) : (
          <div class="form-grid">
            {field('name', 'Name', { required: 'required', pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]*' })}
            {field('memory', 'Memory (MiB)', { type: 'number', min: 32, step: 1 })}
            {field('vcpus', 'vCPUs', { type: 'number', min: 1, step: 1 })}
            {field('kernel', 'Kernel (host path, empty = default guest)', { placeholder: '/boot/vmlinuz' })}
            {field('cmdline', 'Kernel command line (optional)', { placeholder: 'console=ttyS0' })}
            {field('disk', 'Disk image (a volume of yours; optional)', { placeholder: '/var/lib/xenode/pool/vm1.img' })}
            {choice('diskFormat', 'Disk format', [
              ['raw', 'raw'],
              ['qcow2', 'qcow2'],
            ])}
            {choice('vif', 'Network interface', [
              ['', 'none'],
              ['default', "on the sponsor's network"],
            ])}
            {form.vif && field('vifIp', 'Guest IP address (optional)', { placeholder: '10.0.0.2' })}
            {choice(
              'on_poweroff',
              'When the guest powers off',
              ACTIONS.map((a) => [a, a]),
            )}
            {choice(
              'on_reboot',
              'When the guest reboots',
              ACTIONS.map((a) => [a, a]),
            )}
            {choice(
              'on_crash',
              'When the guest crashes',
              ACTIONS.map((a) => [a, a]),
            )}
            <div class="field-wide">
              <span class="muted">Resulting xl.cfg</span>
              <ConfigEditor
                label="generated xl.cfg"
                value={configText}
                errorLine={error?.line}
                readOnly
                onInput={() => {}}
              />
            </div>
          </div>
        )}
        {error && (
          <div class="alert alert-error" role="alert" data-create-error>
            {error.line !== undefined && (
              <b>
                Line {error.line}
                {error.column !== undefined ? `, column ${error.column}` : ''}:{' '}
              </b>
            )}
            {error.text}
          </div>
        )}
        {warnings.map((w) => (
          <div key={w} class="alert alert-warn">
            {w}
          </div>
        ))}
        <div class="form-foot">
          <label class="check">
            <input
              type="checkbox"
              checked={paused}
              onChange={(e) => setPaused((e.currentTarget as HTMLInputElement).checked)}
            />
            Start paused
          </label>
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create'}
          </button>
        </div>
      </form>
      <RestoreForm />
    </div>
  );
}
