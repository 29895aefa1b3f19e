// Submit: a kernel, its parameters and the job's options. The kernels, their fields and their
// checks are the server's own description (GET /api/v1/kernels); the server checks again, and
// its error is shown in words. Programs have their own page (page-run.js).
import { get, post } from './api.js';
import { h, setText, si, int, duration } from './dom.js';
import { pageHeader, errorBox, field, toast } from './ui.js';
import { loadKinds, takesFiles, bigBound, rangeWords, labelOf } from './kinds.js';

// "2e8", "200_000_000", "200 000 000", "2×10^8", "1.5e9" -> BigInt; anything else -> null.
export function parseCount(text) {
  const t = String(text).trim().replace(/[\s_,]/g, '').replace(/[×x*]10\^/i, 'e').replace(/^10\^/, '1e');
  let m = /^\d+$/.exec(t);
  if (m) return BigInt(t);
  m = /^(\d+)(?:\.(\d+))?e\+?(\d{1,2})$/i.exec(t);
  if (!m) return null;
  const frac = m[2] || '';
  const exp = Number(m[3]) - frac.length;
  if (exp < 0) {
    // 1.25e1 is 12.5: only whole numbers are counts.
    if (/[^0]/.test(frac.slice(frac.length + exp))) return null;
    return BigInt(m[1] + frac.slice(0, frac.length + exp));
  }
  return BigInt(m[1] + frac) * 10n ** BigInt(exp);
}

const OPTIONS = [
  { name: 'units', label: 'Units', min: 1n, max: 1000000n, value: '', optional: true,
    help: 'How many work units, 1 to 10^6 (empty: the kernel’s default size).' },
  { name: 'replication', label: 'Replication', min: 1n, max: 16n, value: '1',
    help: 'Replicas of each unit on distinct nodes, 1 to 16.' },
  { name: 'quorum', label: 'Quorum', min: 1n, max: 16n, value: '1',
    help: 'Matching replicas that make a unit valid, 1 to the replication.' },
  { name: 'deadline_s', label: 'Lease deadline (s)', min: 2n, max: 604800n, value: '600',
    help: 'Seconds a node has for a unit before it is reissued, 2 to 604800.' },
];

// A field spec from a parameter of GET /kernels: its input, how its text is read and checked.
function specOf(kind, p) {
  const ex = kind.example && kind.example[p.name] !== undefined ? kind.example[p.name] : p.default;
  const range = rangeWords(p);
  const help = [p.help ? `${p.help.charAt(0).toUpperCase()}${p.help.slice(1)}` : '',
    range ? `${range}` : '', p.default !== undefined && p.default !== null ? `default ${p.default}` : '']
    .filter(Boolean).join('; ');
  return {
    name: p.name, label: labelOf(p.name), type: p.type, choices: p.choices || [],
    min: p.type === 'integer' ? bigBound(p.min) : p.min, max: p.type === 'integer' ? bigBound(p.max) : p.max,
    value: ex === undefined || ex === null ? '' : String(ex), optional: !p.required,
    help: help ? `${help}.` : '',
  };
}

function inputOf(spec) {
  if (spec.type === 'choice') {
    return h('select', { id: `submit-${spec.name}`, name: spec.name },
      spec.choices.map((c) => h('option', { value: c, selected: String(c) === spec.value }, c)));
  }
  const numeric = spec.type === 'integer' || spec.type === undefined;
  return h('input', { id: `submit-${spec.name}`, name: spec.name, value: spec.value, inputmode: numeric ? 'numeric' : 'text', autocomplete: 'off', spellcheck: 'false' });
}

// Reads one field: [value or null, error message or null].
function readField(spec, text) {
  text = text.trim();
  if (text === '') return [null, spec.optional ? null : 'Required.'];
  if (spec.type === 'number') {
    const v = Number(text);
    if (!Number.isFinite(v)) return [null, 'A number, please.'];
    if ((spec.min !== undefined && spec.min !== null && v < Number(spec.min)) || (spec.max !== undefined && spec.max !== null && v > Number(spec.max))) {
      return [null, `From ${spec.min} to ${spec.max}.`];
    }
    return [v, null];
  }
  if (spec.type === 'string' || spec.type === 'choice') return [text, null];
  if (spec.type === 'strings') return [text.split('\n').map((x) => x.trim()).filter(Boolean), null];
  const v = parseCount(text);
  if (v === null) return [null, 'A whole number, please.'];
  if ((spec.min !== null && spec.min !== undefined && v < spec.min) || (spec.max !== null && spec.max !== undefined && v > spec.max)) {
    const lo = spec.min ?? '…', hi = spec.max ?? '…';
    return [null, `From ${int(lo)} to ${int(hi)}.`];
  }
  return [v, null];
}

// The size of the job's index space, where the parameters say it (for the preview).
function spaceOf(params) {
  if (typeof params.samples === 'bigint') return [params.samples, 'samples'];
  if (typeof params.from === 'bigint' && typeof params.to === 'bigint') return [params.to - params.from, 'numbers'];
  if (typeof params.space === 'bigint') return [params.space, 'indices'];
  return [null, 'indices'];
}

export default {
  title: 'Submit',
  render(ctx) {
    const kernel = h('select#submit-kernel', { name: 'kernel' });
    const paramBox = h('div.form-grid');
    const optionInputs = OPTIONS.map((o) => ({ spec: o, input: inputOf(o) }));
    optionInputs.forEach((o) => { o.field = field(o.spec.label, o.input, o.spec.help); });
    const adaptive = h('input#submit-adaptive', { type: 'checkbox', name: 'adaptive' });
    const preview = h('p.muted#submit-preview');
    const about = h('p.muted#submit-about');
    const serverError = errorBox();
    serverError.id = 'submit-error';
    const button = h('button#submit-button', { type: 'submit' }, 'Submit job');
    let kinds = [], paramInputs = [];
    let rate = 0;

    const kindOf = () => kinds.find((k) => k.name === kernel.value);

    function showParams() {
      const k = kindOf();
      if (!k) return;
      paramInputs = (k.params || []).map((p) => {
        const spec = specOf(k, p);
        const input = inputOf(spec);
        return { spec, input, field: field(spec.label, input, spec.help) };
      });
      paramBox.replaceChildren(...paramInputs.map((p) => p.field));
      for (const p of paramInputs) p.input.addEventListener('input', onInput);
      setText(about, k.result ? `Result: ${k.result}.` : '');
      onInput();
    }

    // Checks every field; returns the request body, or null after marking the fields in error.
    function collect(mark) {
      const body = { kernel: kernel.value, params: {} };
      let ok = !!kindOf();
      const take = (p) => {
        const [v, msg] = readField(p.spec, p.input.value);
        if (mark) p.field.error(msg);
        if (msg) ok = false;
        return msg ? null : v;
      };
      for (const p of paramInputs) {
        const v = take(p);
        if (v !== null) body.params[p.spec.name] = v;
      }
      for (const o of optionInputs) {
        const v = take(o);
        if (v !== null) body[o.spec.name] = Number(v);
      }
      if (body.quorum && body.replication && body.quorum > body.replication) {
        if (mark) optionInputs.find((o) => o.spec.name === 'quorum').field.error('Cannot exceed the replication.');
        ok = false;
      }
      if (adaptive.checked) body.adaptive = true;
      return ok ? body : null;
    }

    function onInput() {
      const body = collect(false);
      if (!body) { setText(preview, ''); return; }
      const [space, noun] = spaceOf(body.params);
      if (space === null || space <= 0n) { setText(preview, ''); return; }
      const rep = body.replication || 1;
      const work = Number(space) * rep;
      const eta = rate > 0 ? `; at the grid's current ${si(rate)}/s, about ${duration(work / rate)}` : '';
      let split = `${si(space)} ${noun} in units of the kernel's default size`;
      if (body.units) {
        const n = BigInt(body.units) > space ? space : BigInt(body.units);
        split = `${int(n)} units of about ${si((space + n - 1n) / n)} ${noun}`;
      }
      setText(preview, `${split}, ${rep}× replicated${eta}.`);
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
        const job = await post('/jobs', body);
        toast(`Job ${job.id} submitted.`);
        ctx.go(`/jobs/${job.id}`);
      } catch (e) {
        serverError.show(e, 'The server refused the job.');
        serverError.scrollIntoView({ block: 'nearest' });
      } finally {
        button.disabled = false;
      }
    }

    kernel.addEventListener('change', showParams);
    for (const o of optionInputs) o.input.addEventListener('input', onInput);
    adaptive.addEventListener('change', onInput);

    const form = h('form.card#submit-form', { onsubmit: submit, novalidate: true },
      h('label.field', h('span.field-label', 'Kernel'), kernel),
      about,
      paramBox,
      h('h2', 'Options'),
      h('div.form-grid', optionInputs.map((o) => o.field)),
      h('label.check', adaptive, ' Adaptive replication (trusted nodes get single replicas, with spot checks)'),
      preview, serverError,
      h('div.actions', button));
    const el = h('div', pageHeader('Submit a job', h('a.button.secondary#submit-run-link', { href: '#/run' }, 'Run your own program')), form);

    async function refresh() {
      if (!kinds.length) {
        // The kernels are the server's: the list and the fields follow its description.
        kinds = (await loadKinds()).filter((k) => !takesFiles(k));
        kernel.replaceChildren(...kinds.map((k) => h('option', { value: k.name }, k.title ? `${k.title} (${k.name})` : k.name)));
        showParams();
      }
      const st = await get('/stats');
      rate = Number(st.rate && st.rate.indices_per_s) || 0;
      onInput();
    }
    return { el, refresh, interval: 5000 };
  },
};
