// Home is live (PRODUCT §3, §6): a device linked while the page is open shows
// up in the list and raises a pop-up that sends the holder to the phone to
// answer it (alerts.test.js); a device logged out from the phone leaves the
// list; renaming this device reaches the phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000); // no test may hang
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

test('a device linked while the page is open appears live and raises the alert pop-up', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    // Home looks again at the device list every minute; 150 ms here (read when Home schedules its next look).
    await page.evaluate(() => { document.documentElement.dataset.refreshMs = '150'; });
    await b.linkWithCode(page, phone);
    const rows = page.locator('[data-testid="device-row"]');
    assert.equal(await rows.count(), 2);

    // The keyboard is on this browser's own link alert (its time: alerts have no buttons here).
    const own = page.locator('[data-testid="alerts-list"] [data-alert-id]').first();
    await own.waitFor();
    const ownId = await own.getAttribute('data-alert-id');
    // Focus it by its id, until it holds: a re-render (another alert, the device list's
    // refresh) between finding the element and focusing it would leave the focus on a
    // detached element, and the check below would test nothing.
    const focusedAlert = () => page.evaluate(() => document.activeElement?.closest('[data-alert-id]')?.dataset.alertId);
    await h.pollUntil(async () => {
      await page.locator(`[data-alert-id="${ownId}"] time`).evaluate((t) => { t.setAttribute('tabindex', '-1'); t.focus(); });
      return (await focusedAlert()) === ownId;
    }, { timeout: 3000, what: 'the focus on this browser\'s own alert' });

    // A headless companion (CLI) is linked by the phone meanwhile.
    const bot = new h.CompanionCli(server);
    const linked = await h.linkCompanionCli(phone, bot, { name: 'Build server' });
    await rows.filter({ hasText: 'Build server' }).waitFor({ timeout: h.T(3000) });
    assert.equal(await rows.count(), 3);
    // Its alert re-rendered the list under the focused button: the focus stayed there.
    await b.byId(page, 'alerts-list').filter({ hasText: 'Build server' }).waitFor({ timeout: h.T(3000) });
    assert.equal(await focusedAlert(), ownId);

    // Its "last active" follows its use without a reload: the page looks again
    // every minute (shortened here through <html data-refresh-ms>).
    const botRow = rows.filter({ hasText: 'Build server' });
    const first = await botRow.getAttribute('data-last-active');
    assert.match(first, /^\d{4}-\d\d-\d\dT/);
    // Times have whole seconds: let the clock pass the second of the link first.
    const linkedSec = Math.floor(Date.parse(first) / 1000);
    await h.pollUntil(() => Math.floor(Date.now() / 1000) > linkedSec, { timeout: 2000, interval: 20, what: 'the next second' });
    const used = await bot.run(['whoami']);
    assert.equal(used.code, 0, h.describe(used));
    await page.locator(`[data-testid="device-row"][data-device-id="${linked.deviceId}"]:not([data-last-active="${first}"])`)
      .waitFor({ timeout: h.T(3000) });
    await page.evaluate(() => { delete document.documentElement.dataset.refreshMs; });

    const popup = b.byId(page, 'alert-popup');
    await popup.waitFor({ timeout: h.T(3000) });
    assert.match(await popup.innerText(), /A new device was linked: Build server/);
    await b.byId(page, 'alerts-list').filter({ hasText: 'Build server' }).waitFor();
    await b.shot(page, 'alert-popup');

    // A browser answers no alert: the pop-up says to answer on the phone.
    await popup.getByText('Answer on your phone.').waitFor();
    assert.deepEqual(await popup.getByRole('button').evaluateAll((bs) => bs.map((x) => x.getAttribute('aria-label'))), ['Dismiss']);
    await popup.getByRole('button', { name: 'Dismiss' }).click();
    await popup.waitFor({ state: 'detached', timeout: h.T(3000) });

    // The phone logs the bot out: it leaves the list, and the page is told why.
    const res = await phone.run(['logout', linked.deviceId]);
    assert.equal(res.code, 0, h.describe(res));
    await rows.filter({ hasText: 'Build server' }).waitFor({ state: 'detached', timeout: h.T(3000) });
    assert.equal(await rows.count(), 2);
    await b.byId(page, 'alert-popup').filter({ hasText: 'Build server was logged out from your phone' })
      .waitFor({ timeout: h.T(3000) });
    // This page is still signed in.
    assert.equal(await b.byId(page, 'session-ended').count(), 0);
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});

test('Settings renames this device; the phone sees the new name; keyboard navigation works', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    await page.getByRole('link', { name: 'Settings' }).click();
    const name = page.getByLabel('Name of this device');
    await name.waitFor();
    await page.waitForFunction(() => document.querySelector('#device-name').value !== '');
    await name.fill('Work laptop');
    await name.press('Enter');
    await page.getByText('Saved.').waitFor();
    const devices = await phone.devices();
    assert.ok(devices.some((d) => d.name === 'Work laptop' && d.role === 'companion'), JSON.stringify(devices));

    // Back to the list by keyboard: the nav link, then Enter.
    await page.getByRole('link', { name: 'Devices' }).focus();
    await page.keyboard.press('Enter');
    await b.byId(page, 'device-row').filter({ hasText: 'Work laptop' }).waitFor();
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});

test('after a server restart the page reconnects and catches up with what it missed', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    const rows = page.locator('[data-testid="device-row"]');
    const before = await rows.count();
    // A graceful restart closes the sockets (1012); a device is linked before the page is back.
    await server.restart();
    const bot = new h.CompanionCli(server);
    await h.linkCompanionCli(phone, bot, { name: 'Linked during the gap' });
    await rows.filter({ hasText: 'Linked during the gap' }).waitFor({ timeout: h.T(8000) });
    assert.equal(await rows.count(), before + 1);
    assert.equal(await b.byId(page, 'session-ended').count(), 0, 'a restart is not a logout');
    // While the server was down, a reconnect attempt may have been refused: that is all.
    assert.deepEqual(b.unexpected(page.problems, [/ERR_CONNECTION_REFUSED/, /WebSocket connection to .* failed/]), []);
  } finally {
    await context.close();
  }
});
