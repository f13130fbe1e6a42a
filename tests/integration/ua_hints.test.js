// Browser, OS and device model from the User-Agent (uap-core) refined by
// User-Agent Client Hints, as the phone sees them when it scans (PRODUCT §4).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
let phone;

before(async () => {
  server = await h.startServer();
  phone = await h.registerPrimary(server.url, h.uniqueHandle('ua'));
});

after(async () => {
  await server?.stop();
});

async function whoIsAsking(headers) {
  const req = await h.createLinkRequest(server.url, { headers });
  return h.expectStatus(await h.scan(phone, req.payload), 200).request;
}

test('the server asks browsers for client hints', async () => {
  const r = await h.api(server.url, 'GET', '/v1/health');
  assert.match(r.headers.get('accept-ch') || '', /Sec-CH-UA-Platform-Version/);
  assert.match(r.headers.get('accept-ch') || '', /Sec-CH-UA-Model/);
  // Only hints the server reads: it never uses the full version list.
  assert.doesNotMatch(r.headers.get('accept-ch') || '', /Full-Version-List/i);
});

test('a desktop Chrome: the frozen User-Agent says Windows 10, the hints say Windows 11', async () => {
  const ua = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
  const plain = await whoIsAsking({ 'user-agent': ua });
  assert.equal(plain.browser, 'Chrome');
  assert.equal(plain.os, 'Windows');
  assert.equal(plain.os_version, '10');
  assert.equal(plain.name, 'Chrome on Windows');
  const hinted = await whoIsAsking({
    'user-agent': ua,
    'sec-ch-ua': '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    'sec-ch-ua-platform': '"Windows"',
    'sec-ch-ua-platform-version': '"15.0.0"',
  });
  assert.equal(hinted.browser, 'Chrome');
  assert.equal(hinted.os, 'Windows');
  assert.equal(hinted.os_version, '11');
});

test('an Android phone: the model comes from Sec-CH-UA-Model', async () => {
  const ua = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36';
  const r = await whoIsAsking({
    'user-agent': ua,
    'sec-ch-ua-platform': '"Android"',
    'sec-ch-ua-platform-version': '"14.0.0"',
    'sec-ch-ua-model': '"Pixel 8"',
  });
  assert.equal(r.os, 'Android');
  assert.equal(r.os_version, '14');
  assert.equal(r.device_model, 'Pixel 8');
});

test('uap-core families for other browsers', async () => {
  const ff = await whoIsAsking({ 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' });
  assert.equal(ff.browser, 'Firefox');
  assert.equal(ff.browser_version, '128.0');
  assert.equal(ff.os, 'Linux');
  const iphone = await whoIsAsking({
    'user-agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
  });
  assert.equal(iphone.browser, 'Mobile Safari');
  assert.equal(iphone.os, 'iOS');
  assert.equal(iphone.os_version, '17.1');
  assert.equal(iphone.device_model, 'iPhone');
});

test('hostile hints are bounded and cannot break the record', async () => {
  const r = await whoIsAsking({
    'user-agent': 'x'.repeat(6000),
    'sec-ch-ua': `"${'A'.repeat(3000)}";v="1"`,
    'sec-ch-ua-model': '"\\u0000evil\\nname"',
  });
  assert.ok(r.browser.length < 64 && r.os.length < 64 && r.device_model.length < 64);
  assert.doesNotMatch(r.device_model, /[\u0000-\u001f]/);
});
