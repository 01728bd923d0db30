// Reading a config: file text + `key=value` arguments -> validated DomainConfig.

import fs from 'node:fs';
import path from 'node:path';
import { XenodeError } from '../errors.ts';
import { configError } from './location.ts';
import { mergeConfigs, parseConfig, parseOverrides } from './parser.ts';
import type { DomainConfig } from './types.ts';
import { type FileCheck, validateConfig } from './validate.ts';

/** Far more than any real xl.cfg; refusing larger files keeps a mistaken path (a disk image) cheap. */
export const MAX_CONFIG_BYTES = 1 << 20;

export interface LoadOptions {
  /** Check that kernel, ramdisk, disk images and QEMU binary exist (default true). */
  checkFiles?: boolean;
  /** Directory for relative paths given as arguments (default: process.cwd()). */
  cwd?: string;
  /** See ValidateOptions.fileCheck. */
  fileCheck?: FileCheck;
}

export interface LoadedConfig {
  config: DomainConfig;
  /** `file:line:col: message` for accepted-but-ignored settings and the like. */
  warnings: string[];
}

export interface ConfigTextOptions extends LoadOptions {
  /** Name used in error locations. */
  file: string;
  /** Directory relative paths in the text are resolved against. */
  baseDir: string;
  overrides?: readonly string[];
}

/** Parses and validates config text (e.g. pasted into the web UI) plus overrides. */
export function loadConfigText(text: string, opts: ConfigTextOptions): LoadedConfig {
  const warnings: string[] = [];
  const raw = mergeConfigs(parseConfig(text, opts.file), parseOverrides(opts.overrides ?? []));
  const config = validateConfig(raw, {
    file: opts.file,
    baseDir: opts.baseDir,
    checkFiles: opts.checkFiles,
    fileCheck: opts.fileCheck,
    cwd: opts.cwd,
    warn: (m) => warnings.push(m),
  });
  return { config, warnings };
}

function readConfigFile(file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new XenodeError('not-found', `config file '${file}' not found`);
    if (code === 'EACCES') throw new XenodeError('permission', `cannot read config file '${file}': permission denied`);
    throw configError(`cannot read config file '${file}': ${code ?? String(e)}`);
  }
  if (st.isDirectory()) throw configError(`config file '${file}' is a directory`, { file });
  if (st.isFile() && st.size > MAX_CONFIG_BYTES) {
    throw configError(
      `config file '${file}' is too large (${st.size} bytes)`,
      { file },
      'is this really an xl.cfg file?',
    );
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw new XenodeError('permission', `cannot read config file '${file}': permission denied`);
    throw configError(`cannot read config file '${file}': ${code ?? String(e)}`);
  }
}

/**
 * `xenode create <file> key=value...`: reads the file, applies the arguments after
 * it (as xl appends them to the text), validates. `/dev/null` gives a config made
 * of arguments only, as with xl.
 */
export function loadConfigFile(file: string, overrides: readonly string[], opts: LoadOptions = {}): LoadedConfig {
  const text = readConfigFile(file);
  const cwd = opts.cwd ?? process.cwd();
  // /dev/null has no directory of its own worth resolving paths against.
  const baseDir = file === '/dev/null' ? cwd : path.dirname(path.resolve(cwd, file));
  return loadConfigText(text, { ...opts, file, baseDir, overrides });
}
