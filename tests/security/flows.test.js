// Threats of the cross-device flow (issue 5; PRODUCT §2, §3, §8), server side:
// QR-login hijacking (payloads naming another origin; a relayed QR shows who
// is really asking), replayed refs, codes and steps, stolen cookies and
// tokens (after a refresh, after they lapse), shoulder-surfed pairing codes,
// and secrets that must never reach a log line, an answer they do not belong
// to, or the database in clear.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as s from './lib.js';

const { h } = s;
const servers = [];
async function start(opts) {
  const srv = await h.startServer(opts);
  servers.push(srv);
  return srv;
}
after(async () => {
  for (const srv of servers) await srv.stop();
});

let A; // the phone's server; trusts 127.0.0.1 as a proxy so tests can name client addresses
let primary;
before(async () => {
  A = await start({ args: ['--max-companions', '50', '--trusted-proxies', '127.0.0.1'] });
  primary = await h.registerPrimary(A.url, h.uniqueHandle('flow'));
});

/** The server's QR-signing key, read from its data directory (what only the server holds). */
function serverSigner(srv, serverKeyB64) {
  const text = fs.readFileSync(path.join(srv.dataDir, 'server.key'), 'utf8');
  const [header, seed] = text.split('\n');
  assert.equal(header, 'linkward-server-key-v1');
  const key = crypto.createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seed.trim(), x: serverKeyB64 }, format: 'jwk' });
  return (msg) => crypto.sign(null, msg, key);
}

/** A payload for ref and fp naming origin, signed with sign. */
function mintPayload(sign, origin, ref, fp) {
  const sig = sign(h.qrMessage(origin, ref, fp));
  return `lw1:${[Buffer.from(origin, 'utf8'), ref, fp, sig].map(h.b64e).join('.')}`;
}

async function stateOf(req) {
  return h.expectStatus(await h.api(req.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200).state;
}

describe('QR-login hijacking', () => {
  test('a payload naming another origin is refused by the server (400 wrong_origin) even with a valid signature, and consumes nothing', async () => {
    const sign = serverSigner(A, primary.serverKey);
    const req = await h.createLinkRequest(A.url);
    const { ref, fp, origin } = h.parsePayload(req.payload);
    assert.equal(origin, A.url);
    // (Self-check: re-minted with our own origin, it is the genuine payload.)
    assert.equal(mintPayload(sign, A.url, ref, fp), req.payload);
    const u = new URL(A.url);
    const elsewhere = [
      'https://evil.example', // a phishing site
      A.url.replace(/^http:/, 'https:'), // another scheme
      `http://${u.hostname}:${Number(u.port) + 1}`, // another port
      `${A.url}/`, `${A.url}/login`, // not an origin
      A.url.toUpperCase(),
      `${A.url}.evil.example`,
      `http://user@${u.host}`,
    ];
    for (const o of elsewhere) {
      const forged = mintPayload(sign, o, ref, fp);
      assert.ok(h.verifyPayload(forged, primary.serverKey), 'the forged payload carries a valid server signature');
      const r = await h.scan(primary, forged);
      h.expectError(r, 400, 'wrong_origin');
    }
    // An origin with a control character (a NUL to cut a comparison short) is not even parsed.
    h.expectError(await h.scan(primary, mintPayload(sign, `${A.url}\u0000.evil.example`, ref, fp)), 400, 'invalid_payload');
    assert.equal(await stateOf(req), 'pending', 'no forged scan touched the request');
    // The genuine payload is still good.
    h.expectStatus(await h.scan(primary, req.payload), 200);
  });

  test('a genuine QR relayed by a phishing page: the phone is shown who is really asking, not itself', async () => {
    // The attacker's browser opens the request from its own address and shows the QR on its page;
    // the victim's phone, elsewhere, scans it.
    const attacker = { 'x-forwarded-for': '203.0.113.66' };
    const req = await h.createLinkRequest(A.url, { headers: attacker, userAgent: h.UA.firefoxLinux });
    const phone = new h.Device(A.url, { ...primary, headers: { 'x-forwarded-for': '198.51.100.7' } });
    const j = h.expectStatus(await h.scan(phone, req.payload), 200);
    assert.equal(j.request.ip, '203.0.113.66', 'the scan names the requester\'s address');
    assert.equal(j.request.browser, 'Firefox');
    assert.ok(h.fingerprintMatches(j.request.key_fingerprint, req.key.pub), 'and the key the approval will sign');
    // Denied, the attacker gets nothing.
    h.expectStatus(await h.deny(phone, req.id), 200);
    h.expectError(await h.complete(req), 409, 'not_pending');
  });
});

describe('replayed refs, codes and steps', () => {
  test('a used payload, code, approval or completion cannot be replayed, by anyone, even after a restart', async () => {
    const B = await start();
    const p = await h.registerPrimary(B.url, h.uniqueHandle('replay'));
    const other = await h.registerPrimary(B.url, h.uniqueHandle('replay'));
    const c = await h.linkCompanionApi(B.url, p);
    const req = c.request;
    const refused = (r, what) => assert.ok([404, 409, 410].includes(r.status) && r.json?.error?.code,
      `${what}: ${h.show(r)}`);
    const replays = async () => {
      refused(await h.scan(p, req.payload), 'the payload, by the phone that used it');
      refused(await h.scan(other, req.payload), 'the payload, by another phone');
      refused(await h.scan(p, { code: req.code }), 'the code, by the phone that used it');
      refused(await h.scan(other, { code: req.code }), 'the code, by another phone');
      refused(await h.approve(p, req.id, req.key.pub), 'the approval');
      refused(await h.deny(p, req.id), 'a denial after the fact');
      h.expectError(await h.complete(req), 409, 'not_pending');
      // A second key cannot ride on the spent request either.
      refused(await h.complete(req, { key: h.newDeviceKey() }), 'a completion with another key');
      assert.equal(await stateOf(req), 'completed');
    };
    await replays();
    await B.restart();
    await replays();
    // Exactly one device came out of it.
    assert.equal((await p.devices()).filter((d) => d.role === 'companion').length, 1);
    h.expectStatus(await c.raw('GET', '/v1/session'), 200);
  });

  test('the payload and code of a denied request stay dead', async () => {
    const req = await h.createLinkRequest(A.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    h.expectStatus(await h.deny(primary, req.id), 200);
    for (const what of [req.payload, { code: req.code }]) {
      const r = await h.scan(primary, what);
      assert.ok([404, 409, 410].includes(r.status), h.show(r));
    }
    h.expectError(await h.approve(primary, req.id, req.key.pub), 409, 'not_pending');
  });
});

describe('stolen credentials', () => {
  test('a copied cookie or token is refused once the device refreshed; the thief cannot refresh it nor end the session', async () => {
    // Bearer and cookie alike.
    const comp = await s.linkWithCookie(A.url, primary);
    const bearer = await h.linkCompanionApi(A.url, primary);
    const me = h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { headers: { cookie: comp.jar } }), 200);
    const stolenCookie = comp.jar;
    const stolenToken = bearer.token;
    // The devices refresh with their keys.
    const sig = h.b64e(comp.req.key.sign(h.refreshMessage(comp.deviceId, h.b64d(me.challenge))));
    const r = await h.api(A.url, 'POST', '/v1/session/refresh', { headers: { cookie: comp.jar }, body: { signature: sig, credential: 'cookie' } });
    h.expectStatus(r, 200);
    const jar2 = /^(lw_session=[^;]+)/.exec(r.headers.get('set-cookie'))[1];
    h.expectStatus(await bearer.refresh(), 200);
    // The copies are dead: for use, for a refresh (even signed by another key), for a socket.
    for (const [what, opts] of [['cookie', { headers: { cookie: stolenCookie } }], ['token', { token: stolenToken }]]) {
      h.expectError(await h.api(A.url, 'GET', '/v1/session', opts), 401, 'unauthenticated');
      const thief = h.newDeviceKey();
      const forged = h.b64e(thief.sign(h.refreshMessage(what === 'cookie' ? comp.deviceId : bearer.deviceId, Buffer.alloc(32))));
      h.expectError(await h.api(A.url, 'POST', '/v1/session/refresh', { ...opts, body: { signature: forged } }), 401, 'unauthenticated');
      const ws = await h.tryConnectWs(A.url, what === 'token' ? stolenToken : null, what === 'cookie' ? { headers: { cookie: stolenCookie } } : {});
      if (ws.ok) await ws.ws.close();
      assert.equal(ws.status, 401, `${what}: a socket with a replaced credential`);
    }
    // The owners carry on untouched, and no theft was declared against them.
    h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { headers: { cookie: jar2 } }), 200);
    h.expectStatus(await bearer.raw('GET', '/v1/session'), 200);
  });

  test('a copied credential that lapsed is refused; a refresh without the device key ends the session as token_theft and tells the account', async () => {
    const L = await start({ args: ['--credential-ttl', '1s'] });
    const p = await h.registerPrimary(L.url, h.uniqueHandle('lapse'));
    const comp = await s.linkWithCookie(L.url, p);
    const bearer = await h.linkCompanionApi(L.url, p);
    const pws = await p.ws();
    try {
      await pws.next('hello');
      const cases = [['cookie', comp.deviceId, { headers: { cookie: comp.jar } }], ['token', bearer.deviceId, { token: bearer.token }]];
      for (const [what, deviceId, opts] of cases) {
        const lapsed = await h.pollUntil(async () => {
          const r = await h.api(L.url, 'GET', '/v1/session', opts);
          return r.status === 401 ? r : false;
        }, { timeout: 5000, interval: 100, maxTries: 100, what: `the ${what} to lapse` });
        h.expectError(lapsed, 401, 'credential_expired');
        // Nor does a lapsed credential open a socket.
        const ws = await h.tryConnectWs(L.url, what === 'token' ? bearer.token : null, what === 'cookie' ? { headers: { cookie: comp.jar } } : {});
        if (ws.ok) await ws.ws.close();
        assert.equal(ws.status, 401, `${what}: a socket with a lapsed credential`);
        // The thief tries to refresh it with a key of their own.
        const thief = h.newDeviceKey();
        const me = await h.api(L.url, 'GET', '/v1/session', opts);
        assert.equal(me.json?.challenge, undefined, 'a lapsed credential does not even get the challenge');
        const forged = h.b64e(thief.sign(h.refreshMessage(deviceId, Buffer.alloc(32))));
        h.expectError(await h.api(L.url, 'POST', '/v1/session/refresh', { ...opts, body: { signature: forged } }), 401, 'token_theft');
        // The session is over for everyone holding it, with the reason.
        const after = await h.api(L.url, 'GET', '/v1/session', opts);
        h.expectError(after, 401, 'session_ended');
        assert.equal(after.json.error.reason, 'token_theft');
        const alert = await pws.next((m) => m.event === 'alert' && m.alert.kind === 'token.theft_suspected' && m.alert.device_id === deviceId, 3000);
        assert.ok(alert.alert.details, 'the alert says what happened');
        assert.equal((await p.history()).find((d) => d.id === deviceId)?.end_reason, 'token_theft');
      }
    } finally {
      await pws.close();
    }
  });
});

describe('shoulder-surfed pairing codes', () => {
  test('a code is long, from an unambiguous alphabet, and good for one phone only; someone who saw it later gets nothing', async () => {
    const surfer = await h.registerPrimary(A.url, h.uniqueHandle('surfer'));
    const req = await h.createLinkRequest(A.url);
    assert.match(req.code, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/, 'XXXX-XXXX in Crockford base32 (40 bits)');
    // The owner's phone types it first.
    const mine = h.expectStatus(await h.scan(primary, { code: req.code }), 200);
    assert.equal(mine.request.id, req.id);
    // Whoever read it over the shoulder, in any spelling, is refused without learning anything.
    for (const code of [req.code, req.code.toLowerCase(), req.code.replace('-', '')]) {
      const r = await h.scan(surfer, { code });
      h.expectError(r, 409, 'already_scanned');
      assert.equal(r.json.request, undefined, 'nothing about the request is told to the surfer');
    }
    h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
    h.expectStatus(await h.complete(req), 201);
    const late = await h.scan(surfer, { code: req.code });
    assert.ok([404, 409, 410].includes(late.status), h.show(late));
    // Guessing is bounded by the pairing-code rate limit (tests/integration/limits.test.js).
  });
});

describe('secrets', () => {
  test('no credential, verifier, PIN, pairing code, ref, link token or invite reaches a log line or the database in clear, or an answer it does not belong to', async () => {
    const C = await start({ args: ['--registration', 'invite', '--rate', 'off'] });
    // Every answer of this flow, recorded at the fetch level.
    const answers = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (url, init) => {
      const res = await realFetch(url, init);
      const copy = res.clone();
      answers.push(copy.text().then((text) => ({ url: String(url), status: res.status, text, cookie: res.headers.get('set-cookie') || '' })));
      return res;
    };
    const tokens = []; // session and link credentials
    const others = []; // invite, codes, refs, payloads: secrets with no selector/verifier parts
    const pins = ['582947', '739164', '115406'];
    const sockets = []; // WebSocket clients of the flow, for their events
    let p;
    try {
      const inv = await h.adminCli(C, ['invite']);
      assert.equal(inv.code, 0, h.describe(inv));
      const invite = inv.json.code;
      others.push(invite);
      p = await h.registerPrimary(C.url, h.uniqueHandle('secret'), { invite });
      tokens.push(p.token);
      h.expectStatus(await p.post('/v1/pin', { new_pin: pins[0] }), 200);
      h.expectStatus(await p.post('/v1/pin', { pin: pins[0], new_pin: pins[1] }), 200);
      // A companion by code, with a wrong PIN first; one in cookie mode by payload.
      const req1 = await h.createLinkRequest(C.url);
      tokens.push(req1.token);
      others.push(req1.code, req1.payload, h.b64e(h.parsePayload(req1.payload).ref));
      const lws = await h.connectWs(C.url, req1.token);
      sockets.push(lws);
      await lws.next('hello');
      h.expectStatus(await h.scan(p, { code: req1.code }), 200);
      h.expectError(await h.approve(p, req1.id, req1.key.pub, { pin: pins[2] }), 403, 'wrong_pin');
      h.expectStatus(await h.approve(p, req1.id, req1.key.pub, { pin: pins[1] }), 200);
      const c1 = h.companionFrom(req1, h.expectStatus(await h.complete(req1), 201));
      await lws.close();
      tokens.push(c1.token);
      h.expectStatus(await c1.refresh(), 200);
      tokens.push(c1.token);
      const created = await h.api(C.url, 'POST', '/v1/link-requests', { body: { public_key: h.newDeviceKey().pubB64, credential: 'cookie' } });
      const cj = h.expectStatus(created, 201);
      tokens.push(/lw_link=(lwl_[^;]+)/.exec(created.headers.get('set-cookie'))[1]);
      others.push(cj.code, cj.payload, h.b64e(h.parsePayload(cj.payload).ref));
      const key2 = h.newDeviceKey();
      const req2 = await h.createLinkRequest(C.url, { key: key2 });
      tokens.push(req2.token);
      others.push(req2.code, req2.payload);
      h.expectStatus(await h.scan(p, req2.payload), 200);
      h.expectStatus(await h.approve(p, req2.id, key2.pub, { pin: pins[1] }), 200);
      const signature = h.b64e(key2.sign(h.linkMessage(req2.id, req2.nonce)));
      const done = await h.api(C.url, 'POST', `/v1/link-requests/${req2.id}/complete`, { token: req2.token, body: { signature, credential: 'cookie' } });
      h.expectStatus(done, 201);
      const cookieTok = /lw_session=(lws_[^;]+)/.exec(done.headers.get('set-cookie'))[1];
      tokens.push(cookieTok);
      const ws = await h.connectWs(C.url, null, { headers: { cookie: `lw_session=${cookieTok}` } });
      sockets.push(ws);
      await ws.next('hello');
      await ws.next('proof.challenge');
      await ws.close();
      // Failed guesses, a theft, the ends.
      h.expectError(await h.api(C.url, 'GET', '/v1/session', { token: s.wrongVerifier(p.token) }), 401, 'unauthenticated');
      const c3 = await h.linkCompanionApi(C.url, p, { pin: pins[1] });
      tokens.push(c3.token);
      h.expectError(await c3.refresh({ key: h.newDeviceKey() }), 401, 'token_theft');
      h.expectStatus(await c1.del('/v1/session'), 200);
      h.expectStatus(await p.post('/v1/devices/logout-all', {}), 200);
      h.expectStatus(await p.post('/v1/pin/disable', { pin: pins[1] }), 200);
    } finally {
      globalThis.fetch = realFetch;
    }
    await C.stop(); // flushes everything the server had to say
    const recorded = await Promise.all(answers);
    assert.ok(recorded.length > 20, `${recorded.length} answers recorded`);

    // The log: JSON lines only, and nothing of a secret (12 characters of one are too many).
    const log = C.stderr();
    const lines = log.split('\n').filter(Boolean);
    assert.ok(lines.length > 10, 'the server logged the flow');
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not a JSON log line: ${l}`);
    const parts = (tok) => { const [sel, ver] = tok.slice(4).split('.'); return { sel, ver }; };
    const windows = (x, n = 12) => Array.from({ length: Math.max(1, x.length - n + 1) }, (_, i) => x.slice(i, i + n));
    const leaks = [];
    for (const tok of tokens) {
      const { sel, ver } = parts(tok);
      for (const w of [...windows(sel), ...windows(ver)]) if (log.includes(w)) leaks.push(`${tok.slice(0, 4)}… (${w})`);
    }
    for (const x of others) {
      for (const w of windows(x)) if (log.includes(w)) leaks.push(`${x.slice(0, 6)}… (${w})`);
      if (x.length <= 9 && (log.includes(x) || log.includes(x.replace('-', '')))) leaks.push(`code ${x}`);
    }
    for (const pin of pins) if (new RegExp(`(?<!\\d)${pin}(?!\\d)`).test(log)) leaks.push(`PIN ${pin}`);
    assert.deepEqual(leaks, [], 'secrets in the server log');

    // The database: selectors are lookup keys, stored as such; the rest never in clear.
    const files = fs.readdirSync(C.dataDir).filter((f) => f.startsWith('linkward.db'));
    assert.ok(files.length > 0);
    const stored = Buffer.concat(files.map((f) => fs.readFileSync(path.join(C.dataDir, f))));
    const inDb = [];
    for (const tok of tokens) {
      const { ver } = parts(tok);
      if (stored.includes(Buffer.from(ver)) || stored.includes(h.b64d(ver))) inDb.push(`verifier of ${tok.slice(0, 4)}…`);
      if (stored.includes(Buffer.from(tok))) inDb.push(`credential ${tok.slice(0, 4)}…`);
    }
    for (const x of others) {
      if (stored.includes(Buffer.from(x))) inDb.push(`${x.slice(0, 6)}…`);
    }
    for (const r of others.filter((x) => /^[A-Za-z0-9_-]{22}$/.test(x))) if (stored.includes(h.b64d(r))) inDb.push('a raw ref');
    for (const code of others.filter((x) => /^.{4}-.{4}$/.test(x))) if (stored.includes(Buffer.from(code.replace('-', '')))) inDb.push(`code ${code}`);
    for (const pin of pins) if (stored.includes(Buffer.from(pin))) inDb.push(`PIN ${pin}`);
    assert.deepEqual(inDb, [], 'secrets stored in clear');

    // The answers: a credential only in the answer that issues it (its "token"
    // field, or its Set-Cookie), never in a record, an event, an error or a URL.
    const misplaced = [];
    for (const tok of tokens) {
      for (const a of recorded) {
        if (a.url.includes(tok) || a.url.includes(parts(tok).ver)) misplaced.push(`${tok.slice(0, 4)}… in a URL`);
        const inText = a.text.includes(parts(tok).ver);
        if (!inText) continue;
        let j = null;
        try { j = JSON.parse(a.text); } catch { /* not JSON */ }
        if (!(j && j.token === tok)) misplaced.push(`${tok.slice(0, 4)}… in the answer to ${a.url} (${a.status})`);
      }
    }
    const events = JSON.stringify(sockets.flatMap((w) => w.events));
    assert.ok(events.includes('link.ref') && events.includes('proof.challenge'), 'the sockets heard the flow');
    for (const tok of tokens) if (events.includes(parts(tok).ver)) misplaced.push(`${tok.slice(0, 4)}… in a WebSocket event`);
    assert.deepEqual(misplaced, [], 'credentials where they do not belong');
  });
});
