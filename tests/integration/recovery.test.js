// The recovery key ("I lost my phone", docs/security.md "Recovery key"): shown
// once at registration, only a verifier stored; POST /v1/account/recover with
// handle + key + a new primary key replaces the primary, ends every session
// of the account (reason "recovered") live, raises an alert and spends the
// key; an unknown handle and a wrong key get the same answer at the same
// paced time; limited per handle and per address; every field checked.
// POST /v1/account/recovery-key makes a new key (primary only, PIN if set).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as h from '../lib/harness.js';

const run = promisify(execFile);
const KEY_RE = /^[A-Z2-7]{4}(-[A-Z2-7]{4}){7}$/;
let server;

before(async () => {
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

function recover(url, body) {
  return h.api(url, 'POST', '/v1/account/recover', { body });
}

async function storedVerifier(accountId) {
  const db = path.join(server.dataDir, 'linkward.db');
  const { stdout } = await run('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 5000', db,
    `SELECT recovery_hash FROM accounts WHERE id = '${accountId}'`], { timeout: h.T(15000) });
  return JSON.parse(stdout)[0].recovery_hash;
}

describe('recovery key', () => {
  test('registration shows a 160-bit key once; the store keeps only a keyed hash of it', async () => {
    const p = await h.registerPrimary(server.url, h.uniqueHandle('rk'));
    const key = p.registration.recovery_key;
    assert.match(key, KEY_RE);
    const stored = await storedVerifier(p.accountId);
    assert.match(stored, /^[0-9a-f]{64}$/);
    assert.ok(!stored.toUpperCase().includes(key.replaceAll('-', '').slice(0, 8)));
    // Never shown again.
    assert.ok(!JSON.stringify(await p.session()).includes(key));
  });

  test('I lost my phone: every session ends live (recovered), the old key is refused, an alert, a fresh key', async () => {
    const handle = h.uniqueHandle('lost');
    const old = await h.registerPrimary(server.url, handle);
    const key = old.registration.recovery_key;
    const companions = [await h.linkCompanionApi(server.url, old), await h.linkCompanionApi(server.url, old)];
    const socks = [];
    for (const d of [old, ...companions]) {
      const s = await d.ws();
      await s.next('hello');
      socks.push(s);
    }
    const fresh = h.newDeviceKey();
    // Typed loosely: lower case, spaces for dashes.
    const res = await recover(server.url, { handle: handle.toUpperCase(), recovery_key: key.toLowerCase().replaceAll('-', ' '), public_key: fresh.pubB64 });
    const j = h.expectStatus(res, 200);
    assert.equal(j.account_id, old.accountId);
    assert.equal(j.ended, 3);
    assert.match(j.recovery_key, KEY_RE);
    assert.notEqual(j.recovery_key, key);
    for (const s of socks) {
      const ev = await s.next('session.ended');
      assert.equal(ev.reason, 'recovered');
    }
    for (const d of [old, ...companions]) {
      const err = h.expectError(await d.raw('GET', '/v1/session'), 401, 'session_ended');
      assert.equal(err.reason, 'recovered');
      assert.equal((await d.refresh()).status, 401);
    }
    const now = new h.Device(server.url, { role: 'primary', key: fresh, token: j.token, deviceId: j.device_id, accountId: j.account_id, challenge: j.challenge });
    const me = await now.session();
    assert.equal(me.device.id, j.device_id);
    assert.equal(me.account.has_recovery_key, true);
    assert.equal((await now.devices()).length, 1);
    assert.ok((await now.alerts()).some((a) => a.kind === 'account.recovered'));
    assert.ok((await now.history()).some((s) => s.id === old.deviceId && s.end_reason === 'recovered'));
    // The new phone refreshes with its own key.
    assert.equal((await now.refresh()).status, 200);
    // A used key is spent; the new one works.
    h.expectError(await recover(server.url, { handle, recovery_key: key, public_key: h.newDeviceKey().pubB64 }), 403, 'recovery_refused');
  });

  test('unknown handle, wrong key and an account without a key: one answer, the same paced time', async () => {
    const p = await h.registerPrimary(server.url, h.uniqueHandle('enum'));
    const wrong = 'AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH';
    const times = { known: [], unknown: [] };
    for (let i = 0; i < 4; i++) {
      for (const [kind, handle] of [['known', p.handle], ['unknown', h.uniqueHandle('nobody')]]) {
        const t = h.stopwatch();
        const r = await recover(server.url, { handle, recovery_key: wrong, public_key: h.newDeviceKey().pubB64 });
        times[kind].push(t());
        h.expectError(r, 403, 'recovery_refused');
        assert.doesNotMatch(r.json.error.message, /unknown|exist|no such/i);
      }
    }
    for (const k of ['known', 'unknown']) assert.ok(Math.min(...times[k]) >= 35, `${k} answers paced: ${times[k]}`);
    const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
    assert.ok(Math.abs(med(times.known) - med(times.unknown)) < h.T(15), JSON.stringify(times));
  });

  test('every field is checked with a precise 400', async () => {
    const pk = h.newDeviceKey().pubB64;
    const good = { handle: 'someone', recovery_key: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA', public_key: pk };
    const cases = [
      [{ ...good, handle: undefined }, /handle/],
      [{ ...good, handle: 'a' }, /handle/],
      [{ ...good, handle: 5 }, /handle/],
      [{ ...good, recovery_key: undefined }, /recovery_key/],
      [{ ...good, recovery_key: 'AAAA-AAAA' }, /recovery_key/],
      [{ ...good, recovery_key: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAA8' }, /recovery_key/],
      [{ ...good, recovery_key: 'A'.repeat(80) }, /recovery_key/],
      [{ ...good, public_key: undefined }, /public_key/],
      [{ ...good, public_key: 'abc' }, /public_key/],
      [{ ...good, client: 'x' }, /client/],
    ];
    for (const [body, re] of cases) {
      const r = await recover(server.url, body);
      h.expectError(r, 400, 'invalid_request');
      assert.match(r.json.error.message, re, JSON.stringify(body));
    }
  });

  test('a new key from settings: primary only, the PIN when set; the old key stops working', async () => {
    const p = await h.registerPrimary(server.url, h.uniqueHandle('rekey'));
    const c = await h.linkCompanionApi(server.url, p);
    h.expectError(await c.raw('POST', '/v1/account/recovery-key', { body: {} }), 403, 'forbidden');
    const first = h.expectStatus(await p.raw('POST', '/v1/account/recovery-key', { body: {} }), 201).recovery_key;
    assert.match(first, KEY_RE);
    h.expectStatus(await p.post('/v1/pin', { new_pin: '135790' }), 200);
    h.expectError(await p.raw('POST', '/v1/account/recovery-key', { body: {} }), 403, 'pin_required');
    h.expectError(await p.raw('POST', '/v1/account/recovery-key', { body: { pin: '12' } }), 400, 'invalid_request');
    h.expectError(await p.raw('POST', '/v1/account/recovery-key', { body: { pin: '000000' } }), 403, 'wrong_pin');
    const second = h.expectStatus(await p.raw('POST', '/v1/account/recovery-key', { body: { pin: '135790' } }), 201).recovery_key;
    assert.notEqual(second, first);
    for (const k of [p.registration.recovery_key, first])
      h.expectError(await recover(server.url, { handle: p.handle, recovery_key: k, public_key: h.newDeviceKey().pubB64 }), 403, 'recovery_refused');
    h.expectStatus(await recover(server.url, { handle: p.handle, recovery_key: second, public_key: h.newDeviceKey().pubB64 }), 200);
  });
});

describe('recovery rate limits', () => {
  test('per handle (known or not) and per address', async () => {
    const s = await h.startServer({ args: ['--rate', 'recover=3/h'] });
    try {
      const wrong = 'AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH';
      const one = h.uniqueHandle('limited');
      for (let i = 0; i < 3; i++)
        h.expectError(await recover(s.url, { handle: one, recovery_key: wrong, public_key: h.newDeviceKey().pubB64 }), 403, 'recovery_refused');
      const r = await recover(s.url, { handle: one, recovery_key: wrong, public_key: h.newDeviceKey().pubB64 });
      h.expectError(r, 429, 'rate_limited');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    } finally {
      await s.stop();
    }
  });
});
