// SDS: state, heartbeat age (ticking), capacity, placement.
import { api, badge, capacityBar, every, fmtAge, fmtBytes, fmtTime, h, setContent, table } from '/static/app.js';

let rows = [];
let skewMs = 0;
const ageCells = [];

async function load() {
  const [list, health, pools, sets] = await Promise.all([api('/sds'), api('/health'), api('/storage-pools'), api('/fault-sets')]);
  skewMs = health.nowMs - Date.now();
  const poolName = new Map(pools.map((p) => [p.id, p.name]));
  const setName = new Map(sets.map((f) => [f.id, f.name]));
  ageCells.length = 0;
  rows = list.map((s) => {
    const age = h('td', { class: 'num age' }, '');
    ageCells.push([age, s.lastHeartbeatMs]);
    return h('tr', { 'data-name': s.name, 'data-state': s.state },
      h('td', {}, h('strong', {}, s.name)), h('td', {}, badge(s.state)), age,
      h('td', {}, poolName.get(s.storagePoolId) ?? s.storagePoolId), h('td', {}, s.faultSetId ? setName.get(s.faultSetId) ?? s.faultSetId : '—'),
      h('td', { class: 'mono' }, `${s.address}:${s.dataPort}`),
      h('td', {}, `${fmtBytes(s.usedBytes)} / ${fmtBytes(s.capacityBytes)}`), h('td', {}, capacityBar(s.usedBytes, s.capacityBytes)),
      h('td', {}, fmtTime(s.createdAtMs)));
  });
  tickAges();
  setContent(table(['Name', 'State', { label: 'Last heartbeat', cls: 'num' }, 'Pool', 'Fault set', 'Data address', 'Used / capacity', '', 'Registered'], rows, 'No SDS registered.'));
}

function tickAges() {
  for (const [cell, last] of ageCells) cell.textContent = `${fmtAge(Date.now() + skewMs - last)} ago`;
}

every(2000, load);
setInterval(tickAges, 500);
