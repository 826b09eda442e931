/**
 * MGMT's server without a browser, against a real MDM listening on
 * loopback: sessions, refusal of unauthenticated requests on every page and
 * API route, the proxy's allowlist, bad input, roles enforced by the MDM,
 * and the live stream.
 */
import t, { type Test } from 'tap';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { buildMgmt } from '../../src/mgmt/app.js';
import { PAGES } from '../../src/mgmt/pages.js';
import { SessionCodec } from '../../src/mgmt/session.js';
import { ADMIN_PASSWORD, FakeClock, MONITOR_PASSWORD, call, seedPool, testMdm } from '../mdm/helpers.js';

async function setup(t: Test) {
  // MGMT checks the token's expiry against the real clock.
  const m = await testMdm(t, { clock: new FakeClock(Date.now()) });
  await m.app.listen({ host: '127.0.0.1', port: 0 });
  const mdmUrl = `http://127.0.0.1:${(m.app.server.address() as AddressInfo).port}`;
  const app = await buildMgmt({ mdmUrl });
  t.teardown(() => app.close());
  const login = async (username: string, password: string): Promise<string> => {
    const r = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ username, password, next: '/volumes' }).toString() });
    t.equal(r.statusCode, 303, `login as ${username}`);
    t.equal(r.headers.location, '/volumes', 'back to the page asked for');
    const setCookie = String(r.headers['set-cookie']);
    t.match(setCookie, /HttpOnly; SameSite=Strict/);
    return setCookie.split(';')[0]!;
  };
  return { m, app, mdmUrl, login };
}

t.test('every page and API route refuses a request without a valid session', async (t) => {
  const { app } = await setup(t);
  for (const p of PAGES) {
    const r = await app.inject({ method: 'GET', url: p.path });
    t.equal(r.statusCode, 303, `${p.path} redirects`);
    t.equal(r.headers.location, `/login?next=${encodeURIComponent(p.path)}`);
  }
  const forged = new SessionCodec().seal({ token: 'x', user: 'admin', role: 'admin', expiresAtMs: Date.now() + 60_000 });
  for (const [method, url] of [['GET', '/api/session'], ['GET', '/api/events'], ['GET', '/api/mdm/volumes'], ['POST', '/api/mdm/volumes'], ['DELETE', '/api/mdm/volumes/1'], ['GET', '/api/unknown']] as const) {
    for (const cookie of [undefined, `pflex_session=${forged}`, 'pflex_session=garbage']) {
      const r = await app.inject({ method, url, ...(cookie ? { headers: { cookie } } : {}) });
      t.equal(r.statusCode, 401, `${method} ${url} ${cookie ? 'with a cookie sealed by another key' : 'without a cookie'}`);
      t.equal(r.json().error.code, 'PFLEX_ERR_UNAUTHENTICATED');
    }
  }
  t.equal((await app.inject({ method: 'GET', url: '/login' })).statusCode, 200, 'the login page is public');
  const css = await app.inject({ method: 'GET', url: '/static/style.css' });
  t.equal(css.statusCode, 200, 'static files are public');
  t.match(css.headers['content-type'], /text\/css/);
  t.equal((await app.inject({ method: 'GET', url: '/static/vendor/uPlot.esm.js' })).statusCode, 200, 'uPlot is served from node_modules');
  for (const url of ['/static/%2e%2e/%2e%2e/%2e%2e/package.json', '/static/../../../package.json', '/static/app.js.map']) {
    const r = await app.inject({ method: 'GET', url });
    t.not(r.statusCode, 200, `${url}: nothing outside the table is served`);
    t.notMatch(r.body, '"name": "pflex"');
  }
});

t.test('login, roles enforced by the MDM, proxy allowlist, bad input', async (t) => {
  const { m, app, login } = await setup(t);
  const { poolId } = await seedPool(m, { sds: [1024 ** 3, 1024 ** 3] });

  const bad = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=admin&password=wrong' });
  t.equal(bad.statusCode, 401);
  t.match(bad.body, 'Wrong user name or password.');
  t.notOk(bad.headers['set-cookie'], 'no session for a wrong password');
  const empty = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=admin' });
  t.equal(empty.statusCode, 400);
  t.match(empty.body, 'Enter a user name and a password.');
  const offsite = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `username=admin&password=${ADMIN_PASSWORD}&next=//evil.example/` });
  t.equal(offsite.headers.location, '/', 'never redirects off the site');

  const admin = await login('admin', ADMIN_PASSWORD);
  const monitor = await login('watcher', MONITOR_PASSWORD);
  const api = (cookie: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({ method, url: `/api/mdm${url}`, headers: { cookie, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }) });

  t.match((await app.inject({ method: 'GET', url: '/api/session', headers: { cookie: monitor } })).json(), { user: 'watcher', role: 'monitor' });
  const page = await app.inject({ method: 'GET', url: '/volumes', headers: { cookie: admin } });
  t.equal(page.statusCode, 200);
  t.match(page.body, 'data-role="admin"');
  t.match(page.headers['content-security-policy'], "default-src 'self'");

  const created = await api(admin, 'POST', '/volumes', { name: 'v1', storagePoolId: poolId, sizeBytes: 1 << 20 });
  t.equal(created.statusCode, 201, 'an admin creates a volume through MGMT');
  const dup = await api(admin, 'POST', '/volumes', { name: 'v1', storagePoolId: poolId, sizeBytes: 1 << 20 });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().error.message, 'volume "v1" already exists', 'the MDM\'s message reaches the page');
  const odd = await api(admin, 'POST', '/volumes', { name: 'v2', storagePoolId: poolId, sizeBytes: 1000 });
  t.equal(odd.statusCode, 400);
  t.match(odd.json().error.message, 'multiple of 4096');
  const noPool = await api(admin, 'POST', '/volumes', { name: 'v2', storagePoolId: 999, sizeBytes: 1 << 20 });
  t.equal(noPool.statusCode, 409, 'unknown pool');
  const denied = await api(monitor, 'POST', '/volumes', { name: 'v3', storagePoolId: poolId, sizeBytes: 1 << 20 });
  t.equal(denied.statusCode, 403, 'a monitor may not create volumes: the MDM says so');
  t.equal((await api(monitor, 'GET', '/volumes')).json().length, 1, 'but may read them');
  t.equal((await api(monitor, 'GET', '/audit')).statusCode, 403, 'and may not read the audit log');
  const audit = (await api(admin, 'GET', '/audit?action=POST%20/volumes')).json() as Array<{ actor: string; result: string }>;
  t.same(audit.map((a) => `${a.actor}:${a.result}`).sort(), ['admin:failure', 'admin:failure', 'admin:failure', 'admin:success', 'watcher:failure'],
    'the MDM audited every change made through MGMT, as the user who made it');

  t.equal((await api(admin, 'GET', '/users')).statusCode, 404, 'routes the dashboard does not offer are not proxied');
  t.equal((await api(admin, 'POST', '/protection-domains', { name: 'x' })).statusCode, 404);
  const form = await app.inject({ method: 'POST', url: '/api/mdm/volumes', headers: { cookie: admin, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=v9' });
  t.equal(form.statusCode, 415, 'API changes only take JSON (a cross-site form cannot post one)');
  const badJson = await app.inject({ method: 'POST', url: '/api/mdm/volumes', headers: { cookie: admin, 'content-type': 'application/json' }, payload: '{"name":' });
  t.equal(badJson.statusCode, 400, 'malformed JSON');
  t.equal(badJson.json().error.code, 'PFLEX_ERR_BAD_REQUEST');

  const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: admin } });
  t.equal(out.statusCode, 303);
  t.match(String(out.headers['set-cookie']), /Max-Age=0/, 'logout clears the cookie');
});

t.test('the live stream pushes stats and health; an expired MDM token ends the session', async (t) => {
  const { m, app, login } = await setup(t);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const cookie = await login('admin', ADMIN_PASSWORD);
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/events', headers: { cookie } }, (res) => {
      t.match(res.headers['content-type'], /text\/event-stream/);
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('event: health')) { req.destroy(); resolve(buf); }
      });
    });
    req.on('error', reject);
    req.end();
  });
  const stats = /event: stats\ndata: (.*)\n/.exec(text);
  t.ok(stats, 'a stats event');
  t.match(JSON.parse(stats![1]!), { bucketMs: 2000, volumes: [], sds: [] });
  t.match(text, /event: health\ndata: \{"status":"OK"/, 'a health event');

  // The user is deleted at the MDM: its token stops working, and so does the session.
  const admins = (await call(m.app, m.admin, 'GET', '/users')).body as Array<{ id: number; name: string }>;
  await call(m.app, m.admin, 'POST', '/users', { name: 'admin2', password: 'another-secret', role: 'admin' });
  const cookie2 = await login('admin2', 'another-secret');
  t.equal((await app.inject({ method: 'GET', url: '/api/mdm/volumes', headers: { cookie: cookie2 } })).statusCode, 200);
  const id2 = ((await call(m.app, m.admin, 'GET', '/users')).body as Array<{ id: number; name: string }>).find((u) => u.name === 'admin2')!.id;
  t.ok(admins.length >= 1);
  await call(m.app, m.admin, 'DELETE', `/users/${id2}`);
  const gone = await app.inject({ method: 'GET', url: '/api/mdm/volumes', headers: { cookie: cookie2 } });
  t.equal(gone.statusCode, 401, 'the MDM refuses the token of a deleted user');
  t.match(gone.json().error.message, 'log in again');
  t.match(String(gone.headers['set-cookie']), /Max-Age=0/, 'and the session cookie is cleared');
});
