// CSP violation reporting (ASVS 3.4.7) in real Chromium: the page's CSP names
// the server's report endpoint (report-to with Reporting-Endpoints, and
// report-uri for browsers without the Reporting API); a script the policy
// blocks is reported, and the server counts it in /metrics and logs one
// sanitised line. Waiting is by polling /metrics, never a fixed sleep.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as b from './browser.js';

const { h } = b;
const LIMIT = h.T(90000);
let server; // plain HTTP on loopback, as in development
let tls; // over TLS, as in production: Chromium uses the Reporting API only there
let ca;
let browser;

before(async () => {
  const dir = h.tempDir('lw-csp-tls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
  ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  // Chromium sends Reporting API reports in batches about a minute apart;
  // its test switch makes that 100 ms.
  [server, tls, browser] = await Promise.all([
    b.startServer(),
    b.startServer(['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')]),
    chromium.launch({ executablePath: b.CHROMIUM, headless: true,
      args: [...b.ARGS, '--short-reporting-delay', '--ignore-certificate-errors'] }),
  ]);
});

after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), tls?.stop()]);
});

function httpsText(url) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

/** linkward_csp_violations_total{directive=…} from srv's /metrics (0 when absent). */
async function violations(srv, directive) {
  const text = srv.url.startsWith('https:') ? await httpsText(`${srv.url}/metrics`)
    : await (await fetch(`${srv.url}/metrics`)).text();
  const m = new RegExp(`^linkward_csp_violations_total\\{directive="${directive}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Makes the page run an inline script, which its CSP blocks; resolves with what the page saw. */
async function violate(page, marker) {
  const seen = page.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation',
      (e) => resolve({ directive: e.effectiveDirective, blocked: e.blockedURI }), { once: true });
  }));
  // addScriptTag inserts an inline <script>: blocked by script-src 'self'.
  await page.addScriptTag({ content: `window.${marker} = true;` }).catch(() => {});
  return seen;
}

async function newPage() {
  const ctx = await browser.newContext({ viewport: b.DESKTOP, userAgent: b.UA, ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  return { ctx, page };
}

test('the page announces where to report: report-to csp with Reporting-Endpoints, and report-uri', async () => {
  const r = await fetch(`${server.url}/`);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /(^|; )report-to csp(;|$)/);
  assert.match(csp, /(^|; )report-uri \/v1\/csp-reports(;|$)/);
  assert.equal(r.headers.get('reporting-endpoints'), 'csp="/v1/csp-reports"');
  // Only pages: the API and scripts report nothing.
  const js = await fetch(`${server.url}/app.js`);
  assert.equal(js.headers.get('reporting-endpoints'), null);
});

test('a script the CSP blocks is reported by Chromium (Reporting API, over TLS) and counted by the server', { timeout: LIMIT }, async () => {
  const { ctx, page } = await newPage();
  try {
    await page.goto(tls.url, { waitUntil: 'load' });
    const before = await violations(tls, 'script-src-elem');
    const seen = await violate(page, 'cspMarkerOne');
    assert.equal(seen.directive, 'script-src-elem');
    assert.equal(seen.blocked, 'inline');
    assert.equal(await page.evaluate(() => window.cspMarkerOne), undefined, 'the script did not run');
    await h.pollUntil(async () => (await violations(tls, 'script-src-elem')) > before,
      { timeout: 30000, interval: 200, what: 'the server to count the report' });
    const line = await h.pollUntil(() => tls.stderr().split('\n').find((l) => /"sub":"csp"/.test(l)),
      { timeout: 10000, what: 'the csp log line' });
    const j = JSON.parse(line);
    assert.equal(j.level, 'warn');
    assert.match(j.msg, /script-src-elem blocked inline/);
  } finally {
    await ctx.close();
  }
});

test('a browser without the Reporting API uses report-uri, which is counted too', { timeout: LIMIT }, async () => {
  const { ctx, page } = await newPage();
  try {
    // The real page with report-to taken out of its CSP: Chromium then does
    // what browsers without the Reporting API do (and what it does itself on
    // plain HTTP): it posts to report-uri.
    await page.route(`${server.url}/`, async (route) => {
      const res = await route.fetch();
      const headers = { ...res.headers() };
      delete headers['reporting-endpoints'];
      headers['content-security-policy'] = headers['content-security-policy'].replace(/; report-to csp/, '');
      await route.fulfill({ response: res, headers });
    });
    await page.goto(server.url, { waitUntil: 'load' });
    const before = await violations(server, 'script-src-elem');
    await violate(page, 'cspMarkerTwo');
    await h.pollUntil(async () => (await violations(server, 'script-src-elem')) > before,
      { timeout: 30000, interval: 200, what: 'the server to count the report-uri report' });
  } finally {
    await ctx.close();
  }
});
