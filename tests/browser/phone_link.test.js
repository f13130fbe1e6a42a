// The phone app (PRODUCT §12) links a browser: two browsers, the phone's
// fake camera filming the companion page's very QR code; then the phone
// lists it and logs it out (one, then all) while the page watches.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as b from './browser.js';
import * as p from './phone.js';

const { h } = b;
const LIMIT = h.T(90000);
let server;
let desktop;

before(async () => {
  [server, desktop] = await Promise.all([b.startServer(['--qr-first-ttl', '120s']), b.launch()]);
});

after(async () => {
  await desktop?.close();
  await server?.stop();
});

test('scanning with the camera: who asks, the PIN, Home on the computer, then log out one and all from the phone', { timeout: LIMIT }, async () => {
  const { context: cctx, page: comp } = await b.openPage(desktop, server);
  let phoneBrowser;
  try {
    await b.see(comp, 'link-qr');
    await b.statusMatches(comp, /Scan this QR code/);
    const video = await p.y4mOf(desktop, await p.qrPng(comp), path.join(h.tempDir('lw-cam-'), 'qr.y4m'));
    phoneBrowser = await p.launchPhone(video);
    const { page: ph } = await p.openPhone(phoneBrowser, server);
    await p.register(ph);
    await p.setPin(ph, '246810');

    await b.byId(ph, 'tab-link').click();
    await b.see(ph, 'confirm', 15000); // found in the camera's frames and scanned
    await b.statusMatches(comp, /Scanned — confirm on your phone/, 8000);
    const facts = await b.byId(ph, 'request-facts').innerText();
    assert.match(facts, /Chrome 156/);
    assert.match(facts, /Linux/);
    assert.match(await b.byId(ph, 'risk').innerText(), /Risk: (low|medium|high)/i);
    await b.byId(ph, 'approve').click();
    assert.match(await b.byId(ph, 'approve-error').innerText(), /PIN/);
    await b.byId(ph, 'pin-input').fill('246810');
    await b.byId(ph, 'approve').click();
    if (await b.byId(ph, 'high-risk-confirm').isVisible()) await b.byId(ph, 'accept-risk').click();

    await b.see(comp, 'devices-list', 10000);
    await b.byId(ph, 'devices-status').filter({ hasText: /Approved/ }).waitFor({ timeout: h.T(5000) });
    const rows = b.byId(ph, 'device-row');
    await rows.nth(1).waitFor({ timeout: h.T(5000) });
    assert.match(await rows.nth(1).innerText(), /Chrome 156 on Linux/);
    assert.equal(await b.byId(ph, 'unsigned').count(), 0, 'every device was signed by this phone');

    // Log that one out: the computer's page ends live.
    await rows.nth(1).locator('[data-testid="logout"]').click();
    await b.byId(ph, 'confirm-logout-yes').click();
    await b.see(comp, 'session-ended', 8000);
    await b.byId(ph, 'device-row').nth(1).waitFor({ state: 'detached', timeout: h.T(5000) });
    assert.deepEqual(b.unexpected(ph.problems), []);
  } finally {
    await phoneBrowser?.close();
    await cctx.close();
  }
});
