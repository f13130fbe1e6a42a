// The page's defences (PRODUCT §8): every shipped file carries the strict
// headers, the code has no way to turn data into markup or script, another
// origin can neither frame the page nor open its WebSocket, and the page is
// usable from the keyboard.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000); // no test may hang
const WEB = path.join(h.REPO, 'web');
let server;
let phone;
let browser;

before(async () => {
  [server, browser] = await Promise.all([b.startServer(), b.launch()]);
  phone = await b.newPhone(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function webFiles(dir = WEB) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.name.startsWith('.')) return [];
    return e.isDirectory() ? webFiles(p) : [p];
  });
}

test('every file of the web client is served, as built into the binary, with the security headers', { timeout: LIMIT }, async () => {
  const files = webFiles();
  assert.ok(files.length >= 5, 'the web client has files');
  for (const file of ['/', ...files.map((f) => `/${path.relative(WEB, f)}`)]) {
    const r = await fetch(server.url + file);
    const body = Buffer.from(await r.arrayBuffer());
    assert.equal(r.status, 200, file);
    if (file !== '/' && !process.env.LINKWARD_WEB_DIR) {
      assert.ok(body.equals(fs.readFileSync(path.join(WEB, file))), `${file}: the binary serves the current file (rebuild?)`);
    }
    const csp = r.headers.get('content-security-policy') || '';
    assert.match(csp, /frame-ancestors 'none'/, file);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, file);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', file);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', file);
    if (/\.html$|^\/$/.test(file)) {
      assert.match(csp, /script-src 'self'/);
      assert.match(csp, /style-src 'self'/);
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
    }
  }
});

test('no inline script or style, no HTML built from strings, no eval', () => {
  for (const f of webFiles()) {
    const text = fs.readFileSync(f, 'utf8');
    const name = path.relative(WEB, f);
    if (f.endsWith('.html')) {
      assert.doesNotMatch(text, /<script(?![^>]*\bsrc=)[^>]*>/i, `${name}: inline <script>`);
      assert.doesNotMatch(text, /<style|\sstyle=|\son[a-z]+=/i, `${name}: inline style or handler`);
    }
    if (f.endsWith('.js')) {
      assert.doesNotMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\('style'|\.style\.cssText/,
        `${name}: a way to turn data into markup or code`);
      // The one thing kept in localStorage is the "logout still to be sent" marker (no secret).
      assert.doesNotMatch(text.replaceAll('localStorage.setItem(PENDING_LOGOUT, \'1\')', ''),
        /localStorage\.setItem|document\.cookie\s*=/, `${name}: secrets belong in IndexedDB / HttpOnly cookies`);
    }
  }
});

test('another origin cannot frame the page or open its WebSocket, even with the browser linked', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  let site;
  try {
    await b.linkWithCode(page, phone); // the context now holds the session cookie
    // The control case: from our own origin the same socket opens.
    const own = await page.evaluate(() => new Promise((resolve) => {
      const s = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/v1/ws`);
      s.onopen = () => { s.close(); resolve('open'); };
      s.onerror = () => resolve('error');
    }));
    assert.equal(own, 'open');

    const target = server.url;
    const ws = `${target.replace(/^http/, 'ws')}/v1/ws`;
    site = await b.foreignSite(`<!doctype html><title>elsewhere</title>
<iframe id="f" src="${target}/" title="framed"></iframe>
<script>
window.results = {};
const f = document.getElementById('f');
f.addEventListener('load', () => { window.results.frameLoaded = true; });
for (const path of ['${ws}', '${ws}?link=1']) {
  const s = new WebSocket(path);
  s.onopen = () => { window.results[path] = 'open'; };
  s.onerror = () => { window.results[path] = window.results[path] || 'error'; };
  s.onclose = (e) => { window.results[path] = window.results[path] === 'open' ? 'open' : 'refused:' + e.code; };
}
</script>`);
    const evil = await context.newPage();
    const messages = [];
    evil.on('console', (m) => messages.push(m.text()));
    await evil.goto(site.url + '/');
    await evil.waitForFunction((paths) => paths.every((p) => window.results[p]?.startsWith('refused')) && window.results.frameLoaded,
      [ws, `${ws}?link=1`], { timeout: h.T(5000) });
    const results = await evil.evaluate(() => window.results);
    assert.equal(results[ws], 'refused:1006');
    assert.equal(results[`${ws}?link=1`], 'refused:1006');
    await h.pollUntil(() => messages.filter((m) => /403/.test(m)).length >= 2 &&
      messages.some((m) => /frame-ancestors|X-Frame-Options|Refused to (display|frame)/i.test(m)),
    { timeout: 3000, what: 'the browser to report both refusals' });

    // The frame holds an error page, never our app.
    const frame = evil.frames().find((fr) => fr !== evil.mainFrame());
    assert.ok(frame, 'the iframe exists');
    assert.doesNotMatch(frame.url(), new RegExp(`^${target}`), `framed document: ${frame.url()}`);
    const inFrame = await frame.locator('[data-testid]').count().catch(() => 0);
    assert.equal(inFrame, 0, 'no part of the app rendered inside the frame');

    // Our page is unharmed: still signed in, no problems.
    await b.see(page, 'devices-list');
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
    await site?.close();
  }
});

test('the link page is keyboard-usable with a visible focus', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.statusMatches(page, /Scan this QR code/);
    const focused = async () => page.evaluate(() => {
      const el = document.activeElement;
      const st = getComputedStyle(el);
      return { tag: el.tagName, text: (el.textContent || '').trim(), id: el.id, outline: st.outlineStyle, width: parseFloat(st.outlineWidth) };
    });
    await page.keyboard.press('Tab');
    let f = await focused();
    assert.equal(f.tag, 'SUMMARY');
    assert.equal(f.text, 'Link with a code instead');
    assert.notEqual(f.outline, 'none');
    assert.ok(f.width >= 2, 'a visible focus ring');
    await page.keyboard.press('Enter');
    await b.byId(page, 'pairing-code').filter({ hasText: /^[A-Z0-9]{4}-[A-Z0-9]{4}$/ }).waitFor();
    await page.keyboard.press('Tab');
    f = await focused();
    assert.equal(f.id, 'keep-signed-in');
    assert.notEqual(f.outline, 'none');
    // Every form control has a label.
    assert.deepEqual(await b.unnamedControls(page), []);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});
