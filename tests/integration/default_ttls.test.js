// The default lifetimes, against servers started without the timing flags
// (docs/cli.md): a QR code's first ref lives 60 s and each of the 5 next refs
// 20 s, so a link request lives 160 s; a device credential lives 10 minutes.
// Durations are whole seconds rounded up by the server, so a figure read
// `elapsed` ms after the thing was issued is the default minus at most
// ceil(elapsed / 1000) s. That refs rotate on schedule is tested with short
// flags elsewhere (link_api, link_cli); here, only the defaults. To tell the
// 60 s, the 20 s and the 5 apart without waiting minutes, two more servers
// change one of them each and keep the other defaults.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

const TIMING_FLAGS = ['--qr-first-ttl', '--qr-next-ttl', '--credential-ttl'];

let server;     // no timing flag at all
let firstShort; // only --qr-first-ttl 1s: the next refs keep their default
let nextShort;  // only --qr-next-ttl 1s: the first ref keeps its default
before(async () => {
  [server, firstShort, nextShort] = await Promise.all([
    h.startServer(),
    h.startServer({ args: ['--qr-first-ttl', '1s'] }),
    h.startServer({ args: ['--qr-next-ttl', '1s'] }),
  ]);
  for (const f of TIMING_FLAGS) assert.ok(!server.proc.spawnargs.includes(f), `the default server got ${f}`);
});
after(async () => {
  await Promise.all([server, firstShort, nextShort].map((s) => s?.stop()));
});

/** Asserts `got` is `want` seconds issued `ms` ago (rounded up by the server). */
function near(got, want, ms, what) {
  const slack = Math.ceil(ms / 1000);
  assert.ok(Number.isInteger(got) && got <= want && got >= want - slack,
    `${what}: ${got} s, want ${want} s (−${slack} s for the ${ms.toFixed(0)} ms it took)`);
}

test('a link request: first ref 60 s, whole request 160 s (60 + 5 × 20)', async () => {
  const t = h.stopwatch();
  const req = await h.createLinkRequest(server.url);
  const ms = t();
  near(req.ref_expires_in, 60, ms, 'ref_expires_in');
  near(req.expires_in, 160, ms, 'expires_in');
  // The companion's socket says the same in its first link.ref.
  const t2 = h.stopwatch();
  const ws = await h.connectWs(server.url, req.token);
  try {
    const ref = await ws.next('link.ref');
    near(ref.ref_expires_in, 60, ms + t2(), 'link.ref ref_expires_in');
    near(ref.expires_in, 160, ms + t2(), 'link.ref expires_in');
    assert.equal(ref.payload, req.payload, 'the first ref is still the current one');
  } finally {
    await ws.close();
  }
  // So does a poll of the request.
  const st = h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200);
  near(st.expires_in, 160, t(), 'GET expires_in');
  near(st.ref_expires_in, 60, t(), 'GET ref_expires_in');
});

test('the next refs live 20 s by default, and there are 5 of them', async () => {
  // --qr-first-ttl 1s, default next: 1 + 5 × 20 = 101 s; the ref after the first one lives 20 s.
  const t = h.stopwatch();
  const req = await h.createLinkRequest(firstShort.url);
  near(req.expires_in, 101, t(), 'expires_in with --qr-first-ttl 1s');
  near(req.ref_expires_in, 1, t(), 'ref_expires_in with --qr-first-ttl 1s');
  const ws = await h.connectWs(firstShort.url, req.token);
  try {
    const rotated = await ws.next((m) => m.event === 'link.ref' && m.payload !== req.payload, 5000);
    // The rotation happened about 1 s after creation; the new ref was just made.
    near(rotated.ref_expires_in, 20, 1000, 'the second ref');
  } finally {
    await ws.close();
  }
  // --qr-next-ttl 1s, default first: 60 + 5 × 1 = 65 s.
  const t2 = h.stopwatch();
  const r2 = await h.createLinkRequest(nextShort.url);
  near(r2.ref_expires_in, 60, t2(), 'ref_expires_in with --qr-next-ttl 1s');
  near(r2.expires_in, 65, t2(), 'expires_in with --qr-next-ttl 1s');
});

test('a device credential lives 10 minutes: registration, completion, refresh (600 s)', async () => {
  let t = h.stopwatch();
  const primary = await h.registerPrimary(server.url, 'alice');
  near(primary.tokenExpiresIn, 600, t(), 'registration token_expires_in');
  t = h.stopwatch();
  const s = await primary.session();
  near(s.token_expires_in, 600, t() + 1000, 'GET /v1/session token_expires_in');
  assert.ok(s.token_expires_in_ms <= 600000 && s.token_expires_in_ms > 600000 - 60000,
    `token_expires_in_ms ${s.token_expires_in_ms}`);

  const req = await h.createLinkRequest(server.url);
  h.expectStatus(await h.scan(primary, req.payload), 200);
  h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
  t = h.stopwatch();
  const c = h.expectStatus(await h.complete(req), 201);
  near(c.token_expires_in, 600, t(), 'completion token_expires_in');

  const companion = h.companionFrom(req, c);
  t = h.stopwatch();
  h.expectStatus(await companion.refresh(), 200);
  near(companion.tokenExpiresIn, 600, t(), 'refresh token_expires_in');
});
