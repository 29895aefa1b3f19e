// The dashboard's shell: session, hash routes, navigation and polling. Each page is a module
// with render(ctx) -> {el, refresh?, interval?, destroy?}; refresh() runs on mount and then every
// `interval` ms (1.5 s by default) while the tab is visible, so the page updates without reloads.
import { get, post, session, onUnauthorized } from './api.js';
import { h, setText } from './dom.js';
import { errorBox, toast } from './ui.js';
import loginPage from './page-login.js';
import overviewPage from './page-overview.js';
import { jobsPage } from './page-jobs.js';
import jobPage from './page-job.js';
import submitPage from './page-submit.js';
import runPage from './page-run.js';
import nodesPage from './page-nodes.js';
import tokensPage from './page-tokens.js';
import usersPage from './page-users.js';
import accountPage from './page-account.js';

const routes = [
  { re: /^\/$/, page: overviewPage, nav: 'overview' },
  { re: /^\/jobs$/, page: jobsPage, nav: 'jobs' },
  { re: /^\/jobs\/(\d+)$/, page: jobPage, nav: 'jobs' },
  { re: /^\/submit$/, page: submitPage, nav: 'submit' },
  { re: /^\/run$/, page: runPage, nav: 'run' },
  { re: /^\/nodes$/, page: nodesPage, nav: 'nodes' },
  { re: /^\/tokens$/, page: tokensPage, nav: 'tokens' },
  { re: /^\/users$/, page: usersPage, nav: 'users' },
  { re: /^\/account$/, page: accountPage, nav: 'account' },
];

const app = {
  me: null,          // {id, username, role, expires_at} from GET /api/v1/me
  view: null,        // the mounted page
  timer: 0,          // the next poll
  expiryTimer: 0,
  next: '/',         // where to go after logging in
  loginNotice: null, // why the login page is shown (expired session, logged out)
};

const $ = (id) => document.getElementById(id);

function path() {
  return location.hash.replace(/^#/, '') || '/';
}

export function go(p) {
  if (path() === p) route(); else location.hash = `#${p}`;
}

function banner(text) {
  const el = $('banner');
  el.hidden = !text;
  setText(el, text || '');
}

// Logged in (or back with a stored token): learn who we are, arm the expiry timer.
async function loadMe() {
  app.me = await get('/me');
  document.body.dataset.role = app.me.role;
  clearTimeout(app.expiryTimer);
  if (app.me.expires_at) {
    const ms = app.me.expires_at * 1000 - Date.now();
    app.expiryTimer = setTimeout(() => expire('Your session expired. Please log in again.'),
      Math.max(0, Math.min(ms, 2 ** 31 - 1)));
  }
}

function signedOut(notice) {
  session.clear();
  $('toasts').replaceChildren();
  app.me = null;
  delete document.body.dataset.role;
  clearTimeout(app.expiryTimer);
  app.loginNotice = notice;
}

// The session ended under us (expired, revoked, account disabled): back to the login page.
function expire(notice) {
  if (!app.me && !session.token) return;
  const p = path();
  if (p !== '/login') app.next = p;
  signedOut(notice);
  go('/login');
}

// A 403 is either a page this role may not use, or an account disabled meanwhile: GET /me
// tells them apart, and a disabled account is signed out with the server's words.
async function stillAllowed() {
  try {
    await get('/me');
  } catch (e) {
    if (e.status === 403) expire(`You were signed out: ${e.message}.`);
  }
}

async function logout() {
  try { await post('/logout'); } catch { /* the session ends here either way */ }
  app.next = '/';
  signedOut('You are logged out.');
  go('/login');
}

export async function loggedIn(token) {
  session.token = token;
  await loadMe();
  app.loginNotice = null;
  const next = app.next && app.next !== '/login' ? app.next : '/';
  app.next = '/';
  go(next);
}

function shell() {
  const me = app.me;
  $('nav').hidden = !me;
  $('who').hidden = !me;
  if (me) setText($('who-name'), `${me.username} · ${me.role}`);
  for (const a of document.querySelectorAll('#nav a[data-admin]')) a.hidden = !me || me.role !== 'admin';
}

function unmount() {
  clearTimeout(app.timer);
  const v = app.view;
  app.view = null;
  if (v && v.destroy) v.destroy();
}

function route() {
  const p = path();
  unmount();
  shell();
  if (!app.me && p !== '/login') {
    app.next = p;
    location.replace('#/login');
    return;
  }
  if (app.me && p === '/login') {
    location.replace('#/');
    return;
  }
  let page = loginPage, params = [], nav = null;
  if (p !== '/login') {
    const r = routes.find((x) => x.re.test(p));
    if (r) {
      page = r.page;
      params = p.match(r.re).slice(1);
      nav = r.nav;
    } else {
      page = { title: 'Not found', render: () => ({ el: h('div', h('h1', 'Not found'), h('p', `There is no page ${p}.`), h('a', { href: '#/' }, 'Overview')) }) };
    }
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${page.title} · Tessera`;
  const ctx = { me: app.me, params, go, notice: app.loginNotice, loggedIn, refresh: () => tick() };
  const view = page.admin && app.me.role !== 'admin' ? forbidden(page) : page.render(ctx);
  app.view = view;
  const main = $('main');
  if (view.pageError) main.replaceChildren(view.el);
  else {
    view.pageError = errorBox();
    main.replaceChildren(view.pageError, view.el);
  }
  main.dataset.page = nav || 'login';
  if (view.refresh) tick();
}

// An admin page opened by a non-admin: nothing of it is shown; the server is still asked, so
// its 403 is what the page says, in words.
function forbidden(page) {
  const pageError = errorBox('This page is for administrators. Your account may not use it.');
  return {
    el: h('div.forbidden', h('h1', page.title), pageError, h('p', 'Only administrators can see this page.')),
    pageError,
    refresh: () => get(page.probe),
    interval: 0,
  };
}

// One poll of the mounted page; errors are shown in words above it, and polling goes on.
async function tick() {
  clearTimeout(app.timer);
  const v = app.view;
  if (!v || !v.refresh) return;
  if (!document.hidden) {
    try {
      await v.refresh();
      v.pageError.show(null);
      banner(null);
    } catch (e) {
      if (app.view !== v) return;
      if (e.status === 0) banner('Cannot reach the server. Retrying…');
      else if (e.status !== 401) v.pageError.show(e);
      if (e.status === 403) await stillAllowed();
    }
  }
  if (app.view === v && v.interval !== 0) app.timer = setTimeout(tick, v.interval || 1500);
}

async function start() {
  onUnauthorized(() => expire('Your session has expired or was revoked. Please log in again.'));
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });
  // Charts are drawn at the size they are shown: redraw soon after the window changes size.
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(tick, 150);
  });
  while (session.token && !app.me) {
    try {
      await loadMe();
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        signedOut('Your session has expired or was revoked. Please log in again.');
        break;
      }
      banner(`${e.words || e}. Retrying…`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  banner(null);
  route();
}

window.addEventListener('unhandledrejection', (ev) => {
  const e = ev.reason;
  if (e && e.status === 401) return;
  toast(e && (e.words || e.message) ? (e.words || e.message) : String(e), 'error');
});

start();
