// Overview: the grid's health at a glance (GET /api/v1/stats), and the latest jobs.
import { get } from './api.js';
import { h, setText, si, int, syncList, timeAgo, progressBar, badge, setBadge } from './dom.js';
import { pageHeader, empty } from './ui.js';
import { chart, drawChart } from './plot.js';

function stat(label, id) {
  const value = h('div.stat-value', { id: `stat-${id}` }, '–');
  const sub = h('div.stat-sub', { id: `stat-${id}-sub` });
  return { el: h('section.card.stat', h('h2.stat-label', label), value, sub), value, sub };
}

export default {
  title: 'Overview',
  render() {
    const nodes = stat('Nodes online', 'nodes');
    const rate = stat('Grid rate', 'rate');
    const running = stat('Jobs running', 'running');
    const queued = stat('Jobs queued', 'queued');
    const rateChart = chart('Grid rate over the last minutes');
    const failures = h('ul.failures#failures');
    const recent = h('ul.recent-jobs#recent-jobs');
    const history = []; // [seconds since page load, indices/s], kept while the page is open
    const t0 = Date.now();

    const el = h('div.overview',
      pageHeader('Overview'),
      h('div.stats', nodes.el, rate.el, running.el, queued.el),
      h('div.cols',
        h('section.card', h('h2', 'Grid rate (while this page is open)'), rateChart),
        h('section.card', h('h2', 'Latest jobs'), recent, h('p', h('a', { href: '#/jobs' }, 'All jobs →')))),
      h('section.card', h('h2', 'Recent failures'), failures));

    async function refresh() {
      const [st, jobs] = await Promise.all([get('/stats'), get('/jobs')]);
      const n = st.nodes || {}, j = st.jobs || {}, r = st.rate || {};
      setText(nodes.value, int(n.online ?? 0));
      setText(nodes.sub, `${int(n.cores_online ?? 0)} cores · ${int(n.lost ?? 0)} lost · ${int(n.disabled ?? 0)} disabled`);
      setText(rate.value, `${si(r.indices_per_s ?? 0)}/s`);
      setText(rate.sub, `samples (indices) per second · ${si(r.units_per_s ?? 0)} units/s over ${r.window_s ?? '?'} s`);
      setText(running.value, int(j.running ?? 0));
      setText(running.sub, `${int(j.done ?? 0)} done · ${int(j.failed ?? 0)} failed · ${int(j.cancelled ?? 0)} cancelled`);
      setText(queued.value, int(j.queued ?? 0));
      setText(queued.sub, 'waiting for a node');

      history.push([(Date.now() - t0) / 1000, Number(r.indices_per_s) || 0]);
      while (history.length > 200) history.shift();
      drawChart(rateChart, {
        height: 200, series: [{ points: history, cls: 'line' }], yMin: 0, xMin: history[0][0], xMax: history[0][0] + 60,
        xFmt: (x, step) => `${x.toFixed(step < 1 ? 1 : 0)} s`, yFmt: (y) => si(y, 2), xLabel: 'seconds on this page', yLabel: 'indices/s',
      });

      const fails = st.recent_failures || [];
      if (!fails.length) failures.replaceChildren(h('li.empty', 'No failed jobs.'));
      else {
        if (failures.querySelector('.empty')) failures.replaceChildren();
        syncList(failures, fails, (f) => f.job_id,
          () => h('li', h('a'), ' ', h('span.fail-error'), ' ', h('time.muted')),
          (li, f) => {
            const [a, err, time] = [li.children[0], li.children[1], li.children[2]];
            a.href = `#/jobs/${f.job_id}`;
            setText(a, `Job ${f.job_id}`);
            setText(err, f.error || 'failed');
            timeAgo(time, f.finished_at);
          });
      }

      const list = (jobs.jobs || []).slice(0, 6);
      if (!list.length) recent.replaceChildren(empty('No jobs yet. Submit one!'));
      else {
        if (recent.querySelector('.empty')) recent.replaceChildren();
        syncList(recent, list, (x) => x.id,
          () => h('li.recent', h('a.recent-name'), badge('queued'), progressBar()),
          (li, job) => {
            const [a, b, bar] = li.children;
            a.href = `#/jobs/${job.id}`;
            setText(a, `#${job.id} ${job.kernel}`);
            setBadge(b, job.state);
            bar.set(job.progress, job.state);
          });
      }
    }
    return { el, refresh, interval: 2000 };
  },
};
