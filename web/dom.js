// Building the page without innerHTML: every string goes in as text, so whatever the server
// sends (job errors, node and user names) is shown, never run.

// h('tag.class#id', {attr: value, onclick: fn, text: '...'}, ...children)
export function h(spec, attrs, ...children) {
  return build(document.createElement(tagOf(spec)), spec, attrs, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(spec, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tagOf(spec)), spec, attrs, children);
}

function tagOf(spec) { return spec.split(/[.#]/)[0] || 'div'; }

function build(el, spec, attrs, children) {
  for (const m of spec.matchAll(/([.#])([^.#]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]); else el.id = m[2];
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.classList.add(...String(v).split(/\s+/).filter(Boolean));
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') throw new Error('set styles through el.style (the CSP forbids style attributes)');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces el's children (strings become text).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Sets text only when it changed, so polling does not disturb a selection.
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
  return el;
}

// Keeps a container's children in step with a list, keyed by id: rows are made once by create,
// brought up to date by update on every poll, and removed when their item is gone.
export function syncList(container, items, key, create, update) {
  const have = new Map();
  for (const el of container.children) if (el.dataset.key !== undefined) have.set(el.dataset.key, el);
  let prev = null;
  for (const item of items) {
    const k = String(key(item));
    let el = have.get(k);
    if (el) have.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    const want = prev ? prev.nextSibling : container.firstChild;
    if (want !== el) container.insertBefore(el, want);
    prev = el;
  }
  for (const el of have.values()) el.remove();
}

// A progress bar: the fill's width is set through the CSSOM, which the CSP allows.
export function progressBar() {
  const fill = h('div.bar-fill');
  const label = h('span.bar-label');
  const bar = h('div.bar', { role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('div.bar-track', fill), label);
  bar.set = (fraction, state) => {
    const pct = Math.max(0, Math.min(1, Number(fraction) || 0)) * 100;
    const shown = pct >= 100 ? '100%' : pct > 0 && pct < 0.1 ? '<0.1%' : `${pct.toFixed(pct < 10 ? 1 : 0)}%`;
    if (bar.dataset.state === undefined) {
      // The first value shows at once; later ones slide (CSS transition).
      fill.style.transition = 'none';
      fill.style.width = `${pct}%`;
      void fill.offsetWidth;
      fill.style.transition = '';
    } else fill.style.width = `${pct}%`;
    bar.setAttribute('aria-valuenow', pct.toFixed(1));
    bar.dataset.state = state || '';
    setText(label, shown);
  };
  return bar;
}

export function badge(state) {
  return h('span.badge', { dataset: { state } }, state);
}

export function setBadge(el, state) {
  el.dataset.state = state;
  setText(el, state);
}

// Formatting -------------------------------------------------------------------------------

const NF = new Intl.NumberFormat('en-US');
// An integer with thousands separators; exact for BigInt.
export function int(n) {
  if (n === null || n === undefined) return '–';
  return typeof n === 'bigint' ? n.toLocaleString('en-US') : NF.format(n);
}

// 1234567 -> "1.23 M"; for rates and big counts.
export function si(n, digits = 3) {
  n = Number(n);
  if (!Number.isFinite(n)) return '–';
  const units = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${Number(n.toPrecision(digits))}${units[i] ? ` ${units[i]}` : ''}`;
}

export function percent(x, digits = 1) {
  return x === null || x === undefined ? '–' : `${(Number(x) * 100).toFixed(digits)}%`;
}

export function duration(sec) {
  if (sec === null || sec === undefined || !Number.isFinite(Number(sec))) return '–';
  sec = Number(sec);
  if (sec < 1) return `${(sec * 1000).toFixed(0)} ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const m = Math.floor(sec / 60), s2 = Math.round(sec % 60);
  if (m < 60) return `${m} min ${s2} s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${m % 60} min`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

// "12 s ago", "in 3 h"; t in Unix seconds.
export function ago(t) {
  if (!t) return '–';
  const d = Math.round(Date.now() / 1000 - t);
  if (Math.abs(d) < 2) return 'just now';
  const a = Math.abs(d);
  const span = a < 60 ? `${a} s` : a < 3600 ? `${Math.floor(a / 60)} min`
    : a < 172800 ? `${Math.floor(a / 3600)} h` : `${Math.floor(a / 86400)} d`;
  return d > 0 ? `${span} ago` : `in ${span}`;
}

export function datetime(t) {
  if (!t) return '–';
  const d = new Date(t * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A <time> element showing "ago" with the exact date as its title.
export function timeAgo(el, t) {
  setText(el, ago(t));
  if (t) el.title = datetime(t); else el.removeAttribute('title');
  return el;
}
