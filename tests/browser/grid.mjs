// A real Tessera grid for the browser test: tessera-server and tessera-client processes on
// 127.0.0.1 in a temp dir, and a small HTTPS client for the checks the test makes beside the
// page. Every process started here is stopped by Grid.stop().
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

export const ADMIN_PASSWORD = 'admin-password-for-browser-tests';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value; throws with `what` after timeoutMs.
export async function until(what, fn, timeoutMs = 30000, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(stepMs);
  }
}

// Runs a program to completion; resolves to {code, out}.
export function run(bin, args, { env, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, signal, out });
    });
  });
}

// Should the test itself be stopped (ctest's timeout, Ctrl-C), no server or client outlives it,
// and no temp dir stays behind.
const live = new Set();
const dirs = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(128 + os.constants.signals[sig]));

export class Grid {
  constructor(binDir) {
    this.bin = (name) => path.join(binDir, name);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-browser-'));
    dirs.add(this.dir);
    this.data = path.join(this.dir, 'data');
    this.procs = []; // {name, child, log, exited}
  }

  // Starts a long-running program with its output in DIR/<name>.log.
  start(name, bin, args) {
    const log = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(log, 'a');
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const proc = { name, child, log, exited: null };
    live.add(child);
    child.on('exit', (code, signal) => {
      proc.exited = { code, signal };
      live.delete(child);
    });
    this.procs.push(proc);
    return proc;
  }

  async startServer() {
    const init = await run(this.bin('tessera-server'), ['init', '--data', this.data],
      { env: { TESSERA_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    if (init.code !== 0) throw new Error(`tessera-server init: ${init.out}`);
    this.server = this.start('server', this.bin('tessera-server'),
      ['run', '--data', this.data, '--listen', '127.0.0.1:0']);
    const portFile = path.join(this.data, 'server.port');
    this.port = await until('the server port', () => {
      if (this.server.exited) throw new Error(`the server exited: ${fs.readFileSync(this.server.log, 'utf8')}`);
      return fs.existsSync(portFile) && Number(fs.readFileSync(portFile, 'utf8').trim());
    }, 20000);
    this.url = `https://127.0.0.1:${this.port}`;
    await until('/healthz', async () => (await this.request('GET', '/healthz')).status === 200, 20000);
    this.adminToken = await this.login('admin', ADMIN_PASSWORD);
  }

  // One HTTPS request to the server (self-signed on loopback: not verified here; the clients
  // pin it). Resolves to {status, body}.
  request(method, p, { token, body } = {}) {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(`${this.url}${p}`, {
        method,
        rejectUnauthorized: false,
        headers: {
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        },
        timeout: 10000,
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let json = null;
          try { json = text ? JSON.parse(text) : null; } catch { json = null; }
          resolve({ status: res.statusCode, body: json, text });
        });
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  async api(method, p, body, token = this.adminToken) {
    const r = await this.request(method, `/api/v1${p}`, { token, body });
    if (r.status >= 400) throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
    return r.body;
  }

  async login(username, password) {
    return (await this.api('POST', '/login', { username, password }, null)).token;
  }

  // Enrolls a node with `command` (the page's "tessera-client enroll URL TOKEN", or one made
  // here) and starts it with one thread, and with `runArgs` (e.g. ['--programs']).
  async enrollAndRun(name, command, runArgs = []) {
    const state = path.join(this.dir, name);
    const words = command.trim().split(/\s+/);
    if (words[0] !== 'tessera-client' || words[1] !== 'enroll' || words.length !== 4) {
      throw new Error(`not an enroll command: ${command}`);
    }
    const r = await run(this.bin('tessera-client'), [...words.slice(1), '--state', state, '--name', name]);
    if (r.code !== 0) throw new Error(`enroll ${name}: ${r.out}`);
    return this.start(name, this.bin('tessera-client'), ['run', '--state', state, '--threads', '1', ...runArgs]);
  }

  async enrollCommand(uses = 1) {
    const t = await this.api('POST', '/enroll-tokens', { uses, ttl_s: 3600 });
    return t.command || `tessera-client enroll ${this.url} ${t.token}`;
  }

  // SIGTERM every process (clients first, the server last), SIGKILL after 5 s.
  async stop() {
    for (const p of [...this.procs].reverse()) {
      if (p.exited) continue;
      p.child.kill('SIGTERM');
      const end = Date.now() + 5000;
      while (!p.exited && Date.now() < end) await sleep(50);
      if (!p.exited) p.child.kill('SIGKILL');
      while (!p.exited) await sleep(20);
    }
  }

  logs() {
    return this.procs.map((p) => `--- ${p.name}.log\n${fs.existsSync(p.log) ? fs.readFileSync(p.log, 'utf8').slice(-4000) : ''}`).join('\n');
  }

  remove() {
    fs.rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }
}
