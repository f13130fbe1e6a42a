// `linkward admin end-sessions` (ASVS 7.4.5: administrators can end the
// sessions of one user or of everyone) and handle-bound invites, over the
// server's control socket (docs/cli.md `linkward admin`).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

/** A primary with n companions, each with a live socket. */
async function accountWithSockets(prefix, n) {
  const primary = await h.registerPrimary(server.url, h.uniqueHandle(prefix));
  const companions = [];
  for (let i = 0; i < n; i++) {
    const c = await h.linkCompanionApi(server.url, primary);
    c.sock = await c.ws();
    await c.sock.next('hello');
    companions.push(c);
  }
  primary.sock = await primary.ws();
  await primary.sock.next('hello');
  return { primary, companions };
}

describe('admin end-sessions', () => {
  test('--account ends the account\'s companions live (admin_logout), tells the phone, leaves other accounts alone', async () => {
    const a = await accountWithSockets('endacct', 2);
    const b = await accountWithSockets('bystander', 1);
    const res = await h.adminCli(server, ['end-sessions', '--account', a.primary.handle]);
    assert.equal(res.code, 0, h.describe(res));
    assert.equal(res.json.ended, 2);
    assert.deepEqual([...res.json.device_ids].sort(), a.companions.map((c) => c.deviceId).sort());

    for (const c of a.companions) {
      const ev = await c.sock.next('session.ended');
      assert.equal(ev.reason, 'admin_logout');
      assert.match(ev.message, /administrator/i);
      const closed = await c.sock.closed;
      assert.equal(closed.code, 4001);
      const r = await c.raw('GET', '/v1/session');
      h.expectError(r, 401, 'session_ended');
      assert.equal(r.json.error.reason, 'admin_logout');
    }
    // The phone stays in, hears device.ended and gets the usual alert.
    const ended = await a.primary.sock.next((e) => e.event === 'device.ended' && e.reason === 'admin_logout');
    assert.deepEqual([...ended.device_ids].sort(), a.companions.map((c) => c.deviceId).sort());
    const alert = (await a.primary.alerts()).find((x) => x.kind === 'device.ended');
    assert.ok(alert, 'a device.ended alert');
    assert.equal(alert.details.reason, 'admin_logout');
    assert.equal(alert.details.count, 2);
    h.expectStatus(await a.primary.get('/v1/session'), 200);
    const history = await a.primary.history();
    assert.deepEqual(history.map((x) => x.end_reason), ['admin_logout', 'admin_logout']);
    // The other account saw nothing.
    h.expectStatus(await b.companions[0].get('/v1/session'), 200);
    assert.equal(b.companions[0].sock.events.some((e) => e.event === 'session.ended'), false);

    for (const d of [a.primary, b.primary, b.companions[0]]) await d.sock.close();
  });

  test('--device ends one device; a primary only with --include-primary', async () => {
    const a = await accountWithSockets('enddev', 2);
    const [gone, stays] = a.companions;
    const res = await h.adminCli(server, ['end-sessions', '--device', gone.deviceId]);
    assert.equal(res.code, 0, h.describe(res));
    assert.deepEqual(res.json.device_ids, [gone.deviceId]);
    assert.equal((await gone.sock.next('session.ended')).reason, 'admin_logout');
    h.expectStatus(await stays.get('/v1/session'), 200);

    // Again: nothing to do, and said so.
    const again = await h.adminCli(server, ['end-sessions', '--device', gone.deviceId]);
    assert.equal(again.code, 0, h.describe(again));
    assert.equal(again.json.ended, 0);
    assert.equal(again.json.already_ended, true);

    // The phone: refused unless asked for explicitly (it cannot get back in).
    const refused = await h.adminCli(server, ['end-sessions', '--device', a.primary.deviceId]);
    assert.equal(refused.code, 3, h.describe(refused));
    assert.match(refused.stderr, /primary/i);
    h.expectStatus(await a.primary.get('/v1/session'), 200);
    const forced = await h.adminCli(server, ['end-sessions', '--device', a.primary.deviceId, '--include-primary']);
    assert.equal(forced.code, 0, h.describe(forced));
    assert.equal((await a.primary.sock.next('session.ended')).reason, 'admin_logout');
    h.expectError(await a.primary.raw('GET', '/v1/session'), 401, 'session_ended');
    await stays.sock.close();
  });

  test('unknown account or device: exit 3 with a clear message; usage errors exit 1', async () => {
    const noAcct = await h.runCli(['admin', '--control', server.controlSock, 'end-sessions', '--account', 'nobody-here']);
    assert.equal(noAcct.code, 3, h.describe(noAcct));
    assert.match(noAcct.stderr, /No account has the handle nobody-here/);
    const noDev = await h.runCli(['admin', '--control', server.controlSock, 'end-sessions', '--device', 'AAAAAAAAAAAAAAAAAAAAAA']);
    assert.equal(noDev.code, 3, h.describe(noDev));
    assert.match(noDev.stderr, /No device has the id AAAAAAAAAAAAAAAAAAAAAA/);
    for (const args of [[], ['--all', '--account', 'x'], ['--account'], ['--device', 'not an id']]) {
      const r = await h.runCli(['admin', '--control', server.controlSock, 'end-sessions', ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${h.describe(r)}`);
    }
    const wrong = await h.runCli(['admin', '--control', server.controlSock, 'stats', '--all']);
    assert.equal(wrong.code, 1, h.describe(wrong));
  });

  test('an unknown handle or id cut inside a multibyte character still gets its not_found answer', async () => {
    // The message quotes at most 64 bytes: "x" and 40 "é" are cut in the middle of one.
    const handle = `x${'é'.repeat(40)}`;
    const a = await h.controlRequest(server, { cmd: 'end_sessions', account: handle });
    assert.equal(a.error?.code, 'not_found', JSON.stringify(a));
    assert.ok(a.error.message.startsWith(`No account has the handle x${'é'.repeat(31)}?`), a.error.message);
    const d = await h.controlRequest(server, { cmd: 'end_sessions', device: `x${'€'.repeat(30)}` });
    assert.equal(d.error?.code, 'not_found', JSON.stringify(d));
  });

  test('--all ends every account\'s companions; the phones stay', async () => {
    const a = await accountWithSockets('endall', 1);
    const b = await accountWithSockets('endall', 2);
    const res = await h.adminCli(server, ['end-sessions', '--all']);
    assert.equal(res.code, 0, h.describe(res));
    assert.ok(res.json.ended >= 3, JSON.stringify(res.json));
    for (const c of [...a.companions, ...b.companions]) {
      assert.equal((await c.sock.next('session.ended')).reason, 'admin_logout');
    }
    for (const p of [a.primary, b.primary]) {
      h.expectStatus(await p.get('/v1/session'), 200);
      await p.sock.next((e) => e.event === 'device.ended' && e.reason === 'admin_logout');
      await p.sock.close();
    }
    const stats = await h.adminStats(server);
    assert.ok(stats.sessions_active >= 2, JSON.stringify(stats));
  });
});

describe('handle-bound invites', () => {
  let inv;
  before(async () => {
    inv = await h.startServer({ args: ['--registration', 'invite'] });
  });
  after(async () => {
    await inv?.stop();
  });

  test('an invite for a handle registers that handle only; the operator is told at once when it is taken', async () => {
    const made = await h.adminCli(inv, ['invite', '--handle', 'Bound.User']);
    assert.equal(made.code, 0, h.describe(made));
    assert.equal(made.json.handle, 'bound.user', 'normalised');
    // Another handle with it: the answer a made-up invite gets, and the invite stays usable.
    const other = await h.api(inv.url, 'POST', '/v1/accounts',
      { body: { handle: 'someone-else', public_key: h.newDeviceKey().pubB64, invite: made.json.code } });
    h.expectError(other, 403, 'invalid_invite');
    const p = await h.registerPrimary(inv.url, 'bound.user', { invite: made.json.code });
    assert.equal(p.handle, 'bound.user');

    const taken = await h.adminCli(inv, ['invite', '--handle', 'bound.user']);
    assert.equal(taken.code, 3, h.describe(taken));
    assert.match(taken.stderr, /already registered/);
    const bad = await h.adminCli(inv, ['invite', '--handle', 'no spaces allowed']);
    assert.equal(bad.code, 3, h.describe(bad));
    const misplaced = await h.runCli(['admin', '--control', inv.controlSock, 'stats', '--handle', 'x']);
    assert.equal(misplaced.code, 1, h.describe(misplaced));
  });
});
