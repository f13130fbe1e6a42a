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

describe('move to a new phone', () => {
  test('the new phone shows a code, the old one approves (PIN), the new one claims: the old primary ends (moved), companions stay and are re-signed', async () => {
    const old = await h.registerPrimary(server.url, h.uniqueHandle('mover'));
    const comp = await h.linkCompanionApi(server.url, old);
    h.expectStatus(await old.post('/v1/pin', { new_pin: '246802' }), 200);
    const oldWs = await old.ws();
    await oldWs.next('hello');
    const compWs = await comp.ws();
    await compWs.next('hello');

    const fresh = h.newDeviceKey();
    const t = h.expectStatus(await h.api(server.url, 'POST', '/v1/transfers', { body: { public_key: fresh.pubB64 } }), 201);
    assert.match(t.code, /^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    assert.equal(t.payload, `lwmove1:${t.code}`);
    assert.match(t.token, /^lwt_[A-Za-z0-9_-]{43}$/);
    const claim = (body = { token: t.token }) => h.api(server.url, 'POST', `/v1/transfers/${t.id}/claim`, { body });
    // Waiting for the old phone.
    assert.equal(h.expectStatus(await claim(), 202).state, 'pending');
    h.expectError(await claim({ token: `lwt_${'A'.repeat(43)}` }), 404, 'not_found');
    h.expectError(await claim({ token: 'nope' }), 400, 'invalid_request');

    // Only the primary, with the PIN; a wrong or malformed code is refused.
    h.expectError(await comp.raw('POST', '/v1/transfers/approve', { body: { code: t.code } }), 403, 'forbidden');
    h.expectError(await old.raw('POST', '/v1/transfers/approve', { body: { code: 'AAAA' } }), 400, 'invalid_request');
    h.expectError(await old.raw('POST', '/v1/transfers/approve', { body: { code: 'AAAA-AAAA-AAAA' } }), 404, 'not_found');
    h.expectError(await old.raw('POST', '/v1/transfers/approve', { body: { code: t.code } }), 403, 'pin_required');
    h.expectError(await old.raw('POST', '/v1/transfers/approve', { body: { code: t.code, pin: '000000' } }), 403, 'wrong_pin');
    const ok = h.expectStatus(await old.raw('POST', '/v1/transfers/approve', { body: { code: t.code.toLowerCase().replaceAll('-', ' '), pin: '246802' } }), 200);
    assert.equal(ok.state, 'approved');
    assert.equal(ok.key_fingerprint, Buffer.from(h.fingerprint(fresh.pub)).toString('hex'));
    h.expectError(await old.raw('POST', '/v1/transfers/approve', { body: { code: t.code, pin: '246802' } }), 404, 'not_found');

    const j = h.expectStatus(await claim(), 200);
    assert.equal(j.account_id, old.accountId);
    assert.equal(j.ended, 1);
    const ev = await oldWs.next('session.ended');
    assert.equal(ev.reason, 'moved');
    h.expectError(await claim(), 409, 'conflict');
    // The old key is refused from then on.
    const err = h.expectError(await old.raw('GET', '/v1/session'), 401, 'session_ended');
    assert.equal(err.reason, 'moved');
    assert.equal((await old.refresh()).status, 401);

    const now = new h.Device(server.url, { role: 'primary', key: fresh, token: j.token, deviceId: j.device_id, accountId: j.account_id, challenge: j.challenge });
    assert.equal((await now.session()).account.has_pin, true);
    // The companion is still linked; its record was signed by the old key until re-signed.
    const devs = await now.devices();
    const rec = devs.find((d) => d.id === comp.deviceId);
    assert.ok(rec);
    const msg = h.accountMessage(j.account_id, comp.key.pub);
    assert.ok(h.verifyRaw(old.key.pub, msg, h.b64d(rec.account_signature)));
    h.expectError(await now.raw('POST', '/v1/devices/signatures', { body: { signatures: [{ device_id: comp.deviceId, account_signature: rec.account_signature }] } }), 400, 'invalid_signature');
    h.expectError(await now.raw('POST', '/v1/devices/signatures', { body: { signatures: [] } }), 400, 'invalid_request');
    h.expectError(await now.raw('POST', '/v1/devices/signatures', { body: { signatures: [{ device_id: 'x' }] } }), 400, 'invalid_request');
    const sig = h.accountSignature(now, comp.key.pub);
    h.expectError(await now.raw('POST', '/v1/devices/signatures', { body: { signatures: [{ device_id: 'nosuchdevice', account_signature: sig }] } }), 404, 'not_found');
    assert.equal(h.expectStatus(await now.post('/v1/devices/signatures', { signatures: [{ device_id: comp.deviceId, account_signature: sig }] }), 200).signed, 1);
    const after = (await now.devices()).find((d) => d.id === comp.deviceId);
    assert.ok(h.verifyRaw(fresh.pub, msg, h.b64d(after.account_signature)));
    // The companion works as before; an alert says what happened.
    h.expectStatus(await comp.raw('GET', '/v1/session'), 200);
    assert.ok((await now.alerts()).some((a) => a.kind === 'account.moved'));
  });

  test('every field of a transfer is checked', async () => {
    h.expectError(await h.api(server.url, 'POST', '/v1/transfers', { body: {} }), 400, 'invalid_request');
    h.expectError(await h.api(server.url, 'POST', '/v1/transfers', { body: { public_key: 'abc' } }), 400, 'invalid_request');
    const p = await h.registerPrimary(server.url, h.uniqueHandle('tfields'));
    h.expectError(await p.raw('POST', '/v1/transfers/approve', { body: {} }), 400, 'invalid_request');
    h.expectError(await p.raw('POST', '/v1/transfers/approve', { body: { code: 'AAAA-AAAA-AAA8' } }), 400, 'invalid_request');
    h.expectError(await p.raw('POST', '/v1/transfers/approve', { body: { code: 'AAAA-AAAA-AAAA', pin: '12' } }), 400, 'invalid_request');
    h.expectError(await h.api(server.url, 'POST', '/v1/transfers/nosuch/claim', { body: {} }), 400, 'invalid_request');
    h.expectError(await h.api(server.url, 'POST', '/v1/transfers/nosuch/claim', { body: { token: `lwt_${'A'.repeat(43)}` } }), 404, 'not_found');
  });
});
