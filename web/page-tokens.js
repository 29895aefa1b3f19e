// Enrollment tokens (admin): create one with a number of uses and a lifetime, copy the ready
// `tessera-client enroll` command, list and revoke.
import { get, post, del } from './api.js';
import { h, fill, setText, int, datetime, syncList, timeAgo, badge, setBadge } from './dom.js';
import { pageHeader, table, row, empty, busy, confirmAction, toast, field, errorBox } from './ui.js';

const COLUMNS = [
  { label: 'Token' }, { label: 'Created' }, { label: 'Uses left' }, { label: 'Expires' },
  { label: 'State' }, { label: '', cls: 'actions-cell' },
];

const LIFETIME_UNITS = { minutes: 60, hours: 3600, days: 86400 };

function tokenState(t) {
  if (t.revoked) return 'revoked';
  if (t.uses_left <= 0) return 'used up';
  if (t.expires_at && t.expires_at * 1000 <= Date.now()) return 'expired';
  return 'active';
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard permission (or an old browser): select the text for a manual copy.
    const sel = getSelection();
    const code = button.closest('.command').querySelector('code');
    sel.selectAllChildren(code);
    if (!document.execCommand || !document.execCommand('copy')) {
      toast('Press Ctrl+C (or ⌘C) to copy the selected command.');
      return;
    }
  }
  setText(button, 'Copied');
  setTimeout(() => setText(button, 'Copy'), 2000);
}

export default {
  title: 'Enrollment tokens',
  admin: true,
  probe: '/enroll-tokens',
  render(ctx) {
    const uses = h('input#token-uses', { name: 'uses', type: 'number', min: 1, max: 10000, value: 1, inputmode: 'numeric' });
    const life = h('input#token-lifetime', { name: 'lifetime', type: 'number', min: 1, value: 24, inputmode: 'numeric' });
    const unit = h('select#token-lifetime-unit', { name: 'unit', 'aria-label': 'Lifetime unit' },
      Object.keys(LIFETIME_UNITS).map((u) => h('option', { value: u, selected: u === 'hours' }, u)));
    const usesField = field('Uses', uses, 'Nodes that may enroll with it, 1 to 10000.');
    const lifeField = field('Lifetime', h('span.inline', life, unit), 'From 1 minute to 365 days.');
    const button = h('button#token-create', { type: 'submit' }, 'Create token');
    const err = errorBox();
    const created = h('div#token-created');
    const t = table(COLUMNS, 'tokens-table');
    const none = empty('No enrollment tokens yet.');

    async function submit(ev) {
      ev.preventDefault();
      err.show(null);
      const u = Number(uses.value), l = Number(life.value) * LIFETIME_UNITS[unit.value];
      const badUses = !Number.isInteger(u) || u < 1 || u > 10000;
      const badLife = !Number.isInteger(l) || l < 60 || l > 31536000;
      usesField.error(badUses ? 'A whole number from 1 to 10000.' : null);
      lifeField.error(badLife ? 'From 1 minute to 365 days.' : null);
      if (badUses || badLife) return;
      button.disabled = true;
      try {
        const r = await post('/enroll-tokens', { uses: u, ttl_s: l });
        const command = r.command || `tessera-client enroll ${location.origin} ${r.token}`;
        const copyBtn = h('button.small.copy#token-copy', { type: 'button' }, 'Copy');
        copyBtn.addEventListener('click', () => copy(command, copyBtn));
        // The same token is a BOINC account key: stock BOINC clients attach with it.
        const boinc = r.boinc_command || `boinccmd --project_attach ${location.origin}/boinc/ ${r.token}`;
        const boincBtn = h('button.small.copy#token-copy-boinc', { type: 'button' }, 'Copy');
        boincBtn.addEventListener('click', () => copy(boinc, boincBtn));
        fill(created, h('section.card.created',
          h('h2', 'Token created'),
          h('p', `Run this on the machine to enroll (${int(r.uses)} use${r.uses === 1 ? '' : 's'}, until ${datetime(r.expires_at)}). `,
            h('strong', 'It is shown only once.')),
          h('div.command', h('code#token-command', command), copyBtn),
          r.pin ? h('p.muted', 'Server key pin: ', h('code', r.pin)) : null,
          h('p.muted', 'Then start the node with ', h('code', 'tessera-client run'), '.'),
          h('p', 'Or attach a BOINC client with the same token as its account key (BOINC Manager: ',
            h('em', 'Add project'), ', this URL and the token):'),
          h('div.command', h('code#token-boinc-command', boinc), boincBtn)));
        ctx.refresh();
      } catch (e) {
        err.show(e, 'Could not create the token.');
      } finally {
        button.disabled = false;
      }
    }

    function create() {
      const tr = row(COLUMNS);
      const c = tr.children;
      c[1].append(h('time'));
      c[3].append(h('time'));
      c[4].append(badge('active'));
      const revoke = h('button.small.secondary.revoke', { type: 'button' }, 'Revoke');
      revoke.addEventListener('click', async () => {
        const tk = tr.token;
        if (!await confirmAction(`Revoke token #${tk.id}?`, 'Nodes can no longer enroll with it; nodes already enrolled stay.', 'Revoke')) return;
        if (await busy(revoke, () => del(`/enroll-tokens/${tk.id}`))) {
          toast(`Token #${tk.id} revoked.`);
          ctx.refresh();
        }
      });
      c[5].append(revoke);
      return tr;
    }

    function update(tr, tk) {
      const c = tr.children;
      const state = tokenState(tk);
      tr.token = tk;
      tr.dataset.state = state;
      setText(c[0], `#${tk.id}`);
      timeAgo(c[1].firstChild, tk.created_at);
      setText(c[2], int(tk.uses_left));
      timeAgo(c[3].firstChild, tk.expires_at);
      setBadge(c[4].firstChild, state);
      c[5].firstChild.hidden = state !== 'active';
    }

    async function refresh() {
      const tokens = (await get('/enroll-tokens')).tokens || [];
      tokens.sort((a, b) => b.id - a.id);
      t.hidden = !tokens.length;
      none.hidden = tokens.length > 0;
      syncList(t.body, tokens, (x) => x.id, create, update);
    }

    const el = h('div',
      pageHeader('Enrollment tokens'),
      h('form.card#token-form', { onsubmit: submit, novalidate: true },
        h('h2', 'New token'),
        h('div.form-grid', usesField, lifeField),
        err, h('div.actions', button)),
      created,
      h('section', h('h2', 'Tokens'), t, none));
    return { el, refresh, interval: 3000 };
  },
};
