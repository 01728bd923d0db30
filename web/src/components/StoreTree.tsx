// A domain's control-store subtree, opened level by level (GET /v1/store/ls).

import { useEffect, useState } from 'preact/hooks';
import { api, enc, errorText } from '../api.ts';
import type { StoreEntry } from '../types.ts';

function StoreNode({
  path,
  name,
  value,
  open: initiallyOpen,
}: {
  path: string;
  name: string;
  value?: string;
  open?: boolean;
}) {
  const [open, setOpen] = useState(initiallyOpen === true);
  const [children, setChildren] = useState<StoreEntry[] | undefined>(undefined);
  const [error, setError] = useState('');

  useEffect(() => {
    if (!open || children) return;
    api<{ children: StoreEntry[] }>('GET', `/v1/store/ls?path=${enc(path)}`)
      .then((r) => setChildren(r.children))
      .catch((e: unknown) => setError(errorText(e)));
  }, [open, path, children]);

  const leaf = children !== undefined && children.length === 0;
  return (
    <li class="store-node">
      <div class="store-row">
        <button
          type="button"
          class={`twisty${leaf ? ' leaf' : ''}`}
          aria-label={open ? `collapse ${path}` : `expand ${path}`}
          aria-expanded={open}
          onClick={() => setOpen(!open)}
        >
          {leaf ? '·' : open ? '▾' : '▸'}
        </button>
        {leaf ? (
          <span class="store-name" title={path}>
            {name}
          </span>
        ) : (
          // The whole name opens the node, not only the small arrow.
          <button type="button" class="store-name store-open" title={path} onClick={() => setOpen(!open)}>
            {name}
          </button>
        )}
        {value !== undefined && value !== '' && <span class="store-value">{value}</span>}
      </div>
      {error && <div class="error-inline">{error}</div>}
      {open && children && children.length > 0 && (
        <ul>
          {children.map((c) => (
            <StoreNode key={c.name} path={`${path === '/' ? '' : path}/${c.name}`} name={c.name} value={c.value} />
          ))}
        </ul>
      )}
    </li>
  );
}

export function StoreTree({ roots }: { roots: string[] }) {
  // A new generation re-reads every open level from the daemon.
  const [gen, setGen] = useState(0);
  return (
    <>
      <div class="store-tools">
        <button type="button" class="btn btn-small" data-store-refresh onClick={() => setGen((g) => g + 1)}>
          Refresh
        </button>
        <span class="muted">Read when opened; Refresh reads it again.</span>
      </div>
      <ul class="store-tree" key={gen}>
        {roots.map((r) => (
          <StoreNode key={r} path={r} name={r} open />
        ))}
      </ul>
    </>
  );
}
