import t from 'tap';
import { componentProof } from '../../src/shared/component-auth.js';
import { metricsScrapeToken } from '../../src/shared/scrape-auth.js';
import { call, componentToken, login, seedPool, testMdm } from './helpers.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const concrete = (url: string): string => url.replace(/:pg\b/g, '0').replace(/:[A-Za-z]+/g, '1');

t.test('every route refuses the unauthenticated, monitors mutating and components on admin routes', async (t) => {
  const m = await testMdm(t);
  const sds = await componentToken(m, 'sds', 'sds-x');
  const routes = m.app.mdm.routes;
  t.ok(routes.length >= 40, `routes registered: ${routes.length}`);
  const publicRoutes = routes.filter((r) => r.access === 'public').map((r) => `${r.method} ${r.url}`).sort();
  t.same(publicRoutes, ['GET /health/live', 'POST /auth/component', 'POST /auth/login'], 'only the documented routes are public');
  for (const r of routes) {
    const url = concrete(r.url);
    const payload = MUTATING.has(r.method) ? {} : undefined;
    if (r.access !== 'public') {
      const anon = await call(m.app, undefined, r.method, url, payload);
      t.equal(anon.status, 401, `unauthenticated ${r.method} ${r.url}`);
      t.equal(anon.body.error.code, 'PFLEX_ERR_UNAUTHENTICATED');
      const forged = await call(m.app, `${m.admin.slice(0, -4)}AAAA`, r.method, url, payload);
      t.equal(forged.status, 401, `forged token ${r.method} ${r.url}`);
    }
    if (MUTATING.has(r.method) && r.access !== 'public') {
      const mon = await call(m.app, m.monitor, r.method, url, payload);
      t.equal(mon.status, 403, `monitor ${r.method} ${r.url}`);
      t.equal(mon.body.error.code, 'PFLEX_ERR_FORBIDDEN');
    }
    if (r.access === 'admin') {
      const comp = await call(m.app, sds, r.method, url, payload);
      t.equal(comp.status, 403, `component ${r.method} ${r.url}`);
      if (r.method === 'GET') {
        const mon = await call(m.app, m.monitor, r.method, url);
        t.equal(mon.status, 403, `monitor ${r.method} ${r.url} (admin-only read)`);
      }
    }
  }
  // and the admin passes the auth layer everywhere (whatever the handler then says)
  for (const r of routes) {
    const res = await call(m.app, m.admin, r.method, concrete(r.url), MUTATING.has(r.method) ? {} : undefined);
    t.not(res.status, 401, `admin ${r.method} ${r.url}`);
    t.not(res.status, 403, `admin ${r.method} ${r.url}`);
    t.ok(res.status < 500, `admin ${r.method} ${r.url} -> ${res.status}`);
  }
});

t.test('GET /metrics: the scrape token, admins and monitors, not components; the scrape token opens nothing else', async (t) => {
  const m = await testMdm(t);
  const scrape = metricsScrapeToken(m.clusterKey);
  for (const [who, token, status] of [
    ['scrape token', scrape, 200], ['admin', m.admin, 200], ['monitor', m.monitor, 200],
    ['component', await componentToken(m, 'sds', 'sds-x'), 403], ['nobody', undefined, 401], ['a forged scrape token', `${scrape.slice(0, -4)}0000`, 401],
  ] as const) {
    const r = await call<string>(m.app, token, 'GET', '/metrics');
    t.equal(r.status, status, `${who}: ${status}`);
    if (status === 200) t.match(r.body, /^# HELP pflex_mdm_/m, `${who} gets the text format`);
  }
  const routes = m.app.mdm.routes.filter((r) => r.access === 'metrics').map((r) => `${r.method} ${r.url}`);
  t.same(routes, ['GET /metrics'], 'only /metrics takes the scrape token');
  for (const url of ['/health', '/volumes', '/sds', '/alerts']) t.equal((await call(m.app, scrape, 'GET', url)).status, 401, `the scrape token does not open GET ${url}`);
});

t.test('login: wrong password, unknown user, token of a deleted user', async (t) => {
  const m = await testMdm(t);
  const bad = await call(m.app, undefined, 'POST', '/auth/login', { username: 'admin', password: 'wrong-password' });
  t.equal(bad.status, 401);
  const unknown = await call(m.app, undefined, 'POST', '/auth/login', { username: 'nobody', password: 'wrong-password' });
  t.equal(unknown.status, 401);
  t.equal(unknown.body.error.message, bad.body.error.message, 'the answer does not tell users apart');
  const created = await call(m.app, m.admin, 'POST', '/users', { name: 'ops', password: 'ops-password', role: 'admin' });
  t.equal(created.status, 201);
  const dup = await call(m.app, m.admin, 'POST', '/users', { name: 'ops', password: 'ops-password', role: 'admin' });
  t.equal(dup.status, 409);
  const short = await call(m.app, m.admin, 'POST', '/users', { name: 'x', password: 'short', role: 'monitor' });
  t.equal(short.status, 400);
  const ops = await login(m.app, 'ops', 'ops-password');
  t.equal((await call(m.app, ops, 'GET', '/auth/whoami')).body.sub, 'ops');
  t.equal((await call(m.app, m.admin, 'DELETE', `/users/${created.body.id}`)).status, 200);
  t.equal((await call(m.app, ops, 'GET', '/volumes')).status, 401, 'a deleted user\'s token is refused');
  const adminId = (await call(m.app, m.admin, 'GET', '/users')).body.find((u: { name: string }) => u.name === 'admin').id;
  t.equal((await call(m.app, m.admin, 'DELETE', `/users/${adminId}`)).status, 409, 'the last admin stays');
  const past = { iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 };
  const expired = m.app.jwt.sign({ sub: 'admin', role: 'admin', uid: adminId, ...past } as { sub: string; role: 'admin'; uid: number });
  t.equal((await call(m.app, expired, 'GET', '/volumes')).status, 401, 'an expired token is refused');
  const escalated = m.app.jwt.sign({ sub: 'watcher', role: 'admin', uid: 2 });
  t.equal((await call(m.app, escalated, 'GET', '/users')).status, 401, 'a token whose role does not match its user is refused');
  const pw = await call(m.app, m.admin, 'PUT', `/users/${adminId}/password`, { password: 'new-admin-password' });
  t.equal(pw.status, 200);
  t.ok(await login(m.app, 'admin', 'new-admin-password'));
});

t.test('component authentication with the cluster key', async (t) => {
  const m = await testMdm(t);
  const tsMs = m.clock.now();
  const ok = await call(m.app, undefined, 'POST', '/auth/component', { kind: 'sds', name: 'sds1', tsMs, proof: componentProof(m.clusterKey, 'sds', 'sds1', tsMs) });
  t.equal(ok.status, 200);
  t.equal(ok.body.role, 'component');
  const who = await call(m.app, ok.body.token, 'GET', '/auth/whoami');
  t.same(who.body, { sub: 'sds1', role: 'component', kind: 'sds' });
  const other = Buffer.alloc(32, 7);
  const forged = await call(m.app, undefined, 'POST', '/auth/component', { kind: 'sds', name: 'sds1', tsMs, proof: componentProof(other, 'sds', 'sds1', tsMs) });
  t.equal(forged.status, 401, 'a proof made with another key is refused');
  const renamed = await call(m.app, undefined, 'POST', '/auth/component', { kind: 'sds', name: 'sds2', tsMs, proof: componentProof(m.clusterKey, 'sds', 'sds1', tsMs) });
  t.equal(renamed.status, 401, 'a proof is bound to its name');
  const oldTs = tsMs - 10 * 60_000;
  const old = await call(m.app, undefined, 'POST', '/auth/component', { kind: 'sds', name: 'sds1', tsMs: oldTs, proof: componentProof(m.clusterKey, 'sds', 'sds1', oldTs) });
  t.equal(old.status, 401, 'an old proof is refused');
  const malformed = await call(m.app, undefined, 'POST', '/auth/component', { kind: 'mdm', name: 'x', tsMs, proof: 'zz' });
  t.equal(malformed.status, 400);
});

t.test('a component acts only as itself', async (t) => {
  const m = await testMdm(t);
  await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'pd1' });
  await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: 1, name: 'pool1', replicationFactor: 2, pgCount: 8 });
  const sds1 = await componentToken(m, 'sds', 'sds1');
  const sdc = await componentToken(m, 'sdc', 'guid-1');
  const body = { name: 'sds2', protectionDomainName: 'pd1', storagePoolName: 'pool1', address: '127.0.0.1', dataPort: 9700, capacityBytes: 1 << 30 };
  t.equal((await call(m.app, sds1, 'POST', '/sds', body)).status, 403, 'sds1 may not register sds2');
  t.equal((await call(m.app, sdc, 'POST', '/sds', { ...body, name: 'guid-1' })).status, 403, 'an SDC may not register as an SDS');
  const reg = await call(m.app, sds1, 'POST', '/sds', { ...body, name: 'sds1' });
  t.equal(reg.status, 201);
  const sds2 = await componentToken(m, 'sds', 'sds2');
  t.equal((await call(m.app, sds2, 'POST', `/sds/${reg.body.id}/heartbeat`, { usedBytes: 0 })).status, 403, 'sds2 may not beat for sds1');
  t.equal((await call(m.app, sds1, 'POST', `/sds/${reg.body.id}/heartbeat`, { usedBytes: 0 })).status, 200);
  t.equal((await call(m.app, sdc, 'POST', '/sdcs', { guid: 'guid-2' })).status, 403, 'an SDC registers only its own guid');
  const sdcReg = await call(m.app, sdc, 'POST', '/sdcs', { guid: 'guid-1' });
  t.equal(sdcReg.status, 201);
  const sdc2 = await componentToken(m, 'sdc', 'guid-2');
  t.equal((await call(m.app, sdc2, 'POST', `/sdcs/${sdcReg.body.id}/heartbeat`, {})).status, 403);
  t.equal((await call(m.app, sdc2, 'POST', `/sdcs/${sdcReg.body.id}/tokens`, { volumeId: 1 })).status, 403);
});

t.test('the audit log records mutations, failed ones too, and only admins read it', async (t) => {
  const m = await testMdm(t);
  await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'pd1' });
  await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'pd1' });
  await call(m.app, m.monitor, 'POST', '/protection-domains', { name: 'pd2' });
  await call(m.app, undefined, 'POST', '/auth/login', { username: 'mallory', password: 'guess-guess' });
  await call(m.app, m.monitor, 'GET', '/protection-domains');
  const log = await call(m.app, m.admin, 'GET', '/audit?limit=1000');
  t.equal(log.status, 200);
  const pdEntries = log.body.filter((e: { action: string }) => e.action === 'POST /protection-domains');
  t.equal(pdEntries.length, 3);
  t.same(pdEntries.map((e: { actor: string; status: number; result: string }) => [e.actor, e.status, e.result]).reverse(), [
    ['admin', 201, 'success'], ['admin', 409, 'failure'], ['watcher', 403, 'failure'],
  ]);
  t.equal(pdEntries[1].errorCode, 'PFLEX_ERR_CONFLICT');
  const mallory = log.body.find((e: { actor: string }) => e.actor === 'mallory');
  t.ok(mallory, 'failed login recorded with the attempted name');
  t.equal(mallory.result, 'failure');
  t.notOk(log.body.some((e: { action: string }) => e.action.startsWith('GET')), 'reads are not audited');
  const failures = await call(m.app, m.admin, 'GET', '/audit?result=failure&actor=watcher');
  t.equal(failures.body.length, 1);
  t.equal((await call(m.app, m.monitor, 'GET', '/audit')).status, 403);
});

t.test('IO-token issues are audited only when refused (like heartbeats)', async (t) => {
  const m = await testMdm(t);
  const { poolId } = await seedPool(m, { sds: [1024 ** 3, 1024 ** 3] });
  const tok = await componentToken(m, 'sdc', 'g-audit');
  const sdc = (await call(m.app, tok, 'POST', '/sdcs', { guid: 'g-audit' })).body;
  const vol = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'va', storagePoolId: poolId, sizeBytes: 1024 ** 3 })).body;
  const other = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'vb', storagePoolId: poolId, sizeBytes: 1024 ** 3 })).body;
  await call(m.app, m.admin, 'POST', `/volumes/${vol.id}/mappings`, { sdcId: sdc.id });
  t.equal((await call(m.app, tok, 'POST', `/sdcs/${sdc.id}/tokens`, { volumeId: vol.id })).status, 200);
  t.equal((await call(m.app, tok, 'POST', `/sdcs/${sdc.id}/tokens`, { volumeId: other.id })).status, 403, 'not mapped');
  const log = (await call(m.app, m.admin, 'GET', '/audit?limit=1000')).body as Array<{ action: string; result: string }>;
  t.same(log.filter((e) => e.action === 'POST /sdcs/:id/tokens').map((e) => e.result), ['failure']);
});
