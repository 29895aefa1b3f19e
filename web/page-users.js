// Users (admin): add, disable and enable, allow programs (the programs grant), reset a
// password, delete.
import { get, post, del } from './api.js';
import { h, setText, int, syncList, timeAgo, badge, setBadge } from './dom.js';
import { pageHeader, table, row, empty, busy, confirmAction, dialog, toast, field, errorBox } from './ui.js';

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

const COLUMNS = [
  { label: 'User' }, { label: 'Role' }, { label: 'Jobs' }, { label: 'Created' }, { label: 'State' },
  { label: 'Programs' }, { label: '', cls: 'actions-cell' },
];

function checkPassword(v) {
  if (v.password.length < 8) return 'At least 8 characters.';
  if (v.password.length > 1024) return 'At most 1024 characters.';
  if (v.password !== v.again) return 'The two passwords differ.';
  return null;
}

export default {
  title: 'Users',
  admin: true,
  probe: '/users',
  render(ctx) {
    const name = h('input#user-name', { name: 'username', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', maxlength: 64 });
    const pass = h('input#user-password', { name: 'password', type: 'password', autocomplete: 'new-password' });
    const role = h('select#user-role', { name: 'role' }, h('option', { value: 'user' }, 'user'), h('option', { value: 'admin' }, 'admin'));
    const nameField = field('User name', name, 'Letters, digits, . _ and -.');
    const passField = field('Password', pass, 'At least 8 characters.');
    const button = h('button#user-add', { type: 'submit' }, 'Add user');
    const err = errorBox();
    const t = table(COLUMNS, 'users-table');
    const none = empty('No users.');

    async function submit(ev) {
      ev.preventDefault();
      err.show(null);
      const n = name.value.trim();
      const badName = !NAME_RE.test(n), badPass = pass.value.length < 8 || pass.value.length > 1024;
      nameField.error(badName ? '1 to 64 letters, digits, dots, underscores or hyphens.' : null);
      passField.error(badPass ? 'From 8 to 1024 characters.' : null);
      if (badName || badPass) return;
      button.disabled = true;
      try {
        await post('/users', { username: n, password: pass.value, role: role.value });
        toast(`User ${n} added.`);
        name.value = '';
        pass.value = '';
        ctx.refresh();
      } catch (e) {
        err.show(e, 'Could not add the user.');
      } finally {
        button.disabled = false;
      }
    }

    function create() {
      const tr = row(COLUMNS);
      const c = tr.children;
      c[0].append(h('strong'));
      c[3].append(h('time'));
      c[4].append(badge('active'));
      const toggle = h('button.small.secondary.toggle', { type: 'button' });
      const reset = h('button.small.secondary.reset', { type: 'button' }, 'Reset password');
      const remove = h('button.small.secondary.danger-text.delete', { type: 'button' }, 'Delete');
      toggle.addEventListener('click', async () => {
        const u = tr.user;
        const disabling = !u.disabled;
        if (disabling && !await confirmAction(`Disable ${u.username}?`, 'Their sessions and API tokens are refused at once.', 'Disable')) return;
        if (await busy(toggle, () => post(`/users/${u.id}/${disabling ? 'disable' : 'enable'}`))) {
          toast(`${u.username} ${disabling ? 'disabled' : 'enabled'}.`);
          ctx.refresh();
        }
      });
      reset.addEventListener('click', async () => {
        const u = tr.user;
        const v = await dialog({
          title: `New password for ${u.username}`,
          body: 'Their other sessions end.',
          ok: 'Set password',
          fields: [{ name: 'password', label: 'New password', type: 'password', autocomplete: 'new-password' },
            { name: 'again', label: 'Again', type: 'password', autocomplete: 'new-password' }],
          check: checkPassword,
        });
        if (v && await busy(reset, () => post(`/users/${u.id}/password`, { password: v.password }))) {
          toast(`Password of ${u.username} changed.`);
        }
      });
      remove.addEventListener('click', async () => {
        const u = tr.user;
        if (!await confirmAction(`Delete ${u.username}?`, 'Their tokens are revoked and their running jobs cancelled.', 'Delete')) return;
        if (await busy(remove, () => del(`/users/${u.id}`))) {
          toast(`${u.username} deleted.`);
          ctx.refresh();
        }
      });
      const grant = h('button.small.secondary.grant', { type: 'button' });
      grant.addEventListener('click', async () => {
        const u = tr.user;
        const giving = !(u.grants || []).includes('programs');
        if (!giving && !await confirmAction(`Stop ${u.username} running programs?`, 'They can no longer upload files or submit programs.', 'Revoke', false)) return;
        if (await busy(grant, () => post(`/users/${u.id}/${giving ? 'grant' : 'revoke'}`, { grant: 'programs' }))) {
          toast(giving ? `${u.username} may now run programs.` : `${u.username} may no longer run programs.`);
          ctx.refresh();
        }
      });
      c[6].append(grant, toggle, reset, remove);
      return tr;
    }

    function update(tr, u) {
      const c = tr.children;
      tr.user = u;
      const state = u.disabled ? 'disabled' : 'active';
      tr.dataset.state = state;
      tr.dataset.username = u.username;
      setText(c[0].firstChild, u.username);
      setText(c[1], u.role);
      setText(c[2], int(u.jobs ?? 0));
      timeAgo(c[3].firstChild, u.created_at);
      setBadge(c[4].firstChild, state);
      const self = ctx.me && u.id === ctx.me.id;
      // Admins may always run programs; users only with the grant.
      const allowed = (u.grants || []).includes('programs');
      tr.dataset.programs = u.role === 'admin' ? 'admin' : allowed ? 'yes' : 'no';
      setText(c[5], u.role === 'admin' ? 'always (admin)' : allowed ? 'allowed' : 'no');
      const [grant, toggle, , remove] = c[6].children;
      setText(grant, allowed ? 'Revoke programs' : 'Allow programs');
      grant.hidden = u.role === 'admin' && !allowed;
      setText(toggle, u.disabled ? 'Enable' : 'Disable');
      toggle.hidden = self; // an admin does not lock itself out from here
      remove.hidden = self;
    }

    async function refresh() {
      const users = (await get('/users')).users || [];
      t.hidden = !users.length;
      none.hidden = users.length > 0;
      syncList(t.body, users, (u) => u.id, create, update);
    }

    const el = h('div',
      pageHeader('Users'),
      h('form.card#user-form', { onsubmit: submit, novalidate: true },
        h('h2', 'Add a user'),
        h('div.form-grid', nameField, passField, h('label.field', h('span.field-label', 'Role'), role)),
        err, h('div.actions', button)),
      h('section', h('h2', 'Accounts'), t, none));
    return { el, refresh, interval: 3000 };
  },
};
