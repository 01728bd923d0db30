import { CrashHost, api, answers, until } from '/work/main/test/helpers/crash-harness.ts';
const h = new CrashHost('A');
try {
  let r = await api(h, 'POST', '/v1/domains', { configText: 'name = "kg"\nmemory = 256\nmaxmem = 512\n' }).catch(async () => { await h.start(); return api(h, 'POST', '/v1/domains', { configText: 'name = "kg"\nmemory = 256\nmaxmem = 512\n' }); });
  console.log(r.status);
  const con = await h.console('kg'); await con.expect(/kg:\/# /, 120000); con.close();
  console.log('answers', await answers(h, 'kg'));
  r = await api(h, 'POST', '/v1/domains/kg/mem-set', { mib: 512 });
  await until('512', 90000, async () => ((await h.domains())[0]?.memMiB ?? 0) >= 500);
  console.log('at 512, answers', await answers(h, 'kg'));
  const t = Date.now();
  r = await api(h, 'POST', '/v1/domains/kg/mem-set', { mib: 128, deadlineMs: 8000 });
  console.log('mem-set 128', Date.now() - t, JSON.stringify(r.body));
  console.log('answers', await answers(h, 'kg'));
  console.log(JSON.stringify((await api(h, 'GET', '/v1/domains/kg/memory')).body));
} finally { await h.cleanup(); }
