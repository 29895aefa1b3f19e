// Jobs: the user's jobs (every job for admins) with state and a live progress bar; cancel.
import { get, del } from './api.js';
import { h, setText, si, int, syncList, timeAgo, progressBar, badge, setBadge } from './dom.js';
import { pageHeader, table, row, empty, busy, confirmAction, toast } from './ui.js';

export const ACTIVE = new Set(['queued', 'running']);

// A job's parameters in a few words.
export function paramsText(job) {
  const p = job.params || {};
  if (job.kernel === 'montecarlo_pi') return `${si(p.samples)} samples · seed ${p.seed ?? 0}`;
  if (job.kernel === 'program') {
    const units = (job.units && job.units.total) || 1;
    return [p.main && p.main.name, `${p.np || 1} process${(p.np || 1) > 1 ? 'es' : ''}`,
      units > 1 ? `${units} units · ${p.combine || 'concat'}` : null].filter(Boolean).join(' · ');
  }
  if (p.from !== undefined && p.to !== undefined) return `[${si(p.from)}, ${si(p.to)})`;
  return Object.entries(p).map(([k, v]) => `${k} ${v}`).join(' · ');
}

// Asks, then cancels; resolves to the job or undefined.
export async function cancelJob(button, job) {
  const ok = await confirmAction(`Cancel job ${job.id}?`,
    'Units already computed are kept; no more units are handed out.', 'Cancel job');
  if (!ok) return undefined;
  return busy(button, async () => {
    const j = await del(`/jobs/${job.id}`);
    toast(`Job ${job.id} cancelled.`);
    return j;
  });
}

const COLUMNS = [
  { label: 'Job' }, { label: 'Kernel' }, { label: 'Owner', cls: 'admin-only' }, { label: 'State' },
  { label: 'Progress', cls: 'wide' }, { label: 'Units' }, { label: 'Submitted' }, { label: '', cls: 'actions-cell' },
];

export const jobsPage = {
  title: 'Jobs',
  render(ctx) {
    const t = table(COLUMNS, 'jobs-table');
    const none = empty('No jobs yet.');
    const el = h('div',
      pageHeader(ctx.me.role === 'admin' ? 'All jobs' : 'Your jobs', h('a.button', { href: '#/submit' }, 'Submit a job')),
      t, none);

    function create() {
      const tr = row(COLUMNS);
      const c = tr.children;
      c[0].append(h('a.job-link'));
      c[1].append(h('span.kernel'), h('span.muted.params'));
      c[3].append(badge('queued'));
      c[4].append(progressBar());
      c[6].append(h('time'));
      const cancel = h('button.small.secondary.cancel', { type: 'button' }, 'Cancel');
      cancel.addEventListener('click', async () => {
        const job = tr.job;
        if (await cancelJob(cancel, job)) ctx.refresh();
      });
      c[7].append(cancel);
      return tr;
    }

    function update(tr, job) {
      const c = tr.children;
      tr.job = job;
      tr.dataset.state = job.state;
      tr.dataset.id = job.id;
      const a = c[0].firstChild;
      a.href = `#/jobs/${job.id}`;
      setText(a, `#${job.id}`);
      setText(c[1].children[0], job.kernel);
      setText(c[1].children[1], paramsText(job));
      setText(c[2], job.owner || '');
      setBadge(c[3].firstChild, job.state);
      c[4].firstChild.set(job.progress, job.state);
      const u = job.units || {};
      setText(c[5], `${int(u.done)} / ${int(u.total)}`);
      timeAgo(c[6].firstChild, job.created_at);
      c[7].firstChild.hidden = !ACTIVE.has(job.state);
    }

    async function refresh() {
      const r = await get('/jobs');
      const jobs = r.jobs || [];
      none.hidden = jobs.length > 0;
      t.hidden = jobs.length === 0;
      syncList(t.body, jobs, (j) => j.id, create, update);
    }
    return { el, refresh };
  },
};
