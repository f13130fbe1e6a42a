// Web Push's cryptography (src/common/webpush.c) held to implementations that
// share no code with it: bodies encrypted in C for a subscription key made by
// Node's crypto are opened with npm http_ece (RFC 8188/8291, the decryption
// library of the web-push ecosystem), and the VAPID JWT is verified with
// Node's crypto (ES256, dsaEncoding 'ieee-p1363'). C is reached through
// tests/tools/webpush_tool.c (JSON in, JSON out). No server: the bytes alone.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import ece from 'http_ece';
import * as h from '../lib/harness.js';

const V = JSON.parse(fs.readFileSync(path.join(h.REPO, 'tests', 'vectors', 'webpush_rfc8291.json'), 'utf8'));

function toolBin() {
  const candidates = [process.env.LINKWARD_WEBPUSH_TOOL, path.join(h.REPO, 'build', 'webpush_tool')].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(c)) return c;
  throw new Error(`webpush_tool not found (set LINKWARD_WEBPUSH_TOOL); tried: ${candidates.join(', ')}`);
}
const TOOL = toolBin();

/** One request to webpush.c, its answer parsed. */
function tool(req) {
  const out = execFileSync(TOOL, [], { input: JSON.stringify(req), timeout: h.T(20000), env: process.env });
  return JSON.parse(out.toString('utf8'));
}

/** A browser's subscription keys: a P-256 ECDH key and a 16-byte auth secret. */
function subscription() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  return { ecdh, p256dh: ecdh.getPublicKey(), auth: crypto.randomBytes(16) };
}

function encrypt(sub, plaintext, padTo) {
  const req = { op: 'encrypt', p256dh: h.b64e(sub.p256dh), auth: h.b64e(sub.auth), plaintext: h.b64e(plaintext) };
  if (padTo !== undefined) req.pad_to = padTo;
  return tool(req);
}

/** What the browser does with the body: http_ece with the subscription's private key. */
function open(sub, body) {
  return ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
}

describe('aes128gcm bodies from webpush.c, opened by http_ece', () => {
  test('the known answer of unit.test_webpush is RFC 8291 Appendix A: http_ece opens it', () => {
    const ua = crypto.createECDH('prime256v1');
    ua.setPrivateKey(h.b64d(V.ua_private));
    assert.equal(h.b64e(ua.getPublicKey()), V.ua_public);
    const pt = ece.decrypt(h.b64d(V.body), { version: 'aes128gcm', privateKey: ua, authSecret: h.b64d(V.auth_secret) });
    assert.equal(pt.toString('utf8'), V.plaintext);
  });

  const cases = [
    ['an alert payload', Buffer.from('{"alert":"Qm9vbS1ib29tLWJvb20tYm9vbQ","kind":"new_device"}')],
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from('x')],
    ['binary, with zeros at the end', Buffer.from([1, 2, 0, 0, 0])],
    ['the largest plaintext (3993 bytes: a 4096-byte body)', crypto.randomBytes(3993)],
  ];
  for (const [name, plaintext] of cases) {
    test(`round trip: ${name}`, () => {
      const sub = subscription();
      const ans = encrypt(sub, plaintext);
      assert.equal(ans.error, undefined, JSON.stringify(ans));
      const body = h.b64d(ans.body);
      assert.equal(body.length, plaintext.length + 103);
      assert.equal(body.readUInt32BE(16), 4096, 'rs');
      assert.equal(body[20], 65, 'idlen');
      assert.equal(body[21], 0x04, 'keyid: an uncompressed P-256 point');
      assert.deepEqual(open(sub, body), plaintext);
    });
  }

  test('every body has its own salt and ephemeral key', () => {
    const sub = subscription();
    const a = h.b64d(encrypt(sub, Buffer.from('same')).body);
    const b = h.b64d(encrypt(sub, Buffer.from('same')).body);
    assert.notDeepEqual(a.subarray(0, 16), b.subarray(0, 16));
    assert.notDeepEqual(a.subarray(21, 86), b.subarray(21, 86));
    assert.deepEqual(open(sub, a), open(sub, b));
  });

  test('padding hides the length: two alerts padded to 256 bytes have one size and open to themselves', () => {
    const sub = subscription();
    const short = Buffer.from('{"alert":"a","kind":"pin"}');
    const long = Buffer.from('{"alert":"Qm9vbS1ib29tLWJvb20tYm9vbQ","kind":"new_device_far_away"}');
    const a = h.b64d(encrypt(sub, short, 256).body);
    const b = h.b64d(encrypt(sub, long, 256).body);
    assert.equal(a.length, 256 + 103);
    assert.equal(b.length, a.length);
    assert.deepEqual(open(sub, a), short);
    assert.deepEqual(open(sub, b), long);
  });

  test('another subscription cannot open it', () => {
    const sub = subscription();
    const body = h.b64d(encrypt(sub, Buffer.from('for sub only')).body);
    const other = subscription();
    assert.throws(() => open({ ...other, auth: sub.auth }, body));
    assert.throws(() => open({ ...sub, auth: crypto.randomBytes(16) }, body));
  });

  test('refused: a plaintext one byte over 3993, a key off the curve, a compressed key', () => {
    const sub = subscription();
    const big = encrypt(sub, crypto.randomBytes(3994));
    assert.equal(big.error, 'too large');
    const off = Buffer.from(sub.p256dh);
    off[64] ^= 1;
    assert.equal(encrypt({ ...sub, p256dh: off }, Buffer.from('x')).error, 'invalid input');
    const compressed = sub.ecdh.getPublicKey(null, 'compressed');
    const padded = Buffer.concat([compressed, Buffer.alloc(65 - compressed.length)]);
    assert.equal(encrypt({ ...sub, p256dh: padded }, Buffer.from('x')).error, 'invalid input');
  });
});

describe('VAPID (RFC 8292) from webpush.c, verified with Node crypto', () => {
  const dir = h.tempDir('lw-vapid-');
  const key = path.join(dir, 'vapid.pem');
  const now = Math.floor(Date.now() / 1000);

  function vapid(endpoint, extra = {}) {
    return tool({ op: 'vapid', key, endpoint, sub: 'mailto:ops@example.org', now, exp: now + 12 * 3600, ...extra });
  }

  /** The JWT's parts checked, and its signature verified under k. */
  function verify(authorization, aud, exp) {
    const m = /^vapid t=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+), k=([A-Za-z0-9_-]{87})$/.exec(authorization);
    assert.ok(m, authorization);
    const [, hdr, claims, sig, k] = m;
    assert.deepEqual(JSON.parse(h.b64d(hdr).toString('utf8')), { typ: 'JWT', alg: 'ES256' });
    assert.deepEqual(JSON.parse(h.b64d(claims).toString('utf8')), { aud, exp, sub: 'mailto:ops@example.org' });
    const raw = h.b64d(k);
    assert.equal(raw.length, 65);
    assert.equal(raw[0], 0x04);
    const pub = crypto.createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: h.b64e(raw.subarray(1, 33)), y: h.b64e(raw.subarray(33)) },
      format: 'jwk',
    });
    const signature = h.b64d(sig);
    assert.equal(signature.length, 64, 'raw r || s');
    const data = Buffer.from(`${hdr}.${claims}`);
    assert.ok(crypto.verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, signature), 'ES256 signature');
    assert.ok(!crypto.verify('sha256', Buffer.from(`${hdr}.${claims}x`), { key: pub, dsaEncoding: 'ieee-p1363' }, signature));
    return k;
  }

  test('makes a key, saves it 0600 as PEM Node can read, and signs a JWT for the endpoint\'s origin', () => {
    const ans = vapid('https://push.example.net:8443/wpush/v2/gAAAA?x=1');
    assert.equal(ans.error, undefined, JSON.stringify(ans));
    assert.equal(ans.created, true);
    assert.equal(ans.origin, 'https://push.example.net:8443');
    const k = verify(ans.authorization, 'https://push.example.net:8443', now + 12 * 3600);
    assert.equal(k, ans.public_key);
    assert.equal(fs.statSync(key).mode & 0o777, 0o600);
    const pem = fs.readFileSync(key, 'utf8');
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
    const priv = crypto.createPrivateKey(pem);
    assert.equal(priv.asymmetricKeyDetails.namedCurve, 'prime256v1');
    const jwk = crypto.createPublicKey(priv).export({ format: 'jwk' });
    assert.equal(h.b64e(Buffer.concat([Buffer.from([4]), h.b64d(jwk.x), h.b64d(jwk.y)])), ans.public_key);
  });

  test('loads the saved key the next time: the same public key signs', () => {
    const first = vapid('https://push.example.net/a');
    const again = vapid('https://fcm.googleapis.com/fcm/send/abc', { exp: now + 24 * 3600 });
    assert.equal(again.created, false);
    assert.equal(again.public_key, first.public_key);
    verify(again.authorization, 'https://fcm.googleapis.com', now + 24 * 3600);
  });

  test('loopback push service for tests: only with the flag', () => {
    assert.equal(vapid('http://127.0.0.1:9999/push/1').error, 'invalid input');
    const ans = vapid('http://127.0.0.1:9999/push/1', { loopback: true });
    verify(ans.authorization, 'http://127.0.0.1:9999', now + 12 * 3600);
  });

  test('refused: exp more than 24 h ahead, or not after now', () => {
    assert.equal(vapid('https://push.example.net/a', { exp: now + 24 * 3600 + 1 }).error, 'invalid input');
    assert.equal(vapid('https://push.example.net/a', { exp: now }).error, 'invalid input');
  });
});

describe('endpoints', () => {
  const check = (url, loopback = false) => tool({ op: 'endpoint', url, loopback });

  test('https accepted, its origin the JWT audience', () => {
    assert.deepEqual(check('https://updates.push.services.mozilla.com/wpush/v2/gAAAAABh'),
      { origin: 'https://updates.push.services.mozilla.com' });
    assert.deepEqual(check('https://[::1]:8443/p', false), { origin: 'https://[::1]:8443' });
    assert.deepEqual(check('http://[::1]:8080/p', true), { origin: 'http://[::1]:8080' });
  });

  test('refused: http, userinfo, a fragment, too long, http loopback without the flag', () => {
    for (const url of ['http://push.example.net/a', 'https://u:p@push.example.net/a', 'https://push.example.net/a#b',
      'http://127.0.0.1:1/a', 'http://localhost:1/a', 'https://push.example.net/\u00e9']) {
      assert.equal(check(url).error, 'invalid input', url);
    }
    assert.equal(check('http://localhost:1/a', true).error, 'invalid input');
    const long = 'https://push.example.net/' + 'a'.repeat(2048);
    assert.equal(check(long).error, 'too large');
    assert.deepEqual(check(long.slice(0, 2048)), { origin: 'https://push.example.net' });
  });
});
