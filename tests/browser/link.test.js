// Linking a browser (PRODUCT §2, §7.3) in real Chromium: the QR code from a
// screenshot, the pairing code, a denial, and expiry after the last ref.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000); // no test may hang
let server;
let fast; // short QR timings: first ref 1 s, then 500 ms (six refs: 3.5 s in all)
let phone;
let browser;

before(async () => {
  [server, fast, browser] = await Promise.all([
    b.startServer(),
    b.startServer(['--qr-first-ttl', '1s', '--qr-next-ttl', '500ms']),
    b.launch(),
  ]);
  phone = await b.newPhone(server);
});

after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), fast?.stop()]);
});

test('scanning the QR code from a screenshot links the browser and shows Home with both devices', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  let approve;
  try {
    await b.see(page, 'link-qr');
    await b.statusMatches(page, /Scan this QR code/);
    const img = b.byId(page, 'link-qr').locator('img');
    await assert.doesNotReject(img.evaluate((el) => el.decode()), 'the QR image renders');
    assert.match(await img.getAttribute('src'), /^data:image\/svg\+xml;base64,/);
    await b.shot(page, 'link');

    // The phone decodes the PNG itself (zbar), checks the server's signature, and asks.
    const png = path.join(h.tempDir('lw-qr-'), 'qr.png');
    await b.byId(page, 'link-qr').screenshot({ path: png });
    approve = b.spawnPhoneInteractive(phone, ['link', '--image', png]);
    await b.statusMatches(page, /Scanned — confirm on your phone/, 8000);
    await b.shot(page, 'scanned');
    approve.answer('y\n');
    const exit = await approve.wait();
    assert.equal(exit.code, 0, approve.output());

    await b.see(page, 'devices-list', 8000);
    const rows = page.locator('[data-testid="device-row"]');
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    const text = await b.byId(page, 'devices-list').innerText();
    assert.match(text, /Pixel 8/);
    assert.match(text, /Phone/);
    assert.match(text, /This device/);
    assert.match(text, /Chrome 156 on Linux/);
    // Place and network, from the GeoIP databases: this browser in Porto, the phone in Lisbon.
    assert.ok(b.GEO, 'LINKWARD_GEOIP_TEST_DIR is set by the geoip CTest fixture');
    const mine = await rows.filter({ hasText: 'This device' }).innerText();
    assert.match(mine, /Porto, PT · Cable\/DSL · AS64500 Lisbon Fibre · 198\.51\.100\.70/);
    assert.match(await rows.filter({ hasText: 'Pixel 8' }).innerText(), /Lisbon, PT · Cable\/DSL/);
    assert.match(text, /Active now/);
    // The phone sees the browser too.
    const companions = (await phone.devices()).filter((d) => d.role === 'companion');
    assert.equal(companions.length, 1);
    assert.equal(companions[0].browser, 'Chrome');
    // The alert about this very link is listed, not popped up on the device it is about.
    await b.byId(page, 'alerts-list').filter({ hasText: 'A new device was linked' }).waitFor();
    assert.equal(await b.byId(page, 'alert-popup').count(), 0);
    await b.shot(page, 'home');
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    approve?.kill();
    await context.close();
  }
});

test('the pairing code links the browser (phone width)', { timeout: LIMIT }, async () => {
  const context = await browser.newContext({ viewport: b.PHONE, isMobile: true, hasTouch: true, userAgent: b.UA,
    extraHTTPHeaders: { 'x-forwarded-for': b.PORTO } });
  // A phone's browser tells its connection (Network Information API); desktop Chromium does not.
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'connection', { get: () => ({ type: 'cellular' }), configurable: true });
  });
  const page = await context.newPage();
  await b.watch(page);
  await page.goto(server.url + '/');
  try {
    await b.see(page, 'link-qr');
    await b.shot(page, 'link-phone');
    await b.linkWithCode(page, phone);
    assert.equal(await page.locator('[data-testid="device-row"]').count(), 3, 'phone + earlier browser + this one');
    const mine = page.locator('[data-testid="device-row"]').filter({ hasText: 'This device' });
    assert.match(await mine.innerText(), /Cable\/DSL · AS64500 Lisbon Fibre · reported Cellular/);
    await b.shot(page, 'home-phone');
    // Nothing overflows sideways at phone width.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});

test('a denial shows "denied", and a new QR code can be asked for', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    const code = await b.pairingCode(page);
    await b.shot(page, 'link-code');
    const res = await phone.run(['deny', '--code', code]);
    assert.equal(res.code, 0, h.describe(res));
    await b.statusMatches(page, /denied on your phone/);
    await b.shot(page, 'denied');
    const again = page.getByRole('button', { name: 'Get a new QR code' });
    await again.click();
    await b.statusMatches(page, /Scan this QR code/);
    const code2 = (await b.byId(page, 'pairing-code').innerText()).trim();
    assert.match(code2, /^[A-Z0-9]{4}-[A-Z0-9]{4}$/);
    assert.notEqual(code2, code);
    assert.equal(await b.byId(page, 'devices-list').count(), 0);
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});

test('at the device limit the browser is told at once, with the limit\'s sentence', { timeout: LIMIT }, async () => {
  const full = await b.startServer(['--max-companions', '1']);
  const { context, page } = await b.openPage(browser, full);
  try {
    const holder = await b.newPhone(full, 'full');
    await h.linkCompanionCli(holder, new h.CompanionCli(full)); // the one slot is taken
    const code = await b.pairingCode(page);
    const res = await holder.run(['link', '--code', code, '--yes']);
    assert.equal(res.code, 3, h.describe(res));
    // Not "Scanned — confirm on your phone" until expiry: the request ended, and why.
    await b.statusMatches(page, /already has 1 linked devices, the limit\. Log one out from the phone/);
    assert.equal(await page.locator('.qr-box.is-denied').count(), 1);
    await page.getByRole('button', { name: 'Get a new QR code' }).waitFor();
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
    await full.stop();
  }
});

test('the QR code rotates as the server pushes refs, then expires; a click reloads it', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, fast);
  try {
    await b.see(page, 'link-qr');
    // Record every QR the page shows.
    await page.evaluate(() => {
      const img = document.querySelector('[data-testid="link-qr"] img');
      window.qrSeen = new Set([img.src]);
      new MutationObserver(() => window.qrSeen.add(img.src)).observe(img, { attributes: true, attributeFilter: ['src'] });
    });
    await b.statusMatches(page, /QR code expired — click to reload/, 10000);
    const seen = await page.evaluate(() => [...window.qrSeen].filter((s) => s.startsWith('data:')).length);
    assert.ok(seen >= 4, `the QR code should rotate (six refs), saw ${seen} distinct codes`);
    assert.equal(await page.locator('.qr-box.is-expired').count(), 1);
    await b.shot(page, 'expired');
    // The reload control is a real button, reachable by keyboard.
    const reload = b.byId(page, 'link-status').getByRole('button', { name: /QR code expired — click to reload/ });
    await reload.focus();
    await page.keyboard.press('Enter');
    await b.statusMatches(page, /Scan this QR code/);
    assert.match(await b.byId(page, 'pairing-code').textContent(), /^[A-Z0-9]{4}-[A-Z0-9]{4}$/);
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});
