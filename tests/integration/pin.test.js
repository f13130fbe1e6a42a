// The two-step verification PIN (PRODUCT §5): required to approve links when
// set, changes need the old PIN, 10 wrong PINs lock, every failure alerts,
// the PIN is never logged or stored in clear.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

// Distinctive values so a leak can be found in logs and files.
const PIN = { alice: '731946', aliceNew: '285017', bob: '402718', dora: '618204', pat: '370415', quinn: '826150',
  rita: '593817', ritaNew: '847261', ritaThird: '162953' };
const WRONG = { alice: '964213', bob: '551903', dora: '190375', quinn: '307592' };

let server;
before(async () => {
  server = await h.startServer({ args: ['--pin-lockout', '2s'] });
});
after(async () => {
  await server?.stop();
});

/** A fresh pending link request on the server (the companion side, over the API). */
const newRequest = () => h.createLinkRequest(server.url);

describe('PIN with the phone CLI', () => {
  let phone;
  before(async () => {
    phone = new h.PhoneCli(server);
    await phone.register('alice');
  });

  test('pin set turns the PIN on', async () => {
    assert.equal((await phone.whoami()).account.has_pin, false);
    const res = await phone.run(['pin', 'set', '--pin', PIN.alice]);
    assert.equal(res.code, 0, h.describe(res));
    assert.equal((await phone.whoami()).account.has_pin, true);
  });

  test('linking without the PIN is refused (exit 3)', async () => {
    const req = await newRequest();
    const res = await phone.run(['link', req.payload, '--yes']);
    assert.equal(res.code, 3, h.describe(res));
    assert.match(h.refusalText(res), /pin/i);
    h.expectError(await h.complete(req), 409, 'not_pending');
  });

  test('a wrong PIN is refused (exit 3) and raises a pin.failed alert', async () => {
    const before = (await phone.alerts()).filter((a) => a.kind === 'pin.failed').length;
    const req = await newRequest();
    const res = await phone.run(['link', req.payload, '--pin', WRONG.alice, '--yes']);
    assert.equal(res.code, 3, h.describe(res));
    assert.match(h.refusalText(res), /pin/i);
    const alerts = await phone.alerts();
    const failed = alerts.filter((a) => a.kind === 'pin.failed');
    assert.equal(failed.length, before + 1, JSON.stringify(alerts));
    assert.ok(!JSON.stringify(failed).includes(WRONG.alice), 'the alert does not carry the PIN');
  });

  test('the right PIN links', async () => {
    const req = await newRequest();
    const res = await phone.run(['link', req.payload, '--pin', PIN.alice, '--yes']);
    assert.equal(res.code, 0, h.describe(res));
    assert.ok(res.lines.some((l) => l.event === 'approved'));
    h.expectStatus(await h.complete(req), 201);
  });

  test('pin change needs the current PIN', async () => {
    const bad = await phone.run(['pin', 'change', '--pin', WRONG.alice, '--new-pin', PIN.aliceNew]);
    assert.equal(bad.code, 3, h.describe(bad));
    const ok = await phone.run(['pin', 'change', '--pin', PIN.alice, '--new-pin', PIN.aliceNew]);
    assert.equal(ok.code, 0, h.describe(ok));

    const r1 = await newRequest();
    const old = await phone.run(['link', r1.payload, '--pin', PIN.alice, '--yes']);
    assert.equal(old.code, 3, `the old PIN no longer works: ${h.describe(old)}`);
    const r2 = await newRequest();
    const neu = await phone.run(['link', r2.payload, '--pin', PIN.aliceNew, '--yes']);
    assert.equal(neu.code, 0, h.describe(neu));
    h.expectStatus(await h.complete(r2), 201);
  });

  test('pin disable needs the PIN, then links need none', async () => {
    const bad = await phone.run(['pin', 'disable', '--pin', WRONG.alice]);
    assert.equal(bad.code, 3, h.describe(bad));
    assert.equal((await phone.whoami()).account.has_pin, true);
    const ok = await phone.run(['pin', 'disable', '--pin', PIN.aliceNew]);
    assert.equal(ok.code, 0, h.describe(ok));
    assert.equal((await phone.whoami()).account.has_pin, false);
    const req = await newRequest();
    const res = await phone.run(['link', req.payload, '--yes']);
    assert.equal(res.code, 0, h.describe(res));
    h.expectStatus(await h.complete(req), 201);
  });
});

describe('PIN over the API', () => {
  let bob;
  before(async () => {
    bob = await h.registerPrimary(server.url, 'bob');
  });

  test('setting a PIN: 6 digits; replacing it needs the current one', async () => {
    for (const bad of ['12345', '1234567', 'abcdef', '12 456', '']) {
      h.expectError(await bob.post('/v1/pin', { new_pin: bad }), 400, 'invalid_request');
    }
    h.expectError(await bob.post('/v1/pin', {}), 400, 'invalid_request');
    assert.equal(h.expectStatus(await bob.post('/v1/pin', { new_pin: PIN.bob }), 200).has_pin, true);
    assert.equal((await bob.session()).account.has_pin, true);
  });

  test('replacing or disabling a PIN needs the current one', async () => {
    const pat = await h.registerPrimary(server.url, 'pat');
    h.expectStatus(await pat.post('/v1/pin', { new_pin: '370415' }), 200);
    const again = await pat.post('/v1/pin', { new_pin: '111111' });
    assert.equal(again.status, 403, h.show(again));
    assert.ok(['pin_required', 'wrong_pin'].includes(again.json.error.code), h.show(again));
    h.expectError(await pat.post('/v1/pin', { new_pin: '111111', pin: '999999' }), 403, 'wrong_pin');
    h.expectError(await pat.post('/v1/pin/disable', { pin: '999999' }), 403, 'wrong_pin');
    assert.equal((await pat.session()).account.has_pin, true);
    h.expectStatus(await pat.post('/v1/pin', { new_pin: '111111', pin: '370415' }), 200);
    assert.equal(h.expectStatus(await pat.post('/v1/pin/disable', { pin: '111111' }), 200).has_pin, false);
    assert.equal((await pat.session()).account.has_pin, false);
    // Each change is an alert on every device: set, changed, turned off.
    const changes = (await pat.alerts()).filter((a) => a.kind === 'pin.changed').map((a) => a.details.change);
    assert.deepEqual(changes.sort(), ['changed', 'disabled', 'set']);
  });

  test('approval without the PIN answers 403 pin_required; the request stays scanned', async () => {
    const req = await newRequest();
    h.expectStatus(await h.scan(bob, req.payload), 200);
    h.expectError(await h.approve(bob, req.id, req.key.pub), 403, 'pin_required');
    h.expectStatus(await h.approve(bob, req.id, req.key.pub, { pin: PIN.bob }), 200);
    h.expectStatus(await h.complete(req), 201);
  });

  test('ten wrong PINs lock the account (423 pin_locked); after the lockout the right PIN works', async () => {
    const ws = await bob.ws();
    try {
      await ws.next('hello');
      const req = await newRequest();
      h.expectStatus(await h.scan(bob, req.payload), 200);

      const attemptsLeft = [];
      let lockedAt = -1;
      for (let i = 1; i <= 10; i++) {
        const r = await h.approve(bob, req.id, req.key.pub, { pin: WRONG.bob });
        if (r.status === 423) {
          lockedAt = i;
          break;
        }
        const err = h.expectError(r, 403, 'wrong_pin');
        attemptsLeft.push(err.attempts_left);
      }
      assert.ok(lockedAt === -1 || lockedAt === 10, `locked after ${lockedAt} wrong PINs, expected 10`);
      assert.equal(attemptsLeft[0], 9, `attempts_left after the first wrong PIN: ${attemptsLeft}`);
      for (let i = 1; i < attemptsLeft.length; i++) assert.equal(attemptsLeft[i], attemptsLeft[i - 1] - 1);

      // Locked: even the right PIN is refused, with Retry-After.
      const locked = await h.approve(bob, req.id, req.key.pub, { pin: PIN.bob });
      h.expectError(locked, 423, 'pin_locked');
      const retry = Number(locked.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 2, `Retry-After ${locked.headers.get('retry-after')} for a 2 s lockout`);

      // Alerts: the burst is one pin.failed alert counting the ten wrong PINs,
      // in a sentence, and one pin.locked; pushed live, pin.failed again at each
      // wrong PIN with its id, so that clients replace it.
      const alerts = await bob.alerts();
      const failed = alerts.filter((a) => a.kind === 'pin.failed');
      assert.equal(failed.length, 1, JSON.stringify(alerts.map((a) => a.kind)));
      assert.equal(failed[0].count, 10);
      assert.equal(failed[0].device_id, bob.deviceId);
      assert.equal(failed[0].details.message, 'Wrong PIN entered 10 times; no tries left.');
      assert.deepEqual([failed[0].details.failures, failed[0].details.attempts_left], [10, 0]);
      assert.ok(failed[0].updated_at >= failed[0].created_at);
      const lockedAlerts = alerts.filter((a) => a.kind === 'pin.locked');
      assert.equal(lockedAlerts.length, 1);
      assert.equal(lockedAlerts[0].details.message, 'Too many wrong PINs (10 in a row): PIN entry is locked for 2 seconds.');
      await ws.next((m) => m.event === 'alert' && m.alert.kind === 'pin.locked');
      const pushed = ws.events.filter((m) => m.event === 'alert' && m.alert.kind === 'pin.failed').map((m) => m.alert);
      assert.deepEqual(pushed.map((a) => a.count), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.ok(pushed.every((a) => a.id === failed[0].id));
      assert.equal(pushed[0].details.message, 'Wrong PIN entered once; 9 tries left.');
      assert.equal(pushed[2].details.message, 'Wrong PIN entered 3 times; 7 tries left.');
      assert.equal(pushed[8].details.message, 'Wrong PIN entered 9 times; 1 try left.');

      // After the lockout the right PIN approves (poll the lockout's end, bounded).
      const ok = await h.pollUntil(async () => {
        const r = await h.approve(bob, req.id, req.key.pub, { pin: PIN.bob });
        if (r.status === 423) return false;
        return r;
      }, { timeout: 5000, interval: 200, maxTries: 40, what: 'the PIN lockout to end' });
      h.expectStatus(ok, 200);
      h.expectStatus(await h.complete(req), 201);

      // The counter was reset by the success.
      const r2 = await newRequest();
      h.expectStatus(await h.scan(bob, r2.payload), 200);
      const err = h.expectError(await h.approve(bob, r2.id, r2.key.pub, { pin: WRONG.bob }), 403, 'wrong_pin');
      assert.equal(err.attempts_left, 9);
    } finally {
      await ws.close();
    }
  });

  test('consecutive lockouts double', async () => {
    const quinn = await h.registerPrimary(server.url, 'quinn');
    h.expectStatus(await quinn.post('/v1/pin', { new_pin: PIN.quinn }), 200);
    const req = await newRequest();
    h.expectStatus(await h.scan(quinn, req.payload), 200);
    /** Wrong PINs until locked (bounded); returns the 423 answer. */
    const lockOut = async () => {
      for (let i = 0; i < 12; i++) {
        const r = await h.approve(quinn, req.id, req.key.pub, { pin: WRONG.quinn });
        if (r.status === 423) return r;
        h.expectError(r, 403, 'wrong_pin');
      }
      const r = await h.approve(quinn, req.id, req.key.pub, { pin: WRONG.quinn });
      return h.expectError(r, 423, 'pin_locked') && r;
    };
    const first = await lockOut();
    const r1 = Number(first.headers.get('retry-after'));
    assert.ok(r1 >= 1 && r1 <= 2, `first lockout Retry-After ${r1} for --pin-lockout 2s`);
    // Let the first lockout run out (time must pass; bounded), without any success in between.
    const t = h.stopwatch();
    await h.pollUntil(() => t() > r1 * 1000 + 100, { timeout: 4000, interval: 100, what: 'the first lockout to pass' });
    const second = await lockOut();
    const r2 = Number(second.headers.get('retry-after'));
    assert.ok(r2 >= 3 && r2 <= 4, `second lockout Retry-After ${r2}, expected 4 s (2 × 2 s)`);
  });
});

describe('after a PIN change, logging out the other devices is offered (ASVS 7.4.3)', () => {
  test('the answer to a change (not to a first PIN) carries suggest_logout_all', async () => {
    const rita = await h.registerPrimary(server.url, h.uniqueHandle('rita'));
    const set = h.expectStatus(await rita.post('/v1/pin', { new_pin: PIN.rita }), 200);
    assert.equal(set.suggest_logout_all, undefined, 'a first PIN suggests nothing');
    const changed = h.expectStatus(await rita.post('/v1/pin', { new_pin: PIN.ritaNew, pin: PIN.rita }), 200);
    assert.equal(changed.suggest_logout_all, true);
  });

  test('the CLI says so after pin change, and with --logout-all logs the other devices out at once', async () => {
    const phone = new h.PhoneCli(server);
    await phone.register(h.uniqueHandle('ritacli'));
    assert.equal((await phone.run(['pin', 'set', '--pin', PIN.rita])).code, 0);
    const companions = [];
    for (let i = 0; i < 2; i++) {
      const req = await newRequest();
      const res = await phone.run(['link', req.payload, '--pin', PIN.rita, '--yes']);
      assert.equal(res.code, 0, h.describe(res));
      companions.push(h.companionFrom(req, h.expectStatus(await h.complete(req), 201)));
    }
    const text = await phone.runText(['pin', 'change', '--pin', PIN.rita, '--new-pin', PIN.ritaNew]);
    assert.equal(text.code, 0, h.describe(text));
    assert.match(text.stderr, /log out every other device: linkward phone logout --all/);
    for (const c of companions) h.expectStatus(await c.get('/v1/session'), 200);

    const res = await phone.run(['pin', 'change', '--pin', PIN.ritaNew, '--new-pin', PIN.ritaThird, '--logout-all']);
    assert.equal(res.code, 0, h.describe(res));
    assert.equal(res.json.suggest_logout_all, true);
    assert.equal(res.json.logged_out, 2);
    for (const c of companions) {
      const r = await c.raw('GET', '/v1/session');
      h.expectError(r, 401, 'session_ended');
      assert.equal(r.json.error.reason, 'logout_all');
    }
    const misplaced = await phone.run(['pin', 'set', '--pin', PIN.rita, '--logout-all']);
    assert.equal(misplaced.code, 1, h.describe(misplaced));
  });
});

describe('PIN lockout with the phone CLI', () => {
  test('after ten wrong PINs the CLI is refused even with the right PIN (exit 3), and a pin.locked alert is raised', async () => {
    const phone = new h.PhoneCli(server);
    await phone.register('dora');
    assert.equal((await phone.run(['pin', 'set', '--pin', PIN.dora])).code, 0);
    for (let i = 0; i < 10; i++) {
      const req = await newRequest();
      const res = await phone.run(['link', req.payload, '--pin', WRONG.dora, '--yes']);
      assert.equal(res.code, 3, h.describe(res));
    }
    const req = await newRequest();
    const res = await phone.run(['link', req.payload, '--pin', PIN.dora, '--yes']);
    assert.equal(res.code, 3, `locked: ${h.describe(res)}`);
    assert.match(h.refusalText(res), /lock|try again|pin_locked/i);
    const alerts = await phone.alerts();
    assert.ok(alerts.some((a) => a.kind === 'pin.locked'), JSON.stringify(alerts.map((a) => a.kind)));
    // The ten wrong PINs (and the refused right one) are one alert that counts them.
    const failed = alerts.filter((a) => a.kind === 'pin.failed');
    assert.equal(failed.length, 1, JSON.stringify(alerts.map((a) => a.kind)));
    assert.ok(failed[0].count >= 10, `count ${failed[0].count}`);

    // Once the lockout is over, the right PIN links (bounded retries).
    const done = await h.pollUntil(async () => {
      const r = await newRequest();
      const out = await phone.run(['link', r.payload, '--pin', PIN.dora, '--yes']);
      return out.code === 0 ? { r, out } : false;
    }, { timeout: 6000, interval: 300, maxTries: 15, what: 'the CLI to link after the lockout' });
    h.expectStatus(await h.complete(done.r), 201);
  });
});

describe('secrecy', () => {
  test('no PIN appears in the server logs', () => {
    const log = server.stderr();
    assert.ok(log.length > 0, 'the server logs something (JSON lines on stderr)');
    for (const pin of [...Object.values(PIN), ...Object.values(WRONG)]) {
      assert.ok(!log.includes(pin), `PIN ${pin} found in server stderr`);
    }
  });

  test('no PIN is stored in clear in the data directory', () => {
    const files = fs.readdirSync(server.dataDir).filter((f) => f.startsWith('linkward.db'));
    assert.ok(files.length > 0, `no database in ${server.dataDir}`);
    for (const f of files) {
      const bytes = fs.readFileSync(path.join(server.dataDir, f)).toString('latin1');
      for (const pin of [...Object.values(PIN), ...Object.values(WRONG)]) {
        assert.ok(!bytes.includes(pin), `PIN ${pin} found in ${f}`);
      }
    }
  });
});
