// The job page's view of a program job (docs/PROGRAMS-API.md): the program and its limits, its
// outcome in words with the exit status, stdout and stderr (per unit for split jobs, with the
// combined result), and downloads of the raw bytes, which need the bearer token: they are
// fetched and handed to the browser as a blob.
import { get, getBlob } from './api.js';
import { h, fill, setText, int, si } from './dom.js';
import { errorBox, toast } from './ui.js';

const LANGS = { py: 'Python 3 (mpi4py)', c: 'C (compiled with mpicc)', sh: 'shell (sh)' };
const UNIT_PAGES_MAX = 10; // 1000 units listed at most; the combined output has them all

export function langOf(name) {
  const m = /\.(py|c|sh)$/.exec(name || '');
  return m ? m[1] : null;
}

function bytes(n) {
  n = Number(n) || 0;
  if (n < 1024) return `${n} byte${n === 1 ? '' : 's'}`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}
export { bytes };

// A unit's status as a person reads it, and the exit status it stands for.
export function statusWords(status, params = {}) {
  const t = params.time_s || 600, np = params.np || 1, mem = params.memory_mb || 1024;
  let m;
  if (status === 'ok') return { words: 'The program exited normally (exit status 0).', code: 0, ok: true };
  if ((m = /^exit status (\d+)$/.exec(status || ''))) return { words: `The program exited with status ${m[1]}.`, code: Number(m[1]) };
  if ((m = /^killed: signal (\d+)$/.exec(status || ''))) return { words: `The program was killed by signal ${m[1]}.`, code: 128 + Number(m[1]) };
  if (status === 'killed: time limit') return { words: `The program was stopped at its time limit of ${t} s.`, code: null };
  if (status === 'killed: cpu limit') return { words: `The program was stopped at its CPU-time limit (${np} × ${t} s).`, code: null };
  if (status === 'killed: memory') return { words: `The program was stopped: it needed more than its ${mem} MB of memory per process.`, code: null };
  if (status === 'compile error') return { words: 'The program did not compile; the compiler’s message is in its stderr.', code: null };
  return { words: status ? `The program ended: ${status}.` : 'No outcome yet.', code: null };
}

// Fetches path with the session's token and saves it as name.
export async function download(path, name, button) {
  if (button) button.disabled = true;
  try {
    const blob = await getBlob(path);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    toast(e.words || e.message || String(e), 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

function downloadButton(id, label, path, name) {
  const b = h('button.small.secondary', { type: 'button', id }, label);
  b.addEventListener('click', () => download(path(), name(), b));
  return b;
}

// One stream: its text (the first 64 KiB, as /outputs gives it), sizes and a download.
function streamBox(id, title) {
  const pre = h('pre.output', { id: `program-${id}`, tabindex: 0 });
  const note = h('p.muted.small', { id: `program-${id}-note` });
  const box = h('section.stream', h('h3', title), pre, note);
  box.set = (text, total, truncated, limit) => {
    setText(pre, text || '');
    pre.dataset.empty = text ? 'no' : 'yes';
    const shownBytes = new TextEncoder().encode(text || '').length;
    const parts = [`${bytes(total)}`];
    if (total > shownBytes) parts.push('only the beginning is shown: download it for all of it');
    if (truncated) parts.push(`cut at ${limit} on the node`);
    setText(note, text || total ? parts.join(' · ') : 'empty');
  };
  return box;
}

export function programView(id) {
  const facts = h('dl.facts#program-facts');
  const dd = {};
  for (const [k, label] of [['program', 'Program'], ['language', 'Language'], ['np', 'Processes'],
    ['limits', 'Limits'], ['args', 'Arguments'], ['files', 'Other files'], ['split', 'Split']]) {
    const d = h('dd');
    facts.append(h('dt', label), d);
    dd[k] = d;
  }
  const outcome = h('p.outcome#program-outcome');
  const exitCode = h('output#program-exit');
  const combined = h('p#program-combined', { hidden: true });
  const outErr = errorBox();
  const stdout = streamBox('stdout', 'stdout');
  const stderr = streamBox('stderr', 'stderr');
  const single = h('div.streams#program-streams', { hidden: true }, stdout, stderr);
  const unitsBody = h('tbody');
  const unitsTable = h('table.grid.program-units#program-units',
    h('thead', h('tr', ['Unit', 'Status', 'stdout', 'stderr', 'Node', ''].map((t) => h('th', { scope: 'col' }, t)))),
    unitsBody);
  const unitsNote = h('p.muted#program-units-note');
  const split = h('div#program-split', { hidden: true }, unitsTable, unitsNote);
  const downloads = h('div.actions#program-downloads');
  const el = h('section.card#program',
    h('h2', 'Program'),
    h('div.program-outcome', outcome, h('p', 'Exit status: ', exitCode)),
    combined, outErr, single, split, downloads,
    h('h3', 'How it ran'), facts);

  let job = null, params = {}, loadedFor = '', loadedAt = 0, units = [];
  const raw = (q) => `/jobs/${id}/output${q}`;

  function drawFacts() {
    const main = params.main || {};
    setText(dd.program, main.name || '–');
    const lang = langOf(main.name);
    setText(dd.language, lang ? LANGS[lang] : '–');
    setText(dd.np, int(params.np || 1));
    setText(dd.limits, `${params.time_s || 600} s wall time, ${params.memory_mb || 1024} MB per process`);
    setText(dd.args, (params.args || []).length ? (params.args || []).map((a) => JSON.stringify(a)).join(' ') : 'none');
    setText(dd.files, (params.files || []).length ? params.files.map((f) => f.name).join(', ') : 'none');
    const total = (job.units && job.units.total) || 1;
    setText(dd.split, total > 1 ? `${int(total)} units over ${si(params.space || total)} indices, combined by ${params.combine || 'concat'}` : 'one unit');
  }

  function drawDownloads(isSplit) {
    // Rebuilt only when what can be downloaded changes, so a click in progress survives a poll.
    const key = `${job.state}:${isSplit}:${!!units[0]}`;
    if (downloads.dataset.key === key) return;
    downloads.dataset.key = key;
    const buttons = [];
    if (job.state === 'done') {
      buttons.push(downloadButton('program-download-output', isSplit ? 'Download the combined output' : 'Download stdout',
        () => raw(''), () => `job-${id}-${isSplit ? 'output' : 'stdout'}.txt`));
    }
    if (!isSplit && units[0]) {
      if (job.state !== 'done') {
        buttons.push(downloadButton('program-download-stdout', 'Download stdout', () => raw('?unit=0&stream=stdout'), () => `job-${id}-stdout.txt`));
      }
      buttons.push(downloadButton('program-download-stderr', 'Download stderr', () => raw('?unit=0&stream=stderr'), () => `job-${id}-stderr.txt`));
    }
    fill(downloads, buttons);
  }

  function drawUnits() {
    const seqs = units.map((u) => u.seq).join(',');
    if (unitsBody.dataset.seqs === seqs) return;
    unitsBody.dataset.seqs = seqs;
    fill(unitsBody, units.map((u) => {
      const cut = (t) => (t && t.length > 120 ? `${t.slice(0, 120)}…` : t || '');
      const tr = h('tr', { dataset: { seq: u.seq, status: u.status } },
        h('td', { 'data-label': 'Unit' }, `#${u.seq}`),
        h('td', { 'data-label': 'Status' }, h('span.badge', { dataset: { state: u.status === 'ok' ? 'done' : 'failed' } }, u.status)),
        h('td', { 'data-label': 'stdout' }, h('code.excerpt', cut(u.stdout))),
        h('td', { 'data-label': 'stderr' }, h('code.excerpt', cut(u.stderr))),
        h('td', { 'data-label': 'Node' }, u.node_id ? `node ${u.node_id}` : '–'),
        h('td.actions-cell', { 'data-label': '' },
          downloadButton(`program-unit-${u.seq}-stdout`, 'stdout', () => raw(`?unit=${u.seq}&stream=stdout`), () => `job-${id}-unit-${u.seq}-stdout.txt`),
          downloadButton(`program-unit-${u.seq}-stderr`, 'stderr', () => raw(`?unit=${u.seq}&stream=stderr`), () => `job-${id}-unit-${u.seq}-stderr.txt`)));
      return tr;
    }));
  }

  // The settled units' outputs: every 3 s while the job runs, once more when it has ended.
  async function loadOutputs() {
    const key = `${job.state}:${job.units && job.units.done}`;
    const ended = !['queued', 'running'].includes(job.state);
    if (key === loadedFor || (!ended && Date.now() - loadedAt < 3000)) return;
    loadedAt = Date.now();
    const list = [];
    let from = 0;
    for (let page = 0; page < UNIT_PAGES_MAX; page++) {
      const r = await get(`/jobs/${id}/outputs?from=${from}`);
      list.push(...(r.units || []));
      if (r.next === null || r.next === undefined) { from = null; break; }
      from = r.next;
    }
    units = list;
    unitsNote.dataset.more = from === null ? 'no' : 'yes';
    setText(unitsNote, from === null ? `${int(list.length)} unit${list.length === 1 ? '' : 's'} with an outcome.`
      : `The first ${int(list.length)} units are listed; the combined output has them all.`);
    loadedFor = key;
  }

  async function update(j) {
    job = j;
    params = job.params || {};
    drawFacts();
    try {
      await loadOutputs();
      outErr.show(null);
    } catch (e) {
      if (e.status === 401) throw e;
      outErr.show(e, 'The outputs could not be read.');
    }
    const isSplit = ((job.units && job.units.total) || 1) > 1;
    const r = job.result || {};
    // The outcome: the one unit's, or the unit that failed the job, or the combined result.
    const failedUnit = units.find((u) => u.status !== 'ok');
    const status = (!isSplit && (r.status || (units[0] && units[0].status))) || (failedUnit && failedUnit.status) || (job.state === 'done' ? 'ok' : null);
    const sw = statusWords(status, params);
    let words = sw.words;
    if (job.state === 'queued') words = 'Waiting for a node that runs programs.';
    else if (job.state === 'running' && !status) words = 'Running…';
    else if (job.state === 'cancelled') words = 'The job was cancelled.';
    else if (isSplit && failedUnit) words = `Unit ${failedUnit.seq} failed: ${sw.words}`;
    else if (isSplit && job.state === 'done') words = 'Every unit exited normally (exit status 0).';
    else if (job.state === 'failed' && !status) words = 'The job failed before the program ran.';
    setText(outcome, words);
    outcome.dataset.state = job.state;
    setText(exitCode, sw.code === null || sw.code === undefined ? '–' : String(sw.code));
    if (isSplit && job.state === 'done') {
      combined.hidden = false;
      setText(combined, r.combine === 'concat' || r.value === undefined
        ? `Combined (concat) over ${int(r.units)} units: ${bytes(r.bytes)}.`
        : `Combined (${r.combine}) over ${int(r.units)} units: ${typeof r.value === 'object' ? JSON.stringify(r.value, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) : String(r.value)}`);
    } else combined.hidden = true;
    single.hidden = isSplit || !units[0];
    split.hidden = !isSplit;
    if (!isSplit && units[0]) {
      const u = units[0];
      stdout.set(u.stdout, u.stdout_bytes, u.stdout_truncated, '256 KiB');
      stderr.set(u.stderr, u.stderr_bytes, u.stderr_truncated, '64 KiB');
    }
    if (isSplit) drawUnits();
    drawDownloads(isSplit);
  }

  return { el, update };
}
