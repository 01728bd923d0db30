import { CrashHost, api } from '/work/main/test/helpers/crash-harness.ts';
import { readFileSync } from 'node:fs';
const h = new CrashHost('A');
try {
  await h.start();
  let r = await api(h, 'POST', '/v1/domains', { configText: 'name = "kg"\nmemory = 256\nmaxmem = 512\n' });
  const con = await h.console('kg'); await con.expect(/kg:\/# /, 120000); con.close();
  r = await api(h, 'POST', '/v1/domains/kg/save', { file: `${h.dir}/kg.save` });
  console.log('save', r.status, JSON.stringify(r.body).slice(0, 200));
  await h.rearm('create.started');
  console.log('pid', h.daemonPid());
  const res = await api(h, 'POST', '/v1/restore', { file: `${h.dir}/kg.save` }).catch((e) => e.message);
  console.log('restore', JSON.stringify(res).slice(0, 300), 'alive', h.daemonAlive(), h.daemonPid());
  console.log(readFileSync(`${h.dir}/xenoded.log`, 'utf8').split('\n').slice(-15).join('\n'));
} finally { await h.cleanup(); }
