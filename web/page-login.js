import { post } from './api.js';
import { h } from './dom.js';
import { errorBox } from './ui.js';

export default {
  title: 'Log in',
  render(ctx) {
    const user = h('input#login-user', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
    const pass = h('input#login-password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const button = h('button', { type: 'submit' }, 'Log in');
    const err = errorBox();
    const notice = ctx.notice ? h('p.box.notice#login-notice', { role: 'status' }, ctx.notice) : null;
    const form = h('form.card.login', { onsubmit: submit },
      h('h1', 'Log in to Tessera'),
      notice, err,
      h('label.field', h('span.field-label', 'User name'), user),
      h('label.field', h('span.field-label', 'Password'), pass),
      h('div.actions', button));

    async function submit(ev) {
      ev.preventDefault();
      err.show(null);
      button.disabled = true;
      try {
        const r = await post('/login', { username: user.value.trim(), password: pass.value });
        pass.value = '';
        await ctx.loggedIn(r.token);
      } catch (e) {
        // The server's own words ("wrong user name or password", "this account is disabled").
        const m = e.message || '';
        err.show(e.status === 401 || e.status === 403 ? { words: `${m.charAt(0).toUpperCase()}${m.slice(1)}.` } : e);
        pass.select();
      } finally {
        button.disabled = false;
      }
    }
    setTimeout(() => user.focus(), 0);
    return { el: h('div.login-wrap', form) };
  },
};
