// The signed messages of web/js/proof.mjs against the known answers in
// tests/vectors/proof.json, which unit.test_proof holds src/common/proof.c to:
// the web client, the harness (which signs with proof.mjs) and the C side build
// the same bytes, and the same Ed25519 key signs them to the same signatures.
// No server: the bytes alone.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import * as proof from '../../web/js/proof.mjs';
import * as h from '../lib/harness.js';

const V = JSON.parse(fs.readFileSync(path.join(h.REPO, 'tests', 'vectors', 'proof.json'), 'utf8'));
const hex = (s) => Buffer.from(s, 'hex');

// PKCS#8 of an Ed25519 seed: the fixed DER prefix, then the 32 bytes.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const secretKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, hex(V.seed)]), format: 'der', type: 'pkcs8' });

describe('signed messages: web/js/proof.mjs and tests/vectors/proof.json', () => {
  test('the vectors cover every domain proof.mjs knows, and no other', () => {
    const domains = new Set(V.valid.map((v) => v.domain));
    assert.deepEqual([...domains].sort(), [proof.ACCOUNT, proof.LINK, proof.QR, proof.REFRESH].sort());
  });

  test('the seed is the key the vectors name', () => {
    const pub = crypto.createPublicKey(secretKey).export({ format: 'der', type: 'spki' }).subarray(-32);
    assert.equal(pub.toString('hex'), V.public_key);
  });

  for (const v of V.valid) {
    test(`builds the known bytes: ${v.name}`, () => {
      const msg = proof.buildProof(v.domain, v.text, hex(v.raw));
      assert.ok(msg instanceof Uint8Array);
      assert.equal(Buffer.from(msg).toString('hex'), v.message);
    });

    test(`signs to the known signature, which verifies: ${v.name}`, () => {
      const msg = proof.buildProof(v.domain, v.text, hex(v.raw));
      const sig = crypto.sign(null, msg, secretKey);
      assert.equal(sig.toString('hex'), v.signature);
      assert.ok(h.verifyRaw(hex(V.public_key), msg, sig));
    });
  }

  for (const v of V.refused) {
    test(`refuses (${v.error}): ${v.name}`, () => {
      assert.throws(() => proof.buildProof(v.domain, v.text, hex(v.raw)),
        (e) => e instanceof proof.ProofError && e.code === v.error);
    });
  }

  test('refuses a NUL in the text (which a C string cannot carry, so the vectors cannot either)', () => {
    assert.throws(() => proof.buildProof(proof.LINK, 'abc\u0000def', Buffer.alloc(32)),
      (e) => e instanceof proof.ProofError && e.code === 'invalid');
  });

  test('refuses what is not a string or not bytes', () => {
    for (const [text, raw] of [[42, Buffer.alloc(32)], [null, Buffer.alloc(32)], ['abc', 'x'.repeat(32)], ['abc', null]]) {
      assert.throws(() => proof.buildProof(proof.REFRESH, text, raw), (e) => e instanceof proof.ProofError && e.code === 'invalid');
    }
  });

  test("the harness's messages are proof.mjs's (the names the integration tests sign with)", () => {
    const [link, refresh, account, qr] = [proof.LINK, proof.REFRESH, proof.ACCOUNT, proof.QR]
      .map((d) => V.valid.find((v) => v.domain === d));
    assert.equal(h.linkMessage(link.text, hex(link.raw)).toString('hex'), link.message);
    assert.equal(h.refreshMessage(refresh.text, h.b64e(hex(refresh.raw))).toString('hex'), refresh.message);
    assert.equal(h.accountMessage(account.text, hex(account.raw)).toString('hex'), account.message);
    const r = hex(qr.raw);
    assert.equal(h.qrMessage(qr.text, r.subarray(0, 16), r.subarray(16)).toString('hex'), qr.message);
  });
});
