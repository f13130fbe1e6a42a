// Account deletion (ASVS 7.4.2: every session ends when the account is
// deleted): DELETE /v1/account by the phone, with the PIN when one is set;
// every device hears session.ended (account_deleted) live, no credential of
// the account works afterwards, the store keeps nothing of it, and the handle
// can be registered again. CLI: `linkward phone delete-account --yes`.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import * as h from '../lib/harness.js';

const run = promisify(execFile);
let server;

before(async () => {
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

/** Read-only SQL on the server's SQLite file: {name: count} of rows naming the account. */
async function rowsOf(accountId, handle) {
  const db = path.join(server.dataDir, 'linkward.db');
  const q = `SELECT (SELECT count(*) FROM accounts WHERE id = '${accountId}' OR handle = '${handle}') AS accounts,
    (SELECT count(*) FROM sessions WHERE account_id = '${accountId}') AS sessions,
    (SELECT count(*) FROM link_requests WHERE account_id = '${accountId}') AS link_requests,
    (SELECT count(*) FROM alerts WHERE account_id = '${accountId}') AS alerts`;
  const { stdout } = await run('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 5000', db, q], { timeout: h.T(15000) });
  return JSON.parse(stdout)[0];
}

describe('DELETE /v1/account', () => {
  test('ends every session live (account_deleted), refuses the credentials after, leaves nothing in the store, frees the handle', async () => {
    const handle = h.uniqueHandle('deleteme');
    const primary = await h.registerPrimary(server.url, handle);
    const companions = [await h.linkCompanionApi(server.url, primary), await h.linkCompanionApi(server.url, primary)];
    // An ended device (history), alerts (device.linked, device.ended) and a request this phone scanned.
    const old = await h.linkCompanionApi(server.url, primary);
    h.expectStatus(await primary.del(`/v1/devices/${old.deviceId}`), 200);
    const scanned = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, scanned.payload), 200);
    const before = await rowsOf(primary.accountId, handle);
    assert.deepEqual({ ...before, alerts: before.alerts > 0 }, { accounts: 1, sessions: 4, link_requests: 4, alerts: true });
    const statsBefore = await h.adminStats(server);

    const socks = [];
    for (const d of [primary, ...companions]) {
      const s = await d.ws();
      await s.next('hello');
      socks.push(s);
    }
    // Only the phone may do it.
    const byCompanion = await companions[0].raw('DELETE', '/v1/account', { body: {} });
    h.expectError(byCompanion, 403, 'forbidden');
    assert.match(byCompanion.json.error.message, /primary device|phone/i);

    const res = await primary.raw('DELETE', '/v1/account', { body: {} });
    const j = h.expectStatus(res, 200);
    assert.deepEqual(j, { deleted: true, ended: 3 });
    assert.match(res.headers.get('clear-site-data') || '', /storage/);

    for (const s of socks) {
      const ev = await s.next('session.ended');
      assert.equal(ev.reason, 'account_deleted');
      assert.match(ev.message, /deleted/);
      assert.equal((await s.closed).code, 4001);
    }
    // No credential of the account works any more, for any route or a refresh.
    for (const d of [primary, ...companions, old]) {
      h.expectError(await d.raw('GET', '/v1/session'), 401, 'unauthenticated');
      assert.equal((await d.refresh()).status, 401);
      const ws = await h.tryConnectWs(server.url, d.token);
      assert.equal(ws.ok, false);
      assert.equal(ws.status, 401);
    }
    h.expectError(await h.api(server.url, 'GET', `/v1/link-requests/${scanned.id}`, { token: scanned.token }), 401, 'unauthenticated');

    assert.deepEqual(await rowsOf(primary.accountId, handle), { accounts: 0, sessions: 0, link_requests: 0, alerts: 0 });
    const statsAfter = await h.adminStats(server);
    assert.equal(statsAfter.accounts, statsBefore.accounts - 1);
    assert.equal(statsAfter.sessions_active, statsBefore.sessions_active - 3);
    assert.equal(statsAfter.sessions_ended, statsBefore.sessions_ended - 1);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /linkward_sessions_ended_total\{reason="account_deleted"\} [1-9]/);

    // The handle is free: someone (the same person, a new phone) registers it again.
    const again = await h.registerPrimary(server.url, handle);
    assert.notEqual(again.accountId, primary.accountId);
    assert.deepEqual(await again.devices().then((ds) => ds.length), 1);
  });

  test('with a PIN set the PIN is needed, checked like any PIN (a wrong one counts and changes nothing)', async () => {
    const primary = await h.registerPrimary(server.url, h.uniqueHandle('pindel'));
    const c = await h.linkCompanionApi(server.url, primary, {});
    h.expectStatus(await primary.post('/v1/pin', { new_pin: '482916' }), 200);
    h.expectError(await primary.raw('DELETE', '/v1/account', { body: {} }), 403, 'pin_required');
    const wrong = await primary.raw('DELETE', '/v1/account', { body: { pin: '000000' } });
    h.expectError(wrong, 403, 'wrong_pin');
    assert.equal(wrong.json.error.attempts_left, 9);
    h.expectStatus(await c.get('/v1/session'), 200);
    assert.ok((await primary.alerts()).some((a) => a.kind === 'pin.failed'), 'the wrong PIN raised pin.failed');
    h.expectError(await primary.raw('DELETE', '/v1/account', { body: { pin: 12 } }), 400, 'invalid_request');
    const ok = await primary.raw('DELETE', '/v1/account', { body: { pin: '482916' } });
    assert.deepEqual(h.expectStatus(ok, 200), { deleted: true, ended: 2 });
    h.expectError(await c.raw('GET', '/v1/session'), 401, 'unauthenticated');
  });

  test('from another site it is refused (Origin) and nothing is deleted', async () => {
    const primary = await h.registerPrimary(server.url, h.uniqueHandle('xdel'));
    const r = await primary.raw('DELETE', '/v1/account', { body: {}, headers: { origin: 'https://evil.example' } });
    h.expectError(r, 403, 'forbidden_origin');
    h.expectStatus(await primary.get('/v1/session'), 200);
  });
});

describe('linkward phone delete-account', () => {
  test('refuses without --yes (exit 1); with --yes deletes, forgets the account here, and the handle can be registered again', async () => {
    const phone = new h.PhoneCli(server);
    const handle = h.uniqueHandle('clidel');
    await phone.register(handle);
    const companion = new h.CompanionCli(server);
    await h.linkCompanionCli(phone, companion);
    const watch = companion.spawnWatch();
    // watch prints live events; the server greets every socket (hello / proof.challenge).
    await watch.waitForLine((o) => typeof o.event === 'string', h.T(5000));

    const refused = await phone.runText(['delete-account']);
    assert.equal(refused.code, 1, h.describe(refused));
    assert.match(refused.stderr, /--yes/);
    assert.equal((await phone.whoami()).account.handle, handle, 'nothing happened');

    const res = await phone.run(['delete-account', '--yes']);
    assert.equal(res.code, 0, h.describe(res));
    assert.equal(res.json.deleted, true);
    assert.equal(res.json.ended, 2);
    const last = await watch.waitForLine((e) => e.event === 'session.ended', 10000);
    assert.equal(last.reason, 'account_deleted');
    assert.equal((await watch.waitExit(10000)).code, 0);

    const who = await phone.run(['whoami']);
    assert.equal(who.code, 1, `the phone forgot the account: ${h.describe(who)}`);
    await phone.register(handle);
    assert.equal((await phone.whoami()).account.handle, handle);
  });

  test('with a PIN: missing or wrong PIN exits 3 and keeps the account; the right one deletes it', async () => {
    const phone = new h.PhoneCli(server);
    await phone.register(h.uniqueHandle('clipin'));
    assert.equal((await phone.run(['pin', 'set', '--pin', '135790'])).code, 0);
    const none = await phone.runText(['delete-account', '--yes']);
    assert.equal(none.code, 3, h.describe(none));
    assert.match(none.stderr, /PIN/);
    const wrong = await phone.runText(['delete-account', '--yes', '--pin', '000000']);
    assert.equal(wrong.code, 3, h.describe(wrong));
    assert.match(wrong.stderr, /wrong PIN/i);
    await phone.whoami();
    const ok = await phone.runText(['delete-account', '--yes', '--pin', '135790']);
    assert.equal(ok.code, 0, h.describe(ok));
    assert.match(ok.stderr, /Deleted the account/);
  });
});
