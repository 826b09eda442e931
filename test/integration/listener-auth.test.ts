/**
 * Every route of the SDS control and management listeners and of the SDC
 * control and management listeners is authenticated. The routes come from the
 * listeners themselves (every route registered, collected by an onRoute hook
 * in src/shared/listener.ts), not from a hand-kept list: a route added later
 * is walked too. Each must refuse a request without credentials or with bad
 * ones (401), and accept the cluster key and an admin's MDM token; a monitor's
 * token reads the management listeners but gets 403 from the control ones.
 */
import { randomBytes } from 'node:crypto';
import { createSigner } from 'fast-jwt';
import { pino } from 'pino';
import t from 'tap';
import { SdcNode } from '../../src/sdc/node.js';
import { controlAuthorization } from '../../src/shared/control-auth.js';
import { SdsNode } from '../../src/sds/node.js';
import { deriveKey } from '../../src/shared/keys.js';
import { listenerRoutes } from '../../src/shared/listener.js';
import { MdmClient } from '../../src/shared/mdm-client.js';
import { tempDir } from '../helpers/proc.js';
import { startMdm } from '../sds/cluster.js';

const log = pino({ level: process.env.PFLEX_LOG_LEVEL ?? 'silent' });

/** A concrete URL for a route pattern: every parameter becomes 1, a wildcard "x". */
function concrete(url: string): string {
  return url.replace(/:[A-Za-z0-9_]+/g, '1').replace(/\*/g, 'x');
}

t.test('every route of the SDS and SDC listeners is authenticated', async (t) => {
  const mdm = await startMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 8 });
  await mdm.admin.createUser('watcher', 'watcher-secret-1', 'monitor');
  const monitor = new MdmClient({ url: mdm.url });
  await monitor.login('watcher', 'watcher-secret-1');

  const sds = new SdsNode({
    name: 'sds-auth', dataDir: tempDir(t, 'pflex-auth-sds-'), mdmUrl: mdm.url, clusterKeyFile: mdm.keyFile,
    protectionDomain: 'pd1', storagePool: 'pool1', address: '127.0.0.1', host: '127.0.0.1', dataPort: 0, controlPort: 0, mgmtPort: 0, log,
  });
  t.teardown(() => sds.stop());
  await sds.start();
  const sdc = new SdcNode({ name: 'sdc-auth', mdmUrl: mdm.url, clusterKeyFile: mdm.keyFile, host: '127.0.0.1', port: 0, controlPort: 0, mgmtPort: 0, log });
  t.teardown(() => sdc.stop());
  await sdc.start();

  const jwtKey = deriveKey(mdm.clusterKey, 'jwt');
  const bad: Record<string, string> = {
    'a proof made with another key': controlAuthorization(randomBytes(32), 'test'),
    'a proof 10 minutes old': controlAuthorization(mdm.clusterKey, 'test', Date.now() - 10 * 60_000),
    'a token signed with another key': `Bearer ${createSigner({ key: randomBytes(32) })({ sub: 'admin', role: 'admin' })}`,
    'an expired token': `Bearer ${createSigner({ key: jwtKey })({ sub: 'admin', role: 'admin', exp: Math.floor(Date.now() / 1000) - 60 })}`,
    'an unsigned token': `Bearer ${createSigner({ algorithm: 'none' })({ sub: 'admin', role: 'admin' })}`,
    'a Basic header': `Basic ${Buffer.from('admin:x').toString('base64')}`,
  };
  const good: Record<string, string> = {
    'the cluster key': controlAuthorization(mdm.clusterKey, 'test'),
    'an admin token': `Bearer ${mdm.admin.bearerToken!}`,
  };
  const monitorAuth = `Bearer ${monitor.bearerToken!}`;

  const listeners = [
    { name: 'SDS control', app: sds.httpListeners().control, port: sds.ports.control, access: 'control', expect: ['/pgs', '/rebuilds'] },
    { name: 'SDS mgmt', app: sds.httpListeners().mgmt, port: sds.ports.mgmt, access: 'read', expect: ['/health', '/stats', '/metrics'] },
    { name: 'SDC control', app: sdc.httpListeners().control, port: sdc.ports.control, access: 'control', expect: ['/exports', '/rescan'] },
    { name: 'SDC mgmt', app: sdc.httpListeners().mgmt, port: sdc.ports.mgmt, access: 'read', expect: ['/health', '/stats', '/metrics'] },
  ] as const;

  for (const l of listeners) {
    await t.test(l.name, async (t) => {
      const routes = listenerRoutes(l.app);
      for (const url of l.expect) t.ok(routes.some((r) => r.url === url), `${url} is among the routes found`);
      for (const r of routes) {
        const url = `http://127.0.0.1:${l.port}${concrete(r.url)}`;
        const call = async (authorization?: string): Promise<number> => {
          const res = await fetch(url, { method: r.method, headers: authorization ? { authorization } : {} });
          await res.arrayBuffer();
          return res.status;
        };
        const what = `${r.method} ${r.url}`;
        t.equal(await call(), 401, `${what} without credentials: 401`);
        // A route with its own scheme (e.g. a scrape token) is checked by its owner's tests beyond this.
        if (r.ownAuth) continue;
        for (const [name, header] of Object.entries(bad)) t.equal(await call(header), 401, `${what} with ${name}: 401`);
        for (const [name, header] of Object.entries(good)) {
          const status = await call(header);
          t.ok(status !== 401 && status !== 403, `${what} with ${name}: accepted (${status})`);
        }
        const status = await call(monitorAuth);
        if (l.access === 'control') t.equal(status, 403, `${what} with a monitor's token: 403`);
        else t.ok(status !== 401 && status !== 403, `${what} with a monitor's token: accepted (${status})`);
      }
    });
  }
});
