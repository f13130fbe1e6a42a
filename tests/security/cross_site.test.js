// Requests from other sites (PRODUCT §8; ASVS 5.0 V3.5 browser origin
// separation, V4.4 WebSocket): with a valid session cookie in the browser, a
// state-changing request from another origin is refused on every route, by
// Origin and by Sec-Fetch-Site, and changes nothing, although the very same
// request from our origin succeeds; a WebSocket handshake from another Origin
// is refused whatever credential it carries; and no route takes a credential
// from the URL.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as s from './lib.js';

const { h } = s;
let server;
let primary;

before(async () => {
  server = await h.startServer({ args: ['--max-companions', '50'] });
  primary = await h.registerPrimary(server.url, h.uniqueHandle('xsite'));
});

after(async () => {
  await server?.stop();
});

/** Origins that are not ours, each a classic way to get an origin check wrong. */
function foreignOrigins() {
  const u = new URL(server.url);
  return [
    'https://evil.example',
    'null', // sandboxed frames, file: pages, some redirects
    `http://${u.hostname}:${Number(u.port) + 1}`, // same host, other port
    server.url.replace(/^http:/, 'https:'), // other scheme
    `${server.url}.evil.example`, // our origin as a prefix
    `http://evil.example/${server.url}`, // our origin inside a path
    server.url.toUpperCase(), // compared byte for byte
    `${server.url}/`, // an Origin never has a path
  ];
}

/** The ways a browser marks a request as not from our origin. */
function crossSiteHeaders() {
  return [
    ...foreignOrigins().map((origin) => ({ origin })),
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' }, // a sibling subdomain is another site for us
    { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    { origin: server.url, 'sec-fetch-site': 'cross-site' }, // either signal is enough
  ];
}

const VOLATILE = new Set(['last_active_at', 'last_seen', 'token_expires_in', 'token_expires_in_ms', 'challenge', 'current']);
function stable(v) {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k]) => !VOLATILE.has(k)).map(([k, x]) => [k, stable(x)]));
  }
  return v;
}

describe('state-changing requests from another site', () => {
  test('are refused on every route with a valid session cookie (Origin, Sec-Fetch-Site), change nothing, and succeed from our origin', async () => {
    // A browser companion holding its credential as a cookie; the primary's
    // credential presented as a cookie too (the server reads either).
    const comp = await s.linkWithCookie(server.url, primary);
    const victim = await h.linkCompanionApi(server.url, primary);
    const ended = await h.linkCompanionApi(server.url, primary);
    h.expectStatus(await primary.del(`/v1/devices/${ended.deviceId}`), 200);
    const alert = (await primary.alerts())[0];
    const scanned = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, scanned.payload), 200);
    const fresh = await h.createLinkRequest(server.url);
    // A browser waiting to be linked: its link token in the lw_link cookie, approved already.
    const waiting = await h.api(server.url, 'POST', '/v1/link-requests', { body: { public_key: h.newDeviceKey().pubB64, credential: 'cookie' } });
    const linkJar = /^(lw_link=[^;]+)/.exec(waiting.headers.get('set-cookie'))[1];
    const compMe = h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: comp.jar } }), 200);

    const companionCookie = { cookie: comp.jar };
    const primaryCookie = { cookie: `lw_session=${primary.token}` };
    const newKey = h.newDeviceKey();
    // Web Push: a subscription the cross-site DELETE would remove, and one the POST would add.
    const pushSub = (name) => {
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.generateKeys();
      return { endpoint: `https://push.example.net/csrf/${name}`, keys: { p256dh: h.b64e(ecdh.getPublicKey()), auth: h.b64e(crypto.randomBytes(16)) } };
    };
    h.expectStatus(await primary.post('/v1/push/subscriptions', pushSub('kept')), 201);
    // Every state-changing route with the body that makes it work from our origin.
    const requests = [
      ['POST', '/v1/accounts', {}, { handle: h.uniqueHandle('csrf'), public_key: newKey.pubB64 }],
      ['POST', '/v1/link-requests', {}, { public_key: newKey.pubB64 }],
      ['POST', '/v1/link-requests/scan', primaryCookie, { payload: fresh.payload }],
      ['POST', `/v1/link-requests/${scanned.id}/approve`, primaryCookie, { account_signature: h.accountSignature(primary, scanned.key.pub) }],
      ['POST', `/v1/link-requests/${scanned.id}/deny`, primaryCookie, {}],
      ['POST', `/v1/link-requests/${waiting.json.id}/complete`, { cookie: linkJar }, { signature: h.b64e(Buffer.alloc(64)), credential: 'cookie' }],
      ['POST', '/v1/session/refresh', companionCookie,
        { signature: h.b64e(comp.req.key.sign(h.refreshMessage(comp.deviceId, h.b64d(compMe.challenge)))), credential: 'cookie' }],
      ['DELETE', '/v1/session', companionCookie],
      ['PATCH', `/v1/devices/${comp.deviceId}`, companionCookie, { name: 'renamed by another site' }],
      ['DELETE', `/v1/devices/${victim.deviceId}`, primaryCookie],
      ['POST', '/v1/devices/logout-all', primaryCookie, {}],
      ['DELETE', `/v1/history/${ended.deviceId}`, primaryCookie],
      ['DELETE', '/v1/history', primaryCookie],
      ['POST', `/v1/alerts/${alert.id}/ack`, primaryCookie, {}],
      ['POST', '/v1/account/secure', primaryCookie, {}],
      ['POST', '/v1/pin', primaryCookie, { new_pin: '583920' }],
      ['POST', '/v1/pin/disable', primaryCookie, { pin: '583920' }],
      ['PATCH', '/v1/settings', primaryCookie, { inactive_ttl_days: 9 }],
      ['POST', '/v1/push/subscriptions', primaryCookie, pushSub('added')],
      ['DELETE', '/v1/push/subscriptions', primaryCookie, { endpoint: 'https://push.example.net/csrf/kept' }],
      ['DELETE', '/v1/account', primaryCookie, {}],
      // Open to anyone, but a report from another site is refused like any state change
      // (browsers send our own Origin with the reports our page causes).
      ['POST', '/v1/csp-reports', {}, { 'csp-report': { 'effective-directive': 'img-src', 'blocked-uri': 'https://x.example' } }],
    ];
    // Every state-changing route of docs/api.md is in the list above.
    const covered = new Set(requests.map(([m, p]) => `${m} ${p.replace(/\/v1\/(link-requests|devices|history|alerts)\/(?!scan|logout-all)[^/]+/, '/v1/$1/{}')}`));
    const missing = s.apiRoutes().filter(([m]) => s.STATE_CHANGING.has(m))
      .map(([m, p]) => `${m} ${p.replace(/\{[^}]+\}/g, '{}')}`).filter((k) => !covered.has(k));
    assert.deepEqual(missing, [], 'state-changing routes this test does not try');

    const counters = async () => {
      const { accounts, sessions_active, sessions_ended, link_requests_pending, alerts } = await h.adminStats(server);
      return { accounts, sessions_active, sessions_ended, link_requests_pending, alerts };
    };
    const snapshot = async () => stable({
      stats: await counters(),
      devices: await primary.devices(),
      history: await primary.history(),
      alerts: await primary.alerts(),
      settings: h.expectStatus(await primary.get('/v1/settings'), 200),
      push: h.expectStatus(await primary.get('/v1/push/subscriptions'), 200),
      comp: h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: comp.jar } }), 200),
      scanned: h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${scanned.id}`, { token: scanned.token }), 200).state,
      fresh: h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${fresh.id}`, { token: fresh.token }), 200).state,
    });
    const before = await snapshot();
    let tried = 0;
    for (const [method, p, cred, body] of requests) {
      for (const extra of crossSiteHeaders()) {
        const r = await h.api(server.url, method, p, { body, headers: { ...cred, ...extra } });
        h.expectError(r, 403, 'forbidden_origin');
        tried++;
      }
    }
    assert.deepEqual(await snapshot(), before, `${tried} cross-site requests changed something`);

    // The same requests from our own origin are not refused for their origin (the
    // bodies are real): a few of them carried out for good.
    const own = { origin: server.url, 'sec-fetch-site': 'same-origin' };
    const renamed = await h.api(server.url, 'PATCH', `/v1/devices/${comp.deviceId}`, { body: { name: 'renamed here' }, headers: { ...companionCookie, ...own } });
    assert.equal(h.expectStatus(renamed, 200).name, 'renamed here');
    h.expectStatus(await h.api(server.url, 'POST', `/v1/link-requests/${scanned.id}/approve`,
      { body: { account_signature: h.accountSignature(primary, scanned.key.pub) }, headers: { ...primaryCookie, ...own } }), 200);
    h.expectStatus(await h.api(server.url, 'DELETE', `/v1/devices/${victim.deviceId}`, { headers: { ...primaryCookie, 'sec-fetch-site': 'same-origin' } }), 200);
    // A request the user typed or bookmarked (Sec-Fetch-Site: none) is fine too.
    h.expectStatus(await h.api(server.url, 'DELETE', '/v1/session', { headers: { ...companionCookie, 'sec-fetch-site': 'none' } }), 200);
  });
});

describe('WebSocket handshakes', () => {
  test('from another Origin are refused (403) with a session cookie, a Bearer credential, or a link token', async () => {
    const comp = await s.linkWithCookie(server.url, primary);
    const waiting = await h.api(server.url, 'POST', '/v1/link-requests', { body: { public_key: h.newDeviceKey().pubB64, credential: 'cookie' } });
    const linkJar = /^(lw_link=[^;]+)/.exec(waiting.headers.get('set-cookie'))[1];
    const req = await h.createLinkRequest(server.url);
    const ways = {
      'session cookie': [null, { headers: { cookie: comp.jar } }],
      'Bearer session credential': [primary.token, {}],
      'link cookie (?link=1)': [null, { headers: { cookie: linkJar }, path: '/v1/ws?link=1' }],
      'Bearer link token': [req.token, {}],
    };
    for (const [what, [token, opts]] of Object.entries(ways)) {
      for (const origin of foreignOrigins()) {
        const r = await h.tryConnectWs(server.url, token, { ...opts, origin });
        if (r.ok) await r.ws.close();
        assert.equal(r.ok, false, `${what}: a handshake from ${origin} was accepted`);
        assert.equal(r.status, 403, `${what} from ${origin}: ${r.error?.message}`);
        assert.equal(r.json?.error?.code, 'forbidden_origin', `${what} from ${origin}`);
      }
      // Our own origin, and native clients that send none, are let in.
      for (const origin of [server.url, undefined]) {
        const ok = await h.tryConnectWs(server.url, token, { ...opts, origin });
        assert.equal(ok.ok, true, `${what} from ${origin ?? '(no Origin)'}: ${ok.error?.message}`);
        await ok.ws.next('hello');
        await ok.ws.close();
      }
    }
  });
});

describe('credentials in URLs', () => {
  const NAMES = ['token', 'access_token', 'auth', 'authorization', 'bearer', 'session', 'lw_session', 'credential',
    'link', 'lw_link', 'link_token', 'key'];

  test('no route takes a credential from the query string', async () => {
    const c = await h.linkCompanionApi(server.url, primary);
    const req = await h.createLinkRequest(server.url);
    const open = new Set(['GET /v1/health', 'GET /v1/server', 'POST /v1/accounts', 'POST /v1/link-requests', 'GET /v1/ws',
      'POST /v1/csp-reports', 'GET /v1/push/vapid-key']);
    let tried = 0;
    for (const [method, p] of s.apiRoutes()) {
      if (open.has(`${method} ${p}`)) continue;
      const isLink = p.startsWith('/v1/link-requests/{');
      const url = s.fillRoute(p, isLink ? req.id : c.deviceId);
      for (const tok of isLink ? [req.token] : [c.token, primary.token]) {
        for (const name of NAMES) {
          const body = s.STATE_CHANGING.has(method) && method !== 'DELETE' ? {} : undefined;
          const r = await h.api(server.url, method, `${url}?${name}=${encodeURIComponent(tok)}`, { body });
          h.expectError(r, 401, 'unauthenticated');
          tried++;
        }
      }
    }
    assert.ok(tried > 200, `${tried} requests`);
    // The WebSocket neither: a query credential is no credential.
    for (const [tok, extra] of [[c.token, ''], [req.token, '&link=1'], [req.token, '']]) {
      for (const name of NAMES) {
        const r = await h.tryConnectWs(server.url, null, { path: `/v1/ws?${name}=${encodeURIComponent(tok)}${extra}` });
        if (r.ok) await r.ws.close();
        assert.equal(r.status, 401, `/v1/ws?${name}=…${extra}: ${r.error?.message}`);
      }
    }
    // And the sessions are untouched by all that.
    h.expectStatus(await c.raw('GET', '/v1/session'), 200);
  });
});
