// The phone app's own settings, driven as a person would: renaming a device,
// the PIN set, changed (a wrong current PIN refused with the server's words)
// and turned off, and the inactivity setting (out of range refused, saved,
// still there after a reload).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';
import * as p from './phone.js';

const { h } = b;
const LIMIT = h.T(90000);
let server;
let phoneBrowser;

before(async () => {
  [server, phoneBrowser] = await Promise.all([b.startServer(), p.launchPhone(null)]);
});

after(async () => {
  await phoneBrowser?.close();
  await server?.stop();
});

const status = (page, id, re) => b.byId(page, id).filter({ hasText: re }).waitFor({ timeout: h.T(5000) });

test('rename a device, and the PIN set, changed and turned off', { timeout: LIMIT }, async () => {
  const { context, page } = await p.openPhone(phoneBrowser, server, { camera: false });
  try {
    await p.register(page);
    // Rename: the phone's own row.
    const row = b.byId(page, 'device-row').first();
    await row.locator('[data-testid="rename"]').click();
    await b.byId(page, 'rename-input').fill('My test phone');
    await b.byId(page, 'rename-save').click();
    await b.byId(page, 'device-row').filter({ hasText: 'My test phone' }).waitFor({ timeout: h.T(5000) });
    await page.reload();
    await b.byId(page, 'device-row').filter({ hasText: 'My test phone' }).waitFor({ timeout: h.T(8000) });

    await p.setPin(page, '135790');
    // A wrong current PIN: refused, with the attempts left.
    await b.byId(page, 'pin-current').fill('000000');
    await b.byId(page, 'pin-new').fill('246802');
    await b.byId(page, 'pin-repeat').fill('246802');
    await b.byId(page, 'pin-save').click();
    await status(page, 'pin-error', /Wrong PIN/);
    // Two new PINs that differ: refused before anything is sent.
    await b.byId(page, 'pin-current').fill('135790');
    await b.byId(page, 'pin-new').fill('246802');
    await b.byId(page, 'pin-repeat').fill('246803');
    await b.byId(page, 'pin-save').click();
    await status(page, 'pin-error', /differ/);
    // The right one: changed.
    await b.byId(page, 'pin-current').fill('135790');
    await b.byId(page, 'pin-new').fill('246802');
    await b.byId(page, 'pin-repeat').fill('246802');
    await b.byId(page, 'pin-save').click();
    await status(page, 'pin-status', /PIN changed/);
    // Turned off with the new one.
    await b.byId(page, 'pin-current').fill('246802');
    await b.byId(page, 'pin-disable').click();
    await status(page, 'pin-status', /PIN turned off/);
    assert.equal(await b.byId(page, 'pin-current').count(), 0, 'no current PIN is asked once it is off');
    // The wrong PIN's 403 is the one answer the console may show.
    assert.deepEqual(b.unexpected(page.problems, [/status of 403/], page), []);
  } finally {
    await context.close();
  }
});

test('the inactivity setting: out of range refused, saved, kept after a reload', { timeout: LIMIT }, async () => {
  const { context, page } = await p.openPhone(phoneBrowser, server, { camera: false });
  try {
    await p.register(page);
    await b.byId(page, 'tab-security').click();
    await b.see(page, 'ttl-input');
    await b.byId(page, 'ttl-input').fill('3');
    await b.byId(page, 'ttl-save').click();
    await status(page, 'ttl-error', /from 7 to 365/);
    await b.byId(page, 'ttl-input').fill('45');
    await b.byId(page, 'ttl-save').click();
    await status(page, 'ttl-status', /Saved: 45 days/);
    await page.reload();
    await b.byId(page, 'tab-security').click();
    await b.see(page, 'ttl-input');
    await h.pollUntil(async () => (await b.byId(page, 'ttl-input').inputValue()) === '45',
      { timeout: h.T(5000), what: 'the saved setting to show after a reload' });
  } finally {
    await context.close();
  }
});
