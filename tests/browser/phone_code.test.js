// The phone app links with the pairing code typed (no camera), then logs
// every companion out at once; the companion's link screen says where the
// phone app is.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';
import * as p from './phone.js';

const { h } = b;
const LIMIT = h.T(90000);
let server;
let desktop;

before(async () => {
  [server, desktop] = await Promise.all([b.startServer(), b.launch()]);
});

after(async () => {
  await desktop?.close();
  await server?.stop();
});

test('the link screen shows the phone app\'s address and its QR code', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(desktop, server);
  try {
    await b.see(page, 'phone-app');
    assert.equal(await b.byId(page, 'phone-app-url').innerText(), `${server.url}/phone/`);
    const img = b.byId(page, 'phone-app').locator('img');
    await assert.doesNotReject(img.evaluate((el) => el.decode()), 'the QR image renders');
    const res = await fetch(`${server.url}/phone/qr.svg`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /image\/svg\+xml/);
    assert.match(await res.text(), /<svg/);
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});

test('typing the pairing code links two browsers; "log out all" ends both live', { timeout: LIMIT }, async () => {
  const phoneBrowser = await p.launchPhone(null);
  const pages = [];
  try {
    const { page: ph } = await p.openPhone(phoneBrowser, server, { camera: false });
    await p.register(ph);
    for (let i = 0; i < 2; i++) {
      const { context, page } = await b.openPage(desktop, server);
      pages.push({ context, page });
      const code = await b.pairingCode(page);
      await b.byId(ph, 'tab-link').click();
      await b.byId(ph, 'code-input').fill(code.toLowerCase().replace('-', ' '));
      await b.byId(ph, 'code-submit').click();
      await b.see(ph, 'confirm', 8000);
      assert.match(await b.byId(ph, 'confirm-who').innerText(), /Chrome 156 on Linux/);
      assert.equal(await b.byId(ph, 'pin-input').count(), 0, 'no PIN is set, none is asked');
      await b.byId(ph, 'approve').click();
      if (await b.byId(ph, 'high-risk-confirm').isVisible()) await b.byId(ph, 'accept-risk').click();
      await b.see(page, 'devices-list', 10000);
    }
    await b.byId(ph, 'device-row').nth(2).waitFor({ timeout: h.T(5000) });
    await b.byId(ph, 'logout-all').click();
    await b.byId(ph, 'confirm-logout-all-yes').click();
    for (const { page } of pages) await b.see(page, 'session-ended', 8000);
    await b.byId(ph, 'devices-status').filter({ hasText: /2 devices were logged out/ }).waitFor({ timeout: h.T(5000) });
    assert.equal(await b.byId(ph, 'device-row').count(), 1);
    // Both are in the history now; delete one, then all.
    await b.byId(ph, 'tab-history').click();
    await b.byId(ph, 'history-row').nth(1).waitFor({ timeout: h.T(5000) });
    await b.byId(ph, 'history-delete').first().click();
    await b.byId(ph, 'history-row').nth(1).waitFor({ state: 'detached', timeout: h.T(5000) });
    await b.byId(ph, 'history-clear').click();
    await b.byId(ph, 'confirm-history-yes').click();
    await b.byId(ph, 'history-row').first().waitFor({ state: 'detached', timeout: h.T(5000) });
    // The alerts came live; "it was me" answers one.
    await b.byId(ph, 'tab-alerts').click();
    await b.byId(ph, 'alert-row').first().waitFor({ timeout: h.T(5000) });
    await b.byId(ph, 'alert-it-was-me').first().click();
    await b.byId(ph, 'alert-answer').first().filter({ hasText: /it was you/ }).waitFor({ timeout: h.T(5000) });
    assert.deepEqual(b.unexpected(ph.problems), []);
  } finally {
    for (const { context } of pages) await context.close();
    await phoneBrowser.close();
  }
});
