// The idle lock (PRODUCT §3): after the idle time the account data leaves the
// DOM for a lock screen; the passcode unlocks; 5 wrong passcodes log out.
// The idle time is shortened through <html data-idle-ms>, which the page reads
// each time it (re)arms its idle timer (on any input); the test shortens it
// only right before it waits for the lock, so slow steps never lock early.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000); // no test may hang
let server;
let phone;
let browser;
const PASS = 'blue-harbour-42';
const IDLE_MS = '1200';

before(async () => {
  [server, browser] = await Promise.all([b.startServer(), b.launch()]);
  phone = await b.newPhone(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const shorten = (page) => page.evaluate((ms) => { document.documentElement.dataset.idleMs = ms; }, IDLE_MS);

/** What must not be in the page while it is locked. */
async function assertNoAccountData(page, secrets) {
  assert.equal(await b.byId(page, 'devices-list').count(), 0);
  assert.equal(await b.byId(page, 'alerts-list').count(), 0);
  assert.equal(await b.byId(page, 'alert-popup').count(), 0);
  const html = await page.content();
  for (const s of secrets) assert.ok(!html.includes(s), `"${s}" is still in the DOM while locked`);
}

async function typePasscode(page, text) {
  const input = page.getByLabel('Passcode', { exact: true });
  await input.fill(text);
  await input.press('Enter');
}

test('the idle lock hides account data, survives a reload, unlocks, and logs out after 5 wrong passcodes', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    const secrets = [phone.handle, 'Pixel 8', 'Security alerts', 'Chrome 156'];

    // Settings: a passcode and "lock after 1 minute" (shortened for the test).
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByLabel('Lock this browser when idle').selectOption('1m');
    await page.getByLabel('Passcode', { exact: true }).fill(PASS);
    await page.getByLabel('Passcode again').fill(PASS);
    await b.shot(page, 'settings');
    await page.getByRole('button', { name: 'Save lock settings' }).click();
    await page.getByText('Lock settings saved.').waitFor();
    await page.getByRole('link', { name: 'Devices' }).click();
    await b.see(page, 'devices-list');
    await page.locator('[data-testid="device-row"]').nth(1).waitFor();

    // Idle (shortened now, so the steps above could take their time): the lock screen replaces everything.
    await shorten(page);
    await page.keyboard.press('Shift'); // any input re-arms the idle timer
    await b.see(page, 'lock-screen', 5000);
    await assertNoAccountData(page, secrets);
    await b.shot(page, 'lock');

    // A reload does not get around it.
    await page.reload();
    await b.see(page, 'lock-screen');
    await assertNoAccountData(page, secrets);

    // One wrong passcode, then the right one.
    await typePasscode(page, 'wrong-1');
    await page.getByText('4 tries left').waitFor();
    await typePasscode(page, PASS);
    await b.see(page, 'devices-list');
    await page.locator('[data-testid="device-row"]').nth(1).waitFor();
    assert.equal(await b.byId(page, 'lock-screen').count(), 0);

    // Idle again (the reload dropped the shortened time: set it again, then any key).
    await shorten(page);
    await page.keyboard.press('Shift');
    await b.see(page, 'lock-screen', 5000);
    await assertNoAccountData(page, secrets);

    // Five wrong passcodes: this browser is logged out and wiped.
    const before = await b.companionIds(phone);
    assert.equal(before.length, 1);
    for (let i = 1; i <= 4; i++) {
      await typePasscode(page, `nope-${i}`);
      await page.getByText(`${5 - i} ${5 - i === 1 ? 'try' : 'tries'} left`).waitFor();
    }
    await typePasscode(page, 'nope-5');
    await b.see(page, 'session-ended', 5000);
    assert.match(await b.byId(page, 'session-ended').innerText(), /after 5 wrong passcodes/);
    assert.deepEqual(await b.storageState(page), { databases: [], local: 0, session: 0 });
    assert.deepEqual(await b.companionIds(phone), [], 'the server ended the session');
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});
