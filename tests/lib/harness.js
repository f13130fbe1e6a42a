// Integration-test harness for Linkward: real server processes, real sockets,
// only 127.0.0.1. Everything that waits is bounded in time; nothing sleeps in
// place of synchronisation (the only pauses are between polls of a condition
// with a deadline, in pollUntil).
//
// Contracts: docs/api.md (HTTP/WebSocket, signed messages), docs/cli.md (CLI).

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { blake2b } from './blake2b.js';
import * as proof from '../../web/js/proof.mjs';

export { blake2b };

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');

// ---------------------------------------------------------------------------
// Binary, timeouts, temporary files, process bookkeeping

const SANITIZE = /^(1|on|true|yes)$/i.test(process.env.LINKWARD_SANITIZE || '');
/** Multiplier for every timeout (sanitizer builds are several times slower). */
export const SCALE = Number(process.env.LINKWARD_TIMEOUT_SCALE || (SANITIZE ? 4 : 1));
export const T = (ms) => Math.round(ms * SCALE);

export function linkwardBin() {
  const candidates = [process.env.LINKWARD_BIN, path.join(REPO, 'build', 'linkward')].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(c)) return c;
  throw new Error(`linkward binary not found (set LINKWARD_BIN); tried: ${candidates.join(', ')}`);
}

const tempDirs = new Set();
const children = new Set();

/** A fresh private directory under os.tmpdir(), removed when the test process exits. */
export function tempDir(prefix = 'lw-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

let cliHome = null;
function cliEnv(extra = {}) {
  // CLI processes get a throw-away HOME so nothing lands in the real ~/.config.
  if (!cliHome) cliHome = tempDir('lw-home-');
  // LINKWARD_NETWORK=none: the CLI does not report this machine's connection
  // (it would differ from machine to machine); tests that want it set it.
  return { ...process.env, HOME: cliHome, XDG_CONFIG_HOME: path.join(cliHome, '.config'), LINKWARD_NETWORK: 'none', ...extra };
}

process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
  if (!process.env.LINKWARD_KEEP_TMP) {
    for (const d of tempDirs) {
      try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => process.exit(130));
}

function track(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}

/** Resolves with {code, signal} once proc has exited (immediately if it already has). */
function exitPromise(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode });
      return;
    }
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Races promise against a timer; the error names what we waited for. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits ms milliseconds. Only for pacing deliberate activity in a bounded loop
 * (e.g. "use the session every 300 ms"), never in place of waiting for an event.
 */
export const tick = (ms) => pause(ms);

/**
 * Polls fn (sync or async) until it returns a truthy value, at most `timeout`
 * ms and at most `maxTries` times, pausing `interval` ms between tries.
 * Returns that value; throws with the last value seen on timeout.
 */
export async function pollUntil(fn, { timeout = 5000, interval = 50, maxTries = 10000, what = 'condition' } = {}) {
  const deadline = performance.now() + T(timeout);
  let last;
  for (let i = 0; i < maxTries; i++) {
    last = await fn();
    if (last) return last;
    if (performance.now() >= deadline) break;
    await pause(interval);
  }
  throw new Error(`gave up waiting for ${what} after ${T(timeout)} ms; last value: ${safeJson(last)}`);
}

function safeJson(v) {
  try { return JSON.stringify(v)?.slice(0, 2000); } catch { return String(v); }
}

/** Elapsed-time helper: const t = stopwatch(); ... t() -> ms (float). */
export function stopwatch() {
  const t0 = performance.now();
  return () => performance.now() - t0;
}

/**
 * A test CA and a server certificate it signed for 127.0.0.1 and localhost
 * (EC P-256, two days), made with openssl in a fresh temp dir:
 * {dir, ca, cert, key} (paths).
 */
export function makeTestCerts() {
  const dir = tempDir('lw-tls-');
  const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key',
    '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Linkward test CA']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key',
    '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { dir, ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

// ---------------------------------------------------------------------------
// Line streams (stdout of servers and CLIs)

class LineStream {
  constructor(stream) {
    this.lines = [];          // raw text lines
    this.cursor = 0;          // waitFor consumes in order
    this.waiters = [];
    this.ended = false;
    this.endReason = null;
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.push(buf.slice(0, i).replace(/\r$/, ''));
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => {
      if (buf.length) this.push(buf);
      buf = '';
      this.finish('stream ended');
    });
  }

  push(line) {
    this.lines.push(line);
    this.wake();
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    this.wake();
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  /** Waits for the next line (from the cursor on) matching pred(text); consumes up to it. */
  waitFor(pred, timeout, what = 'a matching line', onFail = () => '') {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = this.cursor; i < this.lines.length; i++) {
          let r;
          try { r = pred(this.lines[i]); } catch { r = undefined; }
          if (r !== undefined && r !== false && r !== null) {
            this.cursor = i + 1;
            done();
            resolve(r === true ? this.lines[i] : r);
            return;
          }
        }
        if (this.ended) {
          done();
          reject(new Error(`${what}: output ended (${this.endReason}) before it appeared; lines: ` +
            `${safeJson(this.lines.slice(-20))}${onFail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; lines: ` +
          `${safeJson(this.lines.slice(-20))}${onFail()}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }
}

function parseJsonLine(line) {
  const s = line.trim();
  if (!s.startsWith('{') && !s.startsWith('[')) return undefined;
  try { return JSON.parse(s); } catch { return undefined; }
}

// ---------------------------------------------------------------------------
// The server

const LISTEN_RE = /^linkward listening on (https?:\/\/127\.0\.0\.1:(\d+))\s*$/;

/**
 * Starts `linkward serve --listen 127.0.0.1:0 --data-dir DIR [args]` and waits
 * for its "linkward listening on http://127.0.0.1:PORT" line.
 * opts: {args: [...], dataDir, env, readyTimeout, cwd,
 *        dbOnly (give `--db DATADIR/linkward.db` instead of `--data-dir`: the
 *        server then finds its data directory from the database's folder)}
 * Returns {url, port, origin, dataDir, controlSock, proc, stderr(), stop(), restart()}.
 */
export async function startServer(opts = {}) {
  const dataDir = opts.dataDir || tempDir('lw-data-');
  // Every test talks from 127.0.0.1, so the per-address rate limits would
  // throttle ordinary functional tests: they are off unless a test asks for
  // them (opts.rateLimits, or its own --rate); limits.test.js tests them.
  const args = [...(opts.args || [])];
  if (!opts.rateLimits && !args.includes('--rate')) args.push('--rate', 'off');
  if (!opts.rateLimits && !args.includes('--max-pending-links-per-ip')) args.push('--max-pending-links-per-ip', '1000');
  // CI and these machines run as root; the server refuses that unless told.
  if (process.getuid?.() === 0 && !args.includes('--user') && !opts.noAllowRoot) args.push('--allow-root');
  const server = {
    dataDir,
    args,
    controlSock: path.join(dataDir, 'control.sock'),
    url: null,
    port: null,
    proc: null,
    stderrLog: '',
    exitInfo: null,
    stderr() { return this.stderrLog; },
    async stop({ signal = 'SIGTERM', timeout = 5000 } = {}) {
      const p = this.proc;
      if (!p) return this.exitInfo;
      this.stopping = true;
      const ex = exitPromise(p);
      if (p.exitCode === null && p.signalCode === null) p.kill(signal);
      try {
        this.exitInfo = await withTimeout(ex, T(timeout), 'server to exit');
      } catch {
        p.kill('SIGKILL');
        this.exitInfo = { ...(await ex), killed: true };
      }
      this.proc = null;
      this.stopping = false;
      if (this.crashed) this.exitInfo.crashed = this.crashed;
      // A clean stop is part of the contract (flushes, exit 0), and under the
      // sanitizers any report (leaks included) is a failure of the test.
      const report = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.exec(this.stderrLog);
      if (report) throw new Error(`linkward serve: sanitizer report:\n${this.stderrLog.slice(report.index, report.index + 4000)}`);
      if (signal === 'SIGTERM' && !this.exitInfo.killed && this.exitInfo.code !== 0) {
        throw new Error(`linkward serve exited with ${JSON.stringify(this.exitInfo)} on SIGTERM:\n${this.stderrLog.slice(-3000)}`);
      }
      return this.exitInfo;
    },
    /** Stops and starts again on the same data dir and args; keeps the port unless {samePort:false}. */
    async restart({ samePort = true } = {}) {
      await this.stop();
      await launch(samePort ? this.port : 0);
      return this;
    },
  };

  async function launch(port) {
    const bin = linkwardBin();
    const where = opts.dbOnly ? ['--db', path.join(dataDir, 'linkward.db')] : ['--data-dir', dataDir];
    const argv = ['serve', '--listen', `127.0.0.1:${port}`, ...where, ...args];
    const proc = track(spawn(bin, argv, {
      cwd: opts.cwd,
      env: { ...process.env, ...(opts.env || {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    server.proc = proc;
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      server.stderrLog += d;
      if (process.env.LINKWARD_TEST_VERBOSE) process.stderr.write(`[server] ${d}`);
    });
    const out = new LineStream(proc.stdout);
    proc.once('exit', (code, sig) => {
      out.finish(`server exited code=${code} signal=${sig}`);
      if (!server.stopping && server.url) {
        // Not asked to stop: a crash. Make it loud; the tests will fail on refused connections.
        server.crashed = { code, signal: sig };
        console.error(`[harness] linkward serve (${server.url}) died unexpectedly: code=${code} signal=${sig}\n` +
          `${server.stderrLog.slice(-3000)}`);
      }
    });
    const url = await out.waitFor((l) => LISTEN_RE.exec(l)?.[1], T(opts.readyTimeout || 10000),
      `"linkward listening on" from: linkward ${argv.join(' ')}`,
      () => `\nserver stderr:\n${server.stderrLog.slice(-4000)}`)
      .catch(async (e) => {
        proc.kill('SIGKILL');
        throw e;
      });
    server.url = url;
    server.origin = url;
    server.port = Number(LISTEN_RE.exec(`linkward listening on ${url}`)[2]);
  }

  await launch(opts.port || 0);
  return server;
}

// ---------------------------------------------------------------------------
// CLIs

/**
 * Runs `linkward ARGS` to completion. opts: {input, timeout, env}.
 * Returns {code, signal, stdout, stderr, lines (parsed JSON lines), json (whole stdout parsed, or null)}.
 */
export async function runCli(args, opts = {}) {
  const bin = linkwardBin();
  const proc = track(spawn(bin, args, {
    env: cliEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  }));
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  proc.stdin.on('error', () => { /* the CLI may exit without reading */ });
  if (opts.input !== undefined) proc.stdin.end(opts.input);
  else proc.stdin.end();
  const ex = exitPromise(proc);
  const closed = new Promise((r) => proc.once('close', r));
  let res;
  try {
    res = await withTimeout(ex, T(opts.timeout || 20000), `linkward ${args.join(' ')}`);
  } catch (e) {
    proc.kill('SIGKILL');
    await ex;
    throw new Error(`${e.message}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`);
  }
  await withTimeout(closed, T(2000), 'CLI pipes to close').catch(() => {});
  const lines = stdout.split('\n').map(parseJsonLine).filter((x) => x !== undefined);
  let json = null;
  try { json = stdout.trim() ? JSON.parse(stdout) : null; } catch { json = null; }
  return { code: res.code, signal: res.signal, stdout, stderr, lines, json, args };
}

/** Describes a CLI result for assertion messages. */
export function describe(res) {
  return `linkward ${(res.args || []).join(' ')} -> exit ${res.code}${res.signal ? ` (${res.signal})` : ''}` +
    `\nstdout: ${res.stdout.slice(-1500)}\nstderr: ${res.stderr.slice(-1500)}`;
}

/**
 * Starts `linkward ARGS` in the background. The handle has:
 *   lines / json       all stdout lines so far (raw / parsed JSON)
 *   waitForLine(pred, timeout)  next JSON line (after the last one waited for) with pred(obj) true
 *   [Symbol.asyncIterator]      JSON lines as they come, until the process ends
 *   exited             promise of {code, signal}
 *   waitExit(timeout)  bounded wait for the exit
 *   stderr()           stderr so far; kill(signal)
 */
export function spawnCli(args, opts = {}) {
  const bin = linkwardBin();
  const proc = track(spawn(bin, args, { env: cliEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { stderr += d; });
  proc.stdin.on('error', () => {});
  if (opts.input !== undefined) proc.stdin.end(opts.input);
  const out = new LineStream(proc.stdout);
  const exited = exitPromise(proc);
  // 'close', not 'exit': a process can exit before its last lines are read
  // from the pipe, and those lines are often the very ones a test waits for.
  proc.once('close', () => out.finish(`process exited code=${proc.exitCode} signal=${proc.signalCode}`));
  const desc = `linkward ${args.join(' ')}`;
  const handle = {
    proc,
    args,
    get lines() { return out.lines; },
    get json() { return out.lines.map(parseJsonLine).filter((x) => x !== undefined); },
    stderr: () => stderr,
    exited,
    waitForLine(pred = () => true, timeout = 10000) {
      const p = typeof pred === 'string' ? (o) => o.event === pred : pred;
      return out.waitFor((l) => {
        const o = parseJsonLine(l);
        return o !== undefined && p(o) ? o : undefined;
      }, T(timeout), `a JSON line from ${desc}`, () => `\nstderr: ${stderr.slice(-2000)}`);
    },
    async waitExit(timeout = 10000) {
      try {
        return await withTimeout(exited, T(timeout), `exit of ${desc}`);
      } catch (e) {
        throw new Error(`${e.message}\nstdout: ${out.lines.slice(-20).join('\n')}\nstderr: ${stderr.slice(-2000)}`);
      }
    },
    kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        let o;
        try {
          o = await out.waitFor((l) => parseJsonLine(l), T(60000), `a JSON line from ${desc}`);
        } catch {
          return;
        }
        yield o;
      }
    },
  };
  return handle;
}

// ---------------------------------------------------------------------------
// HTTP API

/**
 * fetch wrapper. opts: {token, body (object -> JSON), raw (string/Buffer sent as is),
 * headers, contentType}. Returns {status, json, text, headers}.
 */
/** How long api() waits for a whole answer (scaled by T), unless opts.timeout says otherwise. */
const API_TIMEOUT_MS = 30000;

export async function api(url, method, p, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body;
  if (opts.raw !== undefined) {
    body = opts.raw;
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
  }
  const hasCt = Object.keys(headers).some((k) => k.toLowerCase() === 'content-type');
  if (body !== undefined && !hasCt) headers['content-type'] = opts.contentType || 'application/json';
  // Bounded: a request the server never answers fails naming itself, instead
  // of hanging the test until CTest's timeout says nothing about where.
  const ms = T(opts.timeout || API_TIMEOUT_MS);
  let res;
  let text;
  try {
    res = await fetch(url + p, {
      method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(ms),
      ...(opts.duplex ? { duplex: opts.duplex } : {}),
    });
    text = await res.text();
  } catch (e) {
    if (e?.name === 'TimeoutError') throw new Error(`no answer to ${method} ${p} from ${url} within ${ms} ms`);
    throw e;
  }
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: res.status, json, text, headers: res.headers, method, path: p };
}

/** A short description of an API response, for assertion messages. */
export function show(res) {
  return `${res.method || ''} ${res.path || ''} -> ${res.status} ${res.text?.slice(0, 800)}`;
}

/** Throws unless res has the expected status; returns res.json. */
export function expectStatus(res, status) {
  const ok = Array.isArray(status) ? status.includes(res.status) : res.status === status;
  if (!ok) throw new Error(`expected HTTP ${status}, got ${show(res)}`);
  return res.json;
}

/**
 * Asserts the documented error shape {"error":{"code","message"}} with the
 * given status and code (a string or a list of acceptable codes).
 */
export function expectError(res, status, code) {
  const codes = Array.isArray(code) ? code : [code];
  const err = res.json?.error;
  if (res.status !== status || !err || !codes.includes(err.code) ||
      typeof err.message !== 'string' || err.message.length === 0) {
    throw new Error(`expected error ${status} ${codes.join('|')} with a message, got ${show(res)}`);
  }
  return err;
}

// ---------------------------------------------------------------------------
// WebSocket

export function wsUrl(url) {
  return url.replace(/^http/, 'ws') + '/v1/ws';
}

/**
 * Opens /v1/ws with the credential (Bearer header). Resolves once open, with:
 *   events            every JSON event received, in order
 *   next(pred, timeout)  first not-yet-taken event matching pred (event name or function)
 *   timeOf(event)     performance.now() when it arrived
 *   closed            promise of {code, reason} (also .closeInfo once closed)
 *   send(obj), close()
 * Rejects with err.status when the server refuses the handshake.
 */
export function connectWs(url, token, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const wsOpts = { headers, handshakeTimeout: T(5000) };
  if (opts.origin) wsOpts.origin = opts.origin;
  const sock = new WebSocket(opts.path ? url.replace(/^http/, 'ws') + opts.path : wsUrl(url), wsOpts);
  const events = [];
  const taken = new Set();
  const arrival = new WeakMap();
  let waiters = [];
  let closeInfo = null;
  const wake = () => { for (const w of [...waiters]) w(); };
  const closed = new Promise((resolve) => {
    sock.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString() };
      client.closeInfo = closeInfo;
      resolve(closeInfo);
      wake();
    });
  });
  sock.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try { msg = JSON.parse(data.toString()); } catch { return; }
    arrival.set(msg, performance.now());
    events.push(msg);
    wake();
  });
  const client = {
    sock,
    events,
    closed,
    closeInfo: null,
    timeOf: (m) => arrival.get(m),
    send: (obj) => sock.send(typeof obj === 'string' ? obj : JSON.stringify(obj)),
    close: (code = 1000) => {
      if (sock.readyState === WebSocket.OPEN || sock.readyState === WebSocket.CONNECTING) sock.close(code);
      return withTimeout(closed, T(3000), 'WebSocket close').catch(() => { sock.terminate(); });
    },
    next(pred, timeout = 5000) {
      const p = typeof pred === 'string' ? (m) => m.event === pred : pred;
      const what = typeof pred === 'string' ? `WebSocket event "${pred}"` : 'a matching WebSocket event';
      return new Promise((resolve, reject) => {
        const check = () => {
          for (let i = 0; i < events.length; i++) {
            if (taken.has(i)) continue;
            let ok = false;
            try { ok = p(events[i]); } catch { ok = false; }
            if (ok) {
              taken.add(i);
              done();
              resolve(events[i]);
              return;
            }
          }
          if (closeInfo) {
            done();
            reject(new Error(`${what}: socket closed (${closeInfo.code} ${closeInfo.reason}) first; ` +
              `events: ${safeJson(events)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${T(timeout)} ms waiting for ${what}; events: ${safeJson(events)}`));
        }, T(timeout));
        const done = () => {
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== check);
        };
        waiters.push(check);
        check();
      });
    },
  };
  return new Promise((resolve, reject) => {
    sock.once('open', () => resolve(client));
    sock.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const e = new Error(`WebSocket handshake refused: ${res.statusCode} ${body.slice(0, 300)}`);
        e.status = res.statusCode;
        e.body = body;
        try { e.json = JSON.parse(body); } catch { e.json = null; }
        reject(e);
        sock.terminate();
      });
    });
    sock.once('error', (e) => reject(e));
  });
}

/** Like connectWs, but resolves {ok:false, status, json} instead of rejecting on a refused handshake. */
export async function tryConnectWs(url, token, opts = {}) {
  try {
    const ws = await connectWs(url, token, opts);
    return { ok: true, ws };
  } catch (e) {
    return { ok: false, status: e.status, json: e.json, error: e };
  }
}

// ---------------------------------------------------------------------------
// Crypto: base64url, Ed25519 device keys, the signed messages of docs/api.md

export const b64e = (buf) => Buffer.from(buf).toString('base64url');
export const b64d = (s) => Buffer.from(s, 'base64url');

/** A new Ed25519 device key: {publicKey, privateKey, pub (raw 32 bytes), pubB64, sign(msg)}. */
export function newDeviceKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const pub = b64d(publicKey.export({ format: 'jwk' }).x);
  return {
    publicKey,
    privateKey,
    pub,
    pubB64: b64e(pub),
    sign: (msg) => crypto.sign(null, msg, privateKey),
  };
}

/** Ed25519 verification with a raw 32-byte public key. */
export function verifyRaw(pubRaw, msg, sig) {
  const key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64e(pubRaw) }, format: 'jwk' });
  return crypto.verify(null, msg, key, sig);
}

/** Fingerprint of a device public key: BLAKE2b-256 of the raw 32 bytes. */
export const fingerprint = (pubRaw) => blake2b(pubRaw, 32);

const Z = Buffer.from([0]);
const raw32 = (v) => (Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v) : b64d(v));

// The signed messages come from the web client's own builder (web/js/proof.mjs,
// the same bytes as src/common/proof.h), so the tests sign what the page signs.

/** The link completion message over the request id and its nonce (raw or base64url). */
export function linkMessage(requestId, nonce) {
  return Buffer.from(proof.buildProof(proof.LINK, requestId, raw32(nonce)));
}

/** The credential refresh message over the device id and its challenge (raw or base64url). */
export function refreshMessage(deviceId, challenge) {
  return Buffer.from(proof.buildProof(proof.REFRESH, deviceId, raw32(challenge)));
}

/** The account signature's message over the account id and a companion's public key (raw or base64url). */
export function accountMessage(accountId, companionPub) {
  return Buffer.from(proof.buildProof(proof.ACCOUNT, accountId, raw32(companionPub)));
}

/**
 * "linkward-qr-v1" \0 <origin> \0 <ref> <fp>, concatenated here rather than
 * built with proof.mjs: the security tests sign origins the builder refuses (a
 * NUL in the origin) to show the server refuses them too, signature or not.
 * integration.proof_vectors holds proof.mjs's QR message to the same bytes.
 */
export function qrMessage(origin, ref, fp) {
  return Buffer.concat([Buffer.from(proof.QR), Z, Buffer.from(origin, 'utf8'), Z, raw32(ref), raw32(fp)]);
}

/** Splits `lw1:<origin>.<ref>.<fp>.<sig>` into decoded fields; throws if malformed. */
export function parsePayload(payload) {
  if (typeof payload !== 'string' || !payload.startsWith('lw1:')) throw new Error(`not a lw1 payload: ${payload}`);
  const parts = payload.slice(4).split('.');
  if (parts.length !== 4) throw new Error(`payload does not have 4 fields: ${payload}`);
  const [o, r, f, s] = parts;
  return {
    parts,
    origin: b64d(o).toString('utf8'),
    ref: b64d(r),
    fp: b64d(f),
    sig: b64d(s),
  };
}

/** True if the payload's signature verifies under the server key (base64url). */
export function verifyPayload(payload, serverKeyB64) {
  const p = parsePayload(payload);
  return verifyRaw(b64d(serverKeyB64), qrMessage(p.origin, p.ref, p.fp), p.sig);
}

/**
 * Changes one base64url character in the middle of a payload field
 * ('origin' | 'ref' | 'fp' | 'sig'); the middle, because the last character
 * of a field may carry only padding bits.
 */
export function tamperPayload(payload, field = 'sig') {
  const idx = { origin: 0, ref: 1, fp: 2, sig: 3 }[field];
  const parts = payload.slice(4).split('.');
  const s = parts[idx];
  const i = Math.floor(s.length / 2);
  const c = s[i] === 'A' ? 'B' : 'A';
  parts[idx] = s.slice(0, i) + c + s.slice(i + 1);
  return 'lw1:' + parts.join('.');
}

// ---------------------------------------------------------------------------
// Devices over the raw API

/** User-Agent strings for realistic "who is asking" data. */
export const UA = {
  chromeWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  firefoxLinux: 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  safariMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
};

/**
 * A device holding a session: its key, credential and challenge. call()
 * refreshes the credential with the device key on 401 credential_expired and
 * retries once, as every client must.
 */
export class Device {
  constructor(url, fields) {
    this.url = url;
    Object.assign(this, fields);
  }

  /** Raw request with this device's current credential (no auto refresh). */
  raw(method, p, opts = {}) {
    // this.headers: what this device always sends (e.g. X-Forwarded-For behind a test "proxy").
    const headers = { ...(this.headers || {}), ...(opts.headers || {}) };
    return api(this.url, method, p, { token: this.token, ...opts, headers });
  }

  /** Request with auto refresh on 401 credential_expired. */
  async call(method, p, opts = {}) {
    let res = await this.raw(method, p, opts);
    if (res.status === 401 && res.json?.error?.code === 'credential_expired') {
      const r = await this.refresh();
      if (r.status !== 200) throw new Error(`refresh failed: ${show(r)}`);
      res = await this.raw(method, p, opts);
    }
    if (res.status === 200 && p === '/v1/session' && method === 'GET' && res.json?.challenge) {
      this.challenge = res.json.challenge;
    }
    return res;
  }

  get(p, opts) { return this.call('GET', p, opts); }
  post(p, body, opts = {}) { return this.call('POST', p, { body: body ?? {}, ...opts }); }
  patch(p, body, opts = {}) { return this.call('PATCH', p, { body, ...opts }); }
  del(p, opts) { return this.call('DELETE', p, opts); }

  /** POST /v1/session/refresh signed by `key` (default: this device's key). Updates token on success. */
  async refresh({ key = this.key, challenge = this.challenge, signature } = {}) {
    const sig = signature ?? b64e(key.sign(refreshMessage(this.deviceId, challenge)));
    const res = await this.raw('POST', '/v1/session/refresh', { body: { signature: sig } });
    if (res.status === 200) {
      this.token = res.json.token;
      this.challenge = res.json.challenge;
      this.tokenExpiresIn = res.json.token_expires_in;
    }
    return res;
  }

  ws(opts) { return connectWs(this.url, this.token, opts); }

  async devices() { return expectStatus(await this.get('/v1/devices'), 200).devices; }
  async history() { return expectStatus(await this.get('/v1/history'), 200).sessions; }
  async alerts() { return expectStatus(await this.get('/v1/alerts'), 200).alerts; }
  async session() { return expectStatus(await this.get('/v1/session'), 200); }
}

/** POST /v1/accounts with a fresh key; returns the primary Device (throws unless 201). */
export async function registerPrimary(url, handle, opts = {}) {
  const key = opts.key || newDeviceKey();
  const body = { handle, public_key: key.pubB64 };
  if (opts.invite) body.invite = opts.invite;
  if (opts.client) body.client = opts.client;
  const res = await api(url, 'POST', '/v1/accounts', { body, headers: opts.headers });
  const j = expectStatus(res, 201);
  return new Device(url, {
    role: 'primary',
    key,
    token: j.token,
    deviceId: j.device_id,
    accountId: j.account_id,
    handle: j.handle,
    challenge: j.challenge,
    tokenExpiresIn: j.token_expires_in,
    serverKey: j.server_key,
    origin: j.origin,
    registration: j,
  });
}

/** POST /v1/link-requests with a fresh key (or opts.key); throws unless 201. */
export async function createLinkRequest(url, opts = {}) {
  const key = opts.key || newDeviceKey();
  const body = { public_key: key.pubB64 };
  if (opts.client) body.client = opts.client;
  if (opts.persistent !== undefined) body.persistent = opts.persistent;
  const headers = { ...(opts.headers || {}) };
  if (opts.userAgent) headers['user-agent'] = opts.userAgent;
  const res = await api(url, 'POST', '/v1/link-requests', { body, headers });
  const j = expectStatus(res, 201);
  return { url, key, headers: opts.headers, ...j, response: j };
}

/** Primary scans a payload (or {code}); returns the raw response. */
export function scan(primary, what) {
  const body = typeof what === 'string' ? { payload: what } : what;
  return primary.post('/v1/link-requests/scan', body);
}

/** The primary's account signature over a companion key. */
export function accountSignature(primary, companionPub, key = primary.key) {
  return b64e(key.sign(accountMessage(primary.accountId, companionPub)));
}

/** Primary approves request `id` for companion key `companionPub` (raw or base64url). */
export function approve(primary, id, companionPub, opts = {}) {
  const body = { account_signature: opts.signature ?? accountSignature(primary, companionPub, opts.key) };
  if (opts.pin !== undefined) body.pin = opts.pin;
  if (opts.accept_risk !== undefined) body.accept_risk = opts.accept_risk;
  return primary.post(`/v1/link-requests/${id}/approve`, body);
}

export function deny(primary, id) {
  return primary.post(`/v1/link-requests/${id}/deny`, {});
}

/** Companion completes request `req` by signing its nonce (with opts.key to cheat). */
export function complete(req, opts = {}) {
  const key = opts.key || req.key;
  const signature = opts.signature ?? b64e(key.sign(linkMessage(req.id, req.nonce)));
  return api(req.url, 'POST', `/v1/link-requests/${req.id}/complete`, {
    token: req.token, body: { signature }, headers: req.headers,
  });
}

/** Turns a 201 completion answer into the companion Device. */
export function companionFrom(req, j) {
  return new Device(req.url, {
    role: 'companion',
    key: req.key,
    token: j.token,
    deviceId: j.device_id,
    accountId: j.account_id,
    handle: j.handle,
    challenge: j.challenge,
    tokenExpiresIn: j.token_expires_in,
    requestId: req.id,
    headers: req.headers,
  });
}

/**
 * The whole link flow over raw HTTP: create -> scan -> approve -> complete.
 * opts: {pin, client, userAgent, key, persistent}. Returns the companion Device
 * (with .request = the link request). Throws with the failing step otherwise.
 */
export async function linkCompanionApi(url, primary, opts = {}) {
  const req = await createLinkRequest(url, opts);
  const s = await scan(primary, req.payload);
  expectStatus(s, 200);
  const a = await approve(primary, req.id, req.key.pub, { pin: opts.pin, accept_risk: opts.accept_risk });
  expectStatus(a, 200);
  const c = await complete(req);
  const j = expectStatus(c, 201);
  const dev = companionFrom(req, j);
  dev.request = req;
  dev.scan = s.json;
  return dev;
}

// ---------------------------------------------------------------------------
// CLI devices

/** `linkward phone --state FILE --json ...` */
export class PhoneCli {
  /** headers: {name: value} sent with every request (`--header`), e.g. a proxy's X-Forwarded-For. */
  constructor(server, dir = tempDir('lw-phone-'), headers = {}) {
    this.server = server;
    this.dir = dir;
    this.state = path.join(dir, 'phone.json');
    this.global = Object.entries(headers).flatMap(([k, v]) => ['--header', `${k}: ${v}`]);
  }

  /** The options before the command: state file and headers. */
  base() {
    return ['phone', '--state', this.state, ...this.global];
  }

  run(args, opts) {
    return runCli([...this.base(), '--json', ...args], opts);
  }

  /** Same without --json (human output). */
  runText(args, opts) {
    return runCli([...this.base(), ...args], opts);
  }

  /** `phone --server URL register --handle H`; throws unless exit 0. */
  async register(handle, extra = []) {
    const res = await runCli([...this.base(), '--server', this.server.url, '--json',
      'register', '--handle', handle, ...extra]);
    if (res.code !== 0) throw new Error(`phone register failed: ${describe(res)}`);
    const who = await this.whoami();
    this.deviceId = who.device.id;
    this.accountId = who.account.id;
    this.handle = who.account.handle;
    return res;
  }

  async whoami() {
    const res = await this.run(['whoami']);
    if (res.code !== 0 || !res.json) throw new Error(`phone whoami failed: ${describe(res)}`);
    return res.json;
  }

  /** Runs a data command (devices/history/alerts) and returns the parsed array. */
  async list(cmd) {
    const res = await this.run([cmd]);
    if (res.code !== 0 || !Array.isArray(res.json)) throw new Error(`phone ${cmd} failed: ${describe(res)}`);
    return res.json;
  }

  devices() { return this.list('devices'); }
  history() { return this.list('history'); }
  alerts() { return this.list('alerts'); }
}

/** `linkward companion --state FILE --json ...` */
export class CompanionCli {
  constructor(server, dir = tempDir('lw-comp-')) {
    this.server = server;
    this.dir = dir;
    this.state = path.join(dir, 'companion.json');
  }

  run(args, opts) {
    return runCli(['companion', '--state', this.state, '--json', ...args], opts);
  }

  runText(args, opts) {
    return runCli(['companion', '--state', this.state, ...args], opts);
  }

  /** Background `companion --server URL link ...` */
  spawnLink(extra = []) {
    return spawnCli(['companion', '--server', this.server.url, '--state', this.state, '--json', 'link', ...extra]);
  }

  /** Background `companion watch --json` */
  spawnWatch() {
    return spawnCli(['companion', '--state', this.state, '--json', 'watch']);
  }

  async whoami() {
    const res = await this.run(['whoami']);
    if (res.code !== 0 || !res.json) throw new Error(`companion whoami failed: ${describe(res)}`);
    return res.json;
  }

  /** `companion token` -> the token text (accepts a bare line or {"token"}). */
  async token() {
    const res = await this.runText(['token']);
    if (res.code !== 0) throw new Error(`companion token failed: ${describe(res)}`);
    const s = res.stdout.trim();
    if (s.startsWith('{')) return JSON.parse(s).token;
    return s;
  }
}

/** Waits until a file exists and is not empty (bounded poll). */
export function waitForFile(file, timeout = 5000) {
  return pollUntil(() => {
    try { return fs.statSync(file).size > 0; } catch { return false; }
  }, { timeout, interval: 20, what: `file ${file}` });
}

/**
 * Links a CLI companion with a CLI phone:
 *   companion link --json (background) -> phone link <how> --yes -> linked.
 * opts: {via: 'payload'|'image'|'code', pin, name, phoneArgs, companionArgs}
 * Returns {deviceId, qr, phone (phone link result), link (the spawn handle), exit, ms}.
 */
export async function linkCompanionCli(phone, companion, opts = {}) {
  const via = opts.via || 'payload';
  const elapsed = stopwatch();
  const extra = [];
  if (opts.name) extra.push('--name', opts.name);
  if (opts.companionArgs) extra.push(...opts.companionArgs);
  const png = via === 'image' ? path.join(companion.dir, 'qr.png') : null;
  if (png) extra.push('--qr-png', png);
  const link = companion.spawnLink(extra);
  try {
    const qr = await link.waitForLine('qr');
    let target;
    if (via === 'payload') target = [qr.payload];
    else if (via === 'code') target = ['--code', qr.code];
    else {
      await waitForFile(png);
      target = ['--image', png];
    }
    const args = ['link', ...target, '--yes', ...(opts.pin ? ['--pin', opts.pin] : []), ...(opts.phoneArgs || [])];
    const res = await phone.run(args);
    if (res.code !== 0) throw new Error(`phone link failed: ${describe(res)}`);
    const linked = await link.waitForLine('linked');
    const exit = await link.waitExit();
    if (exit.code !== 0) throw new Error(`companion link exited ${exit.code}: ${link.stderr()}`);
    return { deviceId: linked.device_id, qr, phone: res, link, exit, ms: elapsed(), png };
  } finally {
    link.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------
// Admin (control socket)

/** `linkward admin --control SOCK --json ARGS` */
export function adminCli(server, args, opts) {
  return runCli(['admin', '--control', server.controlSock, '--json', ...args], opts);
}

/** The store counters from `admin stats --json` (accepts {"stats":{…}} or the bare object). */
export async function adminStats(server) {
  if (process.env.LINKWARD_ADMIN_VIA === 'socket') {
    // Debugging aid only: the raw control protocol instead of the CLI.
    const ans = await controlRequest(server, { cmd: 'stats' });
    if (!ans.ok) throw new Error(`control stats failed: ${JSON.stringify(ans)}`);
    return ans.stats;
  }
  const res = await adminCli(server, ['stats']);
  if (res.code !== 0 || !res.json) throw new Error(`admin stats failed: ${describe(res)}`);
  return res.json.stats ?? res.json;
}

/** One JSON request/answer over the control socket, by hand. */
export function controlRequest(server, obj, timeout = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.createConnection(server.controlSock);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(obj) + '\n'));
    sock.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        sock.destroy();
        try { resolve(JSON.parse(buf.slice(0, i))); } catch (e) { reject(e); }
      }
    });
    sock.on('error', reject);
    sock.on('end', () => {
      if (buf.trim()) {
        try { resolve(JSON.parse(buf)); } catch (e) { reject(e); }
      } else reject(new Error('control socket closed without an answer'));
    });
  }), T(timeout), `control socket answer to ${JSON.stringify(obj)}`);
}

// ---------------------------------------------------------------------------
// Small assertions on records

/** The session-record fields of docs/api.md. */
export const RECORD_FIELDS = ['id', 'role', 'name', 'browser', 'browser_version', 'os', 'os_version',
  'device_model', 'ip', 'country', 'region', 'city', 'network', 'public_key', 'key_fingerprint',
  'account_signature', 'linked_at', 'last_active_at', 'state', 'ended_at', 'end_reason', 'first_seen', 'last_seen'];

export const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** Handles unique per run, valid per the handle rules. */
let handleSeq = 0;
export function uniqueHandle(prefix = 'user') {
  handleSeq += 1;
  return `${prefix}${process.pid}.${handleSeq}${crypto.randomBytes(2).toString('hex')}`.toLowerCase().slice(0, 32);
}

/**
 * True if a record's key_fingerprint names the BLAKE2b-256 fingerprint of
 * pubRaw, in any of the usual spellings: base64url of the 32 bytes, or hex
 * (whole or the leading part, as in the human form "a1b2 c3d4 …").
 */
export function fingerprintMatches(kf, pubRaw) {
  if (typeof kf !== 'string' || kf.length === 0) return false;
  const fp = fingerprint(raw32(pubRaw));
  if (kf === b64e(fp)) return true;
  const hex = kf.replace(/[\s:-]/g, '').toLowerCase();
  return /^[0-9a-f]{16,64}$/.test(hex) && fp.toString('hex').startsWith(hex);
}

/** Everything a refused CLI command said: stderr plus the messages of stdout JSON lines. */
export function refusalText(res) {
  const msgs = res.lines.flatMap((l) => [l.message, l.error?.message, l.code, l.error?.code].filter(Boolean));
  return `${res.stderr}\n${msgs.join('\n')}\n${res.stdout}`;
}
