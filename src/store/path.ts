// Path syntax and tree arithmetic. Paths are plain strings; `/` is the root.

import { StoreError } from './errors.ts';

/** Longest absolute path xenstored accepts (XENSTORE_ABS_PATH_MAX). */
export const ABS_PATH_MAX = 3072;

// Characters are xenstore's; `/` handled separately so `//` and a trailing `/` can be refused.
const COMPONENT = /^[A-Za-z0-9_@-]+$/;
const DOMAIN_PREFIX = /^\/local\/domain\/\d{1,5}\//;
/** The whole of a well-formed path in one test (the per-component loop below names what is wrong). */
const WELL_FORMED = /^(?:\/[A-Za-z0-9_@-]+)+$/;

function invalid(path: unknown, why: string): StoreError {
  return new StoreError('EINVAL', `invalid path ${JSON.stringify(path)}: ${why}`, {
    hint: 'paths are absolute, use only A-Z a-z 0-9 _ @ - and /, with no empty component',
  });
}

/** Throws EINVAL unless `path` is a well-formed absolute path. */
export function checkPath(path: unknown): asserts path is string {
  if (typeof path !== 'string') throw invalid(path, 'not a string');
  if (path === '/' || (path.length <= ABS_PATH_MAX && WELL_FORMED.test(path))) return;
  if (!path.startsWith('/')) throw invalid(path, 'not absolute');
  if (path.length > ABS_PATH_MAX) throw invalid(path.slice(0, 40), `longer than ${ABS_PATH_MAX} bytes`);
  if (path.endsWith('/')) throw invalid(path, 'trailing /');
  for (const part of path.slice(1).split('/')) {
    if (part === '') throw invalid(path, 'empty component (//)');
    if (!COMPONENT.test(part)) throw invalid(path, 'forbidden character');
  }
}

/**
 * Unprivileged domains are limited on the part of the path below their own
 * `/local/domain/<domid>/` (as xenstored counts it), so a guest's relative
 * layout is portable whatever its domid.
 */
export function checkPathQuota(path: string, max: number): void {
  if (max <= 0) return;
  const prefix = DOMAIN_PREFIX.exec(path);
  const rel = prefix ? path.length - prefix[0].length : path.length;
  if (rel > max) throw invalid(path.slice(0, 40), `longer than ${max} bytes for a domain`);
}

/** Special watch/permission paths such as `@releaseDomain`. */
export function isSpecial(path: string): boolean {
  return path.startsWith('@');
}

/** A path that may be watched or have its permissions queried: absolute or `@name[/…]`. */
export function checkWatchPath(path: unknown): asserts path is string {
  if (typeof path === 'string' && isSpecial(path)) {
    if (path.length > ABS_PATH_MAX) throw invalid(path.slice(0, 40), 'too long');
    for (const part of path.slice(1).split('/')) {
      if (part === '' || !COMPONENT.test(part)) throw invalid(path, 'malformed special path');
    }
    return;
  }
  checkPath(path);
}

/** Parent of a non-root path; undefined for `/` and for special paths. */
export function parentOf(path: string): string | undefined {
  if (path === '/' || isSpecial(path)) return undefined;
  const i = path.lastIndexOf('/');
  return i === 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** True when `path` is `ancestor` or lies below it. */
export function isAncestorOrSelf(ancestor: string, path: string): boolean {
  if (ancestor === path) return true;
  if (ancestor === '/') return path.startsWith('/');
  return path.startsWith(`${ancestor}/`);
}
