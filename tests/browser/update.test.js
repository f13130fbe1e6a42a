// Updates (issue 8): when a newer Linkward is deployed while the page is open,
// the page notices (every answer carries Linkward-Version) and offers a reload
// instead of carrying on with old code.

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
  phone = await b.newPhone(server, 'upd');
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a new server version while the page is open: a banner offers to reload, and reloading clears it', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    await b.linkWithCode(page, phone);
    assert.equal(await b.byId(page, 'update-banner').count(), 0);
    // From now on the server answers as a newer version (a deploy happened).
    await page.route('**/v1/**', async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res, headers: { ...res.headers(), 'linkward-version': '99.0.0' } });
    });
    // The page's next call to the server brings the news (the same module the page uses).
    await page.evaluate(() => import('/js/api.js').then((m) => m.request('GET', '/v1/devices')));
    const banner = b.byId(page, 'update-banner');
    await banner.waitFor({ timeout: h.T(5000) });
    assert.match(await banner.innerText(), /new version of Linkward/);
    await b.shot(page, 'update-banner');
    await page.unroute('**/v1/**');
    await Promise.all([page.waitForLoadState('load'), banner.getByRole('button', { name: 'Reload' }).click()]);
    await b.byId(page, 'devices-list').or(b.byId(page, 'lock-screen')).first().waitFor({ timeout: h.T(5000) });
    assert.equal(await b.byId(page, 'update-banner').count(), 0);
    assert.deepEqual(b.unexpected(page.problems, [], page), []);
  } finally {
    await context.close();
  }
});
