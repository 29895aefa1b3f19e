// Job detail: live progress, progress over time, units by node, and the result; for Monte Carlo
// Pi the estimate, its error against π and a convergence plot of the estimate against samples;
// for programs their output and exit status (job-program.js).
import { get } from './api.js';
import { h, fill, setText, si, int, percent, duration, datetime, progressBar, badge, setBadge } from './dom.js';
import { pageHeader, errorBox } from './ui.js';
import { chart, drawChart } from './plot.js';
import { ACTIVE, paramsText, cancelJob } from './page-jobs.js';
import { programView } from './job-program.js';

const DIGITS = 12; // decimals of the π estimate shown

// The exact decimal of num/den (BigInt, den > 0) rounded half up to `digits` decimals.
export function exactDecimal(num, den, digits) {
  const scale = 10n ** BigInt(digits);
  const q = (num * scale * 2n + den) / (den * 2n);
  const whole = q / scale, frac = (q % scale).toString().padStart(digits, '0');
  return `${whole}.${frac}`;
}

// "+1.23e-5" with a sign always.
function signed(x) {
  const t = Math.abs(x) < 1e-3 || Math.abs(x) >= 1e4 ? x.toExponential(2) : x.toFixed(5);
  return x >= 0 ? `+${t}` : t.replace('-', '−');
}

function fact(dl, label) {
  const dd = h('dd');
  dl.append(h('dt', label), dd);
  return dd;
}

// The units answer as chart points. units: [{seq,start,count,result,node,valid_at}] in the
// order they were validated; offset: samples and hits validated before the first one listed.
function seriesOf(units, offset) {
  let samples = offset.samples, hits = offset.hits;
  const conv = [], band = [];
  for (const u of units) {
    samples += Number(u.count);
    hits += Number((u.result && u.result.hits) || 0);
    const est = (4 * hits) / samples;
    conv.push([samples, est]);
    const sd = Math.sqrt((Math.PI * (4 - Math.PI)) / samples); // σ of the estimate at n samples
    band.push([samples, Math.PI - 1.96 * sd, Math.PI + 1.96 * sd]);
  }
  return { conv, band };
}

export default {
  title: 'Job',
  render(ctx) {
    const id = ctx.params[0];
    const stateBadge = badge('…');
    const cancel = h('button.secondary#job-cancel', { type: 'button', hidden: true }, 'Cancel job');
    const bar = progressBar();
    bar.id = 'job-progress';
    const barText = h('p.muted#job-progress-text');
    const facts = h('dl.facts#job-facts');
    const failure = errorBox();
    failure.id = 'job-error';
    // Why an open job does not move (too few distinct volunteers for its quorum), in words.
    const note = h('div.box.notice#job-note', { role: 'status', hidden: true });
    const result = h('div#job-result');
    const conv = chart('Convergence of the estimate of π against samples drawn');
    const convNote = h('p.muted#convergence-note');
    const convCard = h('section.card#convergence', { hidden: true },
      h('h2', 'Convergence'),
      h('p.muted', 'The estimate 4·hits/samples after each validated unit, in validation order; the band is π ± 1.96σ.'),
      conv, convNote);
    const timeChart = chart('Job progress over time');
    const byNode = h('div.by-node#job-nodes');
    const dd = {};

    const timeCard = h('section.card', h('h2', 'Progress over time'), timeChart);
    let program = null; // the program view, for program jobs

    // Shown once the job has been read (a missing job shows only the server's 404).
    const body = h('div', { hidden: true },
      h('section.card', bar, barText),
      note,
      failure,
      h('div#job-result-card', result),
      convCard,
      h('div.cols', timeCard,
        h('section.card', h('h2', 'Units by node'), byNode)),
      h('section.card', h('h2', 'Details'), facts));
    const el = h('div.job', pageHeader(h('span', `Job #${id} `, stateBadge), cancel), body);
    for (const [k, label] of [['kernel', 'Kernel'], ['params', 'Parameters'], ['owner', 'Owner'],
      ['split', 'Units'], ['replication', 'Replication'], ['deadline', 'Lease deadline'],
      ['created', 'Submitted'], ['started', 'Started'], ['finished', 'Finished'], ['wall', 'Wall time'],
      ['compute', 'Compute time'], ['rate', 'Throughput']]) dd[k] = fact(facts, label);

    let job = null, units = null, unitsAt = 0, unitsError = null, finalUnits = false;
    cancel.addEventListener('click', async () => {
      if (job && await cancelJob(cancel, job)) ctx.refresh();
    });

    async function loadUnits() {
      // While running: every 2 s; once more when the job has finished, then no more.
      if (finalUnits || Date.now() - unitsAt < 2000) return;
      unitsAt = Date.now();
      const done = !ACTIVE.has(job.state);
      try {
        units = (await get(`/jobs/${id}/units`)).units || [];
        unitsError = null;
        finalUnits = done;
      } catch (e) {
        if (e.status === 401) throw e;
        unitsError = e;
      }
    }

    function drawFacts() {
      const u = job.units || {};
      setText(dd.kernel, job.kernel);
      setText(dd.params, paramsText(job));
      setText(dd.owner, job.owner || '–');
      setText(dd.split, `${int(u.total)} of ${si(job.unit_size)} indices`);
      setText(dd.replication, `${job.replication} replica${job.replication > 1 ? 's' : ''}, quorum ${job.quorum}${job.adaptive ? ', adaptive' : ''}`);
      setText(dd.deadline, duration(job.deadline_s));
      setText(dd.created, datetime(job.created_at));
      setText(dd.started, datetime(job.started_at));
      setText(dd.finished, datetime(job.finished_at));
      const end = job.finished_at || (ACTIVE.has(job.state) ? Date.now() / 1000 : null);
      const wall = job.started_at && end ? Math.max(0, end - job.started_at) : null;
      // Times are whole seconds: a job done within one shows as under a second.
      setText(dd.wall, wall === 0 && job.finished_at ? 'under 1 s' : duration(wall));
      setText(dd.compute, duration(job.compute_s));
      const space = Number(job.space) || null;
      setText(dd.rate, space && wall && job.state === 'done' && job.kernel !== 'program' ? `${si(space / Math.max(wall, 1))} indices/s` : '–');
    }

    let shownResult = null, shownNodes = null;
    function drawResult() {
      const r = job.result;
      const key = r ? Object.entries(r).map(([k, v]) => `${k}=${v}`).join(',') : '';
      if (key === shownResult) return; // rebuilt only when it changes, so a selection survives
      shownResult = key;
      if (!r) {
        fill(result);
        return;
      }
      if (job.kernel === 'montecarlo_pi' && r.hits !== undefined && r.samples) {
        const hits = BigInt(r.hits), samples = BigInt(r.samples);
        const estimate = exactDecimal(4n * hits, samples, DIGITS);
        const err = Number(estimate) - Math.PI;
        const sd = Number(r.stderr) || Math.sqrt((Math.PI * (4 - Math.PI)) / Number(samples));
        fill(result, h('section.card.result',
          h('h2', 'Result'),
          h('div.estimate', h('span.muted', 'π ≈ '), h('output#pi-estimate', estimate)),
          h('dl.facts',
            h('dt', 'Hits / samples'), h('dd#pi-hits', `${int(hits)} / ${int(samples)}`),
            h('dt', 'Error vs π'), h('dd#pi-error', `${signed(err)} (${(Math.abs(err) / sd).toFixed(2)} σ)`),
            h('dt', 'Standard error'), h('dd#pi-stderr', Number(sd).toExponential(2)),
            h('dt', 'π'), h('dd', Math.PI.toFixed(DIGITS)))));
      } else {
        const headline = job.kernel === 'prime_count' && r.count !== undefined
          ? `${int(r.count)} primes in [${int(r.from)}, ${int(r.to)})`
          : job.kernel === 'collatz' && r.n !== undefined
            ? `${int(r.n)} has the longest chain in [${int(r.from)}, ${int(r.to)}): ${int(r.steps)} steps`
            : null;
        fill(result, h('section.card.result', h('h2', 'Result'),
          headline ? h('p.estimate#job-headline', headline) : null,
          h('dl.facts', Object.entries(r).map(([k, v]) => [h('dt', k), h('dd', typeof v === 'object' ? JSON.stringify(v) : String(v))]))));
      }
    }

    function drawCharts() {
      const u = job.units || {};
      const list = units || [];
      const known = list.reduce((a, x) => a + Number(x.count), 0);
      // The answer holds the latest 5000 units: what came before is known once the job is done.
      const truncated = list.length < (u.done || 0);
      let offset = { samples: 0, hits: 0 };
      if (truncated && job.result && job.result.hits !== undefined) {
        offset = {
          samples: Number(job.result.samples) - known,
          hits: Number(job.result.hits) - list.reduce((a, x) => a + Number((x.result && x.result.hits) || 0), 0),
        };
      }
      if (job.kernel === 'montecarlo_pi') {
        convCard.hidden = false;
        const { conv: pts, band } = seriesOf(list, offset);
        drawChart(conv, {
          xLog: true, series: [{ points: pts, cls: 'line', dots: pts.length <= 60 }], band: { points: band },
          ref: { y: Math.PI, label: 'π' }, xLabel: 'samples drawn', yLabel: 'estimate',
          xFmt: (x) => si(x, 2), yFmt: (y) => y.toFixed(4),
          empty: unitsError ? `Units unavailable: ${unitsError.words}` : 'No unit validated yet',
        });
        setText(convNote, truncated ? `Showing the latest ${list.length} of ${int(u.done)} validated units.` : '');
      }
      // Progress over time, from each unit's validation time.
      const space = Number(job.space) || list.reduce((a, x) => Math.max(a, Number(x.start) + Number(x.count)), 0);
      const t0 = job.started_at || job.created_at;
      let cum = truncated ? Math.max(0, (u.done - list.length)) * Number(job.unit_size) : 0;
      const pts = [[0, cum / (space || 1)]];
      for (const x of [...list].sort((a, b) => a.valid_at - b.valid_at)) {
        cum += Number(x.count);
        const p = [Math.max(0, x.valid_at - t0), Math.min(1, cum / (space || 1))];
        // valid_at is in whole seconds: one point per second.
        if (pts.length > 1 && pts[pts.length - 1][0] === p[0]) pts[pts.length - 1] = p; else pts.push(p);
      }
      if (ACTIVE.has(job.state)) pts.push([Date.now() / 1000 - t0, job.progress || 0]);
      drawChart(timeChart, {
        height: 220, series: [{ points: job.started_at ? pts : [], cls: 'line', dots: pts.length <= 60 }],
        yMin: 0, yMax: 1, xMin: 0, xFmt: (x, step) => (x < 60 ? `${x.toFixed(step < 1 ? 1 : 0)} s` : duration(x)), yFmt: (y) => percent(y, 0),
        xLabel: 'time since start', yLabel: 'done',
        empty: job.started_at ? 'No unit validated yet' : 'Not started yet',
      });
    }

    function drawNodes() {
      const nodes = job.nodes || [];
      const max = Math.max(1, ...nodes.map((n) => n.units));
      const total = nodes.reduce((a, n) => a + n.units, 0);
      const key = JSON.stringify(nodes);
      if (key === shownNodes) return;
      shownNodes = key;
      if (!nodes.length) {
        fill(byNode, h('p.empty', 'No units computed yet.'));
        return;
      }
      fill(byNode, nodes.map((n) => {
        const fillEl = h('div.hbar-fill');
        fillEl.style.width = `${(100 * n.units) / max}%`;
        return h('div.hbar', { dataset: { node: n.node_id } },
          h('span.hbar-name', n.name || `node ${n.node_id}`),
          h('div.hbar-track', fillEl),
          h('span.hbar-value', `${int(n.units)} (${percent(n.units / (total || 1), 0)})`));
      }));
    }

    async function refresh() {
      job = await get(`/jobs/${id}`);
      body.hidden = false;
      document.title = `Job #${id} · Tessera`;
      setBadge(stateBadge, job.state);
      cancel.hidden = !ACTIVE.has(job.state);
      bar.set(job.progress, job.state);
      const u = job.units || {};
      setText(barText, `${int(u.done)} of ${int(u.total)} units done · ${int(u.leased)} leased · ${int(u.ready)} waiting`);
      note.hidden = !job.note;
      setText(note, job.note || '');
      failure.show(job.error ? { words: `The job ${job.state === 'failed' ? 'failed' : 'stopped'}: ${job.error}` } : null);
      drawFacts();
      drawNodes();
      if (job.kernel === 'program') {
        // Its stdout, stderr and exit status instead of a kernel's result and charts.
        if (!program) {
          program = programView(id);
          failure.after(program.el);
          timeCard.hidden = true;
          convCard.hidden = true;
        }
        await program.update(job);
      } else {
        drawResult();
        await loadUnits();
        drawCharts();
      }
      view.interval = ACTIVE.has(job.state) ? 1000 : 5000; // a finished job changes no more
    }
    const view = { el, refresh, interval: 1000 };
    return view;
  },
};
