// Templates on disk: one directory per sponsor and template,
//   $XENODE_DIR/templates/<sponsor>/<name>/{template.json, state.xsave, ram}
// `ram` is the guest's memory as a raw file; `state.xsave` a save file whose
// QEMU stream holds the device state only (x-ignore-shared). A template is
// built under a temporary name and renamed into place, so a half-made one is
// never listed.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DomainConfig } from '../../config/types.ts';
import { XenodeError } from '../../errors.ts';
import type { Principal } from '../../toolstack/principal.ts';

/** A template's name: as a domain's, at most 64 characters. */
const TEMPLATE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A sponsor's name as the token layer allows it (a directory name here). */
const SPONSOR_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Templates one sponsor may keep (each holds its guest's whole RAM on disk). */
export function templatesPerSponsor(): number {
  const n = Number(process.env.XENODE_TEMPLATES_PER_SPONSOR ?? 4);
  return Number.isInteger(n) && n >= 0 ? n : 4;
}

export interface TemplateMeta {
  name: string;
  sponsor: string;
  /** What the guest is made from (template-fingerprint.ts); a create matches on it. */
  fingerprint: string;
  /** The config the template was made with (name and uuid as they were). */
  config: DomainConfig;
  /** "domain NAME" or "config". */
  source: string;
  createdAt: string;
  memoryMiB: number;
  ramBytes: number;
  stateBytes: number;
}

export interface TemplateFiles {
  dir: string;
  meta: string;
  state: string;
  ram: string;
}

export function checkTemplateName(name: unknown): string {
  if (typeof name !== 'string' || !TEMPLATE_NAME_RE.test(name)) {
    const shown = typeof name === 'string' ? `'${name.slice(0, 64)}${name.length > 64 ? '…' : ''}'` : 'missing';
    throw new XenodeError('usage', `invalid template name ${shown}`, {
      hint: 'letters, digits, _ . - ; at most 64 characters, starting with a letter or digit',
    });
  }
  return name;
}

export function templateFiles(base: string, sponsor: string, name: string): TemplateFiles {
  if (!SPONSOR_RE.test(sponsor)) throw new XenodeError('usage', 'invalid sponsor name');
  const dir = join(base, 'templates', sponsor, checkTemplateName(name));
  return { dir, meta: join(dir, 'template.json'), state: join(dir, 'state.xsave'), ram: join(dir, 'ram') };
}

/** A directory a template is built in, beside the finished ones (same file system, for the rename). */
export function buildDir(base: string, sponsor: string): string {
  const dir = join(base, 'templates', sponsor, `.build-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function readMeta(file: string): TemplateMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as TemplateMeta;
    return typeof m.name === 'string' && typeof m.fingerprint === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** The sponsors whose templates `p` may see: its own; every sponsor's for the admin. */
function visibleSponsors(base: string, p: Principal): string[] {
  if (!p.admin) return [p.sponsor];
  try {
    return readdirSync(join(base, 'templates')).filter((s) => SPONSOR_RE.test(s));
  } catch {
    return [];
  }
}

export function listTemplates(base: string, p: Principal): Array<TemplateMeta & { files: TemplateFiles }> {
  const out: Array<TemplateMeta & { files: TemplateFiles }> = [];
  for (const sponsor of visibleSponsors(base, p)) {
    let names: string[];
    try {
      names = readdirSync(join(base, 'templates', sponsor));
    } catch {
      continue;
    }
    for (const name of names) {
      if (!TEMPLATE_NAME_RE.test(name)) continue;
      const files = templateFiles(base, sponsor, name);
      const m = readMeta(files.meta);
      if (m && existsSync(files.state) && existsSync(files.ram)) out.push({ ...m, files });
    }
  }
  return out.sort((a, b) => a.sponsor.localeCompare(b.sponsor) || a.name.localeCompare(b.name));
}

/**
 * A template by the name its owner gives it; the admin may write SPONSOR/NAME
 * for another sponsor's. Someone else's template is answered as one that does
 * not exist.
 */
export function resolveTemplateRef(p: Principal, ref: string): { sponsor: string; name: string } {
  const slash = ref.indexOf('/');
  if (slash >= 0 && p.admin) return { sponsor: ref.slice(0, slash), name: checkTemplateName(ref.slice(slash + 1)) };
  return { sponsor: p.sponsor, name: checkTemplateName(ref) };
}

export function findTemplate(base: string, p: Principal, ref: string): TemplateMeta & { files: TemplateFiles } {
  const { sponsor, name } = resolveTemplateRef(p, ref);
  if (!SPONSOR_RE.test(sponsor)) throw new XenodeError('not-found', `template '${ref}' does not exist`);
  const files = templateFiles(base, sponsor, name);
  const m = readMeta(files.meta);
  if (!m || !existsSync(files.state)) throw new XenodeError('not-found', `template '${ref}' does not exist`);
  return { ...m, files };
}

export function deleteTemplate(base: string, p: Principal, ref: string): TemplateMeta {
  const t = findTemplate(base, p, ref);
  // Renamed away first: a create that looks now no longer finds it; running clones keep their copy.
  const gone = join(dirname(t.files.dir), `.deleted-${t.name}-${process.pid}-${Date.now().toString(36)}`);
  renameSync(t.files.dir, gone);
  rmSync(gone, { recursive: true, force: true });
  return t;
}

/** Put a finished build in place under its name, replacing an older template of that name. */
export function commitTemplate(build: string, files: TemplateFiles, meta: TemplateMeta): void {
  writeFileSync(join(build, 'template.json'), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
  if (existsSync(files.dir)) {
    const old = join(dirname(files.dir), `.replaced-${meta.name}-${process.pid}-${Date.now().toString(36)}`);
    renameSync(files.dir, old);
    renameSync(build, files.dir);
    rmSync(old, { recursive: true, force: true });
  } else renameSync(build, files.dir);
}

/** Leftover builds of a daemon that died while making a template. */
export function sweepBuilds(base: string): void {
  let sponsors: string[];
  try {
    sponsors = readdirSync(join(base, 'templates'));
  } catch {
    return;
  }
  for (const s of sponsors) {
    try {
      for (const n of readdirSync(join(base, 'templates', s))) {
        // Only ours start with a dot: a template's name cannot.
        if (n.startsWith('.')) rmSync(join(base, 'templates', s, n), { recursive: true, force: true });
      }
    } catch {
      /* not a directory */
    }
  }
}

export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
