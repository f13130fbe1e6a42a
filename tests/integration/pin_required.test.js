// `linkward serve --pin-required` (docs/cli.md, src/server/api/api_link.c): every
// account must have a two-step PIN. The server says so (GET /v1/server, the
// scan answer), refuses to approve a link for an account without a PIN
// (403 pin_required, "Set one first"), asks for the PIN once one is set, and
// refuses to turn the PIN off. A server without the flag approves such an
// account's links without any PIN (the contrast that shows the flag acts).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

const PIN = '582914';

let server;
let plain;
before(async () => {
  [server, plain] = await Promise.all([h.startServer({ args: ['--pin-required'] }), h.startServer()]);
});
after(async () => {
  await Promise.all([server?.stop(), plain?.stop()]);
});

/** The request's state as its companion sees it. */
async function stateOf(req) {
  const r = await h.api(req.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token });
  return h.expectStatus(r, 200).state;
}

describe('--pin-required over the API', () => {
  test('GET /v1/server says pin_required: true (false without the flag)', async () => {
    assert.equal(h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200).pin_required, true);
    assert.equal(h.expectStatus(await h.api(plain.url, 'GET', '/v1/server'), 200).pin_required, false);
  });

  test('an account without a PIN: the scan says a PIN is required; approval is refused 403 pin_required, "set one first"', async () => {
    const alice = await h.registerPrimary(server.url, 'alice');
    assert.equal((await alice.session()).account.has_pin, false, 'registration does not need a PIN');
    const req = await h.createLinkRequest(server.url);
    const s = h.expectStatus(await h.scan(alice, req.payload), 200);
    assert.equal(s.pin_required, true, `the scan answer: ${JSON.stringify(s)}`);

    // Without a PIN, and with one although none is set: the server requires one set first.
    for (const pin of [undefined, PIN]) {
      const e = h.expectError(await h.approve(alice, req.id, req.key.pub, { pin }), 403, 'pin_required');
      assert.match(e.message, /requires a two-step PIN/i, e.message);
      assert.match(e.message, /set one first/i, e.message);
      assert.match(e.message, /linkward phone pin set/, e.message);
    }
    // Nothing was approved: the request is still scanned and cannot complete.
    assert.equal(await stateOf(req), 'scanned');
    h.expectError(await h.complete(req), 409, 'not_pending');
    assert.deepEqual((await alice.devices()).map((d) => d.role), ['primary']);

    // Once a PIN is set, approval asks for it, and the same request links with it.
    h.expectStatus(await alice.post('/v1/pin', { new_pin: PIN }), 200);
    const e = h.expectError(await h.approve(alice, req.id, req.key.pub), 403, 'pin_required');
    assert.match(e.message, /enter your two-step PIN/i, e.message);
    assert.equal(await stateOf(req), 'scanned');
    h.expectError(await h.approve(alice, req.id, req.key.pub, { pin: '000000' }), 403, 'wrong_pin');
    assert.deepEqual(h.expectStatus(await h.approve(alice, req.id, req.key.pub, { pin: PIN }), 200), { state: 'approved' });
    h.expectStatus(await h.complete(req), 201);
    assert.equal((await alice.devices()).length, 2);
  });

  test('the PIN cannot be turned off: 403 forbidden, it stays set', async () => {
    const bob = await h.registerPrimary(server.url, 'bob');
    h.expectStatus(await bob.post('/v1/pin', { new_pin: PIN }), 200);
    const e = h.expectError(await bob.post('/v1/pin/disable', { pin: PIN }), 403, 'forbidden');
    assert.match(e.message, /requires a two-step PIN/i, e.message);
    assert.equal((await bob.session()).account.has_pin, true);
    // Changing it is fine.
    h.expectStatus(await bob.post('/v1/pin', { pin: PIN, new_pin: '603718' }), 200);
    assert.equal((await bob.session()).account.has_pin, true);
  });

  test('without the flag, an account without a PIN links without one (the contrast)', async () => {
    const carol = await h.registerPrimary(plain.url, 'carol');
    const req = await h.createLinkRequest(plain.url);
    assert.equal(h.expectStatus(await h.scan(carol, req.payload), 200).pin_required, false);
    h.expectStatus(await h.approve(carol, req.id, req.key.pub), 200);
    h.expectStatus(await h.complete(req), 201);
  });
});

describe('--pin-required with the phone CLI', () => {
  test('linking from an account without a PIN is refused (exit 3) and says a PIN must be set', async () => {
    const phone = new h.PhoneCli(server);
    await phone.register('dora');
    const req = await h.createLinkRequest(server.url);
    const res = await phone.run(['link', req.payload, '--yes']);
    assert.equal(res.code, 3, h.describe(res));
    const text = h.refusalText(res);
    assert.match(text, /requires a two-step PIN/i, text);
    assert.match(text, /pin set/, text);
    assert.doesNotMatch(text, /this account has a two-step verification PIN/i,
      `the account has no PIN; the CLI must not claim it has one: ${text}`);
    h.expectError(await h.complete(req), 409, 'not_pending');

    const set = await phone.run(['pin', 'set', '--pin', PIN]);
    assert.equal(set.code, 0, h.describe(set));
    const off = await phone.run(['pin', 'disable', '--pin', PIN]);
    assert.equal(off.code, 3, h.describe(off));
    assert.match(h.refusalText(off), /cannot be disabled/i);

    const req2 = await h.createLinkRequest(server.url);
    const ok = await phone.run(['link', req2.payload, '--pin', PIN, '--yes']);
    assert.equal(ok.code, 0, h.describe(ok));
    h.expectStatus(await h.complete(req2), 201);
  });
});
