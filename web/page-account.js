// Account: who is logged in, the session's end, a new password, and personal API tokens.
import { get, post, del } from './api.js';
import { h, fill, setText, datetime, syncList, timeAgo, badge, setBadge } from './dom.js';
import { pageHeader, table, row, empty, busy, confirmAction, toast, field, errorBox } from './ui.js';

const COLUMNS = [{ label: 'Name' }, { label: 'Created' }, { label: 'Expires' }, { label: 'State' }, { label: '', cls: 'actions-cell' }];

export default {
  title: 'Account',
  render(ctx) {
    const me = ctx.me;
    const current = h('input#account-current-password', { type: 'password', autocomplete: 'current-password' });
    const currentField = field('Current password', current, 'The one you log in with now.');
    const pw = h('input#account-password', { type: 'password', autocomplete: 'new-password' });
    const again = h('input#account-password-again', { type: 'password', autocomplete: 'new-password' });
    const pwField = field('New password', pw, 'At least 8 characters.');
    const againField = field('Again', again);
    const pwErr = errorBox();
    const pwButton = h('button', { type: 'submit' }, 'Change password');

    const tokName = h('input#apitoken-name', { maxlength: 64, autocomplete: 'off', placeholder: 'laptop CLI' });
    const tokField = field('Name', tokName);
    const tokErr = errorBox();
    const tokButton = h('button', { type: 'submit' }, 'Create API token');
    const tokCreated = h('div');
    const t = table(COLUMNS, 'apitokens-table');
    const none = empty('No API tokens.');

    async function changePassword(ev) {
      ev.preventDefault();
      pwErr.show(null);
      const noCurrent = current.value.length < 1 ? 'Your current password is needed.' : null;
      currentField.error(noCurrent);
      const bad = pw.value.length < 8 ? 'At least 8 characters.' : pw.value.length > 1024 ? 'At most 1024 characters.' : null;
      pwField.error(bad);
      againField.error(!bad && pw.value !== again.value ? 'The two passwords differ.' : null);
      if (noCurrent || bad || pw.value !== again.value) return;
      pwButton.disabled = true;
      try {
        await post(`/users/${me.id}/password`, { password: pw.value, current_password: current.value });
        current.value = pw.value = again.value = '';
        toast('Password changed; your other sessions have ended.');
      } catch (e) {
        pwErr.show(e, 'Could not change the password.');
      } finally {
        pwButton.disabled = false;
      }
    }

    async function createToken(ev) {
      ev.preventDefault();
      tokErr.show(null);
      const n = tokName.value.trim();
      tokField.error(n.length < 1 || n.length > 64 ? 'From 1 to 64 characters.' : null);
      if (n.length < 1 || n.length > 64) return;
      tokButton.disabled = true;
      try {
        const r = await post('/tokens', { name: n });
        tokName.value = '';
        fill(tokCreated, h('section.card.created', h('h2', `API token “${r.name}”`),
          h('p', `Use it as a bearer token until ${datetime(r.expires_at)}. `, h('strong', 'It is shown only once.')),
          h('div.command', h('code', r.token))));
        ctx.refresh();
      } catch (e) {
        tokErr.show(e, 'Could not create the token.');
      } finally {
        tokButton.disabled = false;
      }
    }

    function create() {
      const tr = row(COLUMNS);
      const c = tr.children;
      c[1].append(h('time'));
      c[2].append(h('time'));
      c[3].append(badge('active'));
      const revoke = h('button.small.secondary', { type: 'button' }, 'Revoke');
      revoke.addEventListener('click', async () => {
        const tk = tr.token;
        if (!await confirmAction(`Revoke “${tk.name}”?`, 'Programs using it are refused from now on.', 'Revoke')) return;
        if (await busy(revoke, () => del(`/tokens/${tk.id}`))) ctx.refresh();
      });
      c[4].append(revoke);
      return tr;
    }

    function update(tr, tk) {
      const c = tr.children;
      const state = tk.revoked ? 'revoked' : tk.expires_at && tk.expires_at * 1000 < Date.now() ? 'expired' : 'active';
      tr.token = tk;
      setText(c[0], tk.name);
      timeAgo(c[1].firstChild, tk.created_at);
      timeAgo(c[2].firstChild, tk.expires_at);
      setBadge(c[3].firstChild, state);
      c[4].firstChild.hidden = state !== 'active';
    }

    const expires = h('time');
    const el = h('div',
      pageHeader('Account'),
      h('section.card', h('dl.facts',
        h('dt', 'User'), h('dd#account-user', me.username),
        h('dt', 'Role'), h('dd', me.role),
        h('dt', 'Session ends'), h('dd', expires))),
      h('div.cols',
        h('form.card', { onsubmit: changePassword, novalidate: true }, h('h2', 'Change password'), currentField, pwField, againField, pwErr, h('div.actions', pwButton)),
        h('form.card', { onsubmit: createToken, novalidate: true }, h('h2', 'API tokens'),
          h('p.muted', 'For scripts and the CLI, instead of a password.'), tokField, tokErr, h('div.actions', tokButton))),
      tokCreated,
      h('section', t, none));

    async function refresh() {
      timeAgo(expires, me.expires_at);
      if (me.expires_at) expires.textContent += ` (${datetime(me.expires_at)})`;
      const tokens = (await get('/tokens')).tokens || [];
      t.hidden = !tokens.length;
      none.hidden = tokens.length > 0;
      syncList(t.body, tokens, (x) => x.id, create, update);
    }
    return { el, refresh, interval: 5000 };
  },
};
