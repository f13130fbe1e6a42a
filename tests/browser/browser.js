// Browser-test helpers: Debian's chromium driven by playwright-core against a
// real `linkward serve`. Every wait is bounded; nothing sleeps in place of an
// event. See tests/lib/harness.js for the server and CLI side.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as h from '../lib/harness.js';

export { h };

export const CHROMIUM = process.env.LINKWARD_CHROMIUM || '/usr/bin/chromium';
// Chromium's sandbox cannot start as root (CI runs as root); anyone else keeps it.
const ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
export const ARGS = [...(ROOT ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'];
// Screenshots go to docs/screenshots/ when LINKWARD_SCREENSHOTS=1 (to refresh
// the pictures in the docs), else to a temporary folder: a test run leaves the
// tree as it found it.
export const SHOTS = process.env.LINKWARD_SCREENSHOTS === '1'
  ? path.join(h.REPO, 'docs', 'screenshots')
  : path.join(os.tmpdir(), 'linkward-screenshots');
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
/** A plain (non-headless) Chrome User-Agent, so the server names the device "Chrome on Linux". */
export const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

// Places: with the generated GeoIP databases (LINKWARD_GEOIP_TEST_DIR, set by
// CTest) the server trusts loopback as a proxy, browsers come from Porto and
// the phone from Lisbon (tests/tools/make_geoip.pl), both over "Cable/DSL".
export const GEO = process.env.LINKWARD_GEOIP_TEST_DIR || '';
export const PORTO = '198.51.100.70';
export const LISBON = '198.51.100.10';
const via = (ip) => (GEO ? { 'x-forwarded-for': ip } : {});

export const launch = () => chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });

/** A persistent profile (user-data dir), as a browser that is closed and started again. */
export const launchProfile = (dir, opts = {}) => chromium.launchPersistentContext(dir, {
  executablePath: CHROMIUM, headless: true, args: ARGS, viewport: DESKTOP, userAgent: UA, extraHTTPHeaders: via(PORTO), ...opts,
});

/**
 * Starts a server for browser tests. LINKWARD_WEB_DIR (development only) serves
 * a folder instead of the embedded files; by default the tests check what ships.
 */
export async function startServer(args = []) {
  const extra = process.env.LINKWARD_WEB_DIR ? ['--web-dir', process.env.LINKWARD_WEB_DIR] : [];
  if (GEO) extra.push('--geoip-dir', GEO, '--trusted-proxies', '127.0.0.1,::1');
  return h.startServer({ args: [...args, ...extra] });
}

/** A registered phone (the CLI primary) on server. */
export async function newPhone(server, prefix = 'web') {
  const phone = new h.PhoneCli(server, undefined, via(LISBON));
  await phone.register(h.uniqueHandle(prefix), ['--name', 'Pixel 8']);
  return phone;
}

// ---------------------------------------------------------------------------
// Pages and their problems

/**
 * Records everything that would mean the page misbehaved: console errors and
 * warnings, uncaught exceptions, CSP violations (reported from inside the page
 * too), failed requests. Returns the list (it keeps filling).
 */
export async function watch(page) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  // A credential that lapsed before its refresh (a busy machine, 2 s credentials) is answered
  // 401 credential_expired and refreshed by the page, as the API asks; Chromium logs the 401.
  page.lapsed = 0;
  page.on('response', (r) => {
    if (r.status() !== 401) return;
    // Also a request racing the end of the session (a refresh timer firing as
    // a logout lands): answered 401 session_ended, which the page handles.
    r.json().then((j) => {
      if (j?.error?.code === 'credential_expired' || j?.error?.code === 'session_ended') page.lapsed += 1;
    }, () => {});
  });
  page.on('requestfailed', (r) => {
    const err = r.failure()?.errorText || '';
    // Navigations away and closing pages abort requests and sockets; that is not the page's fault.
    if (!/ERR_ABORTED/.test(err)) problems.push(`requestfailed: ${r.url()} ${err}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  page.problems = problems;
  return problems;
}

/**
 * Problems other than those matching one of `allowed` (regexps). With `page`,
 * as many logged 401s as the page got `credential_expired` answers (which it
 * then refreshed) are not problems.
 */
export function unexpected(problems, allowed = [], page = null) {
  let excused = page?.lapsed || 0;
  // With 2 s credentials on a loaded machine, one can also lapse between the
  // page's refresh and its socket's upgrade (refused 401, logged by Chromium
  // without a body); the page refreshes and reconnects. One such is excused.
  let wsExcused = 1;
  return problems.filter((p) => {
    if (excused > 0 && /status of 401/.test(p)) {
      excused -= 1;
      return false;
    }
    if (wsExcused > 0 && /WebSocket connection to .* failed: HTTP Authentication failed/.test(p)) {
      wsExcused -= 1;
      return false;
    }
    return !allowed.some((re) => re.test(p));
  });
}

/** A new context and page at desktop width (opts: viewport, userAgent…), watched. */
export async function openPage(browser, server, opts = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, userAgent: UA, extraHTTPHeaders: via(PORTO), ...opts });
  const page = await context.newPage();
  await watch(page);
  await page.goto(server.url + '/');
  return { context, page };
}

/**
 * Controls a screen reader could not name: form fields without a label (or
 * aria-label), buttons and links without text (or aria-label). [] when none.
 */
export function unnamedControls(page) {
  return page.evaluate(() => {
    const named = (el) => (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || (el.textContent || '').trim() || el.getAttribute('title'));
    return [
      ...[...document.querySelectorAll('input, select, textarea')]
        .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label')),
      ...[...document.querySelectorAll('button, a[href], summary')].filter((el) => !named(el)),
    ].map((el) => el.outerHTML);
  });
}

export const byId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Waits for a visible [data-testid=id]. */
export function see(page, id, timeout = 5000) {
  return byId(page, id).first().waitFor({ state: 'visible', timeout: h.T(timeout) });
}

/** The link-status text once it matches re. */
export async function statusMatches(page, re, timeout = 5000) {
  const loc = byId(page, 'link-status');
  await loc.filter({ hasText: re }).waitFor({ timeout: h.T(timeout) });
  return loc.innerText();
}

/** The pairing code shown under "Link with a code instead". */
export async function pairingCode(page) {
  const summary = page.locator('summary', { hasText: 'Link with a code instead' });
  if (!(await summary.evaluate((el) => el.parentElement.open))) await summary.click();
  const code = byId(page, 'pairing-code');
  await code.filter({ hasText: /^[A-Z0-9]{4}-[A-Z0-9]{4}$/ }).waitFor({ timeout: h.T(5000) });
  return (await code.innerText()).trim();
}

/** Links the open page with the phone through the pairing code; waits for Home. */
export async function linkWithCode(page, phone, extra = []) {
  const code = await pairingCode(page);
  const res = await phone.run(['link', '--code', code, '--yes', ...extra]);
  if (res.code !== 0) throw new Error(`phone link --code failed: ${h.describe(res)}`);
  await see(page, 'devices-list', 8000);
  await page.locator('[data-testid="device-row"]').nth(1).waitFor({ timeout: h.T(5000) });
  return res;
}

/** This browser's device id, from the phone's list (the one companion not yet known). */
export async function companionIds(phone) {
  return (await phone.devices()).filter((d) => d.role === 'companion').map((d) => d.id);
}

/**
 * Names of the IndexedDB databases of the page's origin, and the local/session
 * storage sizes. Bounded like every other wait: it runs right after the page
 * wiped its storage (deleteDatabase) while Chromium may still be clearing the
 * origin for a Clear-Site-Data answer, and a browser that never answers must
 * fail here, naming the call, rather than run into the test's own timeout.
 */
export function storageState(page, timeout = 10000) {
  return h.withTimeout(page.evaluate(async () => ({
    databases: (await indexedDB.databases()).map((d) => d.name),
    local: localStorage.length,
    session: sessionStorage.length,
  })), h.T(timeout), 'the page to answer indexedDB.databases() (Chromium, after the wipe)');
}

/** Saves a screenshot of the page (or a locator) as SHOTS/NAME.png. */
export async function shot(target, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await target.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  return file;
}

// ---------------------------------------------------------------------------
// Processes

/**
 * `linkward phone … link` run the way a person would: in its own session
 * (setsid, so no controlling terminal: the question is read from stdin), with
 * stdin open so the test can answer after looking at the page.
 */
export function spawnPhoneInteractive(phone, args) {
  const home = h.tempDir('lw-home-');
  const proc = spawn(h.linkwardBin(), [...phone.base(), '--json', ...args], {
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), LINKWARD_NETWORK: 'none' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  proc.stdin.on('error', () => {});
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc,
    answer: (text) => proc.stdin.end(text),
    output: () => `stdout: ${out}\nstderr: ${err}`,
    wait: (ms = 10000) => h.withTimeout(exited, h.T(ms), `linkward phone ${args.join(' ')}`),
    kill: () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); },
  };
}

/**
 * A second web origin on 127.0.0.1 (another port): serves `html` at "/" with
 * no CSP of its own, for the cross-origin checks.
 */
export async function foreignSite(html) {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${srv.address().port}`;
  return {
    url,
    close: () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); }),
  };
}
