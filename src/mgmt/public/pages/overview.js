// Overview: health, capacity, and live IO charts per volume and per SDS (server-sent events).
import uPlot from '/static/vendor/uPlot.esm.js';
import { badge, capacityBar, fmtBytes, fmtNum, fmtRate, h, setContent, showProblem, table, api } from '/static/app.js';

const KEEP_POINTS = 150;
const COLORS = ['#0b63c5', '#d97706', '#15803d', '#9333ea', '#dc2626', '#0891b2', '#4d7c0f', '#be185d', '#475569', '#7c2d12'];

const cards = h('div', { class: 'grid' });
const pools = h('div');
const volCharts = h('div', { class: 'grid charts' });
const sdsCharts = h('div', { class: 'grid charts' });
const volTable = h('div');
const sdsTable = h('div');
setContent(
  cards,
  h('h2', {}, 'Capacity'), pools,
  h('h2', {}, 'Volumes: live IO'), volCharts, volTable,
  h('h2', {}, 'SDS: live IO'), sdsCharts, sdsTable,
);

/** Per kind ('volumes' | 'sds'): id -> {name, points: Map(atMs -> point)}. */
const series = { volumes: new Map(), sds: new Map() };
const charts = { volumes: [], sds: [] };

function card(title, big, sub, extra) {
  return h('div', { class: 'card' }, h('h3', {}, title), h('div', { class: 'big' }, big), sub ? h('div', { class: 'sub' }, sub) : null, extra ?? null);
}

function renderHealth(hl) {
  const alerts = hl.openAlerts;
  const openTotal = alerts.INFO + alerts.WARNING + alerts.ERROR + alerts.CRITICAL;
  const states = (c) => `${c.active} active · ${c.stale} stale · ${c.down} down`;
  cards.replaceChildren(
    card('Cluster', badge(hl.status), hl.storagePools.some((p) => p.degradedPgs > 0) ? `${hl.storagePools.reduce((a, p) => a + p.degradedPgs, 0)} degraded PGs` : 'all PGs fully protected'),
    card('SDS', `${hl.sds.active} / ${hl.sds.total}`, states(hl.sds)),
    card('SDC', `${hl.sdcs.active} / ${hl.sdcs.total}`, states(hl.sdcs)),
    card('Open alerts', String(openTotal), `${alerts.CRITICAL} critical · ${alerts.ERROR} error · ${alerts.WARNING} warning · ${alerts.INFO} info`,
      h('a', { href: '/alerts' }, 'Show alerts →')),
  );
}

async function renderPools() {
  const list = await api('/storage-pools');
  pools.replaceChildren(table(['Pool', 'Copies', 'SDS', 'Volumes', 'Used (raw)', '', 'Usable', 'Provisioned', 'PGs'],
    list.map((p) => h('tr', {},
      h('td', {}, p.name), h('td', {}, String(p.replicationFactor)), h('td', {}, String(p.sdsCount)), h('td', {}, String(p.volumeCount)),
      h('td', {}, `${fmtBytes(p.capacity.usedBytes)} of ${fmtBytes(p.capacity.totalBytes)} (${p.capacity.utilizationPct.toFixed(1)} %)`),
      h('td', {}, capacityBar(p.capacity.usedBytes, p.capacity.totalBytes, p.capacityHighPct, p.capacityCriticalPct)),
      h('td', {}, fmtBytes(p.capacity.usableBytes)), h('td', {}, fmtBytes(p.capacity.provisionedBytes)),
      h('td', {}, p.degradedPgs > 0 ? badge(`${p.degradedPgs} degraded`, 'DEGRADED') : `${p.pgCount} OK`),
    )), 'No storage pool yet.'));
}

function merge(kind, entities) {
  const known = series[kind];
  for (const e of entities) {
    let s = known.get(e.id);
    if (!s) known.set(e.id, (s = { name: e.name, points: new Map(), current: null }));
    s.name = e.name;
    s.current = e.current;
    for (const p of e.points) s.points.set(p.atMs, p);
    const keys = [...s.points.keys()].sort((a, b) => a - b);
    for (const k of keys.slice(0, Math.max(0, keys.length - KEEP_POINTS))) s.points.delete(k);
  }
  for (const id of [...known.keys()]) if (!entities.some((e) => e.id === id)) known.delete(id);
}

const METRICS = [
  { title: 'IOPS (read + write)', value: (p) => p.readIops + p.writeIops, axis: (v) => fmtNum(v, 1) },
  { title: 'Bandwidth (read + write)', value: (p) => p.readBytesPerS + p.writeBytesPerS, axis: (v) => fmtRate(v) },
  {
    title: 'Average latency (ms)',
    value: (p) => { const ops = p.readIops + p.writeIops; return ops > 0 ? (p.readIops * p.readLatencyMsAvg + p.writeIops * p.writeLatencyMsAvg) / ops : null; },
    axis: (v) => `${fmtNum(v, 2)} ms`,
  },
];

function chartData(kind, metric) {
  const entities = [...series[kind].values()];
  const xs = [...new Set(entities.flatMap((e) => [...e.points.keys()]))].sort((a, b) => a - b);
  return [xs.map((x) => x / 1000), ...entities.map((e) => xs.map((x) => { const p = e.points.get(x); return p ? metric.value(p) : null; }))];
}

function renderCharts(kind, box) {
  const entities = [...series[kind].values()];
  const names = entities.map((e) => e.name).join('\u0000');
  const width = Math.max(320, Math.floor((box.clientWidth || 1200) / Math.max(1, Math.floor((box.clientWidth || 1200) / 420))) - 40);
  if (charts[kind].names !== names || charts[kind].width !== width) {
    box.replaceChildren();
    charts[kind] = METRICS.map((m) => {
      const wrap = h('div', { class: 'chart' }, h('h3', {}, m.title));
      box.append(wrap);
      if (entities.length === 0) {
        wrap.append(h('div', { class: 'empty' }, 'No figures yet.'));
        return null;
      }
      return new uPlot({
        width, height: 200,
        series: [{}, ...entities.map((e, i) => ({ label: e.name, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false, value: (_u, v) => (v == null ? '—' : m.axis(v)) }))],
        axes: [{}, { values: (_u, ticks) => ticks.map((t) => m.axis(t)), size: 80 }],
        scales: { y: { range: (_u, min, max) => [0, Math.max(max ?? 0, m.title.startsWith('IOPS') ? 10 : 1) * 1.1] } },
        legend: { live: true },
      }, chartData(kind, m), wrap);
    });
    charts[kind].names = names;
    charts[kind].width = width;
    return;
  }
  charts[kind].forEach((c, i) => c && c.setData(chartData(kind, METRICS[i])));
}

function renderNow(kind, box, label) {
  const rows = [...series[kind].entries()].map(([, e]) => {
    const p = e.current;
    const cell = (v) => h('td', { class: 'num' }, v);
    return h('tr', {}, h('td', {}, e.name),
      cell(p ? fmtNum(p.readIops, 1) : '—'), cell(p ? fmtNum(p.writeIops, 1) : '—'),
      cell(p ? fmtRate(p.readBytesPerS) : '—'), cell(p ? fmtRate(p.writeBytesPerS) : '—'),
      cell(p ? `${fmtNum(p.readLatencyMsAvg, 2)} ms` : '—'), cell(p ? `${fmtNum(p.writeLatencyMsAvg, 2)} ms` : '—'));
  });
  const num = (label) => ({ label, cls: 'num' });
  box.replaceChildren(table([label, num('Read IOPS'), num('Write IOPS'), num('Read'), num('Write'), num('Read latency'), num('Write latency')], rows, `No ${label} figures yet.`));
}

const events = new EventSource('/api/events');
events.addEventListener('health', (ev) => renderHealth(JSON.parse(ev.data)));
events.addEventListener('stats', (ev) => {
  const s = JSON.parse(ev.data);
  merge('volumes', s.volumes);
  merge('sds', s.sds);
  renderCharts('volumes', volCharts);
  renderCharts('sds', sdsCharts);
  renderNow('volumes', volTable, 'Volume');
  renderNow('sds', sdsTable, 'SDS');
  document.body.dataset.statsAt = String(s.nowMs);
  showProblem('');
});
events.addEventListener('problem', (ev) => showProblem(JSON.parse(ev.data)?.error?.message ?? 'the MDM did not answer'));
events.addEventListener('expired', () => { location.href = '/login?next=/'; });
events.onerror = () => showProblem('the live stream was interrupted; reconnecting…');

renderPools().catch((e) => showProblem(e.message));
setInterval(() => renderPools().catch((e) => showProblem(e.message)), 5000);
