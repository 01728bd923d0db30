import { CrashHost, api, answers, until } from '/work/main/test/helpers/crash-harness.ts';
const h = new CrashHost('A');
try {
  await h.start();
  let r = await api(h, 'POST', '/v1/domains', { configText: 'name = "kg"\nmemory = 256\nmaxmem = 512\n' });
  const con = await h.console('kg'); await con.expect(/kg:\/# /, 120000); con.close();
  r = await api(h, 'POST', '/v1/domains/kg/mem-set', { mib: 512 });
  await until('512', 90000, async () => ((await h.domains())[0]?.memMiB ?? 0) >= 500);
  console.log('at 512, answers', await answers(h, 'kg'));
  const p = api(h, 'POST', '/v1/domains/kg/mem-set', { mib: 128, deadlineMs: 8000 }).catch(e => e.message);
  await new Promise(r => setTimeout(r, 300));
  await h.kill9();
  console.log(await p);
  await h.start();
  for (let i = 0; i < 5; i++) {
    console.log(JSON.stringify((await api(h, 'GET', '/v1/domains/kg/memory')).body));
    console.log('answers', await answers(h, 'kg', 10000));
  }
  const c2 = await h.console('kg'); c2.send('\n'); await new Promise(r => setTimeout(r, 3000)); console.log(JSON.stringify(c2.output.slice(-2000))); c2.close();
} finally { await h.cleanup(); }
