// The server's Ed25519 key (it signs QR payloads; phones pin it at
// registration) and the hash key derived from it (stored credentials, link
// tokens, QR refs and pairing codes are kept as keyed hashes) live in
// server.key in the data directory. Given only `--db PATH` (no --data-dir),
// the data directory is the database's folder: the key is created there, and
// the same key is read again after a restart, so everything issued before the
// restart still verifies. The last test removes the key file to show that
// these checks do notice a new key.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

const KEY_HEADER = 'linkward-server-key-v1\n';

let server;
let cwd;
let dir;
before(async () => {
  // The database in a folder that does not exist yet, the server started from
  // an empty working directory: nothing may land in ./var.
  cwd = h.tempDir('lw-cwd-');
  dir = path.join(h.tempDir('lw-dbonly-'), 'store');
  server = await h.startServer({ dbOnly: true, dataDir: dir, cwd });
});
after(async () => {
  await server?.stop();
});

/** The Ed25519 public key (base64url) of the seed in a server.key file. */
function publicKeyOfFile(file) {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.startsWith(KEY_HEADER), `${file} starts with the key header`);
  const seed = h.b64d(text.slice(KEY_HEADER.length).trim());
  assert.equal(seed.length, 32, 'a 32-byte seed');
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  return crypto.createPublicKey(priv).export({ format: 'jwk' }).x;
}

const serverKey = async () => h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200).server_key;

let info; // what was issued before the restart

test('with only --db, the key, database and control socket are created in the database\'s folder', async () => {
  assert.ok(!server.args.includes('--data-dir') && !server.proc.spawnargs.includes('--data-dir'),
    `started without --data-dir: ${server.proc.spawnargs.join(' ')}`);
  const keyFile = path.join(dir, 'server.key');
  const st = fs.statSync(keyFile);
  assert.equal(st.mode & 0o777, 0o600, `server.key is private: ${(st.mode & 0o777).toString(8)}`);
  assert.ok(fs.existsSync(path.join(dir, 'linkward.db')));
  assert.ok(fs.statSync(path.join(dir, 'control.sock')).isSocket(), 'the control socket beside the database');
  assert.deepEqual(fs.readdirSync(cwd), [], 'nothing in the working directory (no ./var)');
  // The file holds the key the server uses.
  assert.equal(publicKeyOfFile(keyFile), await serverKey());
  // The control socket answers there.
  assert.equal(typeof (await h.adminStats(server)), 'object');
});

test('before a restart: a phone pins the key; a session, a QR payload and a pairing code are issued', async () => {
  const phone = new h.PhoneCli(server);
  await phone.register('alice');
  const primary = await h.registerPrimary(server.url, 'bob');
  const key = await serverKey();
  assert.equal(primary.serverKey, key, 'registration returns the server key');
  const byPayload = await h.createLinkRequest(server.url);
  const byCode = await h.createLinkRequest(server.url);
  assert.ok(h.verifyPayload(byPayload.payload, key), 'the payload is signed by the server key');
  const companion = await h.linkCompanionApi(server.url, primary);
  info = {
    phone, primary, companion, byPayload, byCode, key,
    keyFile: fs.readFileSync(path.join(dir, 'server.key'), 'utf8'),
  };
});

test('after a restart: the same key; everything issued before still verifies', async () => {
  assert.ok(info, 'the previous test ran');
  await server.restart();
  assert.equal(fs.readFileSync(path.join(dir, 'server.key'), 'utf8'), info.keyFile, 'the key file is unchanged');
  assert.equal(await serverKey(), info.key, 'GET /v1/server gives the same key');
  assert.deepEqual(fs.readdirSync(cwd), [], 'still nothing in the working directory');
  assert.ok(h.verifyPayload(info.byPayload.payload, await serverKey()), 'the old payload verifies under the key');

  // Credentials issued before (kept as keyed hashes) are still accepted.
  h.expectStatus(await info.primary.raw('GET', '/v1/session'), 200);
  h.expectStatus(await info.companion.raw('GET', '/v1/devices'), 200);

  // The phone checks the payload against the key it pinned, and the server
  // finds the ref by its keyed hash: the QR code shown before the restart
  // still links. (First: a restarted server gives a pending request a fresh
  // ref, and a fresh code, once the request is looked at again.)
  const res = await info.phone.run(['link', info.byPayload.payload, '--yes']);
  assert.equal(res.code, 0, h.describe(res));
  h.expectStatus(await h.complete(info.byPayload), 201);

  // So does the pairing code issued before the restart (also a keyed hash).
  const s = h.expectStatus(await h.scan(info.primary, { code: info.byCode.code }), 200);
  assert.equal(s.request.id, info.byCode.id);
  h.expectStatus(await h.approve(info.primary, info.byCode.id, info.byCode.key.pub), 200);
  // And its link token.
  const st = await h.api(server.url, 'GET', `/v1/link-requests/${info.byCode.id}`, { token: info.byCode.token });
  assert.equal(h.expectStatus(st, 200).state, 'approved');
  h.expectStatus(await h.complete(info.byCode), 201);

  // And a QR code made after the restart is accepted by the phone's pinned key.
  const fresh = await h.createLinkRequest(server.url);
  const again = await info.phone.run(['link', fresh.payload, '--yes']);
  assert.equal(again.code, 0, h.describe(again));
  h.expectStatus(await h.complete(fresh), 201);
});

test('(self-check) a new key would be noticed: without server.key the old session, QR code and pinned key fail', async () => {
  assert.ok(info, 'the previous tests ran');
  const old = await h.createLinkRequest(server.url);
  await server.stop();
  fs.rmSync(path.join(dir, 'server.key'));
  await server.restart();
  assert.ok(fs.existsSync(path.join(dir, 'server.key')), 'a new key file was written');
  assert.notEqual(await serverKey(), info.key, 'a new key');
  h.expectError(await info.primary.raw('GET', '/v1/session'), 401, 'unauthenticated');
  h.expectError(await h.scan(await h.registerPrimary(server.url, 'carol'), old.payload), 400,
    ['invalid_payload', 'invalid_signature', 'bad_signature', 'expired', 'not_found', 'invalid_request']);
  const fresh = await h.createLinkRequest(server.url);
  const res = await info.phone.run(['link', fresh.payload, '--yes']);
  assert.notEqual(res.code, 0, `the phone pinned the old key: ${h.describe(res)}`);
  assert.match(h.refusalText(res), /signature|not issued|server key/i);
});
