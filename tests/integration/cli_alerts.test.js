// The phone CLI's answers to alerts (PRODUCT §6, §7.1): `alerts ack`,
// `logout DEVICE --alert`, `secure --alert`; the "who is linked" screen in
// human form; and high-risk links under --yes and under the server's
// block-high-risk policy. Addresses come from the GeoIP test databases,
// presented through --header X-Forwarded-For with loopback trusted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

const GEO = process.env.LINKWARD_GEOIP_TEST_DIR;
const LISBON = '198.51.100.10';
const MADRID = '198.51.100.130';
const TOR = '192.0.2.70';
const xff = (ip) => ['--header', `X-Forwarded-For: ${ip}`];

const servers = [];
async function start(extra = []) {
  // Rounded to their accuracy radii Lisbon and Madrid are 499.98 km apart, just
  // under the default --far-km 500: as in geo_alerts, the threshold is set below.
  const s = await h.startServer({ args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1', '--far-km', '450', ...extra] });
  servers.push(s);
  return s;
}
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

let S;
before(async () => {
  assert.ok(GEO, 'LINKWARD_GEOIP_TEST_DIR is set by the geoip CTest fixture');
  S = await start();
});

/** A CLI phone registered from Lisbon. */
async function phoneInLisbon(server, prefix) {
  const phone = new h.PhoneCli(server);
  const res = await h.runCli(['phone', '--server', server.url, '--state', phone.state, ...xff(LISBON), '--json',
    'register', '--handle', h.uniqueHandle(prefix)]);
  assert.equal(res.code, 0, h.describe(res));
  return phone;
}

/** A companion asking from `ip`; the phone runs `link PAYLOAD ...args`. */
async function linkFrom(server, phone, ip, args, name = 'Madrid laptop') {
  const comp = new h.CompanionCli(server);
  const link = h.spawnCli(['companion', '--server', server.url, '--state', comp.state, ...xff(ip), '--json', 'link',
    '--name', name]);
  try {
    const qr = await link.waitForLine((o) => o.event === 'qr', 5000);
    const res = await h.runCli(['phone', '--state', phone.state, ...xff(LISBON), 'link', qr.payload, ...args]);
    const end = await link.waitForLine((o) => ['linked', 'denied', 'expired'].includes(o.event), 5000);
    return { res, end, comp };
  } finally {
    await link.kill('SIGKILL');
  }
}

test('phone alerts ack, logout --alert and secure --alert record each answer; a companion cannot ack', async () => {
  const phone = await phoneInLisbon(S, 'cliack');
  const { res, end, comp } = await linkFrom(S, phone, MADRID, ['--yes', '--accept-risk']);
  assert.equal(res.code, 0, h.describe(res));
  assert.equal(end.event, 'linked');
  const deviceId = end.device_id;
  const alerts = await phone.alerts();
  const newCountry = alerts.find((a) => a.kind === 'link.new_country');
  const linked = alerts.find((a) => a.kind === 'device.linked');
  assert.ok(newCountry && linked, JSON.stringify(alerts.map((a) => a.kind)));

  // The linked device itself may not call its own link "me": only the phone answers.
  const token = await comp.token();
  h.expectError(await h.api(S.url, 'POST', `/v1/alerts/${linked.id}/ack`, { token, body: {} }), 403, 'forbidden');

  const ack = await phone.runText(['alerts', 'ack', newCountry.id]);
  assert.equal(ack.code, 0, h.describe(ack));
  assert.match(ack.stderr, /it was me/);
  const human = await phone.runText(['alerts']);
  assert.equal(human.code, 0, h.describe(human));
  assert.match(human.stdout, /ANSWER/);
  assert.match(human.stdout, new RegExp(`it_was_me.*${newCountry.id}`));
  assert.equal((await phone.alerts()).find((a) => a.id === newCountry.id).answer, 'it_was_me');
  // An unknown alert is a refusal (3), a malformed id a usage error (1).
  assert.equal((await phone.runText(['alerts', 'ack', 'no-such-alert'])).code, 3);
  assert.equal((await phone.runText(['alerts', 'ack', 'bad id!'])).code, 1);

  const out = await phone.runText(['logout', deviceId, '--alert', linked.id]);
  assert.equal(out.code, 0, h.describe(out));
  assert.match(out.stderr, new RegExp(`answering alert ${linked.id}`));
  assert.equal((await phone.alerts()).find((a) => a.id === linked.id).answer, 'logged_out_device');
  assert.equal((await phone.runText(['logout', '--all', '--alert', linked.id])).code, 1);

  const sec = await phone.run(['secure', '--alert', newCountry.id]);
  assert.equal(sec.code, 0, h.describe(sec));
  assert.equal(sec.json.answered.answer, 'secured_account');
  // A protective answer replaces "it was me".
  assert.equal((await phone.alerts()).find((a) => a.id === newCountry.id).answer, 'secured_account');
  assert.equal((await phone.run(['secure', '--alert', 'no-such-alert'])).code, 3);
});

test('phone devices (human): a details block per device with role, model, key and first vs last seen', async () => {
  const phone = await phoneInLisbon(S, 'clidev');
  const { end } = await linkFrom(S, phone, MADRID, ['--yes', '--accept-risk'], 'Desk in Madrid');
  assert.equal(end.event, 'linked');
  const records = await phone.devices();
  const rec = records.find((d) => d.id === end.device_id);
  const out = await phone.runText(['devices']);
  assert.equal(out.code, 0, h.describe(out));
  const block = out.stdout.slice(out.stdout.indexOf(`Desk in Madrid (${rec.id})`));
  assert.ok(block.length > 0, out.stdout);
  assert.match(block, /Role:\s+companion/);
  assert.match(block, /Device:\s+\S/);
  assert.match(block, new RegExp(`Key:\\s+${rec.key_fingerprint}`));
  assert.match(block, new RegExp(`First seen:\\s+${MADRID.replaceAll('.', '\\.')} · Madrid[^\\n]*ES · [^\\n]*Meseta`));
  assert.match(block, /Last seen:\s+\S+ · [^\n]*Madrid/);
  // The phone's own block says so.
  assert.match(out.stdout, /\(\S+\) — this device\n\s+Role:\s+primary/);
  // history shows the same blocks for ended records.
  assert.equal((await phone.runText(['logout', rec.id])).code, 0);
  const hist = await phone.runText(['history']);
  assert.match(hist.stdout, /Desk in Madrid \(\S+\)\n\s+Role:\s+companion/);
});

test('phone link --yes alone refuses a high-risk request and says --accept-risk is needed', async () => {
  const phone = await phoneInLisbon(S, 'cliyes');
  const { res, end } = await linkFrom(S, phone, MADRID, ['--yes']);
  assert.equal(res.code, 3, h.describe(res));
  assert.match(res.stderr, /high risk; add --accept-risk/);
  assert.equal(end.event, 'denied');
});

test('under --link-policy block-high-risk, phone link says the server refuses it, even with --accept-risk', async () => {
  const strict = await start(['--link-policy', 'block-high-risk']);
  const phone = await phoneInLisbon(strict, 'cliblock');
  const { res, end } = await linkFrom(strict, phone, TOR, ['--yes', '--accept-risk'], 'Tor box');
  assert.equal(res.code, 3, h.describe(res));
  assert.match(res.stderr, /server's policy refuses high-risk links/);
  assert.doesNotMatch(res.stderr, /add --accept-risk/);
  assert.equal(end.event, 'denied');
  // --json says why in an error line, then the denial.
  const again = await linkFrom(strict, phone, TOR, ['--yes', '--json'], 'Tor box');
  assert.equal(again.res.code, 3);
  const lines = again.res.lines;
  assert.ok(lines.some((l) => l.event === 'error' && l.code === 'risk_blocked'), h.describe(again.res));
  assert.ok(lines.some((l) => l.event === 'denied'));
  assert.equal((await phone.devices()).length, 1);
});
