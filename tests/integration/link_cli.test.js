// Linking headless companions with the phone CLI: by payload, by QR image, by
// pairing code; then what the phone and the companion see (PRODUCT §2, §4, §7.1).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as h from '../lib/harness.js';

const CODE_RE = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;
const ID_RE = /^[A-Za-z0-9_-]{22,}$/;

let server;
let phone;
let serverInfo;
const linked = {}; // via -> {deviceId, companion, result}

before(async () => {
  server = await h.startServer();
  phone = new h.PhoneCli(server);
  await phone.register('alice');
  serverInfo = h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200);
});

after(async () => {
  await server?.stop();
});

async function linkVia(via, name) {
  const companion = new h.CompanionCli(server);
  const result = await h.linkCompanionCli(phone, companion, { via, name });
  linked[via] = { deviceId: result.deviceId, companion, result };
  console.log(`link flow (${via}): ${result.ms.toFixed(0)} ms`);
  return linked[via];
}

function checkLinkTranscript(result) {
  // companion link --json: qr ... scanned ... linked, in that order.
  const events = result.link.json.map((l) => l.event);
  const iQr = events.indexOf('qr');
  const iScanned = events.indexOf('scanned');
  const iLinked = events.indexOf('linked');
  assert.ok(iQr >= 0 && iScanned > iQr && iLinked > iScanned,
    `companion link events out of order: ${JSON.stringify(events)}`);
  assert.equal(events[events.length - 1], 'linked');
  assert.match(result.deviceId, ID_RE);
  assert.equal(result.exit.code, 0);

  const qr = result.qr;
  assert.ok(qr.payload.startsWith('lw1:'), `payload: ${qr.payload}`);
  assert.match(qr.code, CODE_RE);
  assert.ok(qr.expires_in > 0, `expires_in ${qr.expires_in}`);
  // The payload is signed by this server's key and names this server's origin.
  assert.ok(h.verifyPayload(qr.payload, serverInfo.server_key), 'payload signature does not verify');
  assert.equal(h.parsePayload(qr.payload).origin, serverInfo.origin);

  // phone link --json: the request (who is asking, risk), then approved.
  const lines = result.phone.lines;
  const req = lines.find((l) => l.event === 'request');
  const ok = lines.find((l) => l.event === 'approved');
  assert.ok(req, `no request line: ${result.phone.stdout}`);
  assert.ok(ok, `no approved line: ${result.phone.stdout}`);
  assert.equal(req.request.ip, '127.0.0.1');
  assert.ok(['low', 'medium', 'high'].includes(req.risk.level), `risk ${JSON.stringify(req.risk)}`);
  assert.ok(Array.isArray(req.risk.reasons));
  assert.equal(ok.request_id, req.request.id);
  // The fingerprint in the QR is the BLAKE2b-256 of the requester's key.
  assert.ok(req.request.public_key, 'request has no public_key');
  assert.deepEqual(h.parsePayload(qr.payload).fp, h.fingerprint(h.b64d(req.request.public_key)));
}

test('a companion links by its QR payload', async () => {
  const { result } = await linkVia('payload', 'build bot');
  checkLinkTranscript(result);
});

test('a companion links by a scanned QR image (PNG)', async () => {
  const { result } = await linkVia('image');
  checkLinkTranscript(result);
  const png = fs.readFileSync(result.png);
  assert.deepEqual(png.subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), 'not a PNG');
});

test('a companion links by the typed pairing code', async () => {
  const { result } = await linkVia('code');
  checkLinkTranscript(result);
});

test('the pairing code is forgiving about case and hyphen', async () => {
  const companion = new h.CompanionCli(server);
  const link = companion.spawnLink();
  try {
    const qr = await link.waitForLine('qr');
    const typed = qr.code.replace('-', '').toLowerCase();
    const res = await phone.run(['link', '--code', typed, '--yes']);
    assert.equal(res.code, 0, h.describe(res));
    const done = await link.waitForLine('linked');
    assert.match(done.device_id, ID_RE);
    assert.equal((await link.waitExit()).code, 0);
    linked.forgiving = { deviceId: done.device_id, companion };
  } finally {
    link.kill('SIGKILL');
  }
});

test('phone devices lists every companion with its record, and itself as current', async () => {
  const devices = await phone.devices();
  const ids = Object.values(linked).map((l) => l.deviceId);
  assert.equal(devices.length, ids.length + 1, JSON.stringify(devices));
  const me = devices.filter((d) => d.current === true);
  assert.equal(me.length, 1, 'exactly one row is current');
  assert.equal(me[0].role, 'primary');
  assert.equal(me[0].id, phone.deviceId);

  for (const id of ids) {
    const d = devices.find((x) => x.id === id);
    assert.ok(d, `companion ${id} missing from phone devices`);
    for (const f of h.RECORD_FIELDS) assert.ok(f in d, `record lacks ${f}: ${JSON.stringify(d)}`);
    assert.equal(d.role, 'companion');
    assert.equal(d.state, 'active');
    assert.equal(d.ip, '127.0.0.1');
    assert.ok(d.current !== true, 'a companion row is not the phone\'s current row');
    assert.equal(typeof d.name, 'string');
    assert.ok(d.name.length > 0, 'a device always has a name');
    assert.equal(typeof d.browser, 'string');
    assert.equal(typeof d.os, 'string');
    // The CLI names its system as a person would (os-release), not by its kernel.
    const rel = (() => { try { return fs.readFileSync('/etc/os-release', 'utf8'); } catch { return ''; } })();
    const field = (k) => (rel.match(new RegExp(`^${k}=("?)(.*)\\1$`, 'm')) || [])[2] || '';
    if (field('NAME')) {
      assert.equal(d.os, field('NAME'));
      assert.equal(d.os_version, field('VERSION_ID'));
    }
    assert.equal(d.browser, 'Linkward CLI');
    assert.ok(typeof d.key_fingerprint === 'string' && d.key_fingerprint.length >= 16, d.key_fingerprint);
    assert.match(d.linked_at, h.RFC3339);
    assert.match(d.last_active_at, h.RFC3339);
    assert.ok(Date.parse(d.last_active_at) >= Date.parse(d.linked_at) - 1000);
    assert.equal(d.ended_at, null);
    assert.equal(d.end_reason, null);
  }
  // The name given at link time is kept.
  assert.equal(devices.find((d) => d.id === linked.payload.deviceId).name, 'build bot');
  // Fingerprints differ: each companion has its own key.
  const fps = new Set(ids.map((id) => devices.find((d) => d.id === id).key_fingerprint));
  assert.equal(fps.size, ids.length);
});

test('companion whoami and devices show the companion\'s own session', async () => {
  const { companion, deviceId } = linked.payload;
  const who = await companion.whoami();
  assert.equal(who.device.id, deviceId);
  assert.equal(who.device.role, 'companion');
  assert.equal(who.device.state, 'active');
  assert.equal(who.account.handle, 'alice');
  assert.equal(who.account.id, phone.accountId);
  assert.ok(who.token_expires_in > 0);

  const res = await companion.run(['devices']);
  assert.equal(res.code, 0, h.describe(res));
  assert.ok(Array.isArray(res.json), res.stdout);
  const cur = res.json.filter((d) => d.current === true);
  assert.equal(cur.length, 1);
  assert.equal(cur[0].id, deviceId);
  assert.ok(res.json.some((d) => d.id === phone.deviceId && d.role === 'primary'));
});

test('the phone got a device.linked alert for each new companion', async () => {
  const alerts = await phone.alerts();
  for (const { deviceId } of Object.values(linked)) {
    const a = alerts.find((x) => x.kind === 'device.linked' && x.device_id === deviceId);
    assert.ok(a, `no device.linked alert for ${deviceId}: ${JSON.stringify(alerts)}`);
    assert.match(a.created_at, h.RFC3339);
    assert.equal(typeof a.details, 'object');
    assert.equal(typeof a.id, 'string');
  }
  // Newest first.
  const times = alerts.map((a) => Date.parse(a.created_at));
  for (let i = 1; i < times.length; i++) assert.ok(times[i - 1] >= times[i], 'alerts are newest first');
});

test('the companion state file is private (0600)', () => {
  const { companion } = linked.payload;
  const mode = fs.statSync(companion.state).mode & 0o777;
  assert.equal(mode, 0o600, `companion state mode ${mode.toString(8)}`);
  const pmode = fs.statSync(phone.state).mode & 0o777;
  assert.equal(pmode, 0o600, `phone state mode ${pmode.toString(8)}`);
});
