// Alerts: active and history, filters, resolve (admin).
import { api, badge, every, fmtTime, formMessages, h, isAdmin, setContent, table } from '/static/app.js';

const state = h('select', { name: 'state' }, h('option', { value: 'open' }, 'Active'), h('option', { value: 'resolved' }, 'Resolved (history)'), h('option', { value: '' }, 'All'));
const minSeverity = h('select', { name: 'minSeverity' }, h('option', { value: '' }, 'any'), ...['INFO', 'WARNING', 'ERROR', 'CRITICAL'].map((s) => h('option', { value: s }, `${s} and above`)));
const category = h('select', { name: 'category' }, h('option', { value: '' }, 'any'), ...['component', 'capacity', 'rebuild', 'data'].map((c) => h('option', { value: c }, c)));
const source = h('input', { name: 'source', placeholder: 'e.g. sds:sds1' });
const msg = formMessages();
const listBox = h('div');
const filters = h('form', { class: 'inline', id: 'alert-filters', onsubmit: (ev) => { ev.preventDefault(); load().catch((e) => msg.error(e.message)); } },
  h('label', {}, 'Show', state), h('label', {}, 'Severity', minSeverity), h('label', {}, 'Category', category), h('label', {}, 'Source', source),
  h('button', { type: 'submit', class: 'secondary' }, 'Apply'));
for (const s of [state, minSeverity, category]) s.addEventListener('change', () => load().catch((e) => msg.error(e.message)));

setContent(h('div', { class: 'panel' }, filters, ...msg.nodes), listBox);

async function resolve(a) {
  try {
    await api(`/alerts/${a.id}/resolve`, { method: 'POST' });
    msg.notice(`Alert ${a.id} (${a.source}) resolved.`);
  } catch (e) {
    msg.error(`Could not resolve alert ${a.id}: ${e.message}`);
  }
  await load();
}

async function load() {
  const q = new URLSearchParams({ limit: '200' });
  if (state.value) q.set('state', state.value);
  if (minSeverity.value) q.set('minSeverity', minSeverity.value);
  if (category.value) q.set('category', category.value);
  const src = source.value.trim();
  if (src) q.set('source', src);
  const list = await api(`/alerts?${q}`);
  listBox.replaceChildren(table(['Severity', 'State', 'Source', 'Category', 'Message', 'Raised', 'Updated', 'Resolved', ''],
    list.map((a) => h('tr', { 'data-id': a.id, 'data-source': a.source, 'data-state': a.state },
      h('td', {}, badge(a.severity)), h('td', {}, badge(a.state)), h('td', { class: 'mono' }, a.source), h('td', {}, a.category), h('td', {}, a.message),
      h('td', {}, fmtTime(a.raisedAtMs)), h('td', {}, fmtTime(a.updatedAtMs)),
      h('td', {}, a.resolvedAtMs ? `${fmtTime(a.resolvedAtMs)} (${a.resolvedBy})` : '—'),
      h('td', {}, isAdmin && a.state === 'open' ? h('button', { class: 'small secondary', type: 'button', onclick: () => resolve(a) }, 'Resolve') : null))),
    state.value === 'open' ? 'No active alert.' : 'No alert matches.'));
}

every(3000, load);
