/**
 * Request rate limits (@fastify/rate-limit) and the login lockout, on a real
 * MDM app over a real SQLite file: logins are limited per client address,
 * mutations per user, components never; failed logins lock a user name
 * (known or not, alike), the lock survives a restart, is audited, and an
 * admin lifts it.
 */
import t from 'tap';
import { call, componentToken, login, seedPool, testMdm, ADMIN_PASSWORD, MONITOR_PASSWORD } from './helpers.js';

const GiB = 1024 ** 3;

function loginAs(app: Awaited<ReturnType<typeof testMdm>>['app'], username: string, password: string, ip = '127.0.0.1') {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { username, password }, remoteAddress: ip });
}

t.test('logins are limited per client address: 429 PFLEX_ERR_RATE_LIMITED, other addresses are served', async (t) => {
  const m = await testMdm(t, { config: { rateLimitLoginMax: 5, loginFailuresMax: 0 } });
  // testMdm logged in twice from 127.0.0.1 already.
  for (let i = 0; i < 3; i++) t.equal((await loginAs(m.app, 'admin', 'wrong-password')).statusCode, 401);
  const limited = await loginAs(m.app, 'admin', ADMIN_PASSWORD);
  t.equal(limited.statusCode, 429, 'the sixth login of the window is refused, even with the right password');
  t.equal(limited.json().error.code, 'PFLEX_ERR_RATE_LIMITED');
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after says when');
  t.equal((await loginAs(m.app, 'admin', ADMIN_PASSWORD, '10.9.9.9')).statusCode, 200, 'another address logs in');
  t.equal((await call(m.app, m.admin, 'GET', '/volumes')).status, 200, 'the server keeps serving');
});

t.test('mutations are limited per user; reads and components are not', async (t) => {
  const m = await testMdm(t, { config: { rateLimitMutationsMax: 12 } });
  const { poolId } = await seedPool(m, { sds: [GiB, GiB] }); // 2 mutations by the admin
  const other = await call(m.app, m.admin, 'POST', '/users', { name: 'second', password: 'second-password', role: 'admin' });
  t.equal(other.status, 201);
  let created = 0;
  let limited: { status: number; body: { error: { code: string; message: string } } } | undefined;
  for (let i = 0; i < 12 && !limited; i++) {
    const r = await call(m.app, m.admin, 'POST', '/volumes', { name: `v${i}`, storagePoolId: poolId, sizeBytes: 1024 * 1024 });
    if (r.status === 201) created++;
    else limited = r;
  }
  t.equal(created, 9, 'the admin made 12 mutations in the window');
  t.equal(limited?.status, 429);
  t.equal(limited?.body.error.code, 'PFLEX_ERR_RATE_LIMITED');
  t.match(limited?.body.error.message, /rate limit of 12 requests/);
  t.equal((await call(m.app, m.admin, 'GET', '/volumes')).status, 200, 'reads are not limited');
  const second = await login(m.app, 'second', 'second-password');
  t.equal((await call(m.app, second, 'POST', '/volumes', { name: 'other', storagePoolId: poolId, sizeBytes: 1024 * 1024 })).status, 201, 'another user has its own budget');

  // Components beat and ask IO tokens far beyond the user limit.
  const sdsTok = await componentToken(m, 'sds', 'sds1');
  const sds = (await call(m.app, m.admin, 'GET', '/sds')).body.find((s: { name: string }) => s.name === 'sds1');
  const sdcTok = await componentToken(m, 'sdc', 'guid-x');
  const sdc = (await call(m.app, sdcTok, 'POST', '/sdcs', { guid: 'guid-x', name: 'host-x' })).body;
  const statuses = new Set<number>();
  for (let i = 0; i < 40; i++) {
    statuses.add((await call(m.app, sdsTok, 'POST', `/sds/${sds.id}/heartbeat`, { usedBytes: 0, capacityBytes: GiB })).status);
    statuses.add((await call(m.app, sdcTok, 'POST', `/sdcs/${sdc.id}/heartbeat`, {})).status);
  }
  t.same([...statuses], [200], '80 component heartbeats, none throttled');
  const audit = (await call(m.app, second, 'GET', '/audit?result=failure&limit=1000')).body as Array<{ errorCode: string | null }>;
  t.equal(audit.filter((e) => e.errorCode === 'PFLEX_ERR_RATE_LIMITED').length, 0, 'throttled requests are not audited one by one');
});

t.test('failed logins lock a user name; unknown names alike; persisted, audited, admin unlock', async (t) => {
  const m = await testMdm(t, { config: { loginFailuresMax: 3, loginLockoutMs: 15 * 60_000 } });
  for (let i = 0; i < 3; i++) t.equal((await loginAs(m.app, 'watcher', 'not-the-password')).statusCode, 401, `failure ${i + 1}`);
  const locked = await loginAs(m.app, 'watcher', MONITOR_PASSWORD);
  t.equal(locked.statusCode, 429, 'locked: even the right password is refused');
  t.equal(locked.json().error.code, 'PFLEX_ERR_LOGIN_LOCKED');

  for (let i = 0; i < 3; i++) t.equal((await loginAs(m.app, 'nobody', 'not-the-password')).statusCode, 401);
  const ghost = await loginAs(m.app, 'nobody', 'not-the-password');
  t.equal(ghost.statusCode, locked.statusCode, 'an unknown name locks alike: the answer does not tell whether a user exists');
  t.equal(ghost.json().error.code, locked.json().error.code);
  t.equal(ghost.json().error.message.replace('nobody', 'X').replace(/until \S+/, ''), locked.json().error.message.replace('watcher', 'X').replace(/until \S+/, ''));

  t.equal((await loginAs(m.app, 'admin', ADMIN_PASSWORD)).statusCode, 200, 'other users are not affected');
  const audit = (await call(m.app, m.admin, 'GET', '/audit?action=LOCKOUT')).body as Array<{ actor: string; errorCode: string }>;
  t.same(audit.map((e) => e.actor).sort(), ['nobody', 'watcher'], 'each lockout is audited');

  await m.restart();
  const admin = await login(m.app, 'admin', ADMIN_PASSWORD);
  t.equal((await loginAs(m.app, 'watcher', MONITOR_PASSWORD)).statusCode, 429, 'the lock survives an MDM restart');
  const users = (await call(m.app, admin, 'GET', '/users')).body as Array<{ id: number; name: string }>;
  const watcher = users.find((u) => u.name === 'watcher')!;
  t.equal((await call(m.app, m.monitor, 'POST', `/users/${watcher.id}/unlock`)).status, 403, 'a monitor may not unlock');
  t.same((await call(m.app, admin, 'POST', `/users/${watcher.id}/unlock`)).body, { name: 'watcher', wasLocked: true });
  t.equal((await loginAs(m.app, 'watcher', MONITOR_PASSWORD)).statusCode, 200, 'unlocked by the admin');

  // The lock ends by itself after loginLockoutMs.
  for (let i = 0; i < 3; i++) await loginAs(m.app, 'watcher', 'not-the-password');
  t.equal((await loginAs(m.app, 'watcher', MONITOR_PASSWORD)).statusCode, 429);
  m.clock.advance(15 * 60_000 + 1);
  t.equal((await loginAs(m.app, 'watcher', MONITOR_PASSWORD)).statusCode, 200, 'the lock expired');
});
