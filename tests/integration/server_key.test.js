// The server's Ed25519 key (it signs QR payloads; phones pin it at
// registration) and the hash key derived from it (stored credentials, link
// tokens, QR refs and pairing codes are kept as keyed hashes) live in
// server.key in the data directory. Given only `--db PATH` (no --data-dir),
// the data directory is the database's folder: the key is created there, and
// the same key is read again after a restart, so everything issued before the
// restart still verifies. The store records the key's fingerprint: without
// the file, or with another one, a store with accounts refuses to start
// (naming the file, the fingerprints and the flag), and only
// --accept-new-server-key starts it with a new key, ending every session.

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

/** The fingerprint the server records and names: hex BLAKE2b-256 of the public key (base64url). */
const fingerprintHex = (pubB64) => Buffer.from(h.fingerprint(h.b64d(pubB64))).toString('hex');
const escapeRe = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `linkward serve` on this test's database, run to its exit (it must refuse). */
function serveOnce(extra = []) {
  return h.runCli(['serve', '--listen', '127.0.0.1:0', '--db', path.join(dir, 'linkward.db'), ...server.args, ...extra],
    { timeout: 10000 });
}

/** A key file holding a fresh seed (a key other than the server's). */
function otherKeyFile() {
  return `${KEY_HEADER}${h.b64e(crypto.randomBytes(32))}\n`;
}

test('without server.key, a store with accounts refuses to start: one sentence names the file, the expected fingerprint and the flag', async () => {
  assert.ok(info, 'the previous tests ran');
  await server.stop();
  const keyFile = path.join(dir, 'server.key');
  fs.rmSync(keyFile);
  const res = await serveOnce();
  assert.equal(res.code, 1, h.describe(res));
  assert.doesNotMatch(res.stdout, /listening/, 'it never listened');
  assert.match(res.stderr, new RegExp(`refusing to start: the server key ${escapeRe(keyFile)} is missing, and the \\d+ accounts? ` +
    `in the store depends? on the key with fingerprint ${fingerprintHex(info.key)} .*--accept-new-server-key`), h.describe(res));
  assert.ok(!fs.existsSync(keyFile), 'no new key was made');
});

test('with another server.key, it refuses too, naming both fingerprints; with the right one back, everything works as before', async () => {
  const keyFile = path.join(dir, 'server.key');
  const other = otherKeyFile();
  fs.writeFileSync(keyFile, other, { mode: 0o600 });
  const res = await serveOnce();
  assert.equal(res.code, 1, h.describe(res));
  assert.doesNotMatch(res.stdout, /listening/, 'it never listened');
  assert.match(res.stderr, new RegExp(`refusing to start: the server key ${escapeRe(keyFile)} has fingerprint [0-9a-f]{64}, ` +
    `but the \\d+ accounts? in the store depends? on the key with fingerprint ${fingerprintHex(info.key)}.*--accept-new-server-key`),
  h.describe(res));
  assert.equal(fs.readFileSync(keyFile, 'utf8'), other, 'the key file is left as it was');
  // Refusing changed nothing: the right key back, the old credential works.
  fs.writeFileSync(keyFile, info.keyFile, { mode: 0o600 });
  await server.restart();
  assert.equal(await serverKey(), info.key);
  h.expectStatus(await info.primary.raw('GET', '/v1/session'), 200);
});

test('--accept-new-server-key: starts with a new key, says what it did, ends every session; the old session, QR code and pinned key fail', async () => {
  assert.ok(info, 'the previous tests ran');
  const old = await h.createLinkRequest(server.url);
  await server.stop();
  const keyFile = path.join(dir, 'server.key');
  fs.rmSync(keyFile);
  server.args.push('--accept-new-server-key');
  try {
    await server.restart();
  } finally {
    server.args.pop(); // once: the key is recorded now
  }
  assert.ok(fs.existsSync(keyFile), 'a new key file was written');
  const key = await serverKey();
  assert.notEqual(key, info.key, 'a new key');
  const said = server.stderr().split('\n').map((l) => { try { return JSON.parse(l); } catch { return null; } })
    .find((o) => o && /--accept-new-server-key: using the server key/.test(o.msg));
  assert.ok(said, `the server says what it did:\n${server.stderr().slice(-3000)}`);
  assert.equal(said.level, 'warn');
  assert.match(said.msg, new RegExp(`${escapeRe(keyFile)} \\(fingerprint ${fingerprintHex(key)}\\) in place of ` +
    `${fingerprintHex(info.key)}; ended [1-9]\\d* sessions \\(reason server_key_changed\\)`));
  const stats = await h.adminStats(server);
  assert.equal(stats.sessions_active ?? stats.sessions?.active, 0, `no session is left active: ${JSON.stringify(stats)}`);

  h.expectError(await info.primary.raw('GET', '/v1/session'), 401, 'unauthenticated');
  h.expectError(await h.scan(await h.registerPrimary(server.url, 'carol'), old.payload), 400,
    ['invalid_payload', 'invalid_signature', 'bad_signature', 'expired', 'not_found', 'invalid_request']);
  const fresh = await h.createLinkRequest(server.url);
  const res = await info.phone.run(['link', fresh.payload, '--yes']);
  assert.notEqual(res.code, 0, `the phone pinned the old key: ${h.describe(res)}`);
  assert.match(h.refusalText(res), /signature|not issued|server key/i);

  // The new key is the recorded one now: a restart without the flag starts.
  await server.restart();
  assert.equal(await serverKey(), key);
});
