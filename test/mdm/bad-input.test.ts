import t from 'tap';
import type { InjectOptions } from 'fastify';
import { call, seedPool, testMdm } from './helpers.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

t.test('client mistakes get 4xx with one error format, never a 500', async (t) => {
  const m = await testMdm(t);
  await seedPool(m, { sds: [1 << 30, 1 << 30] });
  const auth = { authorization: `Bearer ${m.admin}` };
  const expect = async (name: string, req: InjectOptions, status: number, code: string): Promise<void> => {
    const r = await m.app.inject(req);
    t.equal(r.statusCode, status, `${name}: ${r.body}`);
    const body = r.json() as { error: { code: string; message: string } };
    t.equal(body.error.code, code, name);
    t.type(body.error.message, 'string');
  };
  await expect('bad JSON', { method: 'POST', url: '/protection-domains', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"name":' }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('empty JSON body', { method: 'POST', url: '/protection-domains', headers: { ...auth, 'content-type': 'application/json' }, payload: '' }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('JSON array', { method: 'POST', url: '/protection-domains', headers: auth, payload: [1, 2] }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('text body', { method: 'POST', url: '/protection-domains', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'pd9' }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('wrong content type', { method: 'POST', url: '/protection-domains', headers: { ...auth, 'content-type': 'application/xml' }, payload: '<pd/>' }, 415, 'PFLEX_ERR_UNSUPPORTED_MEDIA_TYPE');
  await expect('huge body', { method: 'POST', url: '/protection-domains', headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }) }, 413, 'PFLEX_ERR_PAYLOAD_TOO_LARGE');
  await expect('unknown field', { method: 'POST', url: '/protection-domains', headers: auth, payload: { name: 'pd9', color: 'red' } }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('bad name', { method: 'POST', url: '/protection-domains', headers: auth, payload: { name: 'a b/c' } }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('long name', { method: 'POST', url: '/protection-domains', headers: auth, payload: { name: 'a'.repeat(65) } }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('non-numeric id', { method: 'GET', url: '/volumes/abc', headers: auth }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('negative id', { method: 'GET', url: '/volumes/-1', headers: auth }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('huge id', { method: 'GET', url: '/volumes/99999999999999999999999', headers: auth }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('unknown id', { method: 'GET', url: '/volumes/12345', headers: auth }, 404, 'PFLEX_ERR_NOT_FOUND');
  await expect('unknown route', { method: 'GET', url: '/nope', headers: auth }, 404, 'PFLEX_ERR_NOT_FOUND');
  await expect('bad query', { method: 'GET', url: '/alerts?severity=LOUD', headers: auth }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('unknown query', { method: 'GET', url: '/volumes?colour=red', headers: auth }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('float size', { method: 'POST', url: '/volumes', headers: auth, payload: { name: 'v', storagePoolId: 1, sizeBytes: 1.5 } }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('unsafe size', { method: 'POST', url: '/volumes', headers: auth, payload: { name: 'v', storagePoolId: 1, sizeBytes: 2 ** 60 } }, 400, 'PFLEX_ERR_BAD_REQUEST');
  await expect('bad bearer', { method: 'GET', url: '/volumes', headers: { authorization: 'Bearer x.y.z' } }, 401, 'PFLEX_ERR_UNAUTHENTICATED');
  await expect('bad auth scheme', { method: 'GET', url: '/volumes', headers: { authorization: 'Basic YWRtaW46eA==' } }, 401, 'PFLEX_ERR_UNAUTHENTICATED');

  // Every route with garbage: nothing reaches a 500, and the server keeps serving.
  const garbage: unknown[] = [null, [], 'x', 7, true, {}, { id: -1 }, { name: '' }, { sizeBytes: 'big' }, { a: { b: { c: [1, 2, { d: null }] } } }];
  for (const r of m.app.mdm.routes) {
    const url = r.url.replace(/:[A-Za-z]+/g, 'x');
    for (const g of MUTATING.has(r.method) ? garbage : [undefined]) {
      const res = await m.app.inject({
        method: r.method as 'POST', url, headers: auth,
        ...(g === undefined ? {} : { headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify(g) }),
      });
      t.ok(res.statusCode < 500, `${r.method} ${url} ${JSON.stringify(g)} -> ${res.statusCode}`);
    }
    const concrete = r.url.replace(/:[A-Za-z]+/g, '1');
    for (const g of MUTATING.has(r.method) ? garbage : []) {
      const res = await m.app.inject({ method: r.method as 'POST', url: concrete, headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify(g) });
      t.ok(res.statusCode < 500, `${r.method} ${concrete} ${JSON.stringify(g)} -> ${res.statusCode} ${res.statusCode >= 500 ? res.body : ''}`);
    }
  }
  t.equal((await call(m.app, m.admin, 'GET', '/health')).status, 200, 'still serving');
});

t.test('the OpenAPI document lists every route', async (t) => {
  const m = await testMdm(t);
  const doc = (await call(m.app, m.monitor, 'GET', '/docs/json')).body;
  t.equal(doc.openapi.slice(0, 2), '3.');
  const paths = Object.keys(doc.paths);
  for (const r of m.app.mdm.routes) {
    if (r.url === '/docs/json') continue;
    const openapiPath = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    t.ok(paths.includes(openapiPath) && doc.paths[openapiPath][r.method.toLowerCase()], `${r.method} ${r.url} documented`);
  }
});
