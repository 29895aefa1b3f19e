// Run a program: pick or drop the program and its files (the language comes from the
// extension), processes, limits and arguments, and optionally a split into units. Each file is
// uploaded (PUT /api/v1/files, checked against its SHA-256 here), then the job is submitted and
// the page goes to it. Limits and choices are the program kind's (GET /api/v1/kernels), with
// the contract's defaults where it says nothing.
import { post, putFile } from './api.js';
import { h, fill, setText, int } from './dom.js';
import { pageHeader, errorBox, field, toast } from './ui.js';
import { loadKinds, param, bigBound } from './kinds.js';
import { parseCount } from './page-submit.js';
import { langOf, bytes } from './job-program.js';

const FILE_MAX = 1024 * 1024; // one request body
const JOB_FILES = 16;
const ARGS_MAX = 64;
const ARGS_BYTES = 4096;
const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
const LANG_WORDS = { py: 'Python 3', c: 'C', sh: 'shell' };

// The numbers of the form: the program kind's parameter, else these (docs/PROGRAMS-API.md).
const NUMBERS = [
  { name: 'np', id: 'run-np', label: 'Processes', min: 1n, max: 64n, value: 1n, help: 'MPI processes on one node' },
  { name: 'time_s', id: 'run-time', label: 'Time limit (s)', min: 1n, max: 86400n, value: 600n, help: 'Wall time of each run; CPU time is processes × this' },
  { name: 'memory_mb', id: 'run-memory', label: 'Memory (MB)', min: 16n, max: 65536n, value: 1024n, help: 'Address space of each process' },
];
const SPLIT = [
  { name: 'space', id: 'run-space', label: 'Index space', min: 1n, max: 10n ** 15n, value: 100n, help: 'The indices the units share' },
  { name: 'units', id: 'run-units', label: 'Units', min: 1n, max: 1000000n, value: 10n, help: 'Runs of the program, each over its part of the space', job: true },
  { name: 'replication', id: 'run-replication', label: 'Replication', min: 1n, max: 16n, value: 1n, help: 'Copies of each unit on distinct nodes', job: true },
  { name: 'quorum', id: 'run-quorum', label: 'Quorum', min: 1n, max: 16n, value: 1n, help: 'Byte-identical copies that make a unit valid', job: true },
];

async function sha256Hex(blob) {
  const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export default {
  title: 'Run a program',
  render(ctx) {
    let files = []; // [{file, main}]
    let kind = null;
    const me = ctx.me || {};
    const mayRun = me.role === 'admin' || !Array.isArray(me.grants) || me.grants.includes('programs');

    const picker = h('input#run-files', { type: 'file', multiple: true, name: 'files' });
    const drop = h('label.dropzone#run-drop', { for: 'run-files' },
      h('strong', 'Drop your program and its files here'), h('span', ' or '), h('span.link-like', 'choose them'),
      h('span.help', '.py (Python 3, mpi4py), .c (compiled with mpicc) or .sh; other files are the program’s input, in its work directory.'),
      picker);
    const list = h('ul.file-list#run-file-list');
    const filesError = h('p.field-error#run-files-error', { hidden: true });

    const mk = (spec) => {
      const input = h('input', { id: spec.id, name: spec.name, inputmode: 'numeric', autocomplete: 'off', value: String(spec.value) });
      return { spec, input, field: field(spec.label, input, `${spec.help}, ${int(spec.min)} to ${int(spec.max)}.`) };
    };
    const numbers = NUMBERS.map(mk);
    const splits = SPLIT.map(mk);
    const args = h('textarea#run-args', { name: 'args', rows: 3, spellcheck: 'false', autocapitalize: 'none' });
    const argsField = field('Arguments', args, 'One argument per line (up to 64, 4096 bytes together).');
    const combine = h('select#run-combine', { name: 'combine' });
    const combineField = field('Combine', combine, 'concat joins the units’ stdout in order; sum, min and max read each as a JSON number or flat object of numbers.');
    const splitOn = h('input#run-split-on', { type: 'checkbox', name: 'split' });
    const splitBox = h('div.form-grid#run-split', { hidden: true }, splits.map((s) => s.field), combineField);
    const grantNote = h('div.box.notice#run-grant', { role: 'status', hidden: mayRun },
      'Your account may not run programs yet: an administrator can allow it on the Users page (or with tessera users grant ',
      h('code', me.username || 'NAME'), ' programs).');
    const status = h('p.muted#run-status', { role: 'status' });
    const serverError = errorBox();
    serverError.id = 'run-error';
    const button = h('button#run-button', { type: 'submit' }, 'Upload and run');

    function drawFiles() {
      fill(list, files.map((f, i) => {
        const lang = langOf(f.file.name);
        const role = f.main ? `the program (${LANG_WORDS[lang]})` : 'input file';
        const makeMain = h('button.small.secondary.make-main', { type: 'button', hidden: f.main || !lang }, 'Run this one');
        makeMain.addEventListener('click', () => { files.forEach((g, j) => { g.main = j === i; }); drawFiles(); });
        const remove = h('button.small.secondary.danger-text.remove', { type: 'button' }, 'Remove');
        remove.addEventListener('click', () => {
          files.splice(i, 1);
          if (!files.some((g) => g.main)) { const m = files.find((g) => langOf(g.file.name)); if (m) m.main = true; }
          drawFiles();
        });
        return h('li', { dataset: { name: f.file.name, main: f.main ? 'yes' : 'no' } },
          h('span.file-name', f.file.name), h('span.muted', ` ${bytes(f.file.size)} · ${role}`),
          h('span.file-actions', makeMain, remove));
      }));
      checkFiles(false);
    }

    function addFiles(fileList) {
      for (const file of fileList) {
        const same = files.findIndex((f) => f.file.name === file.name);
        if (same >= 0) files.splice(same, 1, { file, main: files[same].main });
        else files.push({ file, main: false });
      }
      if (!files.some((f) => f.main)) { const m = files.find((f) => langOf(f.file.name)); if (m) m.main = true; }
      drawFiles();
    }

    // The files against the contract's rules; the message, or null.
    function checkFiles(mark) {
      let msg = null;
      const bad = files.find((f) => !NAME_RE.test(f.file.name));
      const big = files.find((f) => f.file.size > FILE_MAX);
      if (!files.some((f) => f.main)) msg = files.length ? 'None of these is a program: it ends in .py, .c or .sh.' : 'Choose your program.';
      else if (bad) msg = `“${bad.file.name}” cannot be a file name here: 1 to 64 letters, digits, dots, underscores or hyphens, not starting with a dot. Rename it.`;
      else if (big) msg = `${big.file.name} has ${bytes(big.file.size)}: a file may have 1 MiB at most.`;
      else if (files.length > JOB_FILES) msg = `${files.length} files: a job has 16 at most, the program included.`;
      // While choosing, only a problem with the files chosen is shown; on submit, any.
      const show = !!msg && (mark || files.length > 0);
      setText(filesError, show ? msg : '');
      filesError.hidden = !show;
      return msg;
    }

    function readNumber(n, mark) {
      const text = n.input.value.trim();
      const v = text === '' ? n.spec.value : parseCount(text);
      let msg = null;
      if (v === null) msg = 'A whole number, please.';
      else if (v < n.spec.min || v > n.spec.max) msg = `From ${int(n.spec.min)} to ${int(n.spec.max)}.`;
      if (mark) n.field.error(msg);
      return msg ? null : v;
    }

    // The job's body, or null after marking what is wrong.
    function collect(mark) {
      let ok = !checkFiles(mark);
      const params = {};
      for (const n of numbers) {
        const v = readNumber(n, mark);
        if (v === null) ok = false; else params[n.spec.name] = Number(v);
      }
      const argv = args.value === '' ? [] : args.value.replace(/\r/g, '').split('\n');
      while (argv.length && argv[argv.length - 1] === '') argv.pop();
      const argBytes = argv.reduce((a, x) => a + new TextEncoder().encode(x).length, 0);
      const argMsg = argv.length > ARGS_MAX ? `${argv.length} arguments: 64 at most.` : argBytes > ARGS_BYTES ? `${argBytes} bytes of arguments: 4096 at most.` : null;
      if (mark) argsField.error(argMsg);
      if (argMsg) ok = false;
      params.args = argv;
      const body = { kernel: 'program', params, units: 1 };
      if (splitOn.checked) {
        for (const n of splits) {
          const v = readNumber(n, mark);
          if (v === null) ok = false;
          else if (n.spec.job) body[n.spec.name] = Number(v);
          else params[n.spec.name] = Number(v);
        }
        params.combine = combine.value;
        if (body.quorum > body.replication) {
          if (mark) splits.find((n) => n.spec.name === 'quorum').field.error('Cannot exceed the replication.');
          ok = false;
        }
      } else params.space = 1;
      return ok ? body : null;
    }

    async function submit(ev) {
      ev.preventDefault();
      serverError.show(null);
      const body = collect(true);
      if (!body) {
        const bad = document.querySelector('#main [aria-invalid="true"]');
        if (bad) bad.focus();
        return;
      }
      button.disabled = true;
      try {
        const main = files.find((f) => f.main);
        const ordered = [main, ...files.filter((f) => !f.main)];
        const refs = [];
        for (const [i, f] of ordered.entries()) {
          setText(status, `Uploading ${f.file.name} (${i + 1} of ${ordered.length})…`);
          const [mine, up] = await Promise.all([sha256Hex(f.file), putFile(f.file)]);
          if (up.sha256 !== mine) throw new Error(`The server stored ${f.file.name} under another hash (${up.sha256}): try again.`);
          refs.push({ name: f.file.name, sha256: mine });
        }
        body.params.main = refs[0];
        body.params.files = refs.slice(1);
        setText(status, 'Submitting…');
        const job = await post('/jobs', body);
        setText(status, '');
        toast(`Job ${job.id} submitted.`);
        ctx.go(`/jobs/${job.id}`);
      } catch (e) {
        setText(status, '');
        serverError.show(e, e.status === 403 ? 'You may not run programs.' : 'The program was not run.');
        serverError.scrollIntoView({ block: 'nearest' });
      } finally {
        button.disabled = false;
      }
    }

    picker.addEventListener('change', () => { addFiles(picker.files); picker.value = ''; });
    for (const t of ['dragenter', 'dragover']) {
      drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.dataset.over = 'yes'; });
    }
    drop.addEventListener('dragleave', () => { delete drop.dataset.over; });
    drop.addEventListener('drop', (ev) => {
      ev.preventDefault();
      delete drop.dataset.over;
      if (ev.dataTransfer && ev.dataTransfer.files) addFiles(ev.dataTransfer.files);
    });
    splitOn.addEventListener('change', () => { splitBox.hidden = !splitOn.checked; });

    const form = h('form#run-form', { onsubmit: submit, novalidate: true },
      grantNote,
      h('section.card', h('h2', 'Files'), drop, list, filesError),
      h('section.card', h('h2', 'How to run it'), h('div.form-grid', numbers.map((n) => n.field)), argsField),
      h('section.card', h('label.check', splitOn, ' Split into units (the program runs once per unit, with TESSERA_UNIT_START, TESSERA_UNIT_COUNT and TESSERA_SPACE in its environment)'), splitBox),
      serverError, status, h('div.actions', button));
    const el = h('div', pageHeader('Run a program'), form);

    // Limits and choices as the server describes its program kind.
    async function refresh() {
      if (kind) return;
      const kinds = await loadKinds();
      kind = kinds.find((k) => k.name === 'program');
      if (!kind) {
        serverError.show({ words: 'This server runs no programs (GET /api/v1/kernels lists no kind “program”).' });
        button.disabled = true;
        return;
      }
      for (const n of [...numbers, ...splits]) {
        const p = param(kind, n.spec.name);
        if (!p) continue;
        if (bigBound(p.min) !== null) n.spec.min = bigBound(p.min);
        if (bigBound(p.max) !== null) n.spec.max = bigBound(p.max);
        if (bigBound(p.default) !== null && n.spec.name !== 'space') {
          n.spec.value = bigBound(p.default);
          n.input.value = String(n.spec.value);
        }
        const help = n.field.querySelector('.help');
        if (help) setText(help, `${p.help ? p.help.charAt(0).toUpperCase() + p.help.slice(1) : n.spec.help}, ${int(n.spec.min)} to ${int(n.spec.max)}.`);
      }
      const c = param(kind, 'combine');
      const choices = (c && c.choices) || ['concat', 'sum', 'min', 'max'];
      fill(combine, choices.map((x) => h('option', { value: x, selected: x === ((c && c.default) || 'concat') }, x)));
    }
    return { el, refresh, interval: 0 };
  },
};
