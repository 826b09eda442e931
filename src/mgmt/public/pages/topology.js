// Topology: protection domains -> storage pools -> fault sets -> SDS, and the SDCs with their volumes.
import { api, badge, capacityBar, every, fmtBytes, h, setContent } from '/static/app.js';

const node = (kind, ...rest) => h('span', { class: 'node' }, h('span', { class: 'kind' }, kind), ...rest);

function sdsItem(s) {
  return h('li', { 'data-sds': s.name }, node('SDS', h('strong', {}, s.name), badge(s.state), h('span', { class: 'mono muted' }, `${s.address}:${s.dataPort}`),
    h('span', { class: 'muted' }, `${fmtBytes(s.usedBytes)} / ${fmtBytes(s.capacityBytes)}`)));
}

async function load() {
  const [topo, volumes] = await Promise.all([api('/discovery/topology'), api('/volumes')]);
  const volName = new Map(volumes.map((v) => [v.id, v.name]));
  const pds = topo.protectionDomains.map((pd) => {
    const pools = pd.storagePools.map((pool) => {
      const inSet = new Set(pd.faultSets.flatMap((f) => f.sdsIds));
      const sets = pd.faultSets.map((fs) => {
        const members = pool.sds.filter((s) => fs.sdsIds.includes(s.id));
        return members.length === 0 ? null : h('li', {}, node('Fault set', h('strong', {}, fs.name), h('span', { class: 'muted' }, `${members.length} SDS`)), h('ul', {}, members.map(sdsItem)));
      });
      return h('li', {},
        node('Pool', h('strong', {}, pool.name), h('span', { class: 'muted' }, `${pool.replicationFactor} copies · ${pool.pgCount} PGs · ${pool.volumeCount} volumes`),
          pool.degradedPgs > 0 ? badge(`${pool.degradedPgs} degraded PGs`, 'DEGRADED') : badge('protected', 'OK'),
          capacityBar(pool.capacity.usedBytes, pool.capacity.totalBytes, pool.capacityHighPct, pool.capacityCriticalPct),
          h('span', { class: 'muted' }, `${fmtBytes(pool.capacity.usedBytes)} / ${fmtBytes(pool.capacity.totalBytes)} raw`)),
        h('ul', {}, sets, pool.sds.filter((s) => !inSet.has(s.id)).map(sdsItem)));
    });
    return h('li', {}, node('Protection domain', h('strong', {}, pd.name)), h('ul', {}, pools));
  });
  const sdcs = topo.sdcs.map((c) => h('li', { 'data-sdc': c.name }, node('SDC', h('strong', {}, c.name), badge(c.state), h('span', { class: 'mono muted' }, c.address ?? '')),
    c.mappings.length === 0 ? null : h('ul', {}, c.mappings.map((m) => h('li', {}, node('Volume', volName.get(m.volumeId) ?? `#${m.volumeId}`, h('span', { class: 'muted' }, m.accessMode)))))));
  setContent(
    h('div', { class: 'panel' }, h('h2', {}, 'Storage'), pds.length ? h('ul', { class: 'tree' }, pds) : h('p', { class: 'muted' }, 'No protection domain yet.')),
    h('div', { class: 'panel' }, h('h2', {}, 'Clients (SDC)'), sdcs.length ? h('ul', { class: 'tree' }, sdcs) : h('p', { class: 'muted' }, 'No SDC registered.')),
  );
}

every(3000, load);
