// Audit log: every change made through the MDM (admin only; the MDM refuses monitors).
import { api, badge, every, fmtTime, formMessages, h, setContent, table } from '/static/app.js';

const actor = h('input', { name: 'actor', placeholder: 'user or component' });
const action = h('input', { name: 'action', placeholder: 'e.g. POST /volumes' });
const result = h('select', { name: 'result' }, h('option', { value: '' }, 'any'), h('option', { value: 'success' }, 'success'), h('option', { value: 'failure' }, 'failure'));
const msg = formMessages();
const listBox = h('div');
setContent(h('div', { class: 'panel' }, h('form', { class: 'inline', id: 'audit-filters', onsubmit: (ev) => { ev.preventDefault(); load().catch((e) => msg.error(e.message)); } },
  h('label', {}, 'Actor', actor), h('label', {}, 'Action', action), h('label', {}, 'Result', result), h('button', { type: 'submit', class: 'secondary' }, 'Apply')), ...msg.nodes), listBox);
result.addEventListener('change', () => load().catch((e) => msg.error(e.message)));

async function load() {
  const q = new URLSearchParams({ limit: '200' });
  if (actor.value.trim()) q.set('actor', actor.value.trim());
  if (action.value.trim()) q.set('action', action.value.trim());
  if (result.value) q.set('result', result.value);
  let list;
  try {
    list = await api(`/audit?${q}`);
  } catch (e) {
    if (e.code === 'PFLEX_ERR_FORBIDDEN') {
      listBox.replaceChildren(h('p', { class: 'error' }, 'Only admins may read the audit log.'));
      return;
    }
    throw e;
  }
  listBox.replaceChildren(table(['Time', 'Actor', 'Role', 'Action', 'Target', 'Status', 'Result', 'Error', 'From'],
    list.map((a) => h('tr', {}, h('td', {}, fmtTime(a.atMs)), h('td', {}, a.actor), h('td', {}, a.role ?? '—'), h('td', { class: 'mono' }, a.action),
      h('td', { class: 'mono' }, a.target), h('td', {}, String(a.status)), h('td', {}, badge(a.result)), h('td', { class: 'mono' }, a.errorCode ?? ''), h('td', { class: 'mono' }, a.ip ?? ''))),
    'No audit entry matches.'));
}

every(5000, load);
