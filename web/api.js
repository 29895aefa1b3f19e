// The JSON API (docs/API.md), the same one the CLI uses. The page keeps one secret: the session
// token, in sessionStorage (gone when the tab closes), sent as `Authorization: Bearer`.

const TOKEN_KEY = 'tessera.session';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.code = code;
  }

  // The error in words, as a person reads it.
  get words() {
    if (this.status === 0) return `Cannot reach the server: ${this.message}`;
    const what = {
      400: 'Bad request', 401: 'Not logged in', 403: 'Forbidden', 404: 'Not found',
      409: 'Conflict', 413: 'Too large', 429: 'Too many requests', 500: 'Server error',
      503: 'Unavailable',
    }[this.status] || `HTTP ${this.status}`;
    return `${what} (${this.status}): ${this.message}`;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(t) { sessionStorage.setItem(TOKEN_KEY, t); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

let unauthorizedHandler = null;
// Called with the ApiError when an authenticated request is answered 401 (expired, revoked).
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

// Counts and ranges may pass 2^53 (samples go to 10^18, collatz ranges to 2^63): keep those
// exact as BigInt.
// min, max and default describe such parameters (GET /kernels); value is a program's summed result.
const BIG_KEYS = new Set(['samples', 'seed', 'hits', 'from', 'to', 'count', 'n', 'min', 'max', 'default', 'value', 'space']);
function reviver(key, value, context) {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && BIG_KEYS.has(key) &&
      context && /^\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

// BigInt values go out as exact JSON integers.
function replacer(key, value) {
  if (typeof value === 'bigint') {
    if (Number.isSafeInteger(Number(value))) return Number(value);
    if (typeof JSON.rawJSON === 'function') return JSON.rawJSON(value.toString());
    throw new ApiError(400, 'bad_request', `${key} is too large for this browser`);
  }
  return value;
}

// One request. Resolves to the parsed JSON answer; rejects with an ApiError.
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body, replacer);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method, headers, body: payload, cache: 'no-store', credentials: 'omit',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'network', e.message || String(e));
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text, reviver); } catch { data = null; }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || res.statusText || 'no message');
    if (res.status === 401 && token && path !== '/login' && unauthorizedHandler) unauthorizedHandler(e);
    throw e;
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const del = (path) => api('DELETE', path);

// Raw bytes either way, with the same token and errors: users' files (PUT /files answers JSON)
// and programs' outputs (GET /jobs/{id}/output answers the bytes; an error is JSON).
async function raw(method, path, body) {
  const headers = {};
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/octet-stream';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'network', e.message || String(e));
  }
  if (!res.ok) {
    let err = {};
    try { err = (JSON.parse(await res.text()) || {}).error || {}; } catch { err = {}; }
    const e = new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || res.statusText || 'no message');
    if (res.status === 401 && token && unauthorizedHandler) unauthorizedHandler(e);
    throw e;
  }
  return res;
}

// Uploads a file's bytes (a File or Blob); resolves to {sha256, size}.
export async function putFile(blob) {
  const res = await raw('PUT', '/files', blob);
  return JSON.parse(await res.text());
}

// The raw answer of a GET as a Blob.
export async function getBlob(path) {
  return (await raw('GET', path)).blob();
}
