// POST /v1/csp-reports (ASVS 3.4.7): what browsers send is accepted in both
// shapes, answered 204, counted by directive with a bounded label set, and
// logged as one warn line that keeps nothing that could carry a secret; the
// route is small, rate-limited per address, and refuses other media types.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer({ args: ['--rate', 'csp=5/m'] });
});
after(async () => {
  await server?.stop();
});

const legacy = (r) => ({ 'csp-report': r });
const post = (srv, type, body, headers = {}) => h.api(srv.url, 'POST', '/v1/csp-reports', {
  raw: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': type, ...headers },
});

async function metric(srv, directive) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const m = new RegExp(`^linkward_csp_violations_total\\{directive="${directive}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('CSP reports', () => {
  let open;
  before(async () => {
    open = await h.startServer(); // no rate limit (the harness default)
  });
  after(async () => {
    await open?.stop();
  });

  test('both shapes are counted by directive and answered 204; the log line keeps only scheme and host', async () => {
    const secret = 'lws_SECRETSELECTOR.SECRETVERIFIER';
    const r1 = await post(open, 'application/csp-report', legacy({
      'document-uri': `${open.url}/?token=${secret}`, 'violated-directive': 'img-src', 'effective-directive': 'img-src',
      'blocked-uri': `https://user:${secret}@tracker.example:8443/pixel.gif?t=${secret}#frag`,
      'original-policy': "default-src 'none'", disposition: 'enforce',
    }));
    assert.equal(r1.status, 204, h.show(r1));
    assert.equal(r1.text, '');
    const r2 = await post(open, 'application/reports+json; charset=utf-8', [
      { type: 'csp-violation', age: 1, url: `${open.url}/`, body: { effectiveDirective: 'script-src-elem', blockedURL: 'inline', disposition: 'enforce' } },
      { type: 'csp-violation', body: { effectiveDirective: 'connect-src', blockedURL: `wss://evil.example/socket?key=${secret}` } },
      { type: 'deprecation', body: { id: 'x' } }, // not ours to count
      { type: 'csp-violation', body: { effectiveDirective: 'made-up-directive', blockedURL: `data:text/html,${secret}` } },
    ]);
    assert.equal(r2.status, 204, h.show(r2));
    assert.equal(await metric(open, 'img-src'), 1);
    assert.equal(await metric(open, 'script-src-elem'), 1);
    assert.equal(await metric(open, 'connect-src'), 1);
    assert.equal(await metric(open, 'other'), 1, 'unknown directives share one label');
    assert.equal(await metric(open, 'made-up-directive'), 0);

    const lines = await h.pollUntil(() => {
      const ls = open.stderr().split('\n').filter((l) => /"sub":"csp"/.test(l));
      return ls.length >= 4 && ls;
    }, { what: 'four csp log lines' });
    for (const l of lines) {
      const j = JSON.parse(l);
      assert.equal(j.level, 'warn');
      assert.doesNotMatch(l, /SECRET|token|pixel|socket|frag|user/, l);
    }
    const msgs = lines.map((l) => JSON.parse(l).msg);
    assert.ok(msgs.includes('CSP violation (enforce): img-src blocked https://tracker.example:8443'), msgs.join('\n'));
    assert.ok(msgs.includes('CSP violation (enforce): script-src-elem blocked inline'), msgs.join('\n'));
    assert.ok(msgs.includes('CSP violation (enforce): connect-src blocked wss://evil.example'), msgs.join('\n'));
    assert.ok(msgs.includes('CSP violation (enforce): other blocked data:'), msgs.join('\n'));
    assert.doesNotMatch(open.stderr(), /SECRET/);
  });

  test('other media types, other shapes, and bodies over the limit are refused', async () => {
    h.expectError(await post(open, 'application/json', legacy({ 'effective-directive': 'img-src' })), 415, 'unsupported_media_type');
    h.expectError(await post(open, 'text/plain', 'x'), 415, 'unsupported_media_type');
    h.expectError(await post(open, 'application/csp-report', '{not json'), 400, 'invalid_json');
    h.expectError(await post(open, 'application/csp-report', { nothing: 1 }), 400, 'invalid_request');
    h.expectError(await post(open, 'application/csp-report', '"a string"'), 400, 'invalid_json');
    const big = legacy({ 'effective-directive': 'img-src', 'blocked-uri': `https://x.example/${'a'.repeat(9000)}` });
    h.expectError(await post(open, 'application/csp-report', big), 413, 'body_too_large');
    // A report from another site is refused like any state change (browsers send our Origin).
    h.expectError(await post(open, 'application/csp-report', legacy({ 'effective-directive': 'img-src' }),
      { origin: 'https://evil.example' }), 403, 'forbidden_origin');
  });

  test('reports are rate-limited per address (--rate csp=N/PERIOD)', async () => {
    const body = legacy({ 'effective-directive': 'font-src', 'blocked-uri': 'https://fonts.example/x.woff' });
    for (let i = 0; i < 5; i++) assert.equal((await post(server, 'application/csp-report', body)).status, 204);
    const r = await post(server, 'application/csp-report', body);
    h.expectError(r, 429, 'rate_limited');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(await metric(server, 'font-src'), 5, 'refused reports are not counted');
  });
});
