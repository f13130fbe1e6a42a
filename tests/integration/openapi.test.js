// docs/openapi.yaml describes every route of docs/api.md and every route of the
// server's own table (src/server/transport/router.c), and the server serves every
// documented route (PRODUCT §7.2).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const norm = (p) => p.replace(/\{[^}]+\}/g, '{}');
const key = (m, p) => `${m.toUpperCase()} ${norm(p)}`;

/** Routes named in docs/api.md: every `METHOD /path` in backticks, plus the WebSocket. */
function apiMdRoutes() {
  const md = fs.readFileSync(path.join(h.REPO, 'docs', 'api.md'), 'utf8');
  const routes = new Map();
  for (const m of md.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s]*)`/g)) routes.set(key(m[1], m[2]), [m[1], m[2]]);
  if (/WebSocket `\/v1\/ws`/.test(md)) routes.set(key('GET', '/v1/ws'), ['GET', '/v1/ws']);
  return routes;
}

/**
 * Paths and methods of an OpenAPI document by a line scan: a path is a key
 * starting with "/" directly under `paths:`; its methods are the keys one
 * level deeper.
 */
function openapiRoutes(text) {
  const routes = new Map();
  const lines = text.split('\n');
  let inPaths = false;
  let pathIndent = -1;
  let current = null;
  for (const raw of lines) {
    const line = raw.replace(/\s+#.*$/, '');
    if (!line.trim()) continue;
    const indent = line.length - line.trimStart().length;
    const t = line.trim();
    if (indent === 0) {
      inPaths = t === 'paths:';
      current = null;
      pathIndent = -1;
      continue;
    }
    if (!inPaths) continue;
    const pm = /^["']?(\/[^"':]*)["']?\s*:\s*$/.exec(t);
    if (pm && (pathIndent === -1 || indent === pathIndent)) {
      pathIndent = indent;
      current = { path: pm[1], indent };
      continue;
    }
    if (current && indent > current.indent) {
      const mm = /^(get|post|put|patch|delete)\s*:/.exec(t);
      if (mm && (current.methodIndent === undefined || indent === current.methodIndent)) {
        current.methodIndent = indent;
        routes.set(key(mm[1], current.path), [mm[1].toUpperCase(), current.path]);
      }
    }
  }
  return routes;
}

let server;
let openapiText = null;
before(async () => {
  const file = path.join(h.REPO, 'docs', 'openapi.yaml');
  if (fs.existsSync(file)) openapiText = fs.readFileSync(file, 'utf8');
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

test('docs/api.md names the routes (sanity of this test)', () => {
  const routes = apiMdRoutes();
  assert.ok(routes.size >= 25, `only ${routes.size} routes found in docs/api.md`);
  for (const r of ['GET /v1/health', 'POST /v1/accounts', 'POST /v1/link-requests/{}/complete', 'DELETE /v1/history/{}', 'GET /v1/ws']) {
    assert.ok(routes.has(r), `${r} missing from the scan of docs/api.md`);
  }
});

test('docs/openapi.yaml exists and is an OpenAPI 3 document', () => {
  assert.ok(openapiText !== null, 'docs/openapi.yaml is missing');
  assert.match(openapiText, /^openapi:\s*["']?3\.\d+\.\d+/m, 'no "openapi: 3.x.y" line');
  assert.match(openapiText, /^paths:\s*$/m, 'no top-level paths:');
});

test('every route of docs/api.md is in docs/openapi.yaml', () => {
  assert.ok(openapiText !== null, 'docs/openapi.yaml is missing');
  const documented = openapiRoutes(openapiText);
  assert.ok(documented.size > 0, 'no routes found under paths:');
  const missing = [...apiMdRoutes().keys()].filter((k) => !documented.has(k));
  assert.deepEqual(missing, [], `routes of docs/api.md missing from docs/openapi.yaml: ${missing.join(', ')}`);
});

/**
 * The route table of src/server/transport/router.c: every `{"METHOD", "/path", handler, ...}`
 * line of `routes[]`, with `*` segments written `{}` as in norm().
 */
function routerRoutes() {
  const src = fs.readFileSync(path.join(h.REPO, 'src', 'server', 'transport', 'router.c'), 'utf8');
  const table = /static const route routes\[\] = \{([\s\S]*?)\n\};/.exec(src);
  assert.ok(table, 'the routes[] table in src/server/transport/router.c');
  const routes = new Map();
  for (const m of table[1].matchAll(/\{\s*"(GET|POST|PUT|PATCH|DELETE)",\s*"(\/[^"]*)",\s*[A-Za-z_]\w*\s*,/g)) {
    const p = m[2].split('/').map((seg) => (seg === '*' ? '{}' : seg)).join('/');
    routes.set(key(m[1], p), [m[1], m[2]]);
  }
  return routes;
}

test('every route of the server (src/server/transport/router.c) is in docs/openapi.yaml', () => {
  assert.ok(openapiText !== null, 'docs/openapi.yaml is missing');
  const served = routerRoutes();
  // Sanity of the scan: as many routes as the table has lines naming a method.
  const src = fs.readFileSync(path.join(h.REPO, 'src', 'server', 'transport', 'router.c'), 'utf8');
  const lines = src.match(/^\s*\{"(GET|POST|PUT|PATCH|DELETE)",/gm) || [];
  assert.equal(served.size, lines.length, `the scan found ${served.size} routes, the table has ${lines.length} lines`);
  assert.ok(served.size >= 30, `only ${served.size} routes found in router.c`);
  for (const r of ['GET /metrics', 'GET /v1/ws', 'POST /v1/link-requests/{}/approve', 'DELETE /v1/devices/{}']) {
    assert.ok(served.has(r), `${r} missing from the scan of router.c`);
  }
  const documented = openapiRoutes(openapiText);
  const missing = [...served.keys()].filter((k) => !documented.has(k));
  assert.deepEqual(missing, [], `routes of src/server/transport/router.c missing from docs/openapi.yaml: ${missing.join(', ')}`);
  // And the other way: nothing documented that the table does not serve.
  const extra = [...documented.keys()].filter((k) => !served.has(k));
  assert.deepEqual(extra, [], `routes of docs/openapi.yaml that src/server/transport/router.c does not have: ${extra.join(', ')}`);
});

test('GET /metrics answers Prometheus text, as documented', async () => {
  const r = await h.api(server.url, 'GET', '/metrics');
  assert.equal(r.status, 200, h.show(r));
  assert.match(r.headers.get('content-type') || '', /^text\/plain/);
  assert.match(r.text, /^# (TYPE|HELP) linkward_/m);
  assert.match(openapiText, /\n  \/metrics:\n    get:[\s\S]*?text\/plain/, 'openapi documents text/plain for /metrics');
});

/** A request to a route with made-up ids and no credential: must reach the route, not the 404 fallback. */
async function probe(method, p) {
  const url = p.replace(/\{[^}]+\}/g, 'AAAAAAAAAAAAAAAAAAAAAA');
  const body = method === 'GET' || method === 'DELETE' ? undefined : {};
  return h.api(server.url, method, url, { body });
}

function assertServed(method, p, r) {
  const code = r.json?.error?.code;
  assert.ok(!(r.status === 404 && (code === 'not_found' || code === undefined)),
    `${method} ${p} answered 404 (${r.text.slice(0, 200)}): the route does not exist`);
  assert.notEqual(r.status, 405, `${method} ${p} answered 405: the method is not served`);
}

test('the server serves every route of docs/api.md', async () => {
  const failures = [];
  for (const [method, p] of apiMdRoutes().values()) {
    const r = await probe(method, p);
    try { assertServed(method, p, r); } catch (e) { failures.push(e.message); }
  }
  assert.deepEqual(failures, []);
});

test('the server serves every route of docs/openapi.yaml', async () => {
  assert.ok(openapiText !== null, 'docs/openapi.yaml is missing');
  const failures = [];
  for (const [method, p] of openapiRoutes(openapiText).values()) {
    const r = await probe(method, p);
    try { assertServed(method, p, r); } catch (e) { failures.push(e.message); }
  }
  assert.deepEqual(failures, []);
});

test('the line scan of OpenAPI documents works (self-check)', () => {
  const sample = [
    'openapi: 3.1.0',
    'paths:',
    '  /v1/health:',
    '    get:',
    '      responses:',
    "        '200':",
    '          description: ok',
    '  "/v1/devices/{id}":',
    '    parameters:',
    '      - name: id',
    '    patch:',
    '      summary: x',
    '    delete:',
    '      summary: y',
    'components:',
    '  schemas:',
    '    /not/a/path:',
    '      get: {}',
  ].join('\n');
  assert.deepEqual([...openapiRoutes(sample).keys()].sort(),
    ['DELETE /v1/devices/{}', 'GET /v1/health', 'PATCH /v1/devices/{}']);
});

test('the AlertKind enum lists every kind the server raises', () => {
  assert.ok(openapiText, 'docs/openapi.yaml exists');
  // Every lw_alert_raise(app, account, "kind", ...) and lw_alert_raise_burst(...) in src/server.
  const dir = path.join(h.REPO, 'src', 'server');
  const raised = new Set();
  const files = fs.readdirSync(dir, { recursive: true }).filter((n) => n.endsWith('.c'));
  for (const f of files) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const m of src.matchAll(/lw_alert_raise(?:_burst)?\([^,]+,[^,]+,\s*"([a-z_]+\.[a-z_]+)"/g)) raised.add(m[1]);
  }
  assert.ok(raised.size >= 10, `only ${[...raised]} found in src/server`);
  const block = /\n {4}AlertKind:\n[\s\S]*?\n {6}enum: \[([^\]]*)\]/.exec(openapiText);
  assert.ok(block, 'AlertKind has an enum');
  const documented = new Set(block[1].split(',').map((k) => k.trim()).filter(Boolean));
  assert.deepEqual([...raised].filter((k) => !documented.has(k)).sort(), [], 'raised but not in AlertKind');
  assert.deepEqual([...documented].filter((k) => !raised.has(k)).sort(), [], 'in AlertKind but never raised');
});
