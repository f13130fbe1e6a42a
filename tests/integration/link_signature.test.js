// The account signature is kept with the device and checked by the phone
// (PRODUCT §2 step 5): a server cannot slip in a device the primary never
// signed. Here the "server" forges by writing to its own SQLite file behind
// its back, as a compromised server (or its database) could.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as h from '../lib/harness.js';

const run = promisify(execFile);
const WARNING = 'NOT approved by this phone: the server lists a device this phone never signed';
const REFUSED = 3; // docs/cli.md: exit 3, refused

let server;
let phone;
let companionId;

before(async () => {
  server = await h.startServer();
  phone = new h.PhoneCli(server);
  await phone.register(h.uniqueHandle('sig'));
  const companion = new h.CompanionCli(server);
  companionId = (await h.linkCompanionCli(phone, companion, { name: 'honest bot' })).deviceId;
});

after(async () => {
  await server?.stop();
});

/** Runs SQL on the server's live database (it keeps running). */
async function sql(q) {
  const db = path.join(server.dataDir, 'linkward.db');
  const { stdout } = await run('sqlite3', ['-cmd', '.timeout 5000', db, q], { timeout: h.T(15000) });
  return stdout;
}

const hex = (buf) => Buffer.from(buf).toString('hex');

test('records carry the device key and the account signature, which the phone verifies', async () => {
  const res = await phone.run(['devices']);
  assert.equal(res.code, 0, h.describe(res));
  const mine = res.json.find((d) => d.id === phone.deviceId);
  const comp = res.json.find((d) => d.id === companionId);
  assert.ok(mine && comp, h.describe(res));
  // The primary signs nobody's key for itself: no signature, no verdict.
  assert.equal(mine.role, 'primary');
  assert.equal(mine.account_signature, null);
  assert.ok(h.fingerprintMatches(mine.key_fingerprint, mine.public_key));
  assert.equal(mine.signed_by_this_phone, undefined);
  // The companion: its key, and the signature the phone made over it at approval.
  assert.equal(comp.role, 'companion');
  assert.ok(h.fingerprintMatches(comp.key_fingerprint, comp.public_key), JSON.stringify(comp));
  assert.ok(h.verifyRaw(h.b64d(mine.public_key), h.accountMessage(phone.accountId, comp.public_key),
    h.b64d(comp.account_signature)), 'the stored signature is the phone\'s over the companion key');
  assert.equal(comp.signed_by_this_phone, true);

  const text = await phone.runText(['devices']);
  assert.equal(text.code, 0, h.describe(text));
  assert.match(text.stdout, /Approved:\s+signed by this phone/);
  assert.doesNotMatch(text.stdout + text.stderr, /NOT approved/);
});

test('a device slipped into the store without the phone\'s signature is flagged, exit 3', async () => {
  // A copy of the honest companion's row under a new id and a new key, with a
  // valid Ed25519 signature over that key, only not by this phone.
  const forger = h.newDeviceKey();
  const slipped = h.newDeviceKey();
  const forgedId = h.b64e(crypto.randomBytes(16));
  const sig = forger.sign(h.accountMessage(phone.accountId, slipped.pub));
  await sql(`CREATE TEMP TABLE t AS SELECT * FROM sessions WHERE id = '${companionId}';
    UPDATE t SET id = '${forgedId}', name = 'slipped in', public_key = X'${hex(slipped.pub)}',
      account_sig = X'${hex(sig)}', cred_selector = '${h.b64e(crypto.randomBytes(16))}';
    INSERT INTO sessions SELECT * FROM t;`);

  const res = await phone.run(['devices']);
  assert.equal(res.code, REFUSED, h.describe(res));
  assert.ok(Array.isArray(res.json), `devices --json still prints the list: ${h.describe(res)}`);
  const forged = res.json.find((d) => d.id === forgedId);
  assert.ok(forged, `the server lists the forged row: ${h.describe(res)}`);
  assert.equal(forged.signed_by_this_phone, false);
  assert.equal(res.json.find((d) => d.id === companionId).signed_by_this_phone, true);
  assert.ok(res.stderr.includes(WARNING) && res.stderr.includes(forgedId), h.describe(res));

  const text = await phone.runText(['devices']);
  assert.equal(text.code, REFUSED, h.describe(text));
  assert.ok(text.stdout.includes(`WARNING:     ${WARNING}`), h.describe(text));
  assert.ok(text.stderr.includes(WARNING) && text.stderr.includes(forgedId), h.describe(text));
  // Only the forged device is marked; the honest one is still approved.
  const details = (id) => text.stdout.slice(text.stdout.indexOf(`(${id})`)).split('\n\n')[0];
  assert.ok(details(forgedId).includes(WARNING), h.describe(text));
  assert.match(details(companionId), /Approved:\s+signed by this phone/, h.describe(text));
  assert.doesNotMatch(details(companionId), /NOT approved/, h.describe(text));

  // Alerts are no device list: they are printed as before.
  const alerts = await phone.run(['alerts']);
  assert.equal(alerts.code, 0, h.describe(alerts));
  assert.ok(Array.isArray(alerts.json), h.describe(alerts));
});

test('history checks ended devices too: a zeroed signature is flagged, exit 3', async () => {
  const out = await phone.run(['logout', companionId]);
  assert.equal(out.code, 0, h.describe(out));
  let res = await phone.run(['history']);
  assert.equal(res.code, 0, h.describe(res));
  assert.equal(res.json.find((d) => d.id === companionId).signed_by_this_phone, true);

  await sql(`UPDATE sessions SET account_sig = zeroblob(64) WHERE id = '${companionId}';`);
  res = await phone.run(['history']);
  assert.equal(res.code, REFUSED, h.describe(res));
  assert.equal(res.json.find((d) => d.id === companionId).signed_by_this_phone, false);
  assert.ok(res.stderr.includes(WARNING), h.describe(res));

  const text = await phone.runText(['history']);
  assert.equal(text.code, REFUSED, h.describe(text));
  assert.ok(text.stdout.includes(WARNING) && text.stderr.includes(WARNING), h.describe(text));
});

test('a second "primary" the phone is not is flagged as well', async () => {
  // Relabelling a forged device as the primary must not let it skip the check.
  const other = h.newDeviceKey();
  const fakeId = h.b64e(crypto.randomBytes(16));
  await sql(`CREATE TEMP TABLE p AS SELECT * FROM sessions WHERE id = '${phone.deviceId}';
    UPDATE p SET id = '${fakeId}', public_key = X'${hex(other.pub)}',
      cred_selector = '${h.b64e(crypto.randomBytes(16))}';
    INSERT INTO sessions SELECT * FROM p;`);
  const res = await phone.run(['devices']);
  assert.equal(res.code, REFUSED, h.describe(res));
  assert.equal(res.json.find((d) => d.id === fakeId).signed_by_this_phone, false);
  assert.equal(res.json.find((d) => d.id === phone.deviceId).signed_by_this_phone, undefined);
});
