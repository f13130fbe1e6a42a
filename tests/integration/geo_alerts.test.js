// Places, networks, risk and abnormal-login alerts (PRODUCT §2 step 4, §4, §6),
// with addresses from the GeoIP databases generated at test time
// (tests/tools/make_geoip.pl) presented through a "proxy" on loopback.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

const GEO = process.env.LINKWARD_GEOIP_TEST_DIR;
const LISBON = '198.51.100.10';
const PORTO = '198.51.100.70';
const MADRID = '198.51.100.130';
const FRANCE_NO_COORDS = '198.51.100.200';
const SYDNEY = '203.0.113.10';
const NEW_YORK = '203.0.113.70';
const VPN = '192.0.2.10';
const TOR = '192.0.2.70';
const NOWHERE = '203.0.113.200'; // 203.0.113.128/25 is in no database

const via = (ip) => ({ 'x-forwarded-for': ip });

let server;

before(async () => {
  assert.ok(GEO, 'LINKWARD_GEOIP_TEST_DIR is set by the geoip CTest fixture');
  // Rounded to their 20 and 50 km accuracy, Lisbon and Madrid are 500 km apart, right at the
  // default --far-km: this world's threshold sits clearly below (and the option is exercised).
  server = await h.startServer({ args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1,::1', '--far-km', '450'] });
});

after(async () => {
  await server?.stop();
});

/** A primary registered from `ip`, whose own requests also come from there. */
async function phoneAt(ip, prefix) {
  const p = await h.registerPrimary(server.url, h.uniqueHandle(prefix), { headers: via(ip) });
  p.headers = via(ip);
  return p;
}

async function scanFrom(primary, ip) {
  const req = await h.createLinkRequest(server.url, { headers: via(ip) });
  const s = h.expectStatus(await primary.post('/v1/link-requests/scan', { payload: req.payload }), 200);
  return { req, s };
}

describe('the connection a client reports (Linkward-Network)', () => {
  test('shown after the network GeoIP gives, marked as reported; other values ignored', async () => {
    const phone = await phoneAt(LISBON, 'netkind');
    const req = await h.createLinkRequest(server.url, { headers: { ...via(PORTO), 'linkward-network': 'wifi' } });
    const s = h.expectStatus(await phone.post('/v1/link-requests/scan', { payload: req.payload }), 200);
    assert.equal(s.request.network, 'Cable/DSL · AS64500 Lisbon Fibre · reported Wi-Fi');
    const odd = await h.createLinkRequest(server.url, { headers: { ...via(PORTO), 'linkward-network': 'carrier-pigeon' } });
    const s2 = h.expectStatus(await phone.post('/v1/link-requests/scan', { payload: odd.payload }), 200);
    assert.equal(s2.request.network, 'Cable/DSL · AS64500 Lisbon Fibre');
  });

  test('the CLI reports its connection (LINKWARD_NETWORK here, else the default route\'s interface)', async () => {
    const phone = new h.PhoneCli(server, undefined, via(LISBON));
    await phone.register(h.uniqueHandle('netcli'));
    const companion = new h.CompanionCli(server);
    companion.spawnLink = (extra = []) => h.spawnCli(['companion', '--server', server.url, '--state', companion.state,
      '--header', `X-Forwarded-For: ${PORTO}`, '--json', 'link', ...extra], { env: { LINKWARD_NETWORK: 'cellular' } });
    const linked = await h.linkCompanionCli(phone, companion);
    const row = (await phone.devices()).find((d) => d.id === linked.deviceId);
    assert.equal(row.network, 'Cable/DSL · AS64500 Lisbon Fibre · reported Cellular');
  });
});

describe('who is asking', () => {
  test('the scan shows place, network and distance; a new country far away is high risk', async () => {
    const phone = await phoneAt(LISBON, 'geo');
    const { req, s } = await scanFrom(phone, MADRID);
    assert.equal(s.request.ip, MADRID);
    assert.equal(s.request.city, 'Madrid');
    assert.equal(s.request.country, 'ES');
    assert.match(s.request.network, /Cable\/DSL/);
    assert.match(s.request.network, /AS64503/);
    assert.ok(Math.abs(s.request.distance_km - 500) <= 3, `Lisbon–Madrid is about 500 km, got ${s.request.distance_km}`);
    const codes = s.risk.reasons.map((r) => r.code).sort();
    assert.deepEqual(codes, ['far_from_primary', 'new_country']);
    assert.equal(s.risk.level, 'high');
    // High risk needs a second, explicit confirmation.
    h.expectError(await h.approve(phone, req.id, req.key.pub), 409, 'risk_not_accepted');
    h.expectStatus(await h.approve(phone, req.id, req.key.pub, { accept_risk: true }), 200);
  });

  test('a nearby link from a known country is low risk', async () => {
    const phone = await phoneAt(LISBON, 'near');
    const { s } = await scanFrom(phone, PORTO);
    assert.equal(s.request.city, 'Porto');
    assert.equal(s.risk.level, 'low');
    assert.deepEqual(s.risk.reasons, []);
    assert.ok(s.request.distance_km > 250 && s.request.distance_km < 300);
  });

  test('anonymous networks: a VPN is medium, Tor is high', async () => {
    const phone = await phoneAt(LISBON, 'anon');
    const vpn = (await scanFrom(phone, VPN)).s;
    assert.ok(vpn.risk.reasons.some((r) => r.code === 'anonymous_network'));
    assert.equal(vpn.request.anonymous, true);
    assert.match(vpn.request.network, /VPN/i);
    const tor = (await scanFrom(phone, TOR)).s;
    assert.equal(tor.risk.level, 'high');
    assert.ok(tor.risk.reasons.some((r) => r.code === 'anonymous_network' && /Tor/.test(r.message)));
  });

  test('--link-policy block-high-risk refuses high-risk links outright', async () => {
    const strict = await h.startServer({
      args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1', '--link-policy', 'block-high-risk'],
    });
    try {
      const phone = await h.registerPrimary(strict.url, 'strict', { headers: via(LISBON) });
      phone.headers = via(LISBON);
      const req = await h.createLinkRequest(strict.url, { headers: via(TOR) });
      const s = h.expectStatus(await phone.post('/v1/link-requests/scan', { payload: req.payload }), 200);
      assert.equal(s.blocked, true);
      h.expectError(await h.approve(phone, req.id, req.key.pub, { accept_risk: true }), 403, 'risk_blocked');
    } finally {
      await strict.stop();
    }
  });
});

describe('the client address behind a proxy (--proxy-header)', () => {
  // nginx appends to X-Forwarded-For and passes a client's own Forwarded on as written.
  const forged = (real, fake) => ({ 'x-forwarded-for': real, forwarded: `for=${fake}` });

  test('by default only X-Forwarded-For is read: a client-written Forwarded header changes nothing', async () => {
    const phone = await phoneAt(LISBON, 'xff');
    const req = await h.createLinkRequest(server.url, { headers: forged(PORTO, SYDNEY) });
    const s = h.expectStatus(await h.scan(phone, req.payload), 200);
    assert.equal(s.request.ip, PORTO);
    assert.equal(s.request.city, 'Porto');
  });

  test('--proxy-header forwarded (here from LINKWARD_PROXY_HEADER) reads only Forwarded', async () => {
    const fwd = await h.startServer({
      args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1'], env: { LINKWARD_PROXY_HEADER: 'forwarded' },
    });
    try {
      const phone = await h.registerPrimary(fwd.url, 'fwd', { headers: { forwarded: `for=${LISBON}` } });
      phone.headers = { forwarded: `for=${LISBON}` };
      const req = await h.createLinkRequest(fwd.url, { headers: { 'x-forwarded-for': SYDNEY, forwarded: `for="${PORTO}:4711"` } });
      const s = h.expectStatus(await h.scan(phone, req.payload), 200);
      assert.equal(s.request.ip, PORTO);
      assert.equal(s.request.distance_km > 250 && s.request.distance_km < 300, true);
    } finally {
      await fwd.stop();
    }
  });
});

test('--far-km: the same Porto request is far at 250 km and not at 300 km', async () => {
  for (const [km, far] of [['250', true], ['300', false]]) {
    const s2 = await h.startServer({ args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1', '--far-km', km] });
    try {
      const phone = await h.registerPrimary(s2.url, h.uniqueHandle('far'), { headers: via(LISBON) });
      phone.headers = via(LISBON);
      const req = await h.createLinkRequest(s2.url, { headers: via(PORTO) });
      const s = h.expectStatus(await h.scan(phone, req.payload), 200);
      assert.equal(s.risk.reasons.some((r) => r.code === 'far_from_primary'), far, `--far-km ${km}: ${JSON.stringify(s.risk)}`);
      assert.equal(s.risk.level, far ? 'medium' : 'low');
    } finally {
      await s2.stop();
    }
  }
});

describe('alerts, live', () => {
  test('a link from a new country far away raises device.linked, link.new_country and link.far_from_primary on the phone', async () => {
    const phone = await phoneAt(LISBON, 'alerts');
    const ws = await h.connectWs(server.url, phone.token, { headers: via(LISBON) });
    try {
      await ws.next('hello');
      const req = await h.createLinkRequest(server.url, { headers: via(MADRID) });
      h.expectStatus(await phone.post('/v1/link-requests/scan', { payload: req.payload }), 200);
      h.expectStatus(await h.approve(phone, req.id, req.key.pub, { accept_risk: true }), 200);
      const done = await h.api(server.url, 'POST', `/v1/link-requests/${req.id}/complete`, {
        token: req.token, headers: via(MADRID),
        body: { signature: h.b64e(req.key.sign(h.linkMessage(req.id, h.b64d(req.nonce)))) },
      });
      const j = h.expectStatus(done, 201);
      const kinds = new Set();
      for (let i = 0; i < 3; i++) kinds.add((await ws.next((e) => e.event === 'alert', 3000)).alert.kind);
      assert.deepEqual([...kinds].sort(), ['device.linked', 'link.far_from_primary', 'link.new_country']);
      const linked = ws.events.find((e) => e.event === 'alert' && e.alert.kind === 'device.linked');
      assert.match(linked.alert.details.message, /Madrid, ES/);
      // The record has the place and network, for live and (later) ended sessions.
      const devices = h.expectStatus(await phone.get('/v1/devices'), 200).devices;
      const rec = devices.find((d) => d.id === j.device_id);
      assert.equal(rec.country, 'ES');
      assert.equal(rec.city, 'Madrid');
      assert.match(rec.network, /AS64503/);
      assert.equal(rec.first_seen.city, 'Madrid');
    } finally {
      await ws.close();
    }
  });

  test('a link through an anonymous network raises link.anonymous_network', async () => {
    const phone = await phoneAt(LISBON, 'anonalert');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(VPN), accept_risk: true });
    const alerts = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts;
    const a = alerts.find((x) => x.kind === 'link.anonymous_network');
    assert.ok(a, JSON.stringify(alerts.map((x) => x.kind)));
    assert.equal(a.device_id, c.deviceId);
    assert.equal(a.details.vpn, true);
  });

  test('impossible travel: one session used in Lisbon and seconds later in Sydney', async () => {
    const phone = await phoneAt(LISBON, 'travel');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    const ws = await h.connectWs(server.url, phone.token, { headers: via(LISBON) });
    try {
      await ws.next('hello');
      h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c.token, headers: via(LISBON) }), 200);
      h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c.token, headers: via(SYDNEY) }), 200);
      const ev = await ws.next((e) => e.event === 'alert' && e.alert.kind === 'session.impossible_travel', 3000);
      assert.equal(ev.alert.device_id, c.deviceId);
      assert.match(ev.alert.details.from, /Lisbon/);
      assert.match(ev.alert.details.to, /Sydney/);
      assert.ok(ev.alert.details.distance_km > 17000);
      // The record now says where it was last used.
      const rec = h.expectStatus(await phone.get('/v1/devices'), 200).devices.find((d) => d.id === c.deviceId);
      assert.equal(rec.last_seen.city, 'Sydney');
      assert.equal(rec.first_seen.city, 'Lisbon');
    } finally {
      await ws.close();
    }
  });

  test('the record follows a move whole: Sydney on every field, then an unknown address leaves them empty', async () => {
    const phone = await phoneAt(LISBON, 'moves');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    const record = async () => h.expectStatus(await phone.get('/v1/devices'), 200).devices.find((d) => d.id === c.deviceId);
    let rec = await record();
    // Never used since its link: last seen where it was linked.
    assert.equal(rec.last_seen.city, 'Lisbon');
    assert.deepEqual(rec.last_seen, rec.first_seen);
    h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c.token, headers: via(SYDNEY) }), 200);
    rec = await record();
    for (const r of [rec, rec.last_seen]) {
      assert.equal(r.ip, SYDNEY);
      assert.equal(r.country, 'AU');
      assert.equal(r.region, 'New South Wales');
      assert.equal(r.city, 'Sydney');
      assert.match(r.network, /Cellular/);
    }
    assert.equal(rec.first_seen.city, 'Lisbon');
    assert.doesNotMatch(rec.first_seen.network, /Cellular/);
    // An address in no database: empty, never wrong (not Sydney, not Lisbon).
    h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c.token, headers: via(NOWHERE) }), 200);
    rec = await record();
    for (const r of [rec, rec.last_seen]) {
      assert.equal(r.ip, NOWHERE);
      assert.equal(r.country, '');
      assert.equal(r.region, '');
      assert.equal(r.city, '');
      assert.equal(r.network, '');
    }
    assert.equal(rec.first_seen.city, 'Lisbon');
    assert.equal(rec.first_seen.ip, LISBON);
  });

  test('answers: only the phone answers an alert; each answer is recorded on the alert with its device', async () => {
    const phone = await phoneAt(LISBON, 'answers');
    const c1 = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    const c2 = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c1.token, headers: via(LISBON) }), 200);
    h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c1.token, headers: via(SYDNEY) }), 200);
    const alerts = await h.pollUntil(async () => {
      const list = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts;
      return list.some((a) => a.kind === 'session.impossible_travel') && list;
    }, { timeout: 3000, what: 'the impossible_travel alert' });
    const travel = alerts.find((a) => a.kind === 'session.impossible_travel');
    assert.equal(travel.device_id, c1.deviceId);
    assert.equal(travel.answer, null);
    // Neither the companion in question nor another companion may say "it was me".
    const own = await h.api(server.url, 'POST', `/v1/alerts/${travel.id}/ack`, { token: c1.token, headers: via(SYDNEY), body: {} });
    h.expectError(own, 403, 'forbidden');
    assert.match(own.json.error.message, /Answer this one on your phone/);
    h.expectError(await h.api(server.url, 'POST', `/v1/alerts/${travel.id}/ack`, { token: c2.token, body: {} }), 403, 'forbidden');
    // The phone may; the answer is recorded with the phone's device id.
    const ok = h.expectStatus(await phone.post(`/v1/alerts/${travel.id}/ack`, {}), 200);
    assert.equal(ok.answer, 'it_was_me');
    assert.equal(ok.answered_by, phone.deviceId);
    const answerOf = async (id) => h.expectStatus(await phone.get('/v1/alerts'), 200).alerts.find((a) => a.id === id).answer;
    assert.equal(await answerOf(travel.id), 'it_was_me');
    // A logout names the alert it answers: the protective answer replaces "it was me".
    const out = h.expectStatus(await phone.del(`/v1/devices/${c1.deviceId}`, { body: { alert_id: travel.id } }), 200);
    assert.deepEqual(out.answered, { alert_id: travel.id, answer: 'logged_out_device' });
    assert.equal(await answerOf(travel.id), 'logged_out_device');
    // An alert about another device does not go with this logout.
    const linked2 = (await phone.get('/v1/alerts')).json.alerts.find((a) => a.kind === 'device.linked' && a.device_id === c2.deviceId);
    const c3 = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    h.expectError(await phone.del(`/v1/devices/${c3.deviceId}`, { body: { alert_id: linked2.id } }), 400, 'invalid_request');
    // "Secure my account" in answer to an alert.
    const sec = h.expectStatus(await phone.post('/v1/account/secure', { alert_id: linked2.id }), 200);
    assert.equal(sec.answered.answer, 'secured_account');
    assert.equal(await answerOf(linked2.id), 'secured_account');
    h.expectError(await phone.post('/v1/account/secure', { alert_id: 'no-such-alert' }), 404, 'not_found');
  });

  test('a session moving country without coordinates still raises session.country_changed', async () => {
    const phone = await phoneAt(LISBON, 'country');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c.token, headers: via(FRANCE_NO_COORDS) }), 200);
    const alerts = await h.pollUntil(async () => {
      const list = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts;
      return list.find((a) => a.kind === 'session.country_changed') && list;
    }, { timeout: 3000, what: 'session.country_changed alert' });
    const a = alerts.find((x) => x.kind === 'session.country_changed');
    assert.equal(a.details.from_country, 'PT');
    assert.equal(a.details.to_country, 'FR');
    assert.ok(!alerts.some((x) => x.kind === 'session.impossible_travel'));
  });

  test('a link asked from Porto but completed from a Tor exit: alerts for the move and the network, the record has the Tor exit', async () => {
    const phone = await phoneAt(LISBON, 'elsewhere');
    const req = await h.createLinkRequest(server.url, { headers: via(PORTO) });
    const s = h.expectStatus(await h.scan(phone, req.payload), 200);
    assert.equal(s.risk.level, 'low'); // what the phone approved: Porto
    h.expectStatus(await h.approve(phone, req.id, req.key.pub), 200);
    const j = h.expectStatus(await h.complete({ ...req, headers: via(TOR) }), 201);
    const alerts = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts.filter((a) => a.device_id === j.device_id);
    const kinds = alerts.map((a) => a.kind);
    const anon = alerts.find((a) => a.kind === 'link.anonymous_network');
    assert.ok(anon, JSON.stringify(kinds));
    assert.equal(anon.details.tor, true);
    // Porto to Frankfurt in seconds: impossible travel (which stands for the country change too).
    const move = alerts.find((a) => a.kind === 'session.impossible_travel' || a.kind === 'session.country_changed');
    assert.ok(move, JSON.stringify(kinds));
    assert.match(move.details.from, /Porto/);
    assert.match(move.details.to, /Frankfurt/);
    const rec = h.expectStatus(await phone.get('/v1/devices'), 200).devices.find((d) => d.id === j.device_id);
    assert.equal(rec.ip, TOR);
    assert.equal(rec.country, 'DE');
    assert.match(rec.network, /Tor exit/);
    assert.equal(rec.first_seen.city, 'Frankfurt am Main');
    assert.equal(rec.last_seen.city, 'Frankfurt am Main');
  });

  test('completed from where it asked: no move alert', async () => {
    const phone = await phoneAt(LISBON, 'samehere');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(PORTO) });
    const kinds = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts
      .filter((a) => a.device_id === c.deviceId).map((a) => a.kind);
    assert.deepEqual(kinds, ['device.linked']);
  });

  test('the distance is from where the phone scans now: in New York, a New York request is low risk', async () => {
    const phone = await phoneAt(LISBON, 'flyer'); // stored place: Lisbon
    phone.headers = via(NEW_YORK); // the phone's own requests now come from New York
    const req = await h.createLinkRequest(server.url, { headers: via(NEW_YORK) });
    const s = h.expectStatus(await h.scan(phone, req.payload), 200);
    assert.equal(s.request.city, 'New York');
    assert.equal(s.risk.level, 'low', JSON.stringify(s.risk));
    assert.ok(!s.risk.reasons.some((r) => r.code === 'far_from_primary'));
    assert.ok(s.request.distance_km < 5, `got ${s.request.distance_km}`);
    h.expectStatus(await h.approve(phone, req.id, req.key.pub), 200);
    const j = h.expectStatus(await h.complete(req), 201);
    const kinds = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts
      .filter((a) => a.device_id === j.device_id).map((a) => a.kind);
    assert.deepEqual(kinds, ['device.linked']);
  });

  test('a session flapping between PT and FR raises one session.country_changed, not one per request', async () => {
    const phone = await phoneAt(LISBON, 'flap');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    for (let i = 0; i < 20; i++) {
      const ip = i % 2 ? LISBON : FRANCE_NO_COORDS;
      h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: c.token, headers: via(ip) }), 200);
    }
    const changed = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts
      .filter((a) => a.kind === 'session.country_changed' && a.device_id === c.deviceId);
    assert.equal(changed.length, 1);
  });

  test('"secure my account": every companion logged out, links refused until the PIN changes', async () => {
    const phone = await phoneAt(LISBON, 'secure');
    const c = await h.linkCompanionApi(server.url, phone, { headers: via(LISBON) });
    const r = h.expectStatus(await phone.post('/v1/account/secure', {}), 200);
    assert.deepEqual(r.device_ids, [c.deviceId]);
    h.expectError(await h.api(server.url, 'GET', '/v1/session', { token: c.token }), 401, 'session_ended');
    const { req } = await scanFrom(phone, PORTO);
    h.expectError(await h.approve(phone, req.id, req.key.pub), 403, 'pin_change_required');
    h.expectStatus(await phone.post('/v1/pin', { new_pin: '246810' }), 200);
    h.expectStatus(await h.approve(phone, req.id, req.key.pub, { pin: '246810' }), 200);
  });
});

test('--privacy country-only: ended records keep their country but no address or city', async () => {
  const priv = await h.startServer({ args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1', '--privacy', 'country-only'] });
  try {
    const phone = await h.registerPrimary(priv.url, 'private', { headers: via(LISBON) });
    phone.headers = via(LISBON);
    const c = await h.linkCompanionApi(priv.url, phone, { headers: via(PORTO) });
    h.expectStatus(await phone.del(`/v1/devices/${c.deviceId}`), 200);
    const rec = h.expectStatus(await phone.get('/v1/history'), 200).sessions.find((s) => s.id === c.deviceId);
    assert.equal(rec.country, 'PT');
    assert.equal(rec.city, '');
    assert.equal(rec.ip, '');
    assert.equal(rec.first_seen.ip, '');
    assert.equal(rec.last_seen.ip, '');
    assert.equal(rec.last_seen.region, '');
    assert.equal(rec.last_seen.country, 'PT');
    // The alerts about the ended device lose its addresses too.
    const about = h.expectStatus(await phone.get('/v1/alerts'), 200).alerts.filter((a) => a.device_id === c.deviceId);
    assert.ok(about.some((a) => a.kind === 'device.linked'), JSON.stringify(about));
    for (const a of about) {
      assert.doesNotMatch(JSON.stringify(a.details), new RegExp(PORTO.replaceAll('.', '\\.')));
      for (const k of ['ip', 'from_ip', 'to_ip']) assert.equal(a.details[k], undefined, `${a.kind}.${k}`);
    }
  } finally {
    await priv.stop();
  }
});

test('--privacy country-only also redacts what ended before it was switched on, with its alerts', async () => {
  const dataDir = h.tempDir('lw-priv-late-');
  const full = await h.startServer({ dataDir, args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1'] });
  let phone, c;
  try {
    phone = await h.registerPrimary(full.url, h.uniqueHandle('late'), { headers: via(LISBON) });
    phone.headers = via(LISBON);
    c = await h.linkCompanionApi(full.url, phone, { headers: via(PORTO) });
    h.expectStatus(await phone.del(`/v1/devices/${c.deviceId}`), 200);
    const before = h.expectStatus(await phone.get('/v1/history'), 200).sessions.find((s) => s.id === c.deviceId);
    assert.equal(before.last_seen.ip, PORTO); // full privacy: kept
  } finally {
    await full.stop();
  }
  const priv = await h.startServer({ dataDir, args: ['--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1', '--privacy', 'country-only'] });
  try {
    phone.url = priv.url;
    const rec = h.expectStatus(await h.api(priv.url, 'GET', '/v1/history', { token: phone.token }), 200)
      .sessions.find((s) => s.id === c.deviceId);
    assert.equal(rec.ip, '');
    assert.equal(rec.first_seen.ip, '');
    assert.equal(rec.last_seen.ip, '');
    assert.equal(rec.first_seen.city, '');
    assert.equal(rec.country, 'PT');
    const alerts = h.expectStatus(await h.api(priv.url, 'GET', '/v1/alerts', { token: phone.token }), 200).alerts;
    const linked = alerts.find((a) => a.kind === 'device.linked' && a.device_id === c.deviceId);
    assert.equal(linked.details.ip, undefined);
  } finally {
    await priv.stop();
  }
});

test('through the CLIs: --header plays the proxy; the phone prompt, the live alert stream and the records show place and network', async () => {
  const dir = h.tempDir('lw-geo-cli-');
  const phoneState = `${dir}/phone.json`;
  const compState = `${dir}/comp.json`;
  const reg = await h.runCli(['phone', '--server', server.url, '--state', phoneState, '--header', `X-Forwarded-For: ${LISBON}`,
    '--json', 'register', '--handle', h.uniqueHandle('geocli')]);
  assert.equal(reg.code, 0, h.describe(reg));
  const follow = h.spawnCli(['phone', '--state', phoneState, '--header', `X-Forwarded-For: ${LISBON}`, '--json', 'alerts', '--follow']);
  const link = h.spawnCli(['companion', '--server', server.url, '--state', compState, '--header', `X-Forwarded-For: ${MADRID}`,
    '--json', 'link', '--name', 'Madrid laptop']);
  try {
    const qr = await link.waitForLine((o) => o.event === 'qr', 5000);
    const approve = await h.runCli(['phone', '--state', phoneState, '--header', `X-Forwarded-For: ${LISBON}`, '--json',
      'link', qr.payload, '--yes', '--accept-risk']);
    assert.equal(approve.code, 0, h.describe(approve));
    const request = approve.lines.find((l) => l.event === 'request');
    assert.equal(request.request.city, 'Madrid');
    assert.equal(request.risk.level, 'high');
    await link.waitForLine((o) => o.event === 'linked', 5000);
    for (const kind of ['device.linked', 'link.new_country', 'link.far_from_primary']) {
      const a = await follow.waitForLine((o) => o.event === 'alert' && o.alert?.kind === kind, 5000);
      assert.equal(a.alert.kind, kind);
    }
    const devices = await h.runCli(['phone', '--state', phoneState, '--json', 'devices']);
    const rec = devices.json.find((d) => d.name === 'Madrid laptop');
    assert.equal(rec.city, 'Madrid');
    assert.equal(rec.country, 'ES');
    assert.match(rec.network, /Meseta Telecom/);
    const human = await h.runCli(['phone', '--state', phoneState, 'devices']);
    assert.match(human.stdout, /Madrid, ES/);
    assert.match(human.stdout, /Meseta Telecom/);
  } finally {
    await follow.kill('SIGTERM');
    await link.kill('SIGTERM');
  }
});

test('SIGHUP reloads the GeoIP databases without dropping connections', async () => {
  const dir = h.tempDir('lw-geo-reload-');
  const s = await h.startServer({ args: ['--geoip-dir', dir, '--trusted-proxies', '127.0.0.1'] });
  try {
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('reload'), { headers: via(LISBON) });
    phone.headers = via(LISBON);
    const ws = await h.connectWs(s.url, phone.token);
    await ws.next('hello');
    const before = await h.createLinkRequest(s.url, { headers: via(MADRID) });
    assert.equal(h.expectStatus(await h.scan(phone, before.payload), 200).request.city, '');
    for (const f of fs.readdirSync(GEO)) {
      if (f.endsWith('.mmdb')) fs.copyFileSync(path.join(GEO, f), path.join(dir, f));
    }
    s.proc.kill('SIGHUP');
    await h.pollUntil(() => /reloaded \d+ GeoIP databases/.test(s.stderr()), { timeout: 3000, what: 'the reload' });
    const after = await h.createLinkRequest(s.url, { headers: via(MADRID) });
    assert.equal(h.expectStatus(await h.scan(phone, after.payload), 200).request.city, 'Madrid');
    // The socket opened before the reload is still there.
    ws.send({ event: 'ping' });
    await ws.next('pong');
    await ws.close();
  } finally {
    await s.stop();
  }
});
