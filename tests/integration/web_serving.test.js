// The web client's files: served from the binary or --web-dir, "/" is the
// index, nothing outside the folder, and every page carries the strict
// security headers (PRODUCT §8).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

let server;
let dir;

before(async () => {
  dir = h.tempDir('lw-web-');
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title><script type="module" src="/app.js"></script>');
  fs.writeFileSync(path.join(dir, 'app.js'), 'export const x = 1;\n');
  fs.writeFileSync(path.join(dir, '.secret'), 'no');
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'style.css'), 'body{}');
  fs.symlinkSync('/etc/passwd', path.join(dir, 'passwd.txt'));
  server = await h.startServer({ args: ['--web-dir', dir] });
});

after(async () => {
  await server?.stop();
});

test('"/" serves index.html with a strict CSP and the other security headers', async () => {
  const r = await h.api(server.url, 'GET', '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.text, /<title>t<\/title>/);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, new RegExp(`connect-src 'self' ${server.url.replace(/^http/, 'ws').replace(/[.]/g, '\\.')}`));
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
});

test('assets get their type; folders work', async () => {
  const js = await h.api(server.url, 'GET', '/app.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.match(js.headers.get('content-security-policy'), /default-src 'none'/);
  const css = await h.api(server.url, 'GET', '/sub/style.css');
  assert.equal(css.status, 200);
  assert.match(css.headers.get('content-type'), /^text\/css/);
});

test('nothing outside the folder, no dot-files, no symlinks, no unknown files', async () => {
  for (const p of ['/.secret', '/passwd.txt', '/nope.html', '/sub/../../etc/passwd', '/%2e%2e/etc/passwd']) {
    const r = await h.api(server.url, 'GET', p);
    assert.equal(r.status, 404, `${p} -> ${r.status}`);
    assert.doesNotMatch(r.text, /root:/);
  }
});

test('the API is unaffected', async () => {
  h.expectStatus(await h.api(server.url, 'GET', '/v1/health'), 200);
});
