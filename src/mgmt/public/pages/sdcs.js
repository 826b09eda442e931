// SDC: state, heartbeat age (ticking), mapped volumes.
import { api, badge, every, fmtAge, fmtTime, h, setContent, table } from '/static/app.js';

let skewMs = 0;
const ageCells = [];

async function load() {
  const [list, health, volumes] = await Promise.all([api('/sdcs'), api('/health'), api('/volumes')]);
  skewMs = health.nowMs - Date.now();
  const volName = new Map(volumes.map((v) => [v.id, v.name]));
  ageCells.length = 0;
  const rows = list.map((c) => {
    const age = h('td', { class: 'num age' }, '');
    ageCells.push([age, c.lastHeartbeatMs]);
    return h('tr', { 'data-name': c.name, 'data-state': c.state },
      h('td', {}, h('strong', {}, c.name)), h('td', {}, badge(c.state)), age, h('td', { class: 'mono' }, c.guid), h('td', { class: 'mono' }, c.address ?? '—'),
      h('td', {}, c.mappings.length === 0 ? h('span', { class: 'muted' }, 'none') : c.mappings.map((m) => h('div', {}, `${volName.get(m.volumeId) ?? `#${m.volumeId}`} `, h('span', { class: 'muted' }, `(${m.accessMode})`)))),
      h('td', {}, fmtTime(c.createdAtMs)));
  });
  tickAges();
  setContent(table(['Name', 'State', { label: 'Last heartbeat', cls: 'num' }, 'GUID', 'Address', 'Mapped volumes', 'Registered'], rows, 'No SDC registered.'));
}

function tickAges() {
  for (const [cell, last] of ageCells) cell.textContent = `${fmtAge(Date.now() + skewMs - last)} ago`;
}

every(2000, load);
setInterval(tickAges, 500);
