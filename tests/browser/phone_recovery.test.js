// A new phone, in real Chromium: registration shows the recovery key once and
// asks for one of its groups before going on; "Move to a new phone" with two
// phone contexts (the new one shows a code, the old one approves with its
// PIN, the old one is signed out, the companion stays linked and is
// re-signed); "I lost my phone" with the recovery key (every device logged
// out live, the old primary key refused).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as b from './browser.js';
import * as p from './phone.js';

const { h } = b;
const LIMIT = h.T(90000);
let server;
let desktop;
let phones;

before(async () => {
  [server, desktop, phones] = await Promise.all([b.startServer(), b.launch(), p.launchPhone(null)]);
});

after(async () => {
  await phones?.close();
  await desktop?.close();
  await server?.stop();
});

/** Links a companion page to the phone page by typing its pairing code. */
async function linkCompanion(ph) {
  const { context, page } = await b.openPage(desktop, server);
  const code = await b.pairingCode(page);
  await b.byId(ph, 'tab-link').click();
  await b.byId(ph, 'code-input').fill(code);
  await b.byId(ph, 'code-submit').click();
  await b.see(ph, 'confirm', 8000);
  if (await b.byId(ph, 'pin-input').count()) await b.byId(ph, 'pin-input').fill('482916');
  await b.byId(ph, 'approve').click();
  if (await b.byId(ph, 'high-risk-confirm').isVisible()) await b.byId(ph, 'accept-risk').click();
  await b.see(page, 'devices-list', 10000);
  return { context, page };
}

test('registration shows the recovery key once and wants one group of it typed back', { timeout: LIMIT }, async () => {
  const { context, page } = await p.openPhone(phones, server, { camera: false });
  try {
    await b.see(page, 'phone-register');
    await b.byId(page, 'handle-input').fill(h.uniqueHandle('rkb'));
    await b.byId(page, 'register-submit').click();
    await b.see(page, 'recovery-key-screen', 8000);
    const key = (await b.byId(page, 'recovery-key').innerText()).trim().split(/\s+/).join('-');
    assert.match(key, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){7}$/);
    // A wrong group does not go on.
    await b.byId(page, 'recovery-confirm').fill('ZZZZ');
    await b.byId(page, 'recovery-done').click();
    await b.byId(page, 'recovery-error').filter({ hasText: /not group/ }).waitFor({ timeout: h.T(5000) });
    assert.equal(await b.byId(page, 'devices-list').count(), 0);
    await p.confirmRecoveryKey(page);
    await b.see(page, 'devices-list', 8000);
    // Never shown again: the Security tab offers a new one instead.
    await b.byId(page, 'tab-security').click();
    await b.byId(page, 'rkey-state').filter({ hasText: /Set/ }).waitFor({ timeout: h.T(5000) });
    assert.ok(!(await page.content()).includes(key.split('-')[0] + key.split('-')[1]));
    assert.deepEqual(b.unexpected(page.problems), []);
  } finally {
    await context.close();
  }
});

test('move to a new phone: the new phone shows a code, the old one approves with its PIN and is signed out; the companion stays, re-signed', { timeout: LIMIT }, async () => {
  const oldPh = await p.openPhone(phones, server, { camera: false });
  const newPh = await p.openPhone(phones, server, { camera: false });
  let comp;
  try {
    await p.register(oldPh.page, 'mvb');
    comp = await linkCompanion(oldPh.page);
    await p.setPin(oldPh.page, '482916');

    await b.see(newPh.page, 'phone-register');
    await b.byId(newPh.page, 'move-start').click();
    await b.see(newPh.page, 'move-screen');
    await b.byId(newPh.page, 'move-code').filter({ hasText: /^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/ }).waitFor({ timeout: h.T(8000) });
    const code = await b.byId(newPh.page, 'move-code').innerText();
    await assert.doesNotReject(b.byId(newPh.page, 'move-qr').evaluate((el) => el.decode()), 'the QR renders');

    await b.byId(oldPh.page, 'tab-security').click();
    await b.see(oldPh.page, 'move-code-input');
    await b.byId(oldPh.page, 'move-code-input').fill(code);
    await b.byId(oldPh.page, 'move-pin').fill('482916');
    await b.byId(oldPh.page, 'move-approve').click();
    // The old phone is signed out live; the new one holds the account.
    await b.see(oldPh.page, 'session-ended', 15000);
    assert.match(await b.byId(oldPh.page, 'session-ended').innerText(), /moved to a new phone/);
    await b.see(newPh.page, 'devices-list', 15000);
    // The companion is still linked, and its record verifies with the new phone's key.
    await b.byId(newPh.page, 'devices-list').filter({ hasText: /Chrome/ }).waitFor({ timeout: h.T(8000) });
    const signed = await newPh.page.evaluate(async () => {
      const primary = await import('/phone/primary.js');
      const me = await primary.phoneInfo();
      const r = await fetch('/v1/devices', { credentials: 'same-origin' });
      const { devices } = await r.json();
      const out = [];
      for (const d of devices) if (d.role === 'companion') out.push(await primary.signedByMe(me.account_id, d));
      return out;
    });
    assert.deepEqual(signed, [true]);
    await comp.page.reload();
    await b.see(comp.page, 'devices-list', 10000);
  } finally {
    await comp?.context.close();
    await oldPh.context.close();
    await newPh.context.close();
  }
});

test('I lost my phone: handle and recovery key on a new phone log every device out live', { timeout: LIMIT }, async () => {
  const lost = await p.openPhone(phones, server, { camera: false });
  const fresh = await p.openPhone(phones, server, { camera: false });
  let comp;
  try {
    const { handle, recoveryKey } = await p.registerWithKey(lost.page, 'lostb');
    comp = await linkCompanion(lost.page);

    await b.see(fresh.page, 'phone-register');
    await b.byId(fresh.page, 'recover-start').click();
    await b.see(fresh.page, 'recover-screen');
    await b.byId(fresh.page, 'recover-handle').fill(handle);
    await b.byId(fresh.page, 'recover-key').fill('AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH');
    await b.byId(fresh.page, 'recover-submit').click();
    await b.byId(fresh.page, 'recover-error').filter({ hasText: /do not match/ }).waitFor({ timeout: h.T(5000) });
    await b.byId(fresh.page, 'recover-key').fill(recoveryKey.toLowerCase());
    await b.byId(fresh.page, 'recover-submit').click();
    // The next key is shown once, confirmed like at registration.
    const next = await p.confirmRecoveryKey(fresh.page);
    assert.notEqual(next, recoveryKey);
    await b.see(fresh.page, 'devices-list', 8000);
    // The lost phone and the companion are logged out live.
    await b.see(lost.page, 'session-ended', 15000);
    assert.match(await b.byId(lost.page, 'session-ended').innerText(), /recovered/);
    await comp.page.waitForFunction(() => !document.querySelector('[data-testid="devices-list"]'), null, { timeout: h.T(15000) });
    // The old primary key is refused: its session cannot refresh any more.
    const refused = await lost.page.evaluate(async () => (await fetch('/v1/session', { credentials: 'same-origin' })).status);
    assert.equal(refused, 401);
  } finally {
    await comp?.context.close();
    await lost.context.close();
    await fresh.context.close();
  }
});
