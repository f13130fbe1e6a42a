// The phone app as an installable app (manifest, service worker, its own
// headers), its answers to bad input, the camera refused, and pictures of
// every screen at 390×844 (LINKWARD_SCREENSHOTS=1 writes docs/screenshots/).

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

test('/phone/ has its own CSP and camera=(self); the rest of the site keeps the camera off', { timeout: LIMIT }, async () => {
  const ph = await fetch(`${server.url}/phone/`);
  assert.equal(ph.status, 200);
  assert.match(ph.headers.get('permissions-policy'), /camera=\(self\)/);
  const csp = ph.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /worker-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.match((await fetch(`${server.url}/`)).headers.get('permissions-policy'), /camera=\(\)/);
  const redirect = await fetch(`${server.url}/phone`, { redirect: 'manual' });
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get('location'), '/phone/');
  const manifest = await fetch(`${server.url}/phone/manifest.webmanifest`);
  assert.match(manifest.headers.get('content-type'), /application\/manifest\+json/);
  const m = await manifest.json();
  assert.equal(m.display, 'standalone');
  assert.equal(m.scope, '/phone/');
  assert.equal((await fetch(`${server.url}/phone/vendor/jsQR.js`)).status, 200, 'the QR decoder is served by Linkward');
});

test('installable: Page.getInstallabilityErrors finds nothing, and the service worker controls the app', { timeout: LIMIT }, async () => {
  // A profile on disk: Chromium installs nothing from an incognito context.
  const context = await b.launchProfile(h.tempDir('lw-pwa-'), { viewport: b.PHONE });
  try {
    const page = context.pages()[0] || await context.newPage();
    await b.watch(page);
    await page.goto(`${server.url}/phone/`);
    await b.see(page, 'phone-register');
    await h.withTimeout(page.evaluate(() => navigator.serviceWorker.ready.then(() => true)), h.T(10000), 'the service worker');
    const cdp = await context.newCDPSession(page);
    let errors;
    for (let i = 0; i < 50; i++) {
      ({ installabilityErrors: errors } = await cdp.send('Page.getInstallabilityErrors'));
      if (errors.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(errors, []);
    const { url, errors: mErrors } = await cdp.send('Page.getAppManifest');
    assert.equal(url, `${server.url}/phone/manifest.webmanifest`);
    assert.deepEqual(mErrors, []);
    // The shell is cached: offline, the app still opens.
    await page.reload();
    await page.evaluate(() => navigator.serviceWorker.controller !== null || new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r)));
    await context.setOffline(true);
    await page.reload();
    await page.locator('#app').waitFor();
    assert.match(await page.title(), /Linkward/);
    await context.setOffline(false);
  } finally {
    await context.close();
  }
});

test('bad input: empty and invalid handles, a taken handle, a wrong code, a wrong PIN; the camera refused', { timeout: LIMIT }, async () => {
  const { context, page } = await p.openPhone(desktop, server, { camera: false });
  try {
    await b.see(page, 'phone-register');
    const err = b.byId(page, 'register-error');
    await b.byId(page, 'register-submit').click();
    assert.match(await err.innerText(), /Enter a handle/);
    await b.byId(page, 'handle-input').fill('a b');
    await b.byId(page, 'register-submit').click();
    assert.match(await err.innerText(), /3 to 32 letters/);
    await b.byId(page, 'handle-input').fill('+12');
    await b.byId(page, 'register-submit').click();
    assert.match(await err.innerText(), /\+ and 8 to 15 digits/);
    await b.shot(page, 'phone-register');
    const taken = h.uniqueHandle('taken');
    await h.registerPrimary(server.url, taken);
    await b.byId(page, 'handle-input').fill(taken);
    await b.byId(page, 'register-submit').click();
    await err.filter({ hasText: /already registered/ }).waitFor({ timeout: h.T(5000) });
    await p.register(page);

    await b.byId(page, 'tab-link').click();
    // No camera permission (never granted, headless cannot ask): the code, and why.
    await b.byId(page, 'scan-status').filter({ hasText: /type the pairing code/ }).waitFor({ timeout: h.T(8000) });
    await b.byId(page, 'code-submit').click();
    assert.match(await b.byId(page, 'code-error').innerText(), /Type the pairing code/);
    await b.byId(page, 'code-input').fill('ABC');
    await b.byId(page, 'code-submit').click();
    assert.match(await b.byId(page, 'code-error').innerText(), /8 letters and digits/);
    await b.byId(page, 'code-input').fill('ZZZZ-ZZZZ');
    await b.byId(page, 'code-submit').click();
    await b.byId(page, 'code-error').filter({ hasText: /No device is waiting with this code|code/i }).waitFor({ timeout: h.T(5000) });
    await b.shot(page, 'phone-link-code');

    // A wrong PIN at approval.
    await p.setPin(page, '135790');
    // Alert notifications (Web Push): the card says whether they are on; headless Chromium has
    // no push service to subscribe to, so integration.push tests the server's side.
    await b.byId(page, 'push-status').filter({ hasText: /Off\. Turn them on|cannot show notifications/ }).waitFor({ timeout: h.T(5000) });
    await b.shot(page, 'phone-security');
    const comp = await b.openPage(desktop, server);
    try {
      const code = await b.pairingCode(comp.page);
      await b.byId(page, 'tab-link').click();
      await b.byId(page, 'code-input').fill(code);
      await b.byId(page, 'code-submit').click();
      await b.see(page, 'confirm', 8000);
      await b.shot(page, 'phone-confirm');
      await b.byId(page, 'pin-input').fill('000000');
      await b.byId(page, 'approve').click();
      await b.byId(page, 'approve-error').filter({ hasText: /PIN/i }).waitFor({ timeout: h.T(5000) });
      assert.match(await b.byId(page, 'approve-error').innerText(), /wrong|incorrect/i);
      await b.byId(page, 'pin-input').fill('135790');
      await b.byId(page, 'approve').click();
      if (await b.byId(page, 'high-risk-confirm').isVisible()) await b.byId(page, 'accept-risk').click();
      await b.see(comp.page, 'devices-list', 10000);
      await b.byId(page, 'device-row').nth(1).waitFor({ timeout: h.T(5000) });
      await b.shot(page, 'phone-devices');
      await b.byId(page, 'tab-alerts').click();
      await b.byId(page, 'alert-row').first().waitFor({ timeout: h.T(5000) });
      await b.shot(page, 'phone-alerts');
      await b.byId(page, 'tab-devices').click();
      await b.byId(page, 'device-row').nth(1).locator('[data-testid="logout"]').click();
      await b.byId(page, 'confirm-logout-yes').click();
      await b.see(comp.page, 'session-ended', 8000);
      await b.byId(page, 'tab-history').click();
      await b.byId(page, 'history-row').first().waitFor({ timeout: h.T(5000) });
      await b.shot(page, 'phone-history');
    } finally {
      await comp.context.close();
    }
    // Every control is at least 44 px high, and named.
    for (const tab of ['devices', 'link', 'alerts', 'history', 'security']) {
      await b.byId(page, `tab-${tab}`).click();
      await page.waitForTimeout(200);
      const small = await page.evaluate(() => [...document.querySelectorAll('button, a[href], input, summary')]
        .filter((el) => el.offsetParent !== null && el.type !== 'checkbox' && el.getBoundingClientRect().height < 44)
        .map((el) => el.outerHTML.slice(0, 80)));
      assert.deepEqual(small, [], `touch targets on ${tab}`);
      assert.deepEqual(await b.unnamedControls(page), [], `named controls on ${tab}`);
    }
    // The camera refused and the register screen are expected problems only.
    assert.deepEqual(b.unexpected(page.problems, [/status of 40[349]/]), []);
  } finally {
    await context.close();
  }
});

test('the camera screen, scanning (a screenshot)', { timeout: LIMIT }, async () => {
  const comp = await b.openPage(desktop, server);
  let phoneBrowser;
  try {
    await b.see(comp.page, 'link-qr');
    const png = await p.qrPng(comp.page);
    const video = await p.y4mOf(desktop, png, `${png}.y4m`);
    phoneBrowser = await p.launchPhone(video);
    const { page } = await p.openPhone(phoneBrowser, server);
    await p.register(page);
    await b.byId(page, 'tab-link').click();
    await b.see(page, 'confirm', 15000);
    await b.shot(page, 'phone-confirm-scanned');
  } finally {
    await phoneBrowser?.close();
    await comp.context.close();
  }
});
