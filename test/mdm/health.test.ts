import t from 'tap';
import type { TransitionEvent } from '../../src/mdm/services/events.js';
import { call, componentToken, seedPool, testMdm } from './helpers.js';

const GiB = 1024 ** 3;

t.test('ACTIVE -> STALE -> DOWN -> ACTIVE with the injected clock; alerts raised and auto-resolved', async (t) => {
  const m = await testMdm(t);
  const { sdsIds } = await seedPool(m, { sds: [GiB, GiB] });
  const tok = await componentToken(m, 'sds', 'sds1');
  const events: TransitionEvent[] = [];
  m.app.mdm.services.events.on('transition', (e) => events.push(e));
  const health = m.app.mdm.services.health;
  const beat = async (): Promise<number> => (await call(m.app, tok, 'POST', `/sds/${sdsIds[0]}/heartbeat`, { usedBytes: 0 })).status;
  const sds2 = await componentToken(m, 'sds', 'sds2');
  const beat2 = async (): Promise<number> => (await call(m.app, sds2, 'POST', `/sds/${sdsIds[1]}/heartbeat`, { usedBytes: 0 })).status;

  t.equal(await beat(), 200);
  m.clock.advance(5000);
  t.equal(await beat2(), 200);
  t.same(health.tick(), [], '5 s without a beat: still ACTIVE (stale after 3 x 2 s)');
  m.clock.advance(1000);
  const stale = health.tick();
  t.same(stale.map((e) => [e.kind, e.id, e.from, e.to]), [['sds', sdsIds[0], 'ACTIVE', 'STALE']]);
  t.same(health.tick(), [], 'no repeated transition');
  let alerts = (await call(m.app, m.monitor, 'GET', '/alerts?state=open&category=component')).body;
  t.equal(alerts.length, 1);
  t.match(alerts[0], { severity: 'WARNING', source: 'sds:sds1', state: 'open' });
  t.equal((await call(m.app, m.monitor, 'GET', `/sds/${sdsIds[0]}`)).body.state, 'STALE');
  let summary = (await call(m.app, m.monitor, 'GET', '/health')).body;
  t.match(summary, { status: 'DEGRADED', sds: { total: 2, active: 1, stale: 1, down: 0 } });

  m.clock.advance(4000);
  t.equal(await beat2(), 200);
  const down = health.tick();
  t.same(down.map((e) => [e.id, e.from, e.to]), [[sdsIds[0], 'STALE', 'DOWN']]);
  alerts = (await call(m.app, m.monitor, 'GET', '/alerts?state=open&category=component')).body;
  t.equal(alerts.length, 1, 'the same alert, escalated');
  t.equal(alerts[0].severity, 'ERROR');
  summary = (await call(m.app, m.monitor, 'GET', '/health')).body;
  t.match(summary, { status: 'ERROR', sds: { down: 1 }, openAlerts: { ERROR: 1 } });

  t.equal(await beat(), 200);
  t.same(events.map((e) => e.to), ['STALE', 'DOWN', 'ACTIVE']);
  t.equal((await call(m.app, m.monitor, 'GET', '/alerts?state=open')).body.length, 0, 'auto-resolved by the heartbeat');
  const history = (await call(m.app, m.monitor, 'GET', '/alerts?source=sds:sds1')).body;
  t.equal(history.length, 1);
  t.match(history[0], { state: 'resolved', resolvedBy: 'auto', severity: 'ERROR' });
  t.equal((await call(m.app, m.monitor, 'GET', '/health')).body.status, 'OK');
});

t.test('SDC heartbeats and configurable thresholds', async (t) => {
  const m = await testMdm(t, { config: { heartbeatIntervalMs: 1000, staleAfterMissedBeats: 2, downAfterMs: 3000 } });
  const tok = await componentToken(m, 'sdc', 'g1');
  const sdc = (await call(m.app, tok, 'POST', '/sdcs', { guid: 'g1' })).body;
  const b = await call(m.app, tok, 'POST', `/sdcs/${sdc.id}/heartbeat`);
  t.same(b.body, { state: 'ACTIVE', heartbeatIntervalMs: 1000 });
  m.clock.advance(2000);
  t.same(m.app.mdm.services.health.tick().map((e) => [e.kind, e.to]), [['sdc', 'STALE']]);
  m.clock.advance(1000);
  t.same(m.app.mdm.services.health.tick().map((e) => [e.kind, e.to]), [['sdc', 'DOWN']]);
  const alert = (await call(m.app, m.monitor, 'GET', '/alerts?source=sdc:sdc-g1')).body[0];
  t.match(alert, { severity: 'ERROR', category: 'component', state: 'open' });
  t.equal((await call(m.app, tok, 'POST', `/sdcs/${sdc.id}/heartbeat`, {})).status, 200);
  t.equal((await call(m.app, m.monitor, 'GET', `/alerts/${alert.id}`)).body.state, 'resolved');
  t.equal((await call(m.app, m.monitor, 'GET', `/sdcs/${sdc.id}`)).body.state, 'ACTIVE');
  t.equal((await call(m.app, tok, 'POST', '/sdcs/99/heartbeat')).status, 404);
});

t.test('pool capacity alerts follow the heartbeats\' used bytes', async (t) => {
  const m = await testMdm(t);
  const MiB = 1024 * 1024;
  const { poolId, sdsIds } = await seedPool(m, { sds: [1000 * MiB, 1000 * MiB] });
  const toks = [await componentToken(m, 'sds', 'sds1'), await componentToken(m, 'sds', 'sds2')];
  const use = async (i: number, usedMiB: number): Promise<void> => {
    const r = await call(m.app, toks[i], 'POST', `/sds/${sdsIds[i]}/heartbeat`, { usedBytes: usedMiB * MiB });
    t.equal(r.status, 200);
  };
  const open = async (): Promise<Array<{ severity: string; source: string }>> =>
    (await call(m.app, m.monitor, 'GET', '/alerts?state=open&category=capacity')).body;
  await use(0, 500);
  t.same(await open(), [], '25%: no alert');
  await use(1, 900);
  const pool = (await call(m.app, m.monitor, 'GET', `/storage-pools/${poolId}`)).body;
  t.equal(pool.capacity.usedBytes, 1400 * MiB);
  t.equal(pool.capacity.utilizationPct, 70);
  t.same(await open(), [], '70%: below the high threshold (80)');
  await use(0, 800);
  t.same((await open()).map((a) => [a.severity, a.source]), [['WARNING', 'pool:pool1']], '85%: high');
  await use(0, 1000);
  t.same((await open()).map((a) => [a.severity, a.source]), [['CRITICAL', 'pool:pool1']], '95%: critical, same alert');
  await use(0, 100);
  t.same(await open(), [], 'back to 50%: resolved');
  const all = (await call(m.app, m.monitor, 'GET', '/alerts?category=capacity')).body;
  t.equal(all.length, 1);
  t.equal(all[0].resolvedBy, 'auto');
  t.equal((await call(m.app, m.monitor, 'GET', '/alerts?minSeverity=CRITICAL')).body.length, 1, 'filter by minimum severity');
  t.equal((await call(m.app, m.monitor, 'GET', '/alerts?severity=WARNING')).body.length, 0);
  t.equal((await call(m.app, m.monitor, 'GET', '/alerts?source=pool:pool1')).body.length, 1, 'filter by source');
});

t.test('manual alerts: raise, filter, resolve', async (t) => {
  const m = await testMdm(t);
  const a = await call(m.app, m.admin, 'POST', '/alerts', { severity: 'INFO', category: 'maintenance', source: 'ops', message: 'disk swap at 10:00' });
  t.equal(a.status, 201);
  t.equal((await call(m.app, m.monitor, 'POST', '/alerts', { severity: 'INFO', category: 'x', source: 'y', message: 'z' })).status, 403);
  t.equal((await call(m.app, m.admin, 'POST', '/alerts', { severity: 'LOUD', category: 'x', source: 'y', message: 'z' })).status, 400);
  t.equal((await call(m.app, m.monitor, 'GET', '/alerts?category=maintenance')).body.length, 1);
  const r = await call(m.app, m.admin, 'POST', `/alerts/${a.body.id}/resolve`);
  t.match(r.body, { state: 'resolved', resolvedBy: 'admin' });
  t.equal((await call(m.app, m.admin, 'POST', `/alerts/${a.body.id}/resolve`)).status, 409);
  t.equal((await call(m.app, m.admin, 'POST', '/alerts/999/resolve')).status, 404);
});

t.test('beat times are kept in memory, written in one batch at the tick and on close, and read back after a restart', async (t) => {
  const m = await testMdm(t);
  const { sdsIds } = await seedPool(m, { sds: [GiB] });
  const sdsTok = await componentToken(m, 'sds', 'sds1');
  const sdcTok = await componentToken(m, 'sdc', 'g-beat');
  const sdc = (await call(m.app, sdcTok, 'POST', '/sdcs', { guid: 'g-beat' })).body;
  const stored = (): { sds: number; sdc: number } => ({
    sds: (m.app.mdm.db.prepare('SELECT last_heartbeat_ms AS ms FROM sds WHERE id = ?').get(sdsIds[0]) as { ms: number }).ms,
    sdc: (m.app.mdm.db.prepare('SELECT last_heartbeat_ms AS ms FROM sdcs WHERE id = ?').get(sdc.id) as { ms: number }).ms,
  });
  const registeredAt = m.clock.now();
  m.clock.advance(1500);
  const beatAt = m.clock.now();
  t.equal((await call(m.app, sdsTok, 'POST', `/sds/${sdsIds[0]}/heartbeat`, { usedBytes: 0 })).status, 200);
  t.equal((await call(m.app, sdcTok, 'POST', `/sdcs/${sdc.id}/heartbeat`, {})).status, 200);
  t.equal((await call(m.app, m.monitor, 'GET', `/sds/${sdsIds[0]}`)).body.lastHeartbeatMs, beatAt, 'the API shows the newest beat at once');
  t.equal((await call(m.app, m.monitor, 'GET', `/sdcs/${sdc.id}`)).body.lastHeartbeatMs, beatAt);
  t.same(stored(), { sds: registeredAt, sdc: registeredAt }, 'not yet written: no write transaction per beat');

  m.clock.advance(500);
  t.same(m.app.mdm.services.health.tick(), []);
  t.same(stored(), { sds: beatAt, sdc: beatAt }, 'written by the tick');

  let app = await m.restart();
  t.equal((await call(app, m.monitor, 'GET', `/sds/${sdsIds[0]}`)).body.lastHeartbeatMs, beatAt, 'read back after a restart');
  t.equal((await call(app, m.monitor, 'GET', `/sdcs/${sdc.id}`)).body.lastHeartbeatMs, beatAt);

  // A beat not yet ticked is written when the MDM closes.
  m.clock.advance(1000);
  const lastAt = m.clock.now();
  t.equal((await call(app, sdcTok, 'POST', `/sdcs/${sdc.id}/heartbeat`, {})).status, 200);
  app = await m.restart();
  t.equal((await call(app, m.monitor, 'GET', `/sdcs/${sdc.id}`)).body.lastHeartbeatMs, lastAt, 'written on close');
  t.equal((await call(app, m.monitor, 'GET', `/sds/${sdsIds[0]}`)).body.lastHeartbeatMs, beatAt);
});
