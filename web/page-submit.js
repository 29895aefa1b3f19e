// Submit: a kernel, its parameters and the job's options, checked here with the server's own
// rules (docs/API.md) and again by the server, whose error is shown in words.
import { get, post } from './api.js';
import { h, setText, si, int, duration } from './dom.js';
import { pageHeader, errorBox, field, toast } from './ui.js';

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

// Parameters of each kernel, with the server's limits (kernels/kern_*.c). space(params) is the
// size of the job's index space; check(params) catches what spans two fields.
const KERNELS = {
  montecarlo_pi: {
    label: 'Monte Carlo π (montecarlo_pi)',
    params: [
      { name: 'samples', label: 'Samples', min: 1n, max: 10n ** 18n, value: '1e9',
        help: 'Points drawn, 1 to 10^18 (write 2e8 or 200_000_000).' },
      { name: 'seed', label: 'Seed', min: 0n, max: 2n ** 63n - 1n, value: '1',
        help: 'The same seed gives the same answer, bit for bit.' },
    ],
    space: (p) => p.samples,
    unit: 'samples',
  },
  prime_count: {
    label: 'Count primes (prime_count)',
    params: [
      { name: 'from', label: 'From', min: 0n, max: 10n ** 14n, value: '0', help: 'First number of the range.' },
      { name: 'to', label: 'To', min: 1n, max: 10n ** 14n, value: '1e9', help: 'End of the range (not included), at most 10^14.' },
    ],
    space: (p) => p.to - p.from,
    check: (p) => (p.to <= p.from ? ['to', 'Must be above From.'] : null),
    unit: 'numbers',
  },
  collatz: {
    label: 'Longest Collatz chain (collatz)',
    params: [
      { name: 'from', label: 'From', min: 1n, max: 2n ** 63n - 2n, value: '1', help: 'First number of the range, at least 1.' },
      { name: 'to', label: 'To', min: 2n, max: 2n ** 63n - 1n, value: '1e7', help: 'End of the range (not included).' },
    ],
    space: (p) => p.to - p.from,
    check: (p) => (p.to <= p.from ? ['to', 'Must be above From.'] : null),
    unit: 'numbers',
  },
};

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

function numberInput(spec) {
  return h('input', { id: `submit-${spec.name}`, name: spec.name, value: spec.value, inputmode: 'numeric', autocomplete: 'off', spellcheck: 'false' });
}

export default {
  title: 'Submit',
  render(ctx) {
    const kernel = h('select#submit-kernel', { name: 'kernel' },
      Object.entries(KERNELS).map(([name, k]) => h('option', { value: name }, k.label)));
    const paramBox = h('div.form-grid');
    const optionInputs = OPTIONS.map((o) => ({ spec: o, input: numberInput(o) }));
    optionInputs.forEach((o) => { o.field = field(o.spec.label, o.input, o.spec.help); });
    const adaptive = h('input#submit-adaptive', { type: 'checkbox', name: 'adaptive' });
    const preview = h('p.muted#submit-preview');
    const serverError = errorBox();
    serverError.id = 'submit-error';
    const button = h('button#submit-button', { type: 'submit' }, 'Submit job');
    let paramInputs = [];
    let rate = 0;

    function showParams() {
      const k = KERNELS[kernel.value];
      paramInputs = k.params.map((p) => {
        const input = numberInput(p);
        return { spec: p, input, field: field(p.label, input, p.help) };
      });
      paramBox.replaceChildren(...paramInputs.map((p) => p.field));
      for (const p of paramInputs) p.input.addEventListener('input', onInput);
      onInput();
    }

    // Checks every field; returns the request body, or null after marking the fields in error.
    function collect(mark) {
      const body = { kernel: kernel.value, params: {} };
      let ok = true;
      const take = (p) => {
        const text = p.input.value.trim();
        let msg = null, v = null;
        if (text === '') {
          if (!p.spec.optional) msg = 'Required.';
        } else {
          v = parseCount(text);
          if (v === null) msg = 'A whole number, please.';
          else if (v < p.spec.min || v > p.spec.max) msg = `From ${int(p.spec.min)} to ${int(p.spec.max)}.`;
        }
        if (mark) p.field.error(msg);
        if (msg) ok = false;
        return msg ? null : v;
      };
      for (const p of paramInputs) {
        const v = take(p);
        if (v !== null) body.params[p.spec.name] = v;
      }
      const cross = ok && KERNELS[kernel.value].check && KERNELS[kernel.value].check(body.params);
      if (cross) {
        if (mark) paramInputs.find((p) => p.spec.name === cross[0]).field.error(cross[1]);
        ok = false;
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
      const k = KERNELS[kernel.value];
      if (!body) { setText(preview, ''); return; }
      const space = k.space(body.params);
      const rep = body.replication || 1;
      const work = Number(space) * rep;
      const eta = rate > 0 ? `; at the grid's current ${si(rate)}/s, about ${duration(work / rate)}` : '';
      let split = `${si(space)} ${k.unit} in units of the kernel's default size`;
      if (body.units) {
        const n = BigInt(body.units) > space ? space : BigInt(body.units);
        split = `${int(n)} units of about ${si((space + n - 1n) / n)} ${k.unit}`;
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
    showParams();

    const form = h('form.card#submit-form', { onsubmit: submit, novalidate: true },
      h('label.field', h('span.field-label', 'Kernel'), kernel),
      paramBox,
      h('h2', 'Options'),
      h('div.form-grid', optionInputs.map((o) => o.field)),
      h('label.check', adaptive, ' Adaptive replication (trusted nodes get single replicas, with spot checks)'),
      preview, serverError,
      h('div.actions', button));
    const el = h('div', pageHeader('Submit a job'), form);

    async function refresh() {
      const st = await get('/stats');
      rate = Number(st.rate && st.rate.indices_per_s) || 0;
      onInput();
    }
    return { el, refresh, interval: 5000 };
  },
};
