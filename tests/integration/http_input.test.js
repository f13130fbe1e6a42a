// What a client puts on the wire before a handler sees it (docs/api.md
// "Errors"): message framing (RFC 9112 §6: Content-Length and
// Transfer-Encoding), the Content-Type of a body, and malformed JSON. Every
// refusal is a precise 4xx with the documented error shape, never a 500; a
// request whose framing is ambiguous is the last one its connection carries.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

/**
 * Parses the HTTP/1.1 answers in buf (a Buffer), each framed by its
 * Content-Length (every Linkward answer has one). Returns {answers, rest}.
 */
function parseAnswers(buf) {
  const answers = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(head[0])?.[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    if (buf.length < end + 4 + len) break;
    const bytes = buf.subarray(end + 4, end + 4 + len);
    const text = bytes.toString('utf8');
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    answers.push({ status, headers, bytes, text, json });
    off = end + 4 + len;
  }
  return { answers, rest: buf.subarray(off) };
}

/**
 * Writes bytes on a new connection (without closing our side) and collects
 * answers until the server closes the connection, or until `expect` answers
 * have arrived and the server closes, or one answer more than `expect` came
 * (a failure the caller sees). Bounded by a deadline.
 */
function exchange(bytes, { expect = 1 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let settled = false;
    const finish = (closed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parseAnswers(got), closed });
    };
    const timer = setTimeout(() => {
      const { answers } = parseAnswers(got);
      if (answers.length >= expect) finish(false); // answered, but the connection stays open
      else { settled = true; sock.destroy(); reject(new Error(`no answer in time: ${got.toString('latin1').slice(0, 500)}`)); }
    }, h.T(3000));
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (parseAnswers(got).answers.length > expect) finish(false);
    });
    sock.on('error', () => { /* a reset after the answer: the answers so far count */ });
    sock.on('close', () => finish(true));
    sock.write(bytes);
  });
}

const HOST = 'Host: 127.0.0.1\r\n';
// A second request hidden where the first one's body might end.
const SMUGGLED = `GET /v1/health HTTP/1.1\r\n${HOST}\r\n`;
// The same, asking to be the connection's last: where it is answered, the
// server closes after it, and the exchange ends then.
const LAST = `GET /v1/health HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`;
const post = (headers, body) =>
  `POST /v1/accounts HTTP/1.1\r\n${HOST}Content-Type: application/json\r\n${headers}\r\n${body}`;

function onlyAnswer(r, status, code) {
  const shown = JSON.stringify(r.answers.map((a) => [a.status, a.text.slice(0, 200)]));
  assert.equal(r.answers.length, 1, `exactly one answer on the connection, got ${shown}`);
  const a = r.answers[0];
  assert.equal(a.status, status, shown);
  if (code) assert.equal(a.json?.error?.code, code, shown);
  assert.equal(a.headers.connection, 'close', `the answer says Connection: close: ${JSON.stringify(a.headers)}`);
  assert.ok(r.closed, 'the server closed the connection');
  assert.equal(r.rest.length, 0);
  return a;
}

describe('message framing (RFC 9112 §6)', () => {
  test('two Content-Length headers that disagree: 400 bad_request, and nothing after it is answered', async () => {
    const body = `{}${SMUGGLED}`;
    // The shorter one first (h2o reads 2 bytes and would take the rest as a
    // second request), then the longer one first (the whole rest is the body).
    for (const [a, b] of [[2, body.length], [body.length, 2]]) {
      const r = await exchange(post(`Content-Length: ${a}\r\nContent-Length: ${b}\r\n`, body));
      const ans = onlyAnswer(r, 400, 'bad_request');
      assert.match(ans.json.error.message, /Content-Length/);
    }
  });

  test('a Content-Length list, disagreeing or not, and a bad value in a second header: 400, then closed', async () => {
    const body = `{}${SMUGGLED}`;
    for (const cl of [`2, ${body.length}`, '2, 2', '2,2']) {
      onlyAnswer(await exchange(post(`Content-Length: ${cl}\r\n`, body)), 400, 'bad_request');
    }
    onlyAnswer(await exchange(post(`Content-Length: 2\r\nContent-Length: 2, ${body.length}\r\n`, body)), 400, 'bad_request');
    onlyAnswer(await exchange(post('Content-Length: 2\r\nContent-Length: +2\r\n', body)), 400, 'bad_request');
  });

  test('identical Content-Length headers are one length: the request is handled and the connection kept', async () => {
    const r = await exchange(post('Content-Length: 2\r\nContent-Length: 2\r\n', `{}${LAST}`), { expect: 2 });
    assert.equal(r.answers.length, 2, JSON.stringify(r.answers));
    assert.equal(r.answers[0].status, 400);
    assert.equal(r.answers[0].json.error.code, 'invalid_request', 'the handler read the body ({}): no handle');
    assert.equal(r.answers[1].status, 200);
    assert.equal(r.answers[1].json.status, 'ok');
    assert.ok(r.closed);
  });

  test('Transfer-Encoding with Content-Length: handled as chunked, then the connection is closed', async () => {
    const chunked = `2\r\n{}\r\n0\r\n\r\n${SMUGGLED}`;
    for (const headers of [`Content-Length: ${chunked.length}\r\nTransfer-Encoding: chunked\r\n`,
      'Transfer-Encoding: chunked\r\nContent-Length: 2\r\n']) {
      const a = onlyAnswer(await exchange(post(headers, chunked)), 400, 'invalid_request');
      assert.match(a.json.error.message, /handle/, 'the chunked body ({}) reached the handler');
    }
  });

  test('two Transfer-Encoding headers: 400 bad_request, then closed', async () => {
    const chunked = `2\r\n{}\r\n0\r\n\r\n${SMUGGLED}`;
    const a = onlyAnswer(await exchange(post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', chunked)),
      400, 'bad_request');
    assert.match(a.json.error.message, /Transfer-Encoding/);
  });

  test('Transfer-Encoding in an HTTP/1.0 request: handled, then closed even when keep-alive was asked', async () => {
    const chunked = `2\r\n{}\r\n0\r\n\r\n${SMUGGLED}`;
    const req = `POST /v1/accounts HTTP/1.0\r\n${HOST}Connection: keep-alive\r\nContent-Type: application/json\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${chunked}`;
    const r = await exchange(req);
    assert.equal(r.answers.length, 1, JSON.stringify(r.answers.map((a) => a.status)));
    assert.notEqual(r.answers[0].headers.connection, 'keep-alive');
    assert.ok(r.closed);
  });

  test('(control) a plain request with a body keeps the connection for the next one', async () => {
    const r = await exchange(post('Content-Length: 2\r\n', `{}${LAST}`), { expect: 2 });
    assert.deepEqual(r.answers.map((a) => a.status), [400, 200]);
  });
});

describe('malformed JSON bodies', () => {
  const raw = (body) => h.api(server.url, 'POST', '/v1/accounts', { raw: Buffer.from(body) });

  test('a bad \\u escape before a multibyte character: 400 invalid_json with the position, never 500', async () => {
    const inputs = [
      '{"handle":"\\uZé"}', '{"handle":"\\uZ€', '{"handle":"\\uZ😀', '{"handle":"\\u12é"}', '{"h":"\\x€"}',
      '{"handle":"\\uD800\\uZ€"}', `{"${'é'.repeat(200)}\\uZ`, '{€', '€', '{"a":1}€', '{"a":tru€}',
    ];
    for (const body of inputs) {
      const r = await raw(body);
      const e = h.expectError(r, 400, 'invalid_json');
      assert.match(e.message, /line \d+, column \d+/, `the position is named: ${h.show(r)}`);
    }
  });

  test('bytes that are not UTF-8 inside and outside strings: 400 invalid_json, the answer is clean UTF-8', async () => {
    const bodies = [
      Buffer.from('{"handle":"\\uZé"}'),
      Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d]), // {"a":"\xc3"}
      Buffer.from([0x7b, 0xff, 0xfe]),
      Buffer.concat([Buffer.from('{"a":"\\uZ'), Buffer.from([0xe2, 0x82])]), // a cut €
      Buffer.concat([Buffer.from('{"a":"\\uZ'), Buffer.from([0xed, 0xa0, 0x80])]), // an encoded surrogate
      Buffer.concat([Buffer.from('{"a":"\\uZ'), Buffer.from([0xc0, 0xaf])]), // an overlong '/'
      Buffer.concat([Buffer.from('{"a":"\\uZ'), Buffer.from([0xf4, 0x90, 0x80, 0x80])]), // past U+10FFFF
    ];
    const strict = new TextDecoder('utf-8', { fatal: true });
    for (const body of bodies) {
      const r = await exchange(Buffer.concat([Buffer.from(`POST /v1/accounts HTTP/1.1\r\n${HOST}` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
      assert.equal(r.answers.length, 1);
      const a = r.answers[0];
      assert.equal(a.status, 400, a.text);
      assert.equal(a.json?.error?.code, 'invalid_json', a.text);
      assert.match(a.json.error.message, /line \d+, column \d+/);
      assert.doesNotThrow(() => strict.decode(a.bytes), `the answer is valid UTF-8: ${a.bytes.toString('hex')}`);
    }
  });
});

describe('Content-Type', () => {
  const body = JSON.stringify({ public_key: h.b64e(Buffer.alloc(32, 7)) });
  const send = (ct) => h.api(server.url, 'POST', '/v1/link-requests', { raw: body, headers: { 'content-type': ct } });

  test('application/json exactly, in any case, with at most charset=utf-8 (optionally quoted)', async () => {
    for (const ct of ['application/json', 'Application/JSON', 'application/json;charset=utf-8',
      'application/json; charset=UTF-8', 'application/json ; charset="utf-8"', 'application/json;']) {
      h.expectStatus(await send(ct), 201);
    }
  });

  test('anything else: 415 unsupported_media_type saying what is wrong', async () => {
    const cases = {
      'application/jsonx': /application\/jsonx/,
      'application/json-patch+json': /application\/json-patch\+json/,
      'application/json x': /malformed/,
      'text/json': /text\/json/,
      'application/json; charset=latin1': /charset/,
      'application/json; charset="iso-8859-1"': /charset/,
      'application/json; charset=utf-8x': /charset/,
      'application/json; foo=bar': /foo/,
      'application/json; charset': /malformed/,
      'application/json; charset = utf-8': /malformed/,
      'application/json; charset="utf-8': /malformed/,
      'application/json, text/plain': /malformed/,
      '/json': /malformed/,
    };
    for (const [ct, why] of Object.entries(cases)) {
      const e = h.expectError(await send(ct), 415, 'unsupported_media_type');
      assert.match(e.message, why, `${ct}: ${e.message}`);
    }
    const none = await exchange(`POST /v1/link-requests HTTP/1.1\r\n${HOST}Content-Length: ${body.length}\r\n` +
      `Connection: close\r\n\r\n${body}`);
    assert.equal(none.answers[0]?.status, 415);
    assert.match(none.answers[0].json.error.message, /no Content-Type/);
  });

  test('two Content-Type headers: 415 (which one would be meant?)', async () => {
    const r = await exchange(`POST /v1/link-requests HTTP/1.1\r\n${HOST}Content-Type: application/json\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    assert.equal(r.answers.length, 1);
    assert.equal(r.answers[0].status, 415);
    assert.match(r.answers[0].json.error.message, /more than one Content-Type/);
  });

  test('browser reports: the two report types exactly, not a longer one', async () => {
    const report = JSON.stringify({ 'csp-report': { 'effective-directive': 'img-src', 'blocked-uri': 'https://x.example/' } });
    const r = (ct) => h.api(server.url, 'POST', '/v1/csp-reports', { raw: report, headers: { 'content-type': ct } });
    assert.equal((await r('application/csp-report')).status, 204);
    assert.equal((await r('Application/CSP-Report; charset=utf-8')).status, 204);
    for (const ct of ['application/csp-reportx', 'application/csp-report x', 'application/reports+jsonp', 'application/json']) {
      h.expectError(await r(ct), 415, 'unsupported_media_type');
    }
  });
});
