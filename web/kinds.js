// The kernels and program kinds the server runs, as it describes them (GET /api/v1/kernels):
// the job form's kernel list and fields, and the program page's limits, come from here.
import { get } from './api.js';

let cached = null;

// A server without GET /kernels (404: built before issue 11) has these three kernels, as the
// form knew them then.
const LEGACY = [
  { name: 'montecarlo_pi', alias: 'pi', title: 'Monte Carlo π',
    params: [{ name: 'samples', type: 'integer', min: 1, max: 10n ** 18n, required: true, help: 'points drawn' },
      { name: 'seed', type: 'integer', min: 0, max: 2n ** 63n - 1n, default: 0, help: 'the same seed gives the same answer, bit for bit' }],
    example: { samples: '1e9', seed: 1 } },
  { name: 'prime_count', alias: 'primes', title: 'Count primes',
    params: [{ name: 'from', type: 'integer', min: 0, max: 10n ** 14n, required: true, help: 'first number of the range' },
      { name: 'to', type: 'integer', min: 1, max: 10n ** 14n, required: true, help: 'end of the range (not included)' }],
    example: { from: 0, to: '1e9' } },
  { name: 'collatz', alias: 'collatz', title: 'Longest Collatz chain',
    params: [{ name: 'from', type: 'integer', min: 1, max: 2n ** 63n - 2n, required: true, help: 'first number of the range' },
      { name: 'to', type: 'integer', min: 2, max: 2n ** 63n - 1n, required: true, help: 'end of the range (not included)' }],
    example: { from: 1, to: '1e7' } },
];

// Resolves to the kinds array; asked once per page load (a failure is asked again next time).
export function loadKinds() {
  if (!cached) {
    cached = get('/kernels').then((r) => (r && Array.isArray(r.kernels) ? r.kernels : []),
      (e) => { if (e.status === 404) return LEGACY; throw e; });
    cached.catch(() => { cached = null; });
  }
  return cached;
}

// Whether a kind takes files (the program kind): it has its own page, not the job form.
export function takesFiles(kind) {
  return (kind.params || []).some((p) => p.type === 'file' || p.type === 'files');
}

export function param(kind, name) {
  return (kind && (kind.params || []).find((p) => p.name === name)) || null;
}

// A bound of the description as BigInt (integers) or Number.
export function bigBound(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v;
  const n = Number(v);
  return Number.isFinite(n) ? BigInt(Math.round(n)) : null;
}

// "1 to 10^18", "at least 0", "" for a parameter's range, in words.
export function rangeWords(p) {
  const fmt = (v) => {
    const b = bigBound(v);
    if (b === null) return String(v);
    const s = b.toString();
    const m = /^1(0+)$/.exec(s);
    if (m && m[1].length >= 6) return `10^${m[1].length}`;
    return b.toLocaleString('en-US');
  };
  const lo = p.min !== undefined && p.min !== null, hi = p.max !== undefined && p.max !== null;
  if (lo && hi) return `${fmt(p.min)} to ${fmt(p.max)}`;
  if (lo) return `at least ${fmt(p.min)}`;
  if (hi) return `at most ${fmt(p.max)}`;
  return '';
}

// "Samples" from "samples", "Time s" from "time_s".
export function labelOf(name) {
  const t = String(name).replace(/_/g, ' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
}
