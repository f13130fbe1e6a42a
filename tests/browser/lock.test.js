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

/** Settings: passcode PASS, lock after "1 minute"; then back to the device list. */
async function setLock(page) {
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Lock this browser when idle').selectOption('1m');
  await page.getByLabel('Passcode', { exact: true }).fill(PASS);
  await page.getByLabel('Passcode again').fill(PASS);
  await page.getByRole('button', { name: 'Save lock settings' }).click();
  await page.getByText('Lock settings saved.').waitFor();
  await page.getByRole('link', { name: 'Devices' }).click();
  await b.see(page, 'devices-list');
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
    assert.deepEqual(await b.unnamedControls(page), [], 'Settings: every control has a name');
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
    assert.deepEqual(await b.unnamedControls(page), [], 'the lock screen: every control has a name');
    // The passcode field has the focus: typing unlocks without a mouse.
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('type')), 'password');
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

test('5 wrong passcodes wipe the browser even when the server cannot be reached; the logout is sent at the next start', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    const p = await b.newPhone(server, 'offline');
    await b.linkWithCode(page, p);
    await setLock(page);
    await shorten(page);
    await page.keyboard.press('Shift');
    await b.see(page, 'lock-screen', 5000);
    const [id] = await b.companionIds(p);

    // The network drops the logout request.
    await page.route('**/v1/session', (r) => (r.request().method() === 'DELETE' ? r.abort('internetdisconnected') : r.continue()));
    for (let i = 1; i <= 5; i++) {
      await typePasscode(page, `nope-${i}`);
      if (i < 5) await page.getByText(`${5 - i} ${5 - i === 1 ? 'try' : 'tries'} left`).waitFor();
    }
    await b.see(page, 'session-ended', 5000);
    assert.match(await b.byId(page, 'session-ended').innerText(), /after 5 wrong passcodes/);
    // Wiped here all the same; only the note that the logout is still to be sent is kept.
    assert.deepEqual(await b.storageState(page), { databases: [], local: 1, session: 0 });
    assert.deepEqual(await b.companionIds(p), [id], 'the server has not heard of it yet');

    // Back online: the next start of the page sends the logout.
    await page.unroute('**/v1/session');
    await page.reload();
    await b.statusMatches(page, /Scan this QR code/);
    await h.pollUntil(async () => (await b.companionIds(p)).length === 0, { timeout: 3000, what: 'the server to end the session' });
    const [ended] = await p.history();
    assert.equal(ended.id, id);
    assert.equal(ended.end_reason, 'logout');
    // The marker is gone (the link screen has made a new device key meanwhile), and so is the cookie.
    assert.equal((await b.storageState(page)).local, 0);
    assert.equal((await context.cookies(server.url)).filter((c) => c.name === 'lw_session').length, 0);
    assert.deepEqual(b.unexpected(page.problems, [/requestfailed: .*\/v1\/session net::ERR_INTERNET_DISCONNECTED/,
      /Failed to load resource: net::ERR_INTERNET_DISCONNECTED/]), []);
  } finally {
    await context.close();
  }
});
