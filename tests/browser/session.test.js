// A linked browser keeps its session (PRODUCT §3): across closing the page and
// restarting the browser, with the short-lived cookie refreshed by the device
// key; not when "Keep me signed in" was off; and it ends for every kind of
// logout with the "You were logged out" screen and nothing left in storage.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(60000); // no test may hang
let server;
let phone;
let browser;

before(async () => {
  // Credentials lapse after 2 s: the page must refresh them with its key all the time.
  [server, browser] = await Promise.all([b.startServer(['--credential-ttl', '2s']), b.launch()]);
  phone = await b.newPhone(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Counts successful credential refreshes made by the page. */
function countRefreshes(page) {
  const seen = { n: 0 };
  page.on('response', (r) => {
    if (r.url().endsWith('/v1/session/refresh') && r.status() === 200) seen.n += 1;
  });
  return seen;
}

async function firstPage(ctx, server) {
  const page = ctx.pages()[0] || await ctx.newPage();
  await b.watch(page);
  await page.goto(server.url + '/');
  return page;
}

/** Links a page and returns this browser's device id (the companion the phone did not list before). */
async function linkPage(page) {
  const before = new Set(await b.companionIds(phone));
  await b.linkWithCode(page, phone);
  const id = (await b.companionIds(phone)).find((d) => !before.has(d));
  assert.ok(id, 'the phone lists the new browser');
  return id;
}

/** Waits until the browser no longer holds the session cookie (Clear-Site-Data from the server). */
function cookieGone(context) {
  return h.pollUntil(async () => (await cookies(context)).every((c) => c.name !== 'lw_session'),
    { timeout: 3000, interval: 50, what: 'the session cookie to be removed' });
}

/** The context's cookies for the server, bounded (a browser that never answers fails naming the call). */
function cookies(context) {
  return h.withTimeout(context.cookies(server.url), h.T(10000), 'the browser to list its cookies');
}

/** Nothing of Linkward left in the page's origin: IndexedDB, storage, Cache Storage, cookie. */
async function assertWiped(context, page) {
  assert.deepEqual(await b.storageState(page), { databases: [], local: 0, session: 0 });
  assert.deepEqual(await h.withTimeout(page.evaluate(async () => (globalThis.caches ? caches.keys() : [])),
    h.T(10000), 'the page to answer caches.keys() (Chromium, after the wipe)'), []);
  await cookieGone(context);
}

/** Waits until the server no longer takes a cookie value (the credential lapsed). */
function waitLapsed(value) {
  return h.pollUntil(async () => {
    const r = await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: `lw_session=${value}` } });
    return r.status === 401 && r.json?.error?.code === 'credential_expired';
  }, { timeout: 6000, interval: 100, what: 'the old credential to lapse' });
}

test('the session survives closing the page and restarting the browser; the key refreshes the credential', { timeout: LIMIT }, async () => {
  const dir = h.tempDir('lw-profile-');
  let ctx = await b.launchProfile(dir);
  try {
    let page = await firstPage(ctx, server);
    const refreshes = countRefreshes(page);
    const id = await linkPage(page);

    // The device key is Ed25519 and cannot be read out of the browser.
    const key = await page.evaluate(() => new Promise((resolve, reject) => {
      const rq = indexedDB.open('linkward');
      rq.onerror = () => reject(rq.error);
      rq.onsuccess = () => {
        const get = rq.result.transaction('kv').objectStore('kv').get('key');
        get.onsuccess = () => {
          const k = get.result;
          resolve({ alg: k.privateKey.algorithm.name, extractable: k.privateKey.extractable, usages: k.privateKey.usages });
          rq.result.close();
        };
      };
    }));
    assert.deepEqual(key, { alg: 'Ed25519', extractable: false, usages: ['sign'] });

    // The credential is an HttpOnly, SameSite=Strict cookie that outlives the browser.
    const [cookie] = (await ctx.cookies(server.url)).filter((c) => c.name === 'lw_session');
    assert.ok(cookie, 'lw_session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(cookie.expires > Date.now() / 1000, 'a persistent cookie');
    assert.equal(await page.evaluate(() => document.cookie.includes('lw_session')), false);

    // With a 2 s credential, the page refreshes ahead of time, again and again.
    await h.pollUntil(() => refreshes.n >= 2, { timeout: 8000, what: 'two credential refreshes' });
    await page.reload();
    await b.see(page, 'devices-list');

    // Close the page; a new one picks the session up.
    const seen = [...page.problems];
    let lapsed = page.lapsed;
    await page.close();
    page = await ctx.newPage();
    await b.watch(page);
    await page.goto(server.url + '/');
    await b.see(page, 'devices-list');
    assert.equal(await b.byId(page, 'link-qr').count(), 0);
    seen.push(...page.problems);
    lapsed += page.lapsed;

    // Quit the browser; the cookie kept on disk lapses while it is closed.
    await ctx.close();
    ctx = await b.launchProfile(dir);
    const [kept] = (await ctx.cookies(server.url)).filter((c) => c.name === 'lw_session');
    assert.ok(kept, 'the cookie was kept with the profile');
    await waitLapsed(kept.value);
    page = ctx.pages()[0] || await ctx.newPage();
    await b.watch(page);
    const again = countRefreshes(page);
    await page.goto(server.url + '/');
    await b.see(page, 'devices-list', 8000);
    await page.locator('[data-testid="device-row"]').nth(1).waitFor();
    assert.ok(again.n >= 1, 'the lapsed credential was refreshed with the device key');
    assert.match(await b.byId(page, 'devices-list').innerText(), /This device/);
    const still = await b.companionIds(phone);
    assert.ok(still.includes(id), 'the same device, not a new link');
    assert.deepEqual(b.unexpected([...seen, ...page.problems], [], { lapsed: lapsed + page.lapsed }), []);
  } finally {
    await ctx.close();
  }
});

test('with "Keep me signed in" off, the session does not survive a browser restart', { timeout: LIMIT }, async () => {
  const dir = h.tempDir('lw-profile-');
  let ctx = await b.launchProfile(dir);
  try {
    let page = await firstPage(ctx, server);
    await b.see(page, 'link-qr');
    const first = await b.pairingCode(page);
    await page.getByLabel('Keep me signed in').uncheck();
    // The choice is part of the link request: a new one (new code) is made.
    await b.byId(page, 'pairing-code').filter({ hasNotText: first }).filter({ hasText: /^[A-Z0-9]{4}-[A-Z0-9]{4}$/ }).waitFor();
    await linkPage(page);
    assert.match(await page.locator('.this-device').innerText(), /Keep me signed in\s*Off/);
    const [cookie] = (await ctx.cookies(server.url)).filter((c) => c.name === 'lw_session');
    assert.equal(cookie.expires, -1, 'a browser-session cookie');
    await page.reload();
    await b.see(page, 'devices-list');
    const problems = page.problems;

    await ctx.close();
    ctx = await b.launchProfile(dir);
    page = await firstPage(ctx, server);
    await b.see(page, 'link-qr');
    await b.statusMatches(page, /Scan this QR code/);
    assert.match(await page.locator('.notice').innerText(), /Keep me signed in/);
    assert.equal(await b.byId(page, 'devices-list').count(), 0);
    // The one refused request is the page finding its cookie gone.
    assert.deepEqual(b.unexpected([...problems, ...page.problems], [/status of 401/]), []);
  } finally {
    await ctx.close();
  }
});

test('the Log out button ends the session, wipes the browser, and offers a new QR code', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    const id = await linkPage(page);
    await b.byId(page, 'logout').click();
    await b.see(page, 'session-ended');
    assert.match(await b.byId(page, 'session-ended').innerText(), /You logged out on this device/);
    assert.deepEqual(await b.storageState(page), { databases: [], local: 0, session: 0 });
    assert.equal((await cookies(context)).filter((c) => c.name === 'lw_session').length, 0,
      'Clear-Site-Data removed the cookie');
    assert.ok(!(await b.companionIds(phone)).includes(id), 'the server ended the session');
    await page.getByRole('button', { name: 'Link this browser again' }).click();
    await b.statusMatches(page, /Scan this QR code/);
    assert.deepEqual(b.unexpected(page.problems, [], page), []);
  } finally {
    await context.close();
  }
});

test('`phone logout DEVICE` brings the page to "You were logged out" within a second, storage empty', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    const id = await linkPage(page);
    const t = h.stopwatch(); // from the moment the phone is asked
    const [res] = await Promise.all([phone.run(['logout', id]), b.see(page, 'session-ended', 1000)]);
    const took = t();
    assert.equal(res.code, 0, h.describe(res));
    assert.ok(took < h.T(1000), `took ${took} ms`);
    console.log(`phone logout DEVICE -> "You were logged out": ${took} ms from starting the command`);
    assert.match(await b.byId(page, 'session-ended').innerText(), /You were logged out from your phone\./);
    // The socket told the page; the page then had the server clear its dead HttpOnly cookie.
    await assertWiped(context, page);
    assert.equal(await b.byId(page, 'devices-list').count(), 0);
    await b.shot(page, 'logged-out');
    assert.deepEqual(b.unexpected(page.problems, [], page), []);
  } finally {
    await context.close();
  }
});

test('`phone logout --all` logs out every open browser within a second', { timeout: LIMIT }, async () => {
  const a = await b.openPage(browser, server);
  const c = await b.openPage(browser, server);
  try {
    await linkPage(a.page);
    await linkPage(c.page);
    const t = h.stopwatch(); // from the moment the phone is asked
    const [res] = await Promise.all([phone.run(['logout', '--all']),
      b.see(a.page, 'session-ended', 1000), b.see(c.page, 'session-ended', 1000)]);
    const took = t();
    assert.equal(res.code, 0, h.describe(res));
    assert.ok(took < h.T(1000), `took ${took} ms`);
    console.log(`phone logout --all -> both pages "You were logged out": ${took} ms from starting the command`);
    for (const { context, page } of [a, c]) {
      assert.match(await b.byId(page, 'session-ended').innerText(), /all devices were logged out/);
      await assertWiped(context, page);
      assert.deepEqual(b.unexpected(page.problems, [], page), []);
    }
    assert.deepEqual(await b.companionIds(phone), []);
  } finally {
    await a.context.close();
    await c.context.close();
  }
});

test('a session ended by its maximum age shows why, and the browser is wiped', { timeout: LIMIT }, async () => {
  // A server of its own: companions live at most 3 s, swept every 200 ms.
  const short = await b.startServer(['--max-age', '3s', '--sweep-interval', '200ms']);
  const { context, page } = await b.openPage(browser, short);
  try {
    const p = await b.newPhone(short, 'maxage');
    await b.linkWithCode(page, p);
    await b.see(page, 'session-ended', 8000);
    assert.equal(await b.byId(page, 'session-ended').getAttribute('data-reason'), 'max_age');
    assert.match(await b.byId(page, 'session-ended-reason').innerText(), /maximum age/);
    await assertWiped(context, page);
    const [ended] = await p.history();
    assert.equal(ended.end_reason, 'max_age');
    assert.deepEqual(b.unexpected(page.problems, [], page), []);
  } finally {
    await context.close();
    await short.stop();
  }
});

test('a refresh signed by another key ends the session as stolen: the page says so, the phone is alerted', { timeout: LIMIT }, async () => {
  const { context, page } = await b.openPage(browser, server);
  try {
    const id = await linkPage(page);
    // Someone replaced the device key (as a copied profile would hold another):
    // the next refresh (credentials last 2 s here) carries a wrong signature.
    await page.evaluate(async () => {
      const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      await new Promise((resolve, reject) => {
        const rq = indexedDB.open('linkward');
        rq.onerror = () => reject(rq.error);
        rq.onsuccess = () => {
          const t = rq.result.transaction('kv', 'readwrite');
          t.objectStore('kv').put(pair, 'key');
          t.oncomplete = () => { rq.result.close(); resolve(); };
          t.onerror = () => reject(t.error);
        };
      });
    });
    await b.see(page, 'session-ended', 8000);
    assert.equal(await b.byId(page, 'session-ended').getAttribute('data-reason'), 'token_theft');
    assert.match(await b.byId(page, 'session-ended-reason').innerText(), /used without its key/);
    await assertWiped(context, page);
    const alerts = await phone.alerts();
    assert.ok(alerts.some((a) => a.kind === 'token.theft_suspected' && a.device_id === id),
      `token.theft_suspected for ${id}: ${JSON.stringify(alerts.map((a) => a.kind))}`);
    // The refused refresh is the page learning its end: a logged 401 with the reason.
    assert.deepEqual(b.unexpected(page.problems, [/status of 401/], page), []);
  } finally {
    await context.close();
  }
});
