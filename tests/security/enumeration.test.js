// Handles never reveal whether an account exists, in answer or in time
// (issue 5; ASVS 5.0 6.3.8), measured as tests/security/timing.test.js
// measures: many requests of each kind, interleaved in random order after a
// warm-up, over one keep-alive connection with a raw client; the medians are
// printed and must agree within a generous bound.
//
// - Invite mode: a caller without a valid invite gets the same 403 whether
//   the handle is taken or not, in the same time (the invite is checked
//   before anything about the handle).
// - Open mode: a sign-up form must say a handle is taken (409); that answer
//   leaves when a created account's answer does (both are held to the same
//   fixed time, LW_REGISTER_ANSWER_MS), and does not depend on the account
//   behind the handle (its devices, its PIN).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as s from './lib.js';

const { h } = s;
const N = Number(process.env.LW_ENUM_N || 100);
const WARMUP = 10;
/** The fixed answer time of store-dependent registration answers (api_account.c). */
const ANSWER_MS = 40;

/** One registration request's body. */
const body = (handle, invite) => JSON.stringify({ handle, public_key: h.newDeviceKey().pubB64, ...(invite ? { invite } : {}) });
const JSON_HEADERS = { 'content-type': 'application/json' };

/**
 * kinds: {name: () => [body, expectedStatus, expectedCode]}. Runs each kind once
 * per round in a fresh random order; returns {name: [ms…]} and the answer bodies seen.
 */
async function measure(client, kinds) {
  const names = Object.keys(kinds);
  const times = Object.fromEntries(names.map((n) => [n, []]));
  const answers = Object.fromEntries(names.map((n) => [n, new Set()]));
  for (let round = 0; round < WARMUP + N; round++) {
    for (const name of s.shuffle(names)) {
      const [b, want, code] = kinds[name]();
      const r = await client.request('POST', '/v1/accounts', JSON_HEADERS, h.T(5000), b);
      assert.equal(r.status, want, `${name}: ${r.status} ${r.body.slice(0, 200)}`);
      if (code) assert.equal(JSON.parse(r.body).error.code, code, name);
      if (round >= WARMUP) {
        times[name].push(r.ms);
        if (want >= 400) answers[name].add(r.body);
      }
    }
  }
  return { times, answers };
}

function report(title, times) {
  console.log(`# ${title}`);
  for (const [name, xs] of Object.entries(times)) console.log(`#   ${name.padEnd(44)} ${s.describeTimes(xs)}`);
}

/** |median a − median b| < max(1 ms, 10 % of the larger median). */
function assertClose(times, a, b) {
  const ma = s.median(times[a]);
  const mb = s.median(times[b]);
  const diff = Math.abs(ma - mb);
  const tol = Math.max(1, 0.1 * Math.max(ma, mb));
  console.log(`#   ${a} vs ${b}: |${ma.toFixed(3)} - ${mb.toFixed(3)}| = ${diff.toFixed(3)} ms (tolerance ${tol.toFixed(3)} ms)`);
  assert.ok(diff < tol, `${a} (median ${ma.toFixed(3)} ms) and ${b} (median ${mb.toFixed(3)} ms) differ by ` +
    `${diff.toFixed(3)} ms, more than ${tol.toFixed(3)} ms: the answer time tells them apart`);
}

describe('invite mode', () => {
  let server;
  let client;
  let taken;
  before(async () => {
    server = await h.startServer({ args: ['--registration', 'invite'] });
    const inv = await h.adminCli(server, ['invite']);
    taken = (await h.registerPrimary(server.url, h.uniqueHandle('taken'), { invite: inv.json.code })).handle;
    client = new s.RawClient(server.port);
  });
  after(async () => {
    client?.close();
    await server?.stop();
  });

  test('without a valid invite: the same 403 for a taken and a free handle, in the same time', async () => {
    const free = h.uniqueHandle('free');
    const { times, answers } = await measure(client, {
      'made-up invite, handle taken': () => [body(taken, 'MADE-UP-INVITE-0000'), 403, 'invalid_invite'],
      'made-up invite, handle free': () => [body(free, 'MADE-UP-INVITE-0000'), 403, 'invalid_invite'],
      'no invite, handle taken': () => [body(taken), 403, 'invite_required'],
      'no invite, handle free': () => [body(free), 403, 'invite_required'],
    });
    report(`POST /v1/accounts, --registration invite, ${N} of each after ${WARMUP} warm-up rounds`, times);
    // The same answer, byte for byte.
    const one = (name) => [...answers[name]];
    assert.deepEqual(one('made-up invite, handle taken'), one('made-up invite, handle free'));
    assert.deepEqual(one('no invite, handle taken'), one('no invite, handle free'));
    assert.equal(one('made-up invite, handle taken').length, 1);
    assertClose(times, 'made-up invite, handle taken', 'made-up invite, handle free');
    assertClose(times, 'no invite, handle taken', 'no invite, handle free');
    // Refusals that asked the store are held to the fixed answer time.
    assert.ok(s.quantile(times['made-up invite, handle free'], 0.1) >= ANSWER_MS * 0.75,
      `an invalid invite is answered after ${ANSWER_MS} ms, not sooner`);
  });

  test('a used or expired invite gets that same answer', async () => {
    // Over the raw client's connection, kept busy by the test before: fetch's
    // pooled connections sat idle for as long as that test ran, about the
    // server's 10 s keep-alive limit, and one the server had just closed
    // could be handed a request (which then hung until CTest's timeout).
    const used = await h.adminCli(server, ['invite']);
    const first = await client.request('POST', '/v1/accounts', JSON_HEADERS, h.T(5000),
      body(h.uniqueHandle('first'), used.json.code));
    assert.equal(first.status, 201, first.body);
    const expired = await h.controlRequest(server, { cmd: 'invite', ttl_ms: 1 });
    await h.pollUntil(() => Date.parse(expired.expires_at) < Date.now() - 5, { what: 'the invite to lapse' });
    const bodies = new Set();
    for (const [handle, invite] of [[taken, used.json.code], [h.uniqueHandle('x'), used.json.code],
      [taken, expired.code], [h.uniqueHandle('y'), expired.code], [taken, 'MADE-UP-INVITE-0000']]) {
      const r = await client.request('POST', '/v1/accounts', JSON_HEADERS, h.T(5000), body(handle, invite));
      assert.equal(r.status, 403, r.body);
      assert.equal(JSON.parse(r.body).error.code, 'invalid_invite');
      bodies.add(r.body);
    }
    assert.equal(bodies.size, 1, [...bodies].join('\n'));
  });
});

describe('open mode', () => {
  let server;
  let client;
  let plain;
  let busy;
  before(async () => {
    server = await h.startServer();
    plain = (await h.registerPrimary(server.url, h.uniqueHandle('plain'))).handle;
    // An account with more to it: devices, history, alerts, a PIN.
    const p = await h.registerPrimary(server.url, h.uniqueHandle('busy'));
    for (let i = 0; i < 3; i++) await h.linkCompanionApi(server.url, p);
    const gone = await h.linkCompanionApi(server.url, p);
    h.expectStatus(await p.del(`/v1/devices/${gone.deviceId}`), 200);
    h.expectStatus(await p.post('/v1/pin', { new_pin: '604172' }), 200);
    busy = p.handle;
    client = new s.RawClient(server.port);
  });
  after(async () => {
    client?.close();
    await server?.stop();
  });

  test('"handle taken" (409) takes as long as a new account (201), whatever account the handle belongs to', async () => {
    const { times } = await measure(client, {
      'taken (plain account), 409': () => [body(plain), 409, 'handle_taken'],
      'taken (devices, PIN), 409': () => [body(busy), 409, 'handle_taken'],
      'free handle, 201': () => [body(h.uniqueHandle('new')), 201],
    });
    report(`POST /v1/accounts, open registration, ${N} of each after ${WARMUP} warm-up rounds`, times);
    assertClose(times, 'taken (plain account), 409', 'free handle, 201');
    assertClose(times, 'taken (plain account), 409', 'taken (devices, PIN), 409');
    for (const [name, xs] of Object.entries(times)) {
      assert.ok(s.quantile(xs, 0.1) >= ANSWER_MS * 0.75, `${name}: answered after ${ANSWER_MS} ms, not sooner`);
    }
  });
});
