// Helpers shared by the security tests (tests/security/*.test.js). The server,
// devices and CLIs come from tests/lib/harness.js; what is here is only what
// those tests need beyond it: a raw keep-alive HTTP/1.1 client (for timing,
// with no client library between the clock and the socket) and small
// statistics.

import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as h from '../lib/harness.js';

export { h };

/**
 * One keep-alive HTTP/1.1 connection to 127.0.0.1:port, one request at a time.
 * request() resolves with {status, headers (lower-case names), body, ms}:
 * ms runs from the first byte written to the last byte of the body read.
 * Every answer of the server carries Content-Length, which is all it parses.
 */
export class RawClient {
  constructor(port) {
    this.port = port;
    this.sock = null;
    this.buf = Buffer.alloc(0);
    this.waiter = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.port, '127.0.0.1', () => {
        s.setNoDelay(true);
        resolve();
      });
      s.once('error', reject);
      s.on('data', (d) => {
        this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        this.waiter?.();
      });
      s.on('close', () => {
        this.closed = true;
        this.waiter?.();
      });
      this.sock = s;
      this.closed = false;
    });
  }

  /** Parses one complete response off the buffer, or returns null. */
  take() {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0])?.[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    if (this.buf.length < end + 4 + len) return null;
    const body = this.buf.subarray(end + 4, end + 4 + len).toString('utf8');
    this.buf = this.buf.subarray(end + 4 + len);
    return { status, headers, body };
  }

  /** body (a string, sent as is with its Content-Length) is optional. */
  async request(method, path, headers = {}, timeout = 5000, body = null) {
    if (!this.sock || this.closed) await this.connect();
    let text = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\n`;
    for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
    if (body !== null) text += `content-length: ${Buffer.byteLength(body)}\r\n`;
    text += '\r\n';
    if (body !== null) text += body;
    return h.withTimeout(new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      this.waiter = () => {
        const r = this.take();
        if (r) {
          this.waiter = null;
          resolve({ ...r, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
        } else if (this.closed) {
          this.waiter = null;
          reject(new Error(`connection closed before the answer to ${method} ${path}`));
        }
      };
      this.sock.write(text);
    }), h.T(timeout), `the answer to ${method} ${path}`);
  }

  close() {
    this.sock?.destroy();
  }
}

/** Quantile q (0..1) of an array of numbers (linear interpolation). */
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export const median = (xs) => quantile(xs, 0.5);

/** "median 0.123 ms (p10 0.100, p90 0.200, n 300)" */
export function describeTimes(xs) {
  const f = (x) => x.toFixed(3);
  return `median ${f(median(xs))} ms (p10 ${f(quantile(xs, 0.1))}, p90 ${f(quantile(xs, 0.9))}, n ${xs.length})`;
}

/** Fisher–Yates shuffle with a given random source. */
export function shuffle(xs, rnd = Math.random) {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** A small seeded PRNG (mulberry32), so a run can be replayed from its seed. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A well-formed credential of the given prefix ("lws_" / "lwl_") that names nothing. */
export function randomCredential(prefix = 'lws_') {
  const b = (n) => h.b64e(crypto.randomBytes(n));
  return `${prefix}${b(16)}.${b(32)}`;
}

/** The same selector with a random verifier. */
export function wrongVerifier(token) {
  const [sel] = token.split('.');
  let v;
  do v = randomCredential(token.slice(0, 4)).split('.')[1]; while (token.endsWith(v));
  return `${sel}.${v}`;
}

/**
 * Routes named in docs/api.md: every `METHOD /path` in backticks, plus the
 * WebSocket, as [method, path] with {id} placeholders (the scan of
 * tests/integration/openapi.test.js, which checks the list is complete).
 */
export function apiRoutes() {
  const md = fs.readFileSync(path.join(h.REPO, 'docs', 'api.md'), 'utf8');
  const routes = new Map();
  for (const m of md.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s]*)`/g)) {
    routes.set(`${m[1]} ${m[2].replace(/\{[^}]+\}/g, '{}')}`, [m[1], m[2]]);
  }
  if (/WebSocket `\/v1\/ws`/.test(md)) routes.set('GET /v1/ws', ['GET', '/v1/ws']);
  return [...routes.values()];
}

/** Fills a route's {placeholders} with id (default: an id that names nothing). */
export const fillRoute = (p, id = 'AAAAAAAAAAAAAAAAAAAAAA') => p.replace(/\{[^}]+\}/g, id);

/** Methods that change state: the ones the Origin / Sec-Fetch-Site check guards. */
export const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The files of the web client (web/), as URL paths, "/" first. */
export function webPaths() {
  const root = path.join(h.REPO, 'web');
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name.startsWith('.')) return [];
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [`/${path.relative(root, p).split(path.sep).join('/')}`];
  });
  return ['/', ...walk(root)];
}

/** A link, through the API, whose completion asks for the credential as a cookie; returns {req, res, jar}. */
export async function linkWithCookie(url, primary, opts = {}) {
  const req = await h.createLinkRequest(url, opts);
  h.expectStatus(await h.scan(primary, req.payload), 200);
  h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
  const signature = h.b64e(req.key.sign(h.linkMessage(req.id, req.nonce)));
  const res = await h.api(url, 'POST', `/v1/link-requests/${req.id}/complete`, {
    token: req.token, body: { signature, credential: 'cookie' },
  });
  const j = h.expectStatus(res, 201);
  const set = res.headers.get('set-cookie') || '';
  const m = /(?:^|,\s*)((?:__Host-)?lw_session=lws_[^;]+)/.exec(set);
  if (!m) throw new Error(`no session cookie in ${set}`);
  return { req, res, json: j, jar: m[1], setCookie: set, deviceId: j.device_id };
}
