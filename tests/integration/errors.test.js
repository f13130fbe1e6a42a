// Error handling of the HTTP API (docs/api.md "Errors"): the documented
// status and code, the {"error":{"code","message"}} shape, security headers on
// every answer, and an unchanged store after every refused request.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from '../lib/harness.js';

let server;
let primary;
let companion;
const seen = []; // every API response made through call(), for the header checks

before(async () => {
  server = await h.startServer({ args: ['--max-companions', '10'] });
  primary = await h.registerPrimary(server.url, 'alice');
  companion = await h.linkCompanionApi(server.url, primary);
});
after(async () => {
  await server?.stop();
});

/** api() that records the response. */
async function call(method, p, opts) {
  const r = await h.api(server.url, method, p, opts);
  seen.push(r);
  return r;
}

const VOLATILE = new Set(['connections', 'last_active_at', 'last_seen', 'token_expires_in', 'token_expires_in_ms', 'challenge', 'current']);
function stable(v) {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k]) => !VOLATILE.has(k)).map(([k, x]) => [k, stable(x)]));
  }
  return v;
}

/** What the store holds, as far as the API and the control socket show it. */
async function snapshot() {
  const stats = await h.adminStats(server);
  return stable({
    stats,
    devices: await primary.devices(),
    history: await primary.history(),
    alerts: await primary.alerts(),
  });
}

/** Runs fn (which makes refused requests) and checks the store did not change. */
async function unchanged(fn) {
  const before = await snapshot();
  await fn();
  const after = await snapshot();
  assert.deepEqual(after, before, 'the store changed after refused requests');
}

const key = () => h.newDeviceKey().pubB64;

describe('request errors leave the store unchanged', () => {
  test('(self-check) the snapshot notices a change', async () => {
    const before = await snapshot();
    await h.createLinkRequest(server.url);
    assert.notDeepEqual(await snapshot(), before, 'a new link request is visible in the stats');
  });

  test('malformed JSON: 400 invalid_json', async () => {
    await unchanged(async () => {
      for (const raw of ['{', '{"handle":', 'not json', '{"handle":"x",}', '[1,2', '\u0000']) {
        h.expectError(await call('POST', '/v1/accounts', { raw }), 400, 'invalid_json');
      }
      h.expectError(await call('POST', '/v1/link-requests', { raw: '{"public_key":' }), 400, 'invalid_json');
      h.expectError(await primary.raw('POST', '/v1/link-requests/scan', { raw: '{{' }), 400, 'invalid_json');
    });
  });

  test('a body that is not a JSON object: 400', async () => {
    await unchanged(async () => {
      for (const raw of ['[]', '"x"', '42', 'null']) {
        const r = await call('POST', '/v1/accounts', { raw });
        assert.equal(r.status, 400, h.show(r));
        assert.ok(['invalid_json', 'invalid_request'].includes(r.json?.error?.code), h.show(r));
      }
    });
  });

  test('wrong Content-Type: 415 unsupported_media_type', async () => {
    await unchanged(async () => {
      const body = JSON.stringify({ handle: 'zed', public_key: key() });
      for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
        h.expectError(await call('POST', '/v1/accounts', { raw: body, headers: { 'content-type': ct } }),
          415, 'unsupported_media_type');
      }
      // A form post from another site cannot create link requests either.
      h.expectError(await call('POST', '/v1/link-requests', {
        raw: `public_key=${key()}`, headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }), 415, 'unsupported_media_type');
    });
    // application/json with a charset is fine.
    const ok = await call('POST', '/v1/link-requests', {
      raw: JSON.stringify({ public_key: key() }), headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    h.expectStatus(ok, 201);
  });

  test('a body over 16 KiB: 413 body_too_large', async () => {
    await unchanged(async () => {
      const big = JSON.stringify({ handle: 'bigbody', public_key: key(), pad: 'x'.repeat(17 * 1024) });
      let r;
      try {
        r = await call('POST', '/v1/accounts', { raw: big });
      } catch (e) {
        assert.fail(`the server dropped the connection instead of answering 413: ${e.cause?.code || e.message}`);
      }
      h.expectError(r, 413, 'body_too_large');
    });
    // The server is still fine afterwards.
    h.expectStatus(await call('GET', '/v1/health'), 200);
  });

  test('a body over 64 KiB, with Content-Length (1 MiB) or chunked: 413 body_too_large as JSON, nothing stored', async () => {
    const body = (n) => JSON.stringify({ handle: 'hugebody', public_key: key(), pad: 'x'.repeat(n) });
    await unchanged(async () => {
      // Content-Length of 1 MiB: the server answers as soon as it has read the
      // headers, and closes. A client that went on writing the body could lose
      // that answer to the reset its unread bytes cause (the server does not
      // linger), so, as curl does for large bodies, this one sends
      // "Expect: 100-continue" and waits: it gets the 413 instead of a 100.
      const big = body(1024 * 1024);
      const raw = await new Promise((resolve, reject) => {
        const sock = net.connect(server.port, '127.0.0.1');
        let got = '';
        const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer: ${got}`)); }, h.T(5000));
        sock.setEncoding('utf8');
        sock.on('data', (d) => { got += d; });
        sock.on('error', () => { /* EPIPE/ECONNRESET after the answer: expected */ });
        sock.on('close', () => { clearTimeout(timer); resolve(got); });
        sock.write(`POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(big)}\r\nExpect: 100-continue\r\n\r\n`);
        sock.once('data', (first) => {
          if (/^HTTP\/1\.1 100 /.test(first)) sock.end(big); // (not what a limit-breaking body gets)
        });
      });
      assert.match(raw, /^HTTP\/1\.1 413 /, raw.slice(0, 200));
      assert.match(raw, /\r\ncontent-type: application\/json/i);
      assert.equal(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).error.code, 'body_too_large');

      // Chunked: kept small enough (70 KB) for the server to have read all of it
      // when it refuses, so it closes cleanly rather than resetting a
      // connection with unread bytes (which would lose the answer in the kernel).
      let r;
      try {
        r = await call('POST', '/v1/accounts',
          { raw: (async function* () { yield Buffer.from(body(70 * 1000)); })(), duplex: 'half' });
      } catch (e) {
        assert.fail(`chunked: the server dropped the connection instead of answering 413: ${e.cause?.code || e.message}`);
      }
      assert.match(r.headers.get('content-type') || '', /^application\/json/);
      h.expectError(r, 413, 'body_too_large');
    });
    h.expectStatus(await call('GET', '/v1/health'), 200);
  });

  test('missing or malformed fields: 400 invalid_request naming the field', async () => {
    const scanned = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, scanned.payload), 200);
    await unchanged(async () => {
      let e = h.expectError(await call('POST', '/v1/accounts', { body: { public_key: key() } }), 400, 'invalid_request');
      assert.match(e.message, /handle/);
      e = h.expectError(await call('POST', '/v1/accounts', { body: { handle: 'newbie' } }), 400, 'invalid_request');
      assert.match(e.message, /public_key/);
      e = h.expectError(await call('POST', '/v1/accounts', { body: { handle: 'newbie', public_key: 'AAAA' } }), 400, 'invalid_request');
      assert.match(e.message, /public_key/);
      e = h.expectError(await call('POST', '/v1/accounts', { body: { handle: 42, public_key: key() } }), 400, 'invalid_request');
      assert.match(e.message, /handle/);
      e = h.expectError(await call('POST', '/v1/link-requests', { body: {} }), 400, 'invalid_request');
      assert.match(e.message, /public_key/);
      e = h.expectError(await call('POST', '/v1/link-requests', { body: { public_key: 'not base64url!' } }), 400, 'invalid_request');
      assert.match(e.message, /public_key/);
      e = h.expectError(await primary.raw('POST', `/v1/link-requests/${scanned.id}/approve`, { body: {} }),
        400, 'invalid_request');
      assert.match(e.message, /account_signature/);
      e = h.expectError(await companion.raw('PATCH', `/v1/devices/${companion.deviceId}`, { body: {} }), 400, 'invalid_request');
      assert.match(e.message, /name/);
      e = h.expectError(await primary.raw('PATCH', '/v1/settings', { body: { inactive_ttl_days: 3 } }), 400, 'invalid_request');
      assert.match(e.message, /inactive_ttl_days/);
      e = h.expectError(await primary.raw('PATCH', '/v1/settings', { body: { inactive_ttl_days: 366 } }), 400, 'invalid_request');
      assert.match(e.message, /inactive_ttl_days/);
    });
  });

  test('bad handles: 400 invalid_request', async () => {
    await unchanged(async () => {
      const bad = ['ab', 'a'.repeat(33), 'bad handle', 'émile', 'semi;colon', '+1234567', '+1234567890123456',
        '+12ab5678901', '', '../etc'];
      for (const handle of bad) {
        const e = h.expectError(await call('POST', '/v1/accounts', { body: { handle, public_key: key() } }),
          400, 'invalid_request');
        assert.match(e.message, /handle/, `message for ${JSON.stringify(handle)}`);
      }
    });
  });

  test('good handles: E.164 numbers and user names (lowercased)', async () => {
    for (const [handle, want] of [['+4915112345678', '+4915112345678'], ['Zoe_B-2.x', 'zoe_b-2.x'], ['abc', 'abc']]) {
      const r = h.expectStatus(await call('POST', '/v1/accounts', { body: { handle, public_key: key() } }), 201);
      assert.equal(r.handle, want);
    }
  });

  test('duplicate handle: 409 handle_taken (case-insensitively)', async () => {
    await unchanged(async () => {
      for (const handle of ['alice', 'ALICE', 'Alice']) {
        h.expectError(await call('POST', '/v1/accounts', { body: { handle, public_key: key() } }), 409, 'handle_taken');
      }
    });
  });

  test('a bad completion signature changes nothing: the request can still complete', async () => {
    const req = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
    await unchanged(async () => {
      h.expectError(await h.complete(req, { key: h.newDeviceKey() }), 400, 'invalid_signature');
      h.expectError(await h.complete(req, { signature: 'AAAA' }), 400, ['invalid_signature', 'invalid_request']);
      const wrongNonce = h.b64e(req.key.sign(h.linkMessage(req.id, Buffer.alloc(32))));
      h.expectError(await h.complete(req, { signature: wrongNonce }), 400, 'invalid_signature');
    });
    h.expectStatus(await h.complete(req), 201);
  });
});

describe('routing', () => {
  test('unknown routes: 404 not_found', async () => {
    for (const p of ['/v1/nope', '/v1/devices/x/y', '/v1/health/extra', '/v1/', '/v1/link-requests/a/b/c']) {
      h.expectError(await call('GET', p), 404, 'not_found');
    }
  });

  test('wrong method on a known route: 405 method_not_allowed', async () => {
    for (const [m, p] of [['PUT', '/v1/health'], ['DELETE', '/v1/server'], ['GET', '/v1/accounts'],
      ['PUT', '/v1/session'], ['GET', '/v1/devices/logout-all'], ['PATCH', '/v1/alerts']]) {
      const r = await call(m, p, { token: primary.token });
      h.expectError(r, 405, 'method_not_allowed');
    }
  });

  test('unknown paths with POST, PUT, PATCH or DELETE: 404 not_found as JSON; nothing changes', async () => {
    // Bodies that would change the store if any route took them: a registration,
    // a link request, a rename, a logout.
    const register = () => ({ handle: `ghost${Math.floor(Math.random() * 1e6)}`, public_key: key() });
    const cases = [
      ['POST', '/v1/nope', {}], ['PUT', '/v1/nope', {}], ['PATCH', '/v1/nope', {}], ['DELETE', '/v1/nope'],
      ['POST', '/v1/accounts/new', register()], ['PUT', '/v1/accounts/new', register()],
      ['POST', '/v1/link-requests/a/b/c', { public_key: key() }], ['POST', '/v1/link-request', { public_key: key() }],
      ['PATCH', `/v1/devices/${companion.deviceId}/name`, { name: 'renamed' }],
      ['DELETE', `/v1/devices/${companion.deviceId}/x`], ['POST', '/v1/devices/logout-all/now', {}],
      ['DELETE', '/v1/alerts/AAAAAAAAAAAAAAAAAAAAAA'], ['PUT', '/v1/pin/x', { new_pin: '123456' }],
      ['POST', '/v2/accounts', register()], ['POST', '/', {}], ['DELETE', '/'], ['PUT', '/index.html', {}],
      ['PATCH', '/v1/', {}], ['DELETE', '/metrics/x'],
      // An id segment the router does not take (not A-Z a-z 0-9 - _).
      ['DELETE', `/v1/devices/${companion.deviceId}.x`], ['POST', '/v1/alerts/a%20b/ack', {}],
    ];
    await unchanged(async () => {
      for (const [m, p, body] of cases) {
        for (const token of [undefined, primary.token]) {
          const r = await call(m, p, { body, token });
          h.expectError(r, 404, 'not_found');
          // Exactly the documented shape, as JSON.
          assert.deepEqual(Object.keys(r.json), ['error'], h.show(r));
          assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message'], h.show(r));
          assert.match(r.headers.get('content-type') || '', /^application\/json/, h.show(r));
          assert.equal(r.headers.get('allow'), null, `no Allow on a 404: ${h.show(r)}`);
        }
      }
    });
    // The same bodies on the real routes do work (the cases were not refused for their bodies).
    h.expectStatus(await call('POST', '/v1/accounts', { body: register() }), 201);
  });

  test('a known path with a wrong method: 405 method_not_allowed with Allow naming the methods; nothing changes', async () => {
    const cases = [
      ['PUT', '/v1/accounts', ['POST'], { handle: 'ghost405', public_key: key() }],
      ['DELETE', '/v1/accounts', ['POST']],
      ['PUT', '/v1/link-requests', ['POST'], { public_key: key() }],
      ['DELETE', '/v1/link-requests', ['POST']],
      ['PUT', '/v1/session', ['GET', 'DELETE'], {}],
      ['POST', '/v1/session', ['GET', 'DELETE'], {}],
      ['DELETE', '/v1/devices', ['GET']],
      ['POST', '/v1/devices', ['GET'], {}],
      ['POST', `/v1/devices/${companion.deviceId}`, ['PATCH', 'DELETE'], { name: 'x' }],
      ['PUT', `/v1/devices/${companion.deviceId}`, ['PATCH', 'DELETE'], { name: 'x' }],
      ['POST', '/v1/history', ['GET', 'DELETE'], {}],
      ['DELETE', '/v1/account/secure', ['POST']],
      ['POST', '/v1/account', ['DELETE'], {}],
      ['DELETE', '/v1/settings', ['GET', 'PATCH']],
      ['PUT', '/v1/pin', ['POST'], { new_pin: '123456' }],
      ['DELETE', '/v1/pin/disable', ['POST']],
      ['PUT', `/v1/link-requests/${companion.requestId}/approve`, ['POST'], {}],
      ['DELETE', '/metrics', ['GET']],
      ['POST', '/v1/ws', ['GET'], {}],
    ];
    await unchanged(async () => {
      for (const [m, p, allowed, body] of cases) {
        const r = await call(m, p, { body, token: primary.token });
        const e = h.expectError(r, 405, 'method_not_allowed');
        assert.deepEqual(Object.keys(r.json), ['error'], h.show(r));
        const allow = (r.headers.get('allow') || '').split(',').map((x) => x.trim()).filter(Boolean);
        assert.deepEqual(allow.sort(), [...allowed].sort(), `Allow on ${m} ${p}: ${r.headers.get('allow')}`);
        for (const a of allowed) assert.match(e.message, new RegExp(a), `the message names ${a}: ${e.message}`);
      }
    });
  });

  test('unknown records: 404 not_found', async () => {
    const fake = 'AAAAAAAAAAAAAAAAAAAAAA';
    h.expectError(await primary.del(`/v1/devices/${fake}`), 404, 'not_found');
    h.expectError(await primary.del(`/v1/history/${fake}`), 404, 'not_found');
    h.expectError(await primary.post(`/v1/alerts/${fake}/ack`, {}), 404, 'not_found');
    h.expectError(await primary.post(`/v1/link-requests/${fake}/approve`, { account_signature: h.b64e(Buffer.alloc(64)) }),
      404, 'not_found');
  });
});

describe('authentication and authorisation', () => {
  test('no or unknown credential: 401 unauthenticated', async () => {
    const routes = [['GET', '/v1/session'], ['GET', '/v1/devices'], ['GET', '/v1/history'], ['GET', '/v1/alerts'],
      ['POST', '/v1/devices/logout-all'], ['POST', '/v1/link-requests/scan'], ['GET', '/v1/settings']];
    for (const [m, p] of routes) {
      const body = m === 'GET' ? undefined : {};
      h.expectError(await call(m, p, { body }), 401, 'unauthenticated');
      for (const token of ['lws_garbage', 'lws_AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        `${primary.token.slice(0, -2)}xx`, 'Basic abc']) {
        h.expectError(await call(m, p, { body, token }), 401, 'unauthenticated');
      }
    }
    // A verifier that does not match is refused even with a valid selector.
    const [sel] = primary.token.split('.');
    h.expectError(await call('GET', '/v1/session', { token: `${sel}.${'A'.repeat(43)}` }), 401, 'unauthenticated');
  });

  test('the credential is never accepted in the URL', async () => {
    h.expectError(await call('GET', `/v1/session?token=${primary.token}`), 401, 'unauthenticated');
    h.expectError(await call('GET', `/v1/session?access_token=${primary.token}`), 401, 'unauthenticated');
  });

  test('a companion calling primary-only routes: 403 forbidden', async () => {
    const other = await h.linkCompanionApi(server.url, primary);
    const req = await h.createLinkRequest(server.url);
    await unchanged(async () => {
      h.expectError(await companion.del(`/v1/devices/${other.deviceId}`), 403, 'forbidden');
      h.expectError(await companion.post('/v1/devices/logout-all', {}), 403, 'forbidden');
      h.expectError(await companion.post('/v1/pin', { new_pin: '123456' }), 403, 'forbidden');
      h.expectError(await companion.post('/v1/pin/disable', { pin: '123456' }), 403, 'forbidden');
      h.expectError(await companion.patch('/v1/settings', { inactive_ttl_days: 30 }), 403, 'forbidden');
      h.expectError(await companion.del('/v1/history'), 403, 'forbidden');
      h.expectError(await companion.post('/v1/link-requests/scan', { payload: req.payload }), 403, 'forbidden');
    });
    h.expectStatus(await other.get('/v1/session'), 200);
  });

  test('cross-site state-changing requests are refused (Origin / Sec-Fetch-Site)', async () => {
    const victim = await h.linkCompanionApi(server.url, primary);
    await unchanged(async () => {
      for (const headers of [{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }]) {
        const r1 = await victim.raw('DELETE', '/v1/session', { headers });
        assert.equal(r1.status, 403, `DELETE /v1/session with ${JSON.stringify(headers)}: ${h.show(r1)}`);
        const r2 = await primary.raw('POST', '/v1/devices/logout-all', { body: {}, headers });
        assert.equal(r2.status, 403, `logout-all with ${JSON.stringify(headers)}: ${h.show(r2)}`);
      }
    });
    h.expectStatus(await victim.get('/v1/session'), 200);
    // The server's own origin is fine.
    const own = await victim.raw('GET', '/v1/session', { headers: { origin: server.url, 'sec-fetch-site': 'same-origin' } });
    h.expectStatus(own, 200);
  });

  test('settings: the primary reads and changes the inactivity TTL within 7..365 days', async () => {
    const s = h.expectStatus(await primary.get('/v1/settings'), 200);
    assert.equal(typeof s.inactive_ttl_days, 'number');
    assert.equal(h.expectStatus(await primary.patch('/v1/settings', { inactive_ttl_days: 7 }), 200).inactive_ttl_days, 7);
    assert.equal(h.expectStatus(await primary.get('/v1/settings'), 200).inactive_ttl_days, 7);
    assert.equal((await companion.session()).account.inactive_ttl_days, 7);
    h.expectStatus(await primary.patch('/v1/settings', { inactive_ttl_days: 365 }), 200);
  });

  test('alerts can be acknowledged by the account only', async () => {
    const alerts = await primary.alerts();
    assert.ok(alerts.length > 0, 'linking raised alerts');
    const a = alerts.find((x) => !x.acked);
    assert.ok(a, 'an unacknowledged alert');
    assert.equal(h.expectStatus(await primary.post(`/v1/alerts/${a.id}/ack`, {}), 200).acked, true);
    assert.equal((await primary.alerts()).find((x) => x.id === a.id).acked, true);
    const stranger = await h.registerPrimary(server.url, 'stranger');
    h.expectError(await stranger.post(`/v1/alerts/${alerts[0].id}/ack`, {}), 404, 'not_found');
  });
});

describe('WebSocket handshakes', () => {
  test('without a credential, or with a bad one, the upgrade is refused', async () => {
    for (const token of [undefined, 'lws_nope', 'lwl_nope']) {
      const r = await h.tryConnectWs(server.url, token);
      assert.equal(r.ok, false);
      assert.equal(r.status, 401, `token ${token}: ${r.error?.message}`);
    }
  });

  test('Origin must be the server\'s public origin when present', async () => {
    const bad = await h.tryConnectWs(server.url, companion.token, { origin: 'https://evil.example' });
    assert.equal(bad.ok, false, 'a foreign Origin was accepted');
    assert.equal(bad.status, 403);
    const good = await h.tryConnectWs(server.url, companion.token, { origin: server.url });
    assert.equal(good.ok, true, good.error?.message);
    await good.ws.next('hello');
    await good.ws.close();
  });
});

describe('always', () => {
  test('GET /v1/health answers ok', async () => {
    assert.deepEqual(h.expectStatus(await call('GET', '/v1/health'), 200), { status: 'ok' });
  });

  test('every API answer carries Cache-Control: no-store, nosniff and no-referrer', async () => {
    await call('GET', '/v1/server');
    await call('GET', '/v1/session', { token: primary.token });
    assert.ok(seen.length > 50, `checked ${seen.length} responses`);
    const statusesSeen = new Set(seen.map((r) => r.status));
    for (const s of [200, 400, 401, 404, 405, 409, 413, 415]) assert.ok(statusesSeen.has(s), `no ${s} among the answers`);
    for (const r of seen) {
      assert.match(r.headers.get('cache-control') || '', /no-store/, `Cache-Control on ${h.show(r)}`);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `nosniff on ${h.show(r)}`);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', `Referrer-Policy on ${h.show(r)}`);
      assert.match(r.headers.get('content-type') || '', /^application\/json/, `Content-Type on ${h.show(r)}`);
    }
  });

  test('every answer has a Content-Security-Policy forbidding framing', async () => {
    for (const p of ['/v1/health', '/v1/nope', '/']) {
      const r = await h.api(server.url, 'GET', p);
      const csp = r.headers.get('content-security-policy') || '';
      assert.match(csp, /frame-ancestors 'none'/, `CSP on GET ${p}: ${csp}`);
    }
  });
});
