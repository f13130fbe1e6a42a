// The page when its account goes away or the operator logs it out: the
// logged-out screen says why in words ("The account was deleted"; "…by the
// server's administrator"), within a second, with the browser's storage wiped.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000);
let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([b.startServer(), b.launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('`phone delete-account` brings the page to "The account was deleted", storage empty', { timeout: LIMIT }, async () => {
  const phone = await b.newPhone(server, 'webdel');
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    const res = await phone.run(['delete-account', '--yes']);
    assert.equal(res.code, 0, h.describe(res));
    const t = h.stopwatch();
    await b.see(page, 'session-ended', 1000);
    assert.ok(t() < h.T(1000), `took ${t()} ms`);
    const card = b.byId(page, 'session-ended');
    assert.equal(await card.getAttribute('data-reason'), 'account_deleted');
    assert.equal(await page.locator('#ended-title').innerText(), 'The account was deleted');
    assert.match(await b.byId(page, 'session-ended-reason').innerText(), /The account was deleted from its phone/);
    assert.match(await page.title(), /The account was deleted/);
    assert.deepEqual(await b.storageState(page), { databases: [], local: 0, session: 0 });
    // A reload finds nothing to resume: it offers to link again.
    await page.reload();
    await b.statusMatches(page, /Scan this QR code/);
    assert.deepEqual(b.unexpected(page.problems, [], page), []);
  } finally {
    await context.close();
  }
});

test('`admin end-sessions` brings the page to "You were logged out" by the administrator', { timeout: LIMIT }, async () => {
  const phone = await b.newPhone(server, 'webadm');
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    const res = await h.adminCli(server, ['end-sessions', '--account', phone.handle]);
    assert.equal(res.code, 0, h.describe(res));
    await b.see(page, 'session-ended', 1000);
    assert.equal(await page.locator('#ended-title').innerText(), 'You were logged out');
    assert.match(await b.byId(page, 'session-ended-reason').innerText(), /logged out by the server's administrator/);
    assert.deepEqual(await b.storageState(page), { databases: [], local: 0, session: 0 });
    assert.deepEqual(b.unexpected(page.problems, [], page), []);
  } finally {
    await context.close();
  }
});
