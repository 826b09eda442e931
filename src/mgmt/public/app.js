// Shared helpers of the dashboard pages (plain ES module, no build step).

export const role = document.body.dataset.role;
export const isAdmin = role === 'admin';

/** Calls the MDM through MGMT; throws an Error whose message is the MDM's own. */
export async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(`/api/mdm${path}`, init);
  } catch (e) {
    throw new Error(`MGMT is unreachable (${e.message})`);
  }
  if (r.status === 401) {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new Error('the session has expired');
  }
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error(data?.error?.message ?? `HTTP ${r.status}`);
    err.code = data?.error?.code;
    throw err;
  }
  return data;
}

/** h('td', {class: 'num'}, 'text', node...): builds DOM without innerHTML, so names are never markup. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function setContent(...nodes) {
  document.getElementById('content').replaceChildren(...nodes.flat());
}

export const badge = (text, cls = text) => h('span', { class: `badge ${cls}` }, text);

export function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

export const fmtRate = (n) => `${fmtBytes(n)}/s`;
export const fmtNum = (n, digits = 0) => Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
export const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString('en-GB', { hour12: false }) : '—');

export function fmtAge(ms) {
  if (ms < 0) ms = 0;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)} h ${Math.floor((ms % 3_600_000) / 60_000)} min`;
  return `${Math.floor(ms / 86_400_000)} d`;
}

const UNITS = { '': 1, B: 1, K: 1024, KB: 1024, KIB: 1024, M: 1024 ** 2, MB: 1024 ** 2, MIB: 1024 ** 2, G: 1024 ** 3, GB: 1024 ** 3, GIB: 1024 ** 3, T: 1024 ** 4, TB: 1024 ** 4, TIB: 1024 ** 4 };

/** "10G", "512MiB", "4096" -> bytes, or throws a message a person can act on. */
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toUpperCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`Size "${text}" is not a size: write a number and a unit, e.g. 10G, 512M or 1T`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (bytes <= 0) throw new Error('Size must be larger than zero');
  if (!Number.isSafeInteger(bytes)) throw new Error(`Size "${text}" is too large`);
  return bytes;
}

/** A capacity bar: used / total, coloured at the pool's thresholds. */
export function capacityBar(used, total, highPct = 80, criticalPct = 90) {
  const pct = total > 0 ? (100 * used) / total : 0;
  const cls = pct >= criticalPct ? 'bar critical' : pct >= highPct ? 'bar high' : 'bar';
  return h('div', { class: cls, title: `${pct.toFixed(1)} %` }, h('span', { style: `width:${Math.min(100, pct).toFixed(1)}%` }));
}

/** Message areas of a form: an error or a notice, replacing the previous one. */
export function formMessages() {
  const error = h('p', { class: 'error', role: 'alert' });
  const notice = h('p', { class: 'notice', role: 'status' });
  return {
    nodes: [error, notice],
    error(msg) { notice.textContent = ''; error.textContent = msg; },
    notice(msg) { error.textContent = ''; notice.textContent = msg; },
    clear() { error.textContent = ''; notice.textContent = ''; },
  };
}

/** Runs load() now and every intervalMs; a failure shows in the page but the refresh goes on. */
export function every(intervalMs, load) {
  const run = async () => {
    try {
      await load();
      showProblem('');
    } catch (e) {
      showProblem(e.message);
    }
  };
  run();
  return setInterval(run, intervalMs);
}

export function showProblem(msg) {
  let p = document.getElementById('problem');
  if (!p) {
    p = h('p', { id: 'problem', class: 'error', role: 'alert' });
    document.getElementById('main').insertBefore(p, document.getElementById('content'));
  }
  p.textContent = msg ? `Could not load: ${msg}` : '';
  if (!msg) p.remove();
}

/** A table, or a line saying there is nothing. */
export function table(headers, rows, emptyText = 'Nothing here yet.') {
  if (rows.length === 0) return h('div', { class: 'table-wrap' }, h('div', { class: 'empty' }, emptyText));
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => (typeof x === 'string' ? h('th', {}, x) : h('th', { class: x.cls }, x.label))))),
    h('tbody', {}, rows)));
}
