// Nodes (admin): every enrolled node with its measured rate, last contact, reliability and
// health (load, memory, temperature from its heartbeats); a node its volunteer's controls pause
// shows "paused: hot"; disable and enable.
import { get, post } from './api.js';
import { h, fill, setText, si, int, percent, syncList, timeAgo, badge, setBadge } from './dom.js';
import { pageHeader, table, row, empty, busy, confirmAction, toast } from './ui.js';

const COLUMNS = [
  { label: 'Name' }, { label: 'Platform' }, { label: 'Cores' }, { label: 'Rate' },
  { label: 'Last seen' }, { label: 'Units done' }, { label: 'Reliability' }, { label: 'Health' },
  { label: 'State' }, { label: '', cls: 'actions-cell' },
];
const STATE = 8;
const ACTIONS = 9;

// "load 0.52 · 1.2 G of 3.9 G free · 48.3 °C", from the latest heartbeat ("–" without one).
function healthText(health) {
  if (!health) return '–';
  const parts = [];
  if (health.load1 !== null) parts.push(`load ${Number(health.load1).toFixed(2)}`);
  if (health.mem_total_bytes !== null) {
    parts.push(`${si(health.mem_available_bytes, 2)}B of ${si(health.mem_total_bytes, 2)}B free`);
  }
  if (health.temp_c !== null) parts.push(`${Number(health.temp_c).toFixed(1)} °C`);
  return parts.length ? parts.join(' · ') : '–';
}

// The state badge: "paused: hot" for an online node whose volunteer's controls pause it.
function stateText(n) {
  return n.state === 'online' && n.paused ? `paused: ${n.paused}` : n.state;
}

// One line per kernel: "1.28 G/s montecarlo_pi".
function rateLines(rates) {
  const entries = Object.entries(rates || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return ['–'];
  return entries.map(([k, v]) => h('span.rate', `${si(v)}/s `, h('span.muted', k)));
}

export default {
  title: 'Nodes',
  admin: true,
  probe: '/nodes',
  render() {
    const t = table(COLUMNS, 'nodes-table');
    t.hidden = true;
    const none = empty('No node has enrolled yet. Create an enrollment token and run its command on a machine.');
    none.hidden = true;
    const summary = h('p.muted#nodes-summary');
    const el = h('div',
      pageHeader('Nodes', h('a.button', { href: '#/tokens' }, 'Enroll a node')),
      summary, t, none);

    function create() {
      const tr = row(COLUMNS);
      const c = tr.children;
      c[0].append(h('strong.node-name'), h('span.muted.node-id'));
      c[4].append(h('time'));
      c[STATE].append(badge('online'));
      const toggle = h('button.small.secondary.toggle', { type: 'button' });
      toggle.addEventListener('click', async () => {
        const n = tr.node;
        const disabling = n.state !== 'disabled';
        if (disabling && !await confirmAction(`Disable ${n.name}?`,
          'Its token is refused from now on and its leases end; its units go to other nodes.', 'Disable')) return;
        const r = await busy(toggle, () => post(`/nodes/${n.id}/${disabling ? 'disable' : 'enable'}`));
        if (r) {
          toast(`${n.name} ${disabling ? 'disabled' : 'enabled'}.`);
          update(tr, r);
        }
      });
      c[ACTIONS].append(toggle);
      return tr;
    }

    function update(tr, n) {
      const c = tr.children;
      tr.node = n;
      tr.dataset.state = n.state;
      setText(c[0].children[0], n.name);
      setText(c[0].children[1], ` #${n.id}`);
      setText(c[1], n.platform || '–');
      setText(c[2], int(n.cores));
      const key = JSON.stringify(n.rates || {});
      if (c[3].dataset.rates !== key) {
        c[3].dataset.rates = key;
        fill(c[3], rateLines(n.rates));
      }
      timeAgo(c[4].firstChild, n.last_seen);
      setText(c[5], `${int(n.units_done)} (${int(n.valid)} valid, ${int(n.invalid)} invalid)`);
      setText(c[6], percent(n.reliability, 1));
      setText(c[7], healthText(n.health));
      setBadge(c[STATE].firstChild, stateText(n));
      if (n.state === 'online' && n.paused) c[STATE].firstChild.dataset.state = 'paused';
      setText(c[ACTIONS].firstChild, n.state === 'disabled' ? 'Enable' : 'Disable');
    }

    async function refresh() {
      const nodes = (await get('/nodes')).nodes || [];
      t.hidden = !nodes.length;
      none.hidden = nodes.length > 0;
      const online = nodes.filter((n) => n.state === 'online');
      setText(summary, `${online.length} of ${nodes.length} online · ${int(online.reduce((a, n) => a + (n.cores || 0), 0))} cores`);
      syncList(t.body, nodes, (n) => n.id, create, update);
    }
    return { el, refresh, interval: 2000 };
  },
};
