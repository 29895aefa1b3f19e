// Shared pieces of the page: toasts, the confirm/prompt dialog, error boxes, forms.
import { h, fill } from './dom.js';

export function toast(message, kind = 'ok') {
  const el = h('div.toast', { dataset: { kind } }, message);
  document.getElementById('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 3000);
}

// The one modal dialog. fields: [{name, label, type, autocomplete, minlength}] makes it a small
// form; resolves to the values (or true without fields), or null when cancelled. check(values)
// may return an error string that keeps the dialog open.
export function dialog({ title, body, ok = 'OK', danger = false, fields = [], check }) {
  const dlg = document.getElementById('dialog');
  const okBtn = document.getElementById('dialog-ok');
  const errEl = document.getElementById('dialog-error');
  fill(document.getElementById('dialog-title'), title);
  const inputs = fields.map((f) => h('input', {
    name: f.name, type: f.type || 'text', autocomplete: f.autocomplete || 'off',
    minlength: f.minlength, required: true, id: `dialog-${f.name}`,
  }));
  fill(document.getElementById('dialog-body'),
    body ? h('p', body) : null,
    fields.map((f, i) => h('label.field', h('span', f.label), inputs[i])));
  okBtn.textContent = ok;
  okBtn.classList.toggle('danger', danger);
  errEl.hidden = true;
  return new Promise((resolve) => {
    const values = () => Object.fromEntries(fields.map((f, i) => [f.name, inputs[i].value]));
    const onClick = (ev) => {
      if (ev.target.id === 'dialog-cancel') { ev.preventDefault(); dlg.close('cancel'); return; }
      if (ev.target !== okBtn) return;
      ev.preventDefault();
      const why = check ? check(values()) : null;
      if (why) { errEl.textContent = why; errEl.hidden = false; return; }
      dlg.close('ok');
    };
    const onClose = () => {
      dlg.removeEventListener('click', onClick);
      dlg.removeEventListener('close', onClose);
      resolve(dlg.returnValue === 'ok' ? (fields.length ? values() : true) : null);
    };
    dlg.returnValue = '';
    dlg.addEventListener('click', onClick);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    (inputs[0] || okBtn).focus();
  });
}

export const confirmAction = (title, body, ok, danger = true) => dialog({ title, body, ok, danger });

// A box that shows an ApiError (or any error) in words; hidden while empty. hint403: a
// sentence added under a 403 (the admin pages say who may use them).
export function errorBox(hint403) {
  const el = h('div.box.error', { role: 'alert', hidden: true });
  el.show = (err, prefix) => {
    if (!err) { el.hidden = true; el.replaceChildren(); return; }
    const words = err.words || err.message || String(err);
    fill(el, prefix ? h('strong', prefix) : null, prefix ? ' ' : null, words);
    if (err.status === 403 && hint403) el.append(h('p', hint403));
    el.hidden = false;
  };
  return el;
}

// A labelled form field with its own error line; input may be a wrapper of several controls
// (the first one is marked invalid).
export function field(label, input, help) {
  const target = input.matches('input, select, textarea') ? input : input.querySelector('input, select, textarea');
  const err = h('span.field-error', { hidden: true, id: `${target.id}-error` });
  target.setAttribute('aria-describedby', err.id);
  const wrap = h('label.field', h('span.field-label', label), input, help ? h('span.help', help) : null, err);
  wrap.error = (msg) => {
    err.textContent = msg || '';
    err.hidden = !msg;
    target.setAttribute('aria-invalid', msg ? 'true' : 'false');
  };
  return wrap;
}

// Runs an action from a button: disables it meanwhile, toasts the error in words.
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    toast(e.words || e.message || String(e), 'error');
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function pageHeader(title, ...extra) {
  return h('div.page-head', h('h1', title), ...extra);
}

// A table whose rows turn into cards on phones (the labels come from data-label).
export function table(columns, cls = '') {
  const tbody = h('tbody');
  const t = h('table.grid', { class: cls },
    h('thead', h('tr', columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)))), tbody);
  t.body = tbody;
  t.columns = columns;
  return t;
}

// A row with one cell per column; cells get data-label for the phone layout.
export function row(columns) {
  return h('tr', columns.map((c) => h('td', { 'data-label': c.label, class: c.cls })));
}

export function empty(text) {
  return h('p.empty', text);
}
