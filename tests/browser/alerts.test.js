// A browser is a companion: it shows the account's alerts but never answers
// them (PRODUCT §6): no "It was me" or "Log out that device" button, in the
// list or in a pop-up, only "Answer on your phone."; once the phone answered,
// the list says how.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000);
let server;
let phone;
let browser;

before(async () => {
  [server, browser] = await Promise.all([b.startServer(), b.launch()]);
  phone = await b.newPhone(server, 'alerts');
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a companion shows alerts without answer buttons and sends the holder to the phone', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    const list = b.byId(page, 'alerts-list');
    // Another device is linked: its alert pops up here and joins the list.
    const bot = new h.CompanionCli(server);
    const linked = await h.linkCompanionCli(phone, bot, { name: 'Build server' });
    const popup = b.byId(page, 'alert-popup').filter({ hasText: 'Build server' });
    await popup.waitFor({ timeout: h.T(3000) });
    const row = list.locator('[data-alert-id]').filter({ hasText: 'Build server' });
    await row.waitFor({ timeout: h.T(3000) });

    // No answer anywhere: the list has no buttons at all, the pop-up only Dismiss.
    assert.equal(await list.getByRole('button').count(), 0);
    assert.equal(await popup.getByRole('button', { name: /It was me|Log out/ }).count(), 0);
    assert.deepEqual(await popup.getByRole('button').evaluateAll((bs) => bs.map((x) => x.getAttribute('aria-label'))), ['Dismiss']);
    await popup.getByText('Answer on your phone.').waitFor();
    await row.getByText('Answer on your phone.').waitFor();

    // The phone answers; the page, looking again, shows the answer as a sentence.
    const alert = (await phone.alerts()).find((a) => a.kind === 'device.linked' && a.device_id === linked.deviceId);
    const ack = await phone.run(['alerts', 'ack', alert.id]);
    assert.equal(ack.code, 0, h.describe(ack));
    await page.reload();
    await list.locator(`[data-alert-id="${alert.id}"]`).filter({ hasText: 'Answered on your phone: it was you.' })
      .waitFor({ timeout: h.T(5000) });
    assert.equal(await list.getByRole('button').count(), 0);
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});
