// `xenode template create DOM|CFG [NAME] | list | delete NAME` (docs/templates.md).

import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { CommandSpec } from '../../cli/command-spec.ts';
import { loadConfigFile } from '../../config/load.ts';
import { XenodeError } from '../../errors.ts';
import type { TemplateView } from './template-routes.ts';

const enc = encodeURIComponent;

interface CreatedView {
  name: string;
  sponsor: string;
  source: string;
  memoryMiB: number;
  ramBytes: number;
  stateBytes: number;
  agent: boolean;
  ms: number;
}

/** A config file (it exists and is a file, or ends in .cfg) rather than a domain's name. */
function isConfigFile(arg: string): boolean {
  if (arg.endsWith('.cfg')) return true;
  try {
    return existsSync(arg) && statSync(arg).isFile();
  } catch {
    return false;
  }
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)}`;

export const templateCommand: CommandSpec = {
  name: 'template',
  example: 'xenode template create web.cfg web',
  args: '<action> [what] [name]',
  summary: 'Templates: template create DOMAIN|CFG [NAME] | template list | template delete NAME',
  help:
    'A template is a booted guest saved once; `xenode create` of a config with the same guest ' +
    '(kernel, initrd, command line and machine shape) then starts from it instead of booting. ' +
    'create DOMAIN saves a running domain of yours (it keeps running); create CFG boots the ' +
    'config until its ready line first. NAME defaults to the domain or config name.',
  async run(ctx, [action, what, name]) {
    const c = ctx.client();
    if (action === 'create') {
      if (!what) throw new XenodeError('usage', 'template create needs a domain or a config file');
      let body: Record<string, unknown>;
      if (isConfigFile(what)) {
        const { config, warnings } = loadConfigFile(what, []);
        for (const w of warnings) ctx.err(`warning: ${w}\n`);
        if (!config.kernel) {
          const { ensureDefaultGuest } = await import('../../../guest/build.ts');
          await ensureDefaultGuest({ onProgress: (m) => ctx.err(`default guest: ${m}\n`) });
        }
        body = { name: name ?? config.name ?? basename(what, '.cfg'), config };
        ctx.err(`Booting ${what} to make template ${body.name}\n`);
      } else body = { name: name ?? what, domain: what };
      const t = await c.post<CreatedView>('/v1/templates', body);
      ctx.err(
        `Template ${t.name} made from ${t.source} in ${(t.ms / 1000).toFixed(1)} s: RAM ${mib(t.ramBytes)} MiB, device state ${(t.stateBytes / 1024).toFixed(0)} KiB\n`,
      );
      if (!t.agent) {
        ctx.err(
          "warning: the guest's agent did not answer: clones keep this guest's hostname and MACs until it does\n",
        );
      }
      return 0;
    }
    if (action === 'list') {
      const list = await c.get<TemplateView[]>('/v1/templates');
      ctx.out(
        `${'Name'.padEnd(24)}${'Sponsor'.padEnd(14)}${'Mem(MiB)'.padStart(9)}${'State(KiB)'.padStart(11)}  ${'Created'.padEnd(21)}Status\n`,
      );
      for (const t of list) {
        ctx.out(
          `${t.name.padEnd(24)}${t.sponsor.padEnd(14)}${String(t.memoryMiB).padStart(9)}${(t.stateBytes / 1024).toFixed(0).padStart(11)}  ${t.createdAt.slice(0, 19).padEnd(21)}${t.stale ? 'stale (its guest changed)' : 'ready'}\n`,
        );
      }
      return 0;
    }
    if (action === 'delete') {
      if (!what) throw new XenodeError('usage', 'template delete needs a template name');
      await c.del(`/v1/templates/${enc(what)}`);
      return 0;
    }
    throw new XenodeError('usage', `unknown template action '${action}'`, { hint: 'use create, list or delete' });
  },
};
