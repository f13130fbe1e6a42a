// Running Linkward as a daemon (issue 8): TLS with a certificate made at test
// time, the config file and environment, metrics, graceful restart under live
// traffic, backup and restore, client versions, privileges.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import http from 'node:http';
import tls from 'node:tls';
import { execFileSync, spawn } from 'node:child_process';
import * as h from '../lib/harness.js';

const servers = [];
async function start(opts) {
  const s = await h.startServer(opts);
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
});

const makeCerts = h.makeTestCerts;

/**
 * Spawns `cmd ...argv` (linkward serve, maybe under setpriv) and waits, with a
 * deadline, for its "listening on" line. Returns {port, stderr, stop()}.
 */
async function serveUntilListening(argv, cmd = [h.linkwardBin()]) {
  const p = spawn(cmd[0], [...cmd.slice(1), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const r = { stderr: '', stdout: '', port: null };
  p.stderr.on('data', (d) => { r.stderr += d; });
  const exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await h.withTimeout(new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => {
      r.stdout += d;
      const m = /listening on https?:\/\/.*:(\d+)/.exec(r.stdout);
      if (m) resolve(Number(m[1]));
    });
    exited.then((e) => reject(new Error(`server exited ${JSON.stringify(e)}: ${r.stderr}`)));
  }), h.T(10000), 'the server to listen').catch((e) => { p.kill('SIGKILL'); throw e; });
  r.port = port;
  r.stop = async () => { p.kill('SIGTERM'); return h.withTimeout(exited, h.T(10000), 'the server to exit'); };
  return r;
}

function httpsGet(url, ca, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: opts.method || 'GET', ca, headers: opts.headers, ...opts.tls }, (res) => {
      let body = '';
      const tls = res.socket?.getProtocol?.();
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, tls }));
    });
    req.on('error', reject);
    if (opts.body) req.end(opts.body); else req.end();
  });
}

describe('TLS', () => {
  test('HTTPS with the generated certificate: TLS 1.2+, HSTS, __Host- Secure cookies; old protocols refused', async () => {
    const c = makeCerts();
    const s = await start({ args: ['--tls-cert', c.cert, '--tls-key', c.key] });
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = fs.readFileSync(c.ca);
    const health = await httpsGet(`${s.url}/v1/health`, ca);
    assert.equal(health.status, 200);
    assert.match(health.headers['strict-transport-security'], /max-age=\d+/);
    assert.ok(['TLSv1.2', 'TLSv1.3'].includes(health.tls), health.tls);
    await assert.rejects(httpsGet(`${s.url}/v1/health`, ca, { tls: { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' } }));
    const server = JSON.parse((await httpsGet(`${s.url}/v1/server`, ca)).body);
    assert.equal(server.origin, s.url);
    // A browser-mode link request over TLS gets a __Host- Secure cookie.
    const key = h.newDeviceKey();
    const created = await httpsGet(`${s.url}/v1/link-requests`, ca, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ public_key: key.pubB64, credential: 'cookie' }),
    });
    assert.equal(created.status, 201, created.body);
    const cookie = [].concat(created.headers['set-cookie'])[0];
    assert.match(cookie, /^__Host-lw_link=lwl_/);
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /Path=\//);
    assert.doesNotMatch(cookie, /Domain=/i);
  });

  test('TLS 1.2 without forward secrecy or with CBC is refused, as is TLS 1.1; the session cookie is __Host- Secure HttpOnly Strict', async () => {
    const c = makeCerts();
    const s = await start({ args: ['--tls-cert', c.cert, '--tls-key', c.key] });
    const ca = fs.readFileSync(c.ca);
    const port = Number(new URL(s.url).port);
    const handshake = (opts) => new Promise((resolve) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...opts }, () => {
        const r = { ok: true, cipher: sock.getCipher().name, version: sock.getProtocol() };
        sock.end();
        resolve(r);
      });
      sock.on('error', (e) => resolve({ ok: false, error: String(e.message) }));
    });
    // The control: a forward-secret AEAD suite on TLS 1.2 is accepted.
    const good = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.deepEqual([good.ok, good.version], [true, 'TLSv1.2'], JSON.stringify(good));
    for (const ciphers of ['AES128-SHA', 'AES128-GCM-SHA256', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384']) {
      const r = await handshake({ maxVersion: 'TLSv1.2', ciphers });
      assert.equal(r.ok, false, `${ciphers} was accepted: ${JSON.stringify(r)}`);
      assert.match(r.error, /handshake failure|no shared cipher|disconnected before secure TLS/i, ciphers);
    }
    // TLS 1.1, with a client willing to speak it: the server answers "protocol version".
    const old = await new Promise((resolve) => {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { out += d; });
      p.on('exit', (code) => resolve({ code, out }));
    });
    // The client sent its TLS 1.1 hello; the server answered nothing and closed (or sent an alert).
    assert.notEqual(old.code, 0);
    assert.match(old.out, /handshake has read \d+ bytes and written [1-9]\d* bytes/, old.out);
    assert.match(old.out, /Cipher is \(NONE\)/, old.out);

    // A browser link over TLS: the session cookie, not only lw_link, is __Host- and Secure.
    const post = (p, body, token) => httpsGet(`${s.url}${p}`, ca, {
      method: 'POST', body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const pk = h.newDeviceKey();
    const acct = JSON.parse((await post('/v1/accounts', { handle: h.uniqueHandle('tlsck'), public_key: pk.pubB64 })).body);
    const key = h.newDeviceKey();
    const created = await post('/v1/link-requests', { public_key: key.pubB64 });
    assert.equal(created.status, 201, created.body);
    const req = JSON.parse(created.body);
    assert.equal((await post('/v1/link-requests/scan', { payload: req.payload }, acct.token)).status, 200);
    const approved = await post(`/v1/link-requests/${req.id}/approve`,
      { account_signature: h.b64e(pk.sign(h.accountMessage(acct.account_id, key.pub))) }, acct.token);
    assert.equal(approved.status, 200, approved.body);
    const done = await post(`/v1/link-requests/${req.id}/complete`,
      { signature: h.b64e(key.sign(h.linkMessage(req.id, req.nonce))), credential: 'cookie' }, req.token);
    assert.equal(done.status, 201, done.body);
    const session = [].concat(done.headers['set-cookie']).find((x) => /lw_session=/.test(x));
    assert.match(session, /^__Host-lw_session=lws_/);
    for (const attr of [/; Secure/, /; HttpOnly/, /; SameSite=Strict/, /; Path=\//]) assert.match(session, attr);
    assert.doesNotMatch(session, /Domain=/i);
  });

  test('the CLIs link over TLS with --cacert', async () => {
    const c = makeCerts();
    const s = await start({ args: ['--tls-cert', c.cert, '--tls-key', c.key] });
    const dir = h.tempDir('lw-tls-cli-');
    const reg = await h.runCli(['phone', '--server', s.url, '--cacert', c.ca, '--state', `${dir}/p.json`, '--json',
      'register', '--handle', h.uniqueHandle('tls')]);
    assert.equal(reg.code, 0, h.describe(reg));
    const link = h.spawnCli(['companion', '--server', s.url, '--cacert', c.ca, '--state', `${dir}/c.json`, '--json', 'link']);
    try {
      const qr = await link.waitForLine((o) => o.event === 'qr', 5000);
      const ok = await h.runCli(['phone', '--cacert', c.ca, '--state', `${dir}/p.json`, '--json', 'link', qr.payload, '--yes']);
      assert.equal(ok.code, 0, h.describe(ok));
      await link.waitForLine((o) => o.event === 'linked', 5000);
    } finally {
      await link.kill('SIGTERM');
    }
    // Without the CA the certificate is not trusted: exit 2, nothing sent.
    const bad = await h.runCli(['phone', '--server', s.url, '--state', `${dir}/q.json`, 'register', '--handle', 'nope']);
    assert.equal(bad.code, 2, h.describe(bad));
  });

  test('SIGHUP reloads the certificate without dropping connections', async () => {
    const c = makeCerts();
    const s = await start({ args: ['--tls-cert', c.cert, '--tls-key', c.key] });
    const ca = fs.readFileSync(c.ca);
    const phone = await new Promise((resolve, reject) => {
      const agent = new https.Agent({ ca, keepAlive: true });
      https.get(`${s.url}/v1/health`, { agent }, (res) => { res.resume(); res.on('end', () => resolve(agent)); }).on('error', reject);
    });
    const c2 = makeCerts();
    fs.copyFileSync(c2.cert, c.cert);
    fs.copyFileSync(c2.key, c.key);
    s.proc.kill('SIGHUP');
    await h.pollUntil(async () => /certificate reloaded/.test(s.stderr()), { timeout: 3000, what: 'the reload' });
    // New handshakes present the new certificate (the old CA no longer verifies it)...
    await assert.rejects(httpsGet(`${s.url}/v1/health`, ca));
    assert.equal((await httpsGet(`${s.url}/v1/health`, fs.readFileSync(c2.ca))).status, 200);
    // ...while the connection opened before keeps working.
    const again = await new Promise((resolve, reject) => {
      https.get(`${s.url}/v1/health`, { agent: phone }, (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject);
    });
    assert.equal(again, 200);
    phone.destroy();
  });

  test('plain HTTP off loopback is refused unless allowed, and allowed with a warning', async () => {
    const r = await h.runCli(['serve', '--listen', '0.0.0.0:0', '--data-dir', h.tempDir('lw-plain-'), '--allow-root']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing plain HTTP/);
    const s = await serveUntilListening(['serve', '--listen', '0.0.0.0:0', '--allow-plain-http', '--allow-root',
      '--data-dir', h.tempDir('lw-plain-ok-')]);
    try {
      assert.match(s.stderr, /"level":"warn".*serving plain HTTP on 0\.0\.0\.0: only safe behind a TLS-terminating proxy/);
      h.expectStatus(await h.api(`http://127.0.0.1:${s.port}`, 'GET', '/v1/health'), 200);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });
});

describe('configuration', () => {
  test('a config file: errors name file and line; --check-config; environment and flags override it', async () => {
    const dir = h.tempDir('lw-conf-');
    const bad = path.join(dir, 'bad.conf');
    fs.writeFileSync(bad, '# comment\nmax-companions = 3\nmax-age = soon\nnot-an-option = 1\nlisten\n');
    const r = await h.runCli(['serve', '--config', bad, '--check-config']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${bad}:3: max-age: not a duration: 'soon'`));
    assert.match(r.stderr, new RegExp(`${bad}:4: not-an-option: unknown option`));
    assert.match(r.stderr, new RegExp(`${bad}:5: expected 'name = value'`));
    const good = path.join(dir, 'good.conf');
    fs.writeFileSync(good, 'max-companions = 3\nregistration = "invite"\n');
    const ok = await h.runCli(['serve', '--config', good, '--check-config']);
    assert.equal(ok.code, 0, h.describe(ok));
    assert.match(ok.stdout, /configuration OK/);
    const envBad = await h.runCli(['serve', '--check-config'], { env: { LINKWARD_MAX_AGE: 'x' } });
    assert.equal(envBad.code, 1);
    assert.match(envBad.stderr, /LINKWARD_MAX_AGE: not a duration/);
    // The file says 3 and invite; the environment says 5; the flag says open.
    const s = await start({ args: ['--config', good, '--registration', 'open'], env: { LINKWARD_MAX_COMPANIONS: '5' } });
    const info = h.expectStatus(await h.api(s.url, 'GET', '/v1/server'), 200);
    assert.equal(info.max_companions, 5);
    assert.equal(info.registration, 'open');
  });
});

describe('configuration checks', () => {
  test('the shipped example config passes --check-config (trailing comments are comments)', async () => {
    const example = path.join(h.REPO, 'docs', 'linkward.conf.example');
    assert.match(fs.readFileSync(example, 'utf8'), /^registration = open +# or: invite/m, 'the example keeps a trailing comment');
    // Its certificate paths exist on the server it was written for: here, made now (flags win over the file).
    const c = makeCerts();
    const ok = await h.runCli(['serve', '--config', example, '--tls-cert', c.cert, '--tls-key', c.key, '--check-config']);
    assert.equal(ok.code, 0, h.describe(ok));
    assert.match(ok.stdout, /configuration OK/);
    // Without them, the error names the file and the line that set them.
    const missing = await h.runCli(['serve', '--config', example, '--check-config']);
    assert.equal(missing.code, 1, h.describe(missing));
    const line = fs.readFileSync(example, 'utf8').split('\n').findIndex((l) => /^tls-cert\b/.test(l)) + 1;
    assert.match(missing.stderr, new RegExp(`${example}:${line}: tls-cert: cannot read /etc/linkward/fullchain.pem`));
  });

  test('--check-config refuses what the server would refuse, naming file:line (or the variable, or the flag)', async () => {
    const dir = h.tempDir('lw-check-');
    const c = makeCerts();
    const cases = [
      ['trusted-proxies = not-a-cidr', /trusted-proxies: 'not-a-cidr' is not an address or CIDR/],
      ['metrics-listen = garbage', /metrics-listen: wants HOST:PORT/],
      ['metrics-listen = no-such-host.invalid:9100', /metrics-listen: cannot resolve the address 'no-such-host.invalid'/],
      ['min-client-version = banana', /min-client-version: wants a version X\.Y\.Z/],
      ['user = nosuchuser', /user: no such user 'nosuchuser'/],
      [`tls-cert = ${dir}/missing.pem\ntls-key = ${c.key}`, /tls-cert: cannot read .*missing\.pem: No such file/],
      [`tls-cert = ${c.cert}\ntls-key = ${c.cert}`, /tls-key: cannot use /],
      [`tls-cert = ${c.cert}`, /tls-cert: --tls-cert and --tls-key go together/],
      ['listen = 0.0.0.0:8080', /listen: refusing plain HTTP on 0\.0\.0\.0/],
    ];
    for (const [i, [text, re]] of cases.entries()) {
      const file = path.join(dir, `bad${i}.conf`);
      fs.writeFileSync(file, `# a comment line\n${text}\n`);
      const r = await h.runCli(['serve', '--config', file, '--check-config']);
      assert.notEqual(r.code, 0, `${text}: ${h.describe(r)}`);
      assert.doesNotMatch(r.stdout, /configuration OK/, text);
      assert.match(r.stderr, new RegExp(`${file}:\\d+: ${re.source}`), text);
    }
    // Good values of the same options pass; plain HTTP off loopback passes when allowed.
    const good = path.join(dir, 'good.conf');
    fs.writeFileSync(good, 'trusted-proxies = 10.0.0.0/8, 127.0.0.1   # the proxy\nmetrics-listen = 127.0.0.1:9100\n' +
      `min-client-version = 0.1.0\nuser = root\nlisten = 0.0.0.0:8080\nallow-plain-http = true\n`);
    const ok = await h.runCli(['serve', '--config', good, '--check-config']);
    assert.equal(ok.code, 0, h.describe(ok));
    // From the environment and the command line, the message names the variable or the flag.
    const env = await h.runCli(['serve', '--check-config'], { env: { LINKWARD_TRUSTED_PROXIES: 'nope' } });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /linkward serve: LINKWARD_TRUSTED_PROXIES: 'nope' is not an address/);
    const flag = await h.runCli(['serve', '--check-config', '--min-client-version', '1.2']);
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /linkward serve: --min-client-version: wants a version X\.Y\.Z/);
    // The server itself refuses the same way, before binding.
    const run = await h.runCli(['serve', '--config', path.join(dir, 'bad0.conf'), '--listen', '127.0.0.1:0',
      '--data-dir', h.tempDir('lw-check-run-'), '--allow-root']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /bad0\.conf:2: trusted-proxies/);
  });
});

describe('metrics', () => {
  test('/metrics moves with traffic', async () => {
    const s = await start();
    const read = async () => (await h.api(s.url, 'GET', '/metrics')).text;
    const value = (text, re) => Number((re.exec(text) || [])[1] || 0);
    const before = await read();
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('metrics'));
    await h.linkCompanionApi(s.url, phone);
    h.expectStatus(await phone.post('/v1/pin', { new_pin: '135790' }), 200);
    const req = await h.createLinkRequest(s.url);
    h.expectStatus(await h.scan(phone, req.payload), 200);
    h.expectError(await h.approve(phone, req.id, req.key.pub, { pin: '000000' }), 403, 'wrong_pin');
    const after = await read();
    assert.match(after, /# TYPE linkward_http_requests_total counter/);
    assert.ok(value(after, /linkward_http_requests_total\{code="2xx"\} (\d+)/) > value(before, /linkward_http_requests_total\{code="2xx"\} (\d+)/));
    assert.equal(value(after, /linkward_link_requests_total\{outcome="completed"\} (\d+)/), 1);
    assert.equal(value(after, /linkward_pin_failures_total (\d+)/), 1);
    assert.ok(value(after, /linkward_alerts_total\{kind="device.linked"\} (\d+)/) >= 1);
    assert.equal(value(after, /linkward_sessions\{state="active"\} (\d+)/), 2);
    assert.ok(value(after, /linkward_http_request_duration_seconds_count (\d+)/) > 0);
    assert.ok(value(after, /linkward_store_duration_seconds_count (\d+)/) > 0);
  });

  test('--metrics-listen serves /metrics on its own address only', async () => {
    const port = await new Promise((resolve) => {
      const srv = require_net().createServer().listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); });
    });
    const s = await start({ args: ['--metrics-listen', `127.0.0.1:${port}`] });
    h.expectError(await h.api(s.url, 'GET', '/metrics'), 404, 'not_found');
    const m = await h.api(`http://127.0.0.1:${port}`, 'GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.text, /linkward_connections/);
    h.expectError(await h.api(`http://127.0.0.1:${port}`, 'GET', '/v1/devices'), 404, 'not_found');
  });
});

import net from 'node:net';
function require_net() { return net; }

describe('graceful restart', () => {
  test('SIGTERM with a successor bound beside it: no request fails, sockets reconnect, no session lost', async () => {
    const a = await start();
    const phone = await h.registerPrimary(a.url, h.uniqueHandle('restart'));
    const c = await h.linkCompanionApi(a.url, phone);
    const ws = await h.connectWs(a.url, c.token);
    await ws.next('hello');
    // Steady traffic during the whole switch.
    let failures = 0, done = 0, stop = false;
    const loop = (async () => {
      for (let i = 0; i < 5000 && !stop; i++) {
        try {
          const r = await h.api(a.url, 'GET', '/v1/session', { token: c.token });
          if (r.status !== 200) failures++;
        } catch { failures++; }
        done++;
      }
    })();
    // A second companion, used on the old server only, just before SIGTERM:
    // its last-active time is in memory only (writes are coalesced) until the
    // shutdown flushes it.
    const c2 = await h.linkCompanionApi(a.url, phone);
    const linkedAt = Date.parse(h.expectStatus(await h.api(a.url, 'GET', '/v1/session', { token: c2.token }), 200).device.last_active_at);
    // A slow request in flight at SIGTERM: an approval with a PIN (Argon2id, off the loop).
    h.expectStatus(await phone.post('/v1/pin', { new_pin: '135790' }), 200);
    const pending = await h.createLinkRequest(a.url);
    h.expectStatus(await h.scan(phone, pending.payload), 200);
    // One keep-alive connection opened before the successor exists: what goes
    // over it is served by the old server, whatever SO_REUSEPORT does with new ones.
    const agentA = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const viaA = (method, p, token, body) => new Promise((resolve, reject) => {
      const r = http.request(`${a.url}${p}`, { method, agent: agentA, headers: { authorization: `Bearer ${token}`,
        'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      r.on('error', reject);
      r.end(body ? JSON.stringify(body) : undefined);
    });
    assert.equal((await viaA('GET', '/v1/health', phone.token)).status, 200);
    // The phone's socket is told to reconnect too.
    const phoneWs = await h.connectWs(a.url, phone.token);
    await phoneWs.next('hello');
    // The successor binds the same port (SO_REUSEPORT) and the same data directory.
    const b = await start({ dataDir: a.dataDir, port: a.port });
    await h.pollUntil(() => done > 20, { timeout: 3000, what: 'traffic' });
    // Records carry whole seconds: the use must fall in a later second than the link to be told apart.
    await h.pollUntil(() => Date.now() >= linkedAt + 1000, { timeout: 2500, what: 'the clock to pass the link second' });
    assert.equal((await viaA('GET', '/v1/session', c2.token)).status, 200);
    const usedAt = Date.now();
    const approval = viaA('POST', `/v1/link-requests/${pending.id}/approve`, phone.token,
      { account_signature: h.accountSignature(phone, pending.key.pub), pin: '135790' });
    // SIGTERM once the approval is on its way (its bytes are written on the next turn).
    await new Promise((resolve) => setImmediate(resolve));
    const exit = await a.stop();
    assert.equal(exit.code, 0);
    const approved = await approval;
    assert.equal(approved.status, 200, approved.text);
    agentA.destroy();
    await h.withTimeout(phoneWs.closed, 3000, 'the phone socket to be told to reconnect');
    // The approval survives the switch: the companion completes on the successor.
    h.expectStatus(await h.complete({ ...pending, url: b.url }), 201);
    // The last-active time written at shutdown is what the successor reports.
    const devs = h.expectStatus(await h.api(b.url, 'GET', '/v1/devices', { token: phone.token }), 200);
    const rec = [].concat(devs.devices || devs).find((d) => d.id === c2.deviceId);
    assert.ok(rec, JSON.stringify(devs));
    assert.ok(Date.parse(rec.last_active_at) >= usedAt - 1000 && Date.parse(rec.last_active_at) > linkedAt,
      `last_active_at ${rec.last_active_at} is the use just before SIGTERM (${new Date(usedAt).toISOString()})`);
    const closed = await h.withTimeout(ws.closed, 3000, 'the socket to be told to reconnect');
    assert.equal(closed.code, 1012);
    const ws2 = await h.connectWs(b.url, c.token);
    assert.equal((await ws2.next('hello')).device_id, c.deviceId);
    await ws2.close();
    const mark = done;
    await h.pollUntil(() => done > mark + 20, { timeout: 3000, what: 'traffic on the successor' });
    stop = true;
    await loop;
    assert.equal(failures, 0, `${failures} of ${done} requests failed during the restart`);
    h.expectStatus(await h.api(b.url, 'GET', '/v1/devices', { token: phone.token }), 200);
  });
});

describe('backup and restore', () => {
  test('a backup taken during writes restores to a store that passes integrity checks and holds every committed session', async () => {
    const s = await start();
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('backup'));
    // Four writers register accounts before, during and after the backup; each
    // answered registration is stamped with when its answer came.
    const answered = []; // { id, at }
    let writing = true;
    const writer = async () => {
      for (let i = 0; i < 500 && writing; i++) {
        const p = await h.registerPrimary(s.url, h.uniqueHandle('w'));
        answered.push({ id: p.deviceId, at: performance.now() });
      }
    };
    const writes = Promise.all([writer(), writer(), writer(), writer()]);
    await h.pollUntil(() => answered.length >= 20, { timeout: 5000, what: 'writes before the backup' });
    const file = path.join(h.tempDir('lw-bak-'), 'copy.db');
    const backup = h.runCli(['admin', '--control', s.controlSock, '--json', 'backup', file]);
    const startedAt = performance.now();
    const committedBefore = answered.filter((a) => a.at <= startedAt).map((a) => a.id);
    const b = await backup;
    const endedAt = performance.now();
    const duringBackup = answered.length;
    assert.equal(b.code, 0, h.describe(b));
    // The server kept answering writes after the backup: the writers never stopped.
    await h.pollUntil(() => answered.length > duringBackup + 5, { timeout: 5000, what: 'writes after the backup' });
    writing = false;
    await writes;
    const integrity = execFileSync('sqlite3', [file, 'PRAGMA integrity_check;']).toString().trim();
    assert.equal(integrity, 'ok');
    const inCopy = new Set(execFileSync('sqlite3', [file, "SELECT id FROM sessions WHERE state='active';"])
      .toString().split('\n').filter(Boolean));
    const missing = [phone.deviceId, ...committedBefore].filter((id) => !inCopy.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${committedBefore.length + 1} sessions answered before the backup are not in it`);
    // Nothing answered after the backup's answer can be in it (a snapshot, not a mix).
    const later = answered.filter((a) => a.at > endedAt + 50).map((a) => a.id);
    assert.ok(later.length > 0);
    assert.deepEqual(later.filter((id) => inCopy.has(id)), []);

    // Restore: refused while the server runs.
    const busy = await h.runCli(['admin', '--data-dir', s.dataDir, 'restore', file]);
    assert.equal(busy.code, 3);
    assert.match(busy.stderr, /stop it before restoring/);
    // A commit the store has not checkpointed yet (the server is killed, so
    // nothing is checkpointed at exit) lives only in linkward.db-wal.
    const lastOne = await h.registerPrimary(s.url, h.uniqueHandle('unckpt'));
    await s.stop({ signal: 'SIGKILL' });
    const db = path.join(s.dataDir, 'linkward.db');
    assert.ok(fs.existsSync(`${db}-wal`) && fs.statSync(`${db}-wal`).size > 0, 'a write-ahead log is left');
    const junk = path.join(h.tempDir('lw-junk-'), 'junk.db');
    fs.writeFileSync(junk, 'not a database');
    const refused = await h.runCli(['admin', '--data-dir', s.dataDir, 'restore', junk]);
    assert.equal(refused.code, 3);
    // The service's user owns the database; restore runs as root.
    const nobody = Number(execFileSync('id', ['-u', 'nobody']).toString());
    const nogroup = Number(execFileSync('id', ['-g', 'nobody']).toString());
    if (process.getuid() === 0) fs.chownSync(db, nobody, nogroup);
    const r = await h.runCli(['admin', '--data-dir', s.dataDir, 'restore', file]);
    assert.equal(r.code, 0, h.describe(r));
    const kept = path.join(s.dataDir, 'linkward.db.before-restore');
    assert.ok(fs.existsSync(kept));
    assert.ok(!fs.existsSync(`${db}-wal`), 'the old log does not stay beside the restored file');
    // The database kept aside still has the commit that was only in its log.
    const keptIds = execFileSync('sqlite3', [kept, "SELECT id FROM sessions WHERE state='active';"]).toString();
    assert.match(keptIds, new RegExp(lastOne.deviceId));
    if (process.getuid() === 0) {
      const st = fs.statSync(db);
      assert.equal(st.uid, nobody, 'the restored file has the owner of the one it replaced');
      assert.equal(st.gid, nogroup);
      fs.chownSync(db, 0, 0);
    }
    await s.restart();
    const me = h.expectStatus(await h.api(s.url, 'GET', '/v1/session', { token: phone.token }), 200);
    assert.equal(me.device.id, phone.deviceId);
  });
});

describe('versions and privileges', () => {
  test('--min-client-version: older clients get 426 with a clear message; /v1/server still answers', async () => {
    const s = await start({ args: ['--min-client-version', '9.0.0'] });
    const old = await h.api(s.url, 'POST', '/v1/link-requests', {
      headers: { 'linkward-client-version': '0.1.0' }, body: { public_key: h.newDeviceKey().pubB64 },
    });
    h.expectError(old, 426, 'client_too_old');
    assert.match(old.json.error.message, /older than this server accepts/);
    h.expectStatus(await h.api(s.url, 'GET', '/v1/server', { headers: { 'linkward-client-version': '0.1.0' } }), 200);
    const cli = await h.runCli(['phone', '--server', s.url, '--state', `${h.tempDir('lw-v-')}/p.json`, 'register', '--handle', 'old']);
    assert.equal(cli.code, 3);
    assert.match(cli.stderr, /older than this server accepts/);
    // Clients that do not say are not judged.
    h.expectStatus(await h.api(s.url, 'POST', '/v1/link-requests', { body: { public_key: h.newDeviceKey().pubB64 } }), 201);
  });

  test('--user given to a server not started as root is said to be ignored, not "running as"', async (t) => {
    if (process.getuid() !== 0) { t.skip('needs root to start the server as another user'); return; }
    const dir = h.tempDir('lw-nonroot-');
    fs.chmodSync(dir, 0o777);
    const s = await serveUntilListening(['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--user', 'root'],
      ['setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', h.linkwardBin()]);
    try {
      assert.match(s.stderr, /--user root ignored: not started as root \(already running as nobody\)/);
      assert.doesNotMatch(s.stderr, /running as root/);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('the phone CLI warns when its server is newer than it understands', async () => {
    const s = await start();
    // A proxy that passes everything through but says the server is 99.0.0.
    const target = new URL(s.url);
    const proxy = http.createServer((req, res) => {
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          const headers = { ...r.headers, 'linkward-version': '99.0.0' };
          res.writeHead(r.statusCode, headers);
          r.pipe(res);
        });
      up.on('error', () => { res.destroy(); });
      req.pipe(up);
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const dir = h.tempDir('lw-newer-');
      const newer = await h.runCli(['phone', '--server', `http://127.0.0.1:${proxy.address().port}`, '--state', `${dir}/p.json`,
        'register', '--handle', h.uniqueHandle('newer')]);
      assert.equal(newer.code, 0, h.describe(newer));
      assert.match(newer.stderr, /the server runs Linkward 99\.0\.0, newer than this client/);
      assert.equal(newer.stderr.match(/newer than this client/g).length, 1, 'warned once');
      const same = await h.runCli(['phone', '--server', s.url, '--state', `${dir}/q.json`, 'register', '--handle', h.uniqueHandle('same')]);
      assert.equal(same.code, 0, h.describe(same));
      assert.doesNotMatch(same.stderr, /newer than this client/);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  test('as root, the server refuses to run without --user or --allow-root, and drops to --user after binding', async (t) => {
    if (process.getuid() !== 0) { t.skip('not running as root'); return; }
    const refused = await h.runCli(['serve', '--listen', '127.0.0.1:0', '--data-dir', h.tempDir('lw-root-')]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refusing to run as root/);
    const dir = h.tempDir('lw-user-');
    fs.chmodSync(dir, 0o777);
    const s = await start({ dataDir: dir, args: ['--user', 'nobody'], noAllowRoot: true });
    const status = fs.readFileSync(`/proc/${s.proc.pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)[1]);
    assert.notEqual(uid, 0);
    h.expectStatus(await h.api(s.url, 'GET', '/v1/health'), 200);
  });
});
