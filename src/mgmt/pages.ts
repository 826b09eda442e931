/**
 * The HTML of the pages: one shell (navigation, user, logout) whose main
 * area a small ES module of the page fills from /api. No template engine,
 * no build step: every value put into HTML goes through esc().
 */
export interface PageDef { path: string; id: string; title: string }

export const PAGES: readonly PageDef[] = [
  { path: '/', id: 'overview', title: 'Overview' },
  { path: '/topology', id: 'topology', title: 'Topology' },
  { path: '/volumes', id: 'volumes', title: 'Volumes' },
  { path: '/sds', id: 'sds', title: 'SDS' },
  { path: '/sdcs', id: 'sdcs', title: 'SDC' },
  { path: '/alerts', id: 'alerts', title: 'Alerts' },
  { path: '/rebuild', id: 'rebuild', title: 'Rebuild' },
  { path: '/audit', id: 'audit', title: 'Audit log' },
];

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function head(title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · pflex</title>
<link rel="stylesheet" href="/static/vendor/uPlot.min.css"><link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="data:,">
</head>`;
}

export function pageHtml(page: PageDef, user: string, role: string): string {
  const nav = PAGES.map((p) => `<a href="${p.path}"${p.id === page.id ? ' class="active" aria-current="page"' : ''}>${esc(p.title)}</a>`).join('');
  return `${head(page.title)}
<body data-page="${page.id}" data-role="${esc(role)}">
<header class="top"><div class="brand">pflex<span>storage</span></div><nav>${nav}</nav>
<div class="who"><span class="user">${esc(user)}</span><span class="role">${esc(role)}</span>
<form method="post" action="/logout"><button type="submit" class="link">Log out</button></form></div></header>
<main id="main"><h1>${esc(page.title)}</h1><div id="content" aria-live="polite"><p class="muted">Loading…</p></div></main>
<script type="module" src="/static/pages/${page.id}.js"></script>
</body></html>`;
}

export function loginHtml(o: { error?: string; user?: string; next?: string }): string {
  return `${head('Log in')}
<body class="login"><main class="login-box">
<div class="brand big">pflex<span>storage</span></div>
<h1>Log in</h1><p class="muted">With an MDM user (admin or monitor).</p>
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="next" value="${esc(o.next ?? '/')}">
<label>User <input name="username" autocomplete="username" required value="${esc(o.user ?? '')}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
</form></main></body></html>`;
}
