// Rebuild: degraded and rebuilding PGs per pool, running and recent copy jobs with progress.
import { api, badge, every, fmtBytes, fmtRate, fmtTime, h, setContent, table } from '/static/app.js';

function progress(done, total, unknown = false) {
  // A copy that has not counted its chunks yet has no total: no bar rather than a false 100 %.
  if (unknown) return h('span', { class: 'muted' }, 'counting…');
  const pct = total > 0 ? (100 * done) / total : 100;
  return h('div', { class: 'row' }, h('div', { class: 'bar', style: 'flex:1' }, h('span', { style: `width:${pct.toFixed(1)}%` })), h('span', { class: 'muted' }, `${pct.toFixed(0)} %`));
}

function jobRows(jobs, sdsName) {
  return jobs.map((j) => h('tr', {},
    h('td', {}, `${j.poolId}/${j.pg}`), h('td', {}, j.kind), h('td', {}, badge(j.state)),
    h('td', {}, `${sdsName(j.sourceSdsId)} → ${sdsName(j.targetSdsId)}`), h('td', {}, j.replacesSdsId ? sdsName(j.replacesSdsId) : '—'),
    h('td', {}, j.mode), h('td', {}, progress(j.bytesDone, j.bytesTotal, j.bytesTotal === 0 && (j.state === 'running' || j.state === 'pending'))), h('td', { class: 'num' }, `${fmtBytes(j.bytesDone)} / ${fmtBytes(j.bytesTotal)}`),
    h('td', {}, fmtTime(j.createdAtMs)), h('td', {}, j.error ?? '')));
}

async function load() {
  const [r, recent, sds] = await Promise.all([api('/rebuild'), api('/rebuild/jobs?limit=15'), api('/sds')]);
  const names = new Map(sds.map((s) => [s.id, s.name]));
  const sdsName = (id) => names.get(id) ?? `#${id}`;
  const headers = ['PG', 'Kind', 'State', 'Copy', 'Replaces', 'Mode', 'Progress', { label: 'Bytes', cls: 'num' }, 'Created', 'Error'];
  setContent(
    h('div', { class: 'grid' },
      h('div', { class: 'card' }, h('h3', {}, 'Status'), h('div', { class: 'big' }, r.active ? badge('rebuilding', 'running') : badge('idle', 'OK')),
        h('div', { class: 'sub' }, `${r.jobs.length} jobs pending or running`)),
      h('div', { class: 'card' }, h('h3', {}, 'Progress'), progress(r.totals.bytesDone, r.totals.bytesTotal, r.active && r.totals.bytesTotal === 0),
        h('div', { class: 'sub' }, `${fmtBytes(r.totals.bytesDone)} of ${fmtBytes(r.totals.bytesTotal)} · ${r.totals.chunksDone} / ${r.totals.chunksTotal} chunks`)),
      h('div', { class: 'card' }, h('h3', {}, 'Recent speed'), h('div', { class: 'big' }, fmtRate(r.recentBytesPerS)),
        h('div', { class: 'sub' }, `limit ${fmtRate(r.limits.bandwidthBytesPerS)} per source · ${r.limits.concurrentPgsMax} PGs at once`)),
      h('div', { class: 'card' }, h('h3', {}, 'Draining'), h('div', { class: 'big' }, String(r.draining.length)), h('div', { class: 'sub' }, r.draining.map(sdsName).join(', ') || 'no SDS'))),
    h('h2', {}, 'Pools'),
    table(['Pool', 'Copies', 'PGs', 'Degraded PGs', 'Rebuilding PGs'], r.pools.map((p) => h('tr', {},
      h('td', {}, p.name), h('td', {}, String(p.replicationFactor)), h('td', {}, String(p.pgCount)),
      h('td', {}, p.degradedPgs > 0 ? badge(String(p.degradedPgs), 'DEGRADED') : '0'), h('td', {}, String(p.rebuildingPgs)))), 'No pool.'),
    h('h2', {}, 'Running and pending'), table(headers, jobRows(r.jobs, sdsName), 'No copy running.'),
    h('h2', {}, 'Recent jobs'), table(headers, jobRows(recent, sdsName), 'No rebuild yet.'),
  );
}

every(2000, load);
