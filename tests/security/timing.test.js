// Credential guessing answered in the same time whatever part of the guess is
// right (issue 5; ASVS 5.0 V6/V7: no oracle on stored credentials): a wrong
// verifier for a real selector, an unknown selector, and (for reference) a
// valid credential. Measured, not assumed: many requests of each kind,
// interleaved in random order after a warm-up, over one keep-alive connection
// with a raw client so nothing but the server sits between the clock and the
// socket. The medians are printed; they must agree within
// max(0.3 ms, 25 % of the larger), a bound that holds on a loaded 2-core box.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as s from './lib.js';

const { h } = s;
const N = Number(process.env.LW_TIMING_N || 300);
const WARMUP = 60;

let server;
let primary;
let companion;
let client;

before(async () => {
  server = await h.startServer();
  primary = await h.registerPrimary(server.url, h.uniqueHandle('timing'));
  companion = await h.linkCompanionApi(server.url, primary);
  client = new s.RawClient(server.port);
});

after(async () => {
  client?.close();
  await server?.stop();
});

/**
 * Runs every kind once per round, in a fresh random order each round, WARMUP
 * rounds unrecorded then N recorded. kinds: {name: () => [method, path, headers, expectedStatus]}.
 * Returns {name: [ms…]}.
 */
async function measure(kinds) {
  const names = Object.keys(kinds);
  const times = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < WARMUP + N; round++) {
    for (const name of s.shuffle(names)) {
      const [method, path, headers, want] = kinds[name]();
      const r = await client.request(method, path, headers);
      assert.equal(r.status, want, `${name}: ${method} ${path} -> ${r.status} ${r.body.slice(0, 200)}`);
      if (round >= WARMUP) times[name].push(r.ms);
    }
  }
  return times;
}

function report(title, times) {
  console.log(`# ${title}`);
  for (const [name, xs] of Object.entries(times)) console.log(`#   ${name.padEnd(28)} ${s.describeTimes(xs)}`);
}

/** |median a − median b| < max(0.3 ms, 25 % of the larger median). */
function assertClose(times, a, b) {
  const ma = s.median(times[a]);
  const mb = s.median(times[b]);
  const diff = Math.abs(ma - mb);
  const tol = Math.max(0.3, 0.25 * Math.max(ma, mb));
  console.log(`#   ${a} vs ${b}: |${ma.toFixed(3)} - ${mb.toFixed(3)}| = ${diff.toFixed(3)} ms (tolerance ${tol.toFixed(3)} ms)`);
  assert.ok(diff < tol, `${a} (median ${ma.toFixed(3)} ms) and ${b} (median ${mb.toFixed(3)} ms) differ by ` +
    `${diff.toFixed(3)} ms, more than ${tol.toFixed(3)} ms: the answer time tells them apart`);
}

test('session credentials: a wrong verifier for a live selector takes as long as an unknown selector', async () => {
  // The companion's session is in the server's cache (it was just issued):
  // the case where a selector hit costs the least, so the one most unlike a miss.
  h.expectStatus(await companion.raw('GET', '/v1/session'), 200);
  const bearer = (tok) => ({ authorization: `Bearer ${tok}` });
  // A primary-only route: a valid companion credential passes authentication
  // and is refused (403) at once, so all three kinds do the same work but the check.
  const route = '/v1/settings';
  const times = await measure({
    'wrong verifier, live selector': () => ['GET', route, bearer(s.wrongVerifier(companion.token)), 401],
    'unknown selector': () => ['GET', route, bearer(s.randomCredential('lws_')), 401],
    'valid credential (403)': () => ['GET', route, bearer(companion.token), 403],
  });
  report(`GET ${route}, session credentials (Bearer), ${N} of each after ${WARMUP} warm-up rounds`, times);
  assertClose(times, 'wrong verifier, live selector', 'unknown selector');
  assertClose(times, 'wrong verifier, live selector', 'valid credential (403)');
});

test('session cookies: the same holds for the lw_session cookie', async () => {
  const cookie = (tok) => ({ cookie: `lw_session=${tok}` });
  const times = await measure({
    'wrong verifier, live selector': () => ['GET', '/v1/devices', cookie(s.wrongVerifier(companion.token)), 401],
    'unknown selector': () => ['GET', '/v1/devices', cookie(s.randomCredential('lws_')), 401],
  });
  report(`GET /v1/devices, session cookie, ${N} of each`, times);
  assertClose(times, 'wrong verifier, live selector', 'unknown selector');
});

test('link tokens: a wrong verifier for a live request takes as long as an unknown token', async () => {
  const req = await h.createLinkRequest(server.url);
  const bearer = (tok) => ({ authorization: `Bearer ${tok}` });
  // A valid token for another request's id answers 404 right after the check.
  const other = await h.createLinkRequest(server.url);
  const route = `/v1/link-requests/${req.id}`;
  const times = await measure({
    'wrong verifier, live selector': () => ['GET', route, bearer(s.wrongVerifier(req.token)), 401],
    'unknown selector': () => ['GET', route, bearer(s.randomCredential('lwl_')), 401],
    'valid token, other id (404)': () => ['GET', route, bearer(other.token), 404],
  });
  report(`GET ${route}, link tokens, ${N} of each`, times);
  assertClose(times, 'wrong verifier, live selector', 'unknown selector');
  assertClose(times, 'wrong verifier, live selector', 'valid token, other id (404)');
});
