// Volumes: list; create, expand, map / unmap, delete (admin). Every change goes to the MDM, which checks and audits it.
import { api, badge, every, fmtBytes, fmtTime, formMessages, h, isAdmin, parseSize, setContent, table } from '/static/app.js';

let volumes = [];
let pools = [];
let sdcs = [];
const listBox = h('div');

function options(select, items, label, keepEmpty) {
  const keep = select.value;
  select.replaceChildren(...(keepEmpty ? [h('option', { value: '' }, keepEmpty)] : []), ...items.map((x) => h('option', { value: x.id }, label(x))));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

// Create
const create = {
  name: h('input', { name: 'name', placeholder: 'e.g. db-data', required: true, maxlength: 64 }),
  pool: h('select', { name: 'pool' }),
  size: h('input', { name: 'size', placeholder: 'e.g. 10G', required: true }),
  prov: h('select', { name: 'provisioning' }, h('option', { value: '' }, 'pool default'), h('option', { value: 'thin' }, 'thin'), h('option', { value: 'thick' }, 'thick')),
  msg: formMessages(),
};
const createForm = h('form', { class: 'inline', id: 'create-volume', novalidate: true, onsubmit: async (ev) => {
  ev.preventDefault();
  const name = create.name.value.trim();
  if (!name) return create.msg.error('Name: enter a volume name.');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/.test(name) || name.length > 64) return create.msg.error('Name: 1-64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit.');
  if (!create.pool.value) return create.msg.error('Pool: choose a storage pool.');
  let sizeBytes;
  try { sizeBytes = parseSize(create.size.value); } catch (e) { return create.msg.error(e.message); }
  try {
    const body = { name, storagePoolId: Number(create.pool.value), sizeBytes, ...(create.prov.value ? { provisioning: create.prov.value } : {}) };
    const v = await api('/volumes', { method: 'POST', body });
    create.msg.notice(`Volume ${v.name} created (${fmtBytes(v.sizeBytes)}, ${v.provisioning}).`);
    create.name.value = '';
    create.size.value = '';
    await load();
  } catch (e) {
    create.msg.error(`Could not create the volume: ${e.message}`);
  }
} },
h('label', {}, 'Name', create.name), h('label', {}, 'Storage pool', create.pool), h('label', {}, 'Size', create.size), h('label', {}, 'Provisioning', create.prov),
h('button', { type: 'submit' }, 'Create volume'));

// Change one volume
const pick = h('select', { name: 'volume', id: 'manage-volume' });
const grow = h('input', { name: 'newSize', placeholder: 'new size, e.g. 20G' });
const mapTo = h('select', { name: 'sdc' });
const mode = h('select', { name: 'accessMode' }, h('option', { value: 'readWrite' }, 'read-write'), h('option', { value: 'readOnly' }, 'read-only'));
const unmapFrom = h('select', { name: 'mappedSdc' });
const manage = formMessages();

function chosen() {
  const v = volumes.find((x) => String(x.id) === pick.value);
  if (!v) manage.error('Volume: choose a volume first.');
  return v;
}

async function act(what, fn) {
  const v = chosen();
  if (!v) return;
  try {
    const msg = await fn(v);
    manage.notice(msg);
    await load();
  } catch (e) {
    manage.error(`Could not ${what} ${v.name}: ${e.message}`);
  }
}

function refreshUnmap() {
  const v = volumes.find((x) => String(x.id) === pick.value);
  options(unmapFrom, (v?.mappings ?? []).map((m) => sdcs.find((c) => c.id === m.sdcId) ?? { id: m.sdcId, name: `#${m.sdcId}` }), (c) => c.name, v && v.mappings.length ? undefined : 'not mapped');
}
pick.addEventListener('change', () => { manage.clear(); refreshUnmap(); });

const manageForm = h('div', { id: 'manage' },
  h('div', { class: 'row' }, h('label', {}, 'Volume', pick)),
  h('div', { class: 'row', style: 'margin-top:12px' },
    h('form', { class: 'inline', id: 'expand-volume', onsubmit: (ev) => { ev.preventDefault(); act('expand', async (v) => {
      let size;
      try { size = parseSize(grow.value); } catch (e) { throw new Error(e.message); }
      if (size <= v.sizeBytes) throw new Error(`the new size (${fmtBytes(size)}) must be larger than the current ${fmtBytes(v.sizeBytes)}`);
      const r = await api(`/volumes/${v.id}/resize`, { method: 'POST', body: { sizeBytes: size } });
      grow.value = '';
      return `${r.name} expanded to ${fmtBytes(r.sizeBytes)}.`;
    }); } }, h('label', {}, 'Expand to', grow), h('button', { type: 'submit', class: 'secondary' }, 'Expand')),
    h('form', { class: 'inline', id: 'map-volume', onsubmit: (ev) => { ev.preventDefault(); act('map', async (v) => {
      if (!mapTo.value) throw new Error('choose an SDC');
      const r = await api(`/volumes/${v.id}/mappings`, { method: 'POST', body: { sdcId: Number(mapTo.value), accessMode: mode.value, allowMultiMap: true } });
      return `${r.name} mapped to ${sdcs.find((c) => String(c.id) === mapTo.value)?.name ?? mapTo.value}.`;
    }); } }, h('label', {}, 'Map to SDC', mapTo), h('label', {}, 'Access', mode), h('button', { type: 'submit', class: 'secondary' }, 'Map')),
    h('form', { class: 'inline', id: 'unmap-volume', onsubmit: (ev) => { ev.preventDefault(); act('unmap', async (v) => {
      if (!unmapFrom.value) throw new Error('it is not mapped to any SDC');
      const r = await api(`/volumes/${v.id}/mappings/${unmapFrom.value}`, { method: 'DELETE' });
      return `${r.name} unmapped.`;
    }); } }, h('label', {}, 'Unmap from', unmapFrom), h('button', { type: 'submit', class: 'secondary' }, 'Unmap')),
    h('form', { class: 'inline', id: 'delete-volume', onsubmit: (ev) => { ev.preventDefault(); act('delete', async (v) => {
      if (!confirm(`Delete volume ${v.name}? Its data is destroyed.`)) throw new Error('cancelled');
      await api(`/volumes/${v.id}`, { method: 'DELETE' });
      pick.value = '';
      return `${v.name} deleted.`;
    }); } }, h('button', { type: 'submit', class: 'danger' }, 'Delete volume'))),
  ...manage.nodes);

setContent(
  isAdmin ? h('div', { class: 'panel' }, h('h2', {}, 'Create a volume'), createForm, ...create.msg.nodes) : null,
  isAdmin ? h('div', { class: 'panel' }, h('h2', {}, 'Change a volume'), manageForm) : h('p', { class: 'muted' }, 'Read-only: log in as an admin to change volumes.'),
  listBox,
);

async function load() {
  [volumes, pools, sdcs] = await Promise.all([api('/volumes'), api('/storage-pools'), api('/sdcs')]);
  const poolName = new Map(pools.map((p) => [p.id, p.name]));
  const sdcName = new Map(sdcs.map((c) => [c.id, c.name]));
  if (document.activeElement !== create.pool) options(create.pool, pools, (p) => `${p.name} (${fmtBytes(p.capacity.usableBytes)} usable)`, pools.length ? undefined : 'no pool');
  if (document.activeElement !== pick) options(pick, volumes, (v) => v.name, 'choose…');
  if (document.activeElement !== mapTo) options(mapTo, sdcs, (c) => `${c.name} (${c.state})`, sdcs.length ? undefined : 'no SDC');
  if (document.activeElement !== unmapFrom) refreshUnmap();
  listBox.replaceChildren(table(['Name', 'Pool', { label: 'Size', cls: 'num' }, 'Provisioning', 'Mapped to', 'Created', ''],
    volumes.map((v) => h('tr', { 'data-name': v.name },
      h('td', {}, h('strong', {}, v.name)), h('td', {}, poolName.get(v.storagePoolId) ?? v.storagePoolId), h('td', { class: 'num' }, fmtBytes(v.sizeBytes)),
      h('td', {}, v.provisioning), h('td', {}, v.mappings.length === 0 ? h('span', { class: 'muted' }, 'not mapped')
        : v.mappings.map((m) => h('div', {}, sdcName.get(m.sdcId) ?? `#${m.sdcId}`, ' ', badge(m.accessMode === 'readOnly' ? 'ro' : 'rw', m.accessMode === 'readOnly' ? 'INFO' : 'OK')))),
      h('td', {}, fmtTime(v.createdAtMs)),
      h('td', {}, isAdmin ? h('button', { class: 'small secondary', type: 'button', onclick: () => { pick.value = String(v.id); manage.clear(); refreshUnmap(); grow.focus(); } }, 'Manage') : null))),
    'No volume yet.'));
}

every(4000, load);
