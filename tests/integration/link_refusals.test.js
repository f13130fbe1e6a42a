// What a primary refuses to link, and what the server refuses: tampered and
// foreign payloads, other origins, expired, reused and rotated refs, denial
// (PRODUCT §2, docs/cli.md `phone link`).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

const servers = [];
async function start(opts) {
  const s = await h.startServer(opts);
  servers.push(s);
  return s;
}

let A;        // the phone's own server
let primary;  // API primary registered on A
let phoneP;   // CLI phone registered on A (created on first use)

/** The CLI phone registered on A, created on first use. */
function cliPhone() {
  phoneP ??= (async () => {
    const p = new h.PhoneCli(A);
    await p.register('alice');
    return p;
  })();
  return phoneP;
}

before(async () => {
  A = await start();
  primary = await h.registerPrimary(A.url, 'bob');
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

/** A pending request's state, read with its link token. */
async function requestState(req) {
  const r = await h.api(req.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token });
  return h.expectStatus(r, 200).state;
}

function assertRefused(res, re) {
  assert.equal(res.code, 3, h.describe(res));
  assert.ok(!res.lines.some((l) => l.event === 'approved'), 'a refused link printed approved');
  if (re) assert.match(h.refusalText(res), re, h.describe(res));
}

describe('payloads that were not issued by the phone\'s server', () => {
  test('a payload with a tampered signature is refused before anything is sent', async () => {
    const phone = await cliPhone();
    const req = await h.createLinkRequest(A.url);
    const bad = h.tamperPayload(req.payload, 'sig');
    assert.notEqual(bad, req.payload);
    const res = await phone.run(['link', bad, '--yes']);
    assertRefused(res, /signature/i);
    assert.equal(await requestState(req), 'pending', 'the request was not touched');
    // The genuine payload still links: nothing was consumed.
    const ok = await phone.run(['link', req.payload, '--yes']);
    assert.equal(ok.code, 0, h.describe(ok));
    h.expectStatus(await h.complete(req), 201);
  });

  test('a payload with a tampered ref is refused (the signature covers the ref)', async () => {
    const phone = await cliPhone();
    const req = await h.createLinkRequest(A.url);
    const res = await phone.run(['link', h.tamperPayload(req.payload, 'ref'), '--yes']);
    assertRefused(res, /signature/i);
    assert.equal(await requestState(req), 'pending');
  });

  test('the server refuses tampered and malformed payloads too', async () => {
    const req = await h.createLinkRequest(A.url);
    for (const field of ['sig', 'ref', 'fp']) {
      h.expectError(await h.scan(primary, h.tamperPayload(req.payload, field)), 400, 'invalid_signature');
    }
    for (const junk of ['hello', 'lw1:', 'lw1:a.b.c', 'lw2:' + req.payload.slice(4), `${req.payload}.x`]) {
      h.expectError(await h.scan(primary, junk), 400, 'invalid_payload');
    }
    h.expectError(await primary.post('/v1/link-requests/scan', {}), 400, 'invalid_request');
    assert.equal(await requestState(req), 'pending');
  });

  test('a payload from another Linkward server (same origin, other key) is refused as foreign', async () => {
    // B claims A's origin, but signs with its own key.
    const B = await start({ args: ['--public-origin', A.url] });
    const req = await h.createLinkRequest(B.url);
    assert.equal(h.parsePayload(req.payload).origin, A.url);
    // A's server refuses it.
    h.expectError(await h.scan(primary, req.payload), 400, 'invalid_signature');
    // So does the phone, before sending anything.
    const phone = await cliPhone();
    const res = await phone.run(['link', req.payload, '--yes']);
    assertRefused(res, /not issued by your Linkward server|signature/i);
    // B never saw a scan.
    assert.equal(await requestState(req), 'pending');
  });

  test('a payload naming another origin is refused, naming that site', async () => {
    // D holds A's server key (so the signature verifies) but another origin:
    // exactly what a phishing page relaying A's QR under its own name yields.
    const dir = h.tempDir('lw-data-evil-');
    fs.copyFileSync(path.join(A.dataDir, 'server.key'), path.join(dir, 'server.key'));
    fs.chmodSync(path.join(dir, 'server.key'), 0o600);
    const D = await start({ dataDir: dir, args: ['--public-origin', 'https://evil.example'] });
    const dinfo = h.expectStatus(await h.api(D.url, 'GET', '/v1/server'), 200);
    assert.equal(dinfo.server_key, primary.serverKey, 'D uses A\'s key');
    assert.equal(dinfo.origin, 'https://evil.example');
    const req = await h.createLinkRequest(D.url);
    assert.ok(h.verifyPayload(req.payload, primary.serverKey), 'the signature itself is valid');
    assert.equal(h.parsePayload(req.payload).origin, 'https://evil.example');

    h.expectError(await h.scan(primary, req.payload), 400, 'wrong_origin');
    const phone = await cliPhone();
    const res = await phone.run(['link', req.payload, '--yes']);
    assertRefused(res, /https:\/\/evil\.example/);
    assert.match(h.refusalText(res), /another site/i, h.describe(res));
    assert.equal(await requestState(req), 'pending');
  });

  test('a pairing code that names no request is refused without saying more', async () => {
    const phone = await cliPhone();
    const res = await phone.run(['link', '--code', '7QX2-9KMZ', '--yes']);
    assertRefused(res);
    h.expectError(await h.scan(primary, { code: '7QX2-9KMZ' }), 404, 'invalid_code');
    const junk = await h.scan(primary, { code: 'not a code' });
    assert.ok((junk.status === 400 && junk.json?.error?.code === 'invalid_request') ||
      (junk.status === 404 && junk.json?.error?.code === 'invalid_code'), h.show(junk));
  });
});

describe('single use', () => {
  test('a payload scanned once cannot be scanned by anyone else (409 already_scanned)', async () => {
    const req = await h.createLinkRequest(A.url);
    const first = h.expectStatus(await h.scan(primary, req.payload), 200);
    // The phone that scanned may look again (e.g. to retry with the right PIN): same request, same payload.
    const again = h.expectStatus(await h.scan(primary, req.payload), 200);
    assert.equal(again.request.id, first.request.id);
    const byCode = h.expectStatus(await h.scan(primary, { code: req.code }), 200);
    assert.equal(byCode.payload, first.payload);
    // Another primary cannot take it over.
    const other = await h.registerPrimary(A.url, 'mallory');
    h.expectError(await h.scan(other, req.payload), 409, 'already_scanned');
    // Only the primary that scanned may approve or deny.
    const theirs = await h.approve(other, req.id, req.key.pub);
    assert.ok([403, 404, 409].includes(theirs.status), h.show(theirs));
    const theirDeny = await h.deny(other, req.id);
    assert.ok([403, 404, 409].includes(theirDeny.status), h.show(theirDeny));
    // The phone CLI is refused as well.
    const phone = await cliPhone();
    const res = await phone.run(['link', req.payload, '--yes']);
    assertRefused(res);
    assert.equal(await requestState(req), 'scanned');
  });

  test('a completed request cannot be reused', async () => {
    const c = await h.linkCompanionApi(A.url, primary);
    const again = await h.scan(primary, c.request.payload);
    assert.ok([404, 409, 410].includes(again.status), h.show(again));
    h.expectError(await h.complete(c.request), 409, 'not_pending');
  });
});

describe('denial', () => {
  test('phone deny: the companion link exits 3 with "denied"', async () => {
    const phone = await cliPhone();
    const companion = new h.CompanionCli(A);
    const link = companion.spawnLink();
    try {
      const qr = await link.waitForLine('qr');
      const res = await phone.run(['deny', qr.payload]);
      assert.equal(res.code, 0, h.describe(res));
      await link.waitForLine('denied');
      const ex = await link.waitExit();
      assert.equal(ex.code, 3, `companion link exit ${ex.code}: ${link.stderr()}`);
      assert.equal(link.json[link.json.length - 1].event, 'denied');
    } finally {
      link.kill('SIGKILL');
    }
    // No session was saved.
    const who = await companion.run(['whoami']);
    assert.notEqual(who.code, 0, h.describe(who));
  });

  test('API deny: the companion hears link.denied and cannot complete', async () => {
    const req = await h.createLinkRequest(A.url);
    const ws = await h.connectWs(A.url, req.token);
    try {
      await ws.next('hello');
      h.expectStatus(await h.scan(primary, req.payload), 200);
      const d = h.expectStatus(await h.deny(primary, req.id), 200);
      assert.equal(d.state, 'denied');
      await ws.next('link.denied');
      h.expectError(await h.approve(primary, req.id, req.key.pub), 409, 'not_pending');
      h.expectError(await h.complete(req), 409, 'not_pending');
      assert.equal(await requestState(req), 'denied');
    } finally {
      await ws.close();
    }
  });
});

describe('time limits', () => {
  test('refs rotate: the companion gets a new payload and the old one is refused', async () => {
    const R = await start({ args: ['--qr-first-ttl', '1s', '--qr-next-ttl', '5s'] });
    const rprimary = await h.registerPrimary(R.url, 'rita');
    const rphone = new h.PhoneCli(R);
    await rphone.register('rolf');

    const req = await h.createLinkRequest(R.url);
    assert.ok(req.ref_expires_in <= 1, `first ref lives 1 s, got ${req.ref_expires_in}`);
    const ws = await h.connectWs(R.url, req.token);
    try {
      const ref = await ws.next((m) => m.event === 'link.ref' && m.payload !== req.payload, 4000);
      assert.ok(h.verifyPayload(ref.payload, rprimary.serverKey));
      const oldP = h.parsePayload(req.payload);
      const newP = h.parsePayload(ref.payload);
      assert.notDeepEqual(newP.ref, oldP.ref, 'a new ref');
      assert.deepEqual(newP.fp, oldP.fp, 'same companion key');
      assert.match(ref.qr_svg, /<svg[\s>]/);
      assert.ok(ref.ref_expires_in > 1 && ref.ref_expires_in <= 5, `ref_expires_in ${ref.ref_expires_in}`);
      assert.ok(ref.expires_in > 0);

      // The old ref is dead, for the CLI and for the API.
      assertRefused(await rphone.run(['link', req.payload, '--yes']));
      const old = await h.scan(rprimary, req.payload);
      h.expectError(old, old.status === 410 ? 410 : 404, old.status === 410 ? 'expired' : 'not_found');
      // Polling shows the current ref.
      const st = h.expectStatus(await h.api(R.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200);
      assert.equal(st.state, 'pending');
      assert.equal(st.payload, ref.payload);
      // The new one works.
      h.expectStatus(await h.scan(rprimary, ref.payload), 200);
    } finally {
      await ws.close();
    }
  });

  test('an unanswered request expires: companion link exits 3 with "expired", the payload is refused', async () => {
    const E = await start({ args: ['--qr-first-ttl', '600ms', '--qr-next-ttl', '300ms'] });
    const ephone = new h.PhoneCli(E);
    await ephone.register('erin');
    const eprimary = await h.registerPrimary(E.url, 'emil');

    const companion = new h.CompanionCli(E);
    const link = companion.spawnLink();
    try {
      await link.waitForLine('qr');
      await link.waitForLine('expired', 8000);
      const ex = await link.waitExit();
      assert.equal(ex.code, 3, `companion link exit ${ex.code}: ${link.stderr()}`);
    } finally {
      link.kill('SIGKILL');
    }
    const qrs = link.json.filter((l) => l.event === 'qr');
    assert.ok(qrs.length >= 2 && qrs.length <= 6, `expected 2..6 QR refs (six in all), got ${qrs.length}`);
    assert.equal(new Set(qrs.map((q) => q.payload)).size, qrs.length, 'each rotation is a new payload');
    assert.equal(link.json[link.json.length - 1].event, 'expired');

    const last = qrs[qrs.length - 1];
    assertRefused(await ephone.run(['link', last.payload, '--yes']));
    h.expectError(await h.scan(eprimary, last.payload), 410, 'expired');
  });

  test('over the API: at most six refs, then link.expired; the request is expired for good', async () => {
    const E = await start({ args: ['--qr-first-ttl', '500ms', '--qr-next-ttl', '200ms'] });
    const eprimary = await h.registerPrimary(E.url, 'ezra');
    const req = await h.createLinkRequest(E.url);
    assert.ok(req.expires_in <= 2, `expires_in ${req.expires_in} (0.5 s + 5 × 0.2 s)`);
    const ws = await h.connectWs(E.url, req.token);
    try {
      await ws.next('link.expired', 6000);
      const refs = ws.events.filter((m) => m.event === 'link.ref').map((m) => m.payload);
      const all = new Set([req.payload, ...refs]);
      assert.ok(all.size >= 2 && all.size <= 6, `refs seen: ${all.size}`);
      assert.equal(await requestState(req), 'expired');
      h.expectError(await h.scan(eprimary, refs[refs.length - 1] || req.payload), 410, 'expired');
      const code = await h.scan(eprimary, { code: req.code });
      assert.ok([404, 410].includes(code.status), h.show(code));
      const c = await h.complete(req);
      assert.ok([409, 410].includes(c.status), h.show(c));
    } finally {
      await ws.close();
    }
  });
});
