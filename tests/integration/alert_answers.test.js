// Only the primary answers alerts (docs/api.md "Alerts"): a companion in the
// wrong hands must not silence the alert about itself, about another device,
// or about a stolen credential. Every answer records the device that gave it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
before(async () => { server = await h.startServer(); });
after(async () => { await server?.stop(); });

const PHONE_SENTENCE = /Only your phone can answer alerts\. Answer this one on your phone/;

test('a companion gets 403 with a sentence sending it to the phone; the phone answers and is recorded', async () => {
  const phone = await h.registerPrimary(server.url, h.uniqueHandle('answers'));
  const a = await h.linkCompanionApi(server.url, phone);
  const b = await h.linkCompanionApi(server.url, phone);
  const c = await h.linkCompanionApi(server.url, phone);
  // A stolen credential of c: a refresh without the device key raises token.theft_suspected.
  const thief = await h.api(server.url, 'POST', '/v1/session/refresh', { token: c.token, body: { signature: h.b64e(Buffer.alloc(64)) } });
  h.expectError(thief, 401, 'token_theft');
  const alerts = await phone.alerts();
  const aboutB = alerts.find((x) => x.kind === 'device.linked' && x.device_id === b.deviceId);
  const aboutA = alerts.find((x) => x.kind === 'device.linked' && x.device_id === a.deviceId);
  const theft = alerts.find((x) => x.kind === 'token.theft_suspected' && x.device_id === c.deviceId);
  assert.ok(aboutA && aboutB && theft, JSON.stringify(alerts.map((x) => x.kind)));
  assert.equal(aboutB.answered_by, null);

  // Companion a may answer none of them: not the one about another device,
  // not the theft alert, not the one about itself; and in no form.
  for (const alert of [aboutB, theft, aboutA]) {
    const res = await a.post(`/v1/alerts/${alert.id}/ack`, {});
    h.expectError(res, 403, 'forbidden');
    assert.match(res.json.error.message, PHONE_SENTENCE);
  }
  h.expectError(await a.post(`/v1/alerts/${aboutB.id}/ack`, { answer: 'it_was_me' }), 403, 'forbidden');
  // The refusal comes before anything else: even a bad body or an unknown alert is a 403.
  h.expectError(await a.post(`/v1/alerts/${aboutB.id}/ack`, { answer: 'nonsense' }), 403, 'forbidden');
  h.expectError(await a.post('/v1/alerts/no-such-alert/ack', {}), 403, 'forbidden');
  // The other answers are the primary's routes already.
  h.expectError(await a.del(`/v1/devices/${b.deviceId}`, { body: { alert_id: aboutB.id } }), 403, 'forbidden');
  h.expectError(await a.post('/v1/account/secure', { alert_id: theft.id }), 403, 'forbidden');
  // Nothing was recorded.
  for (const x of await phone.alerts()) {
    assert.equal(x.acked, false, `${x.kind} stays unanswered`);
    assert.equal(x.answer, null);
    assert.equal(x.answered_by, null);
  }

  // The phone answers; GET /v1/alerts shows the answer and who gave it, to every device.
  const ok = h.expectStatus(await phone.post(`/v1/alerts/${theft.id}/ack`, {}), 200);
  assert.deepEqual(ok, { acked: true, answer: 'it_was_me', answered_by: phone.deviceId });
  const out = h.expectStatus(await phone.del(`/v1/devices/${b.deviceId}`, { body: { alert_id: aboutB.id } }), 200);
  assert.deepEqual(out.answered, { alert_id: aboutB.id, answer: 'logged_out_device' });
  for (const viewer of [phone, a]) {
    const list = await viewer.alerts();
    const t = list.find((x) => x.id === theft.id);
    assert.equal(t.acked, true);
    assert.equal(t.answer, 'it_was_me');
    assert.equal(t.answered_by, phone.deviceId);
    const l = list.find((x) => x.id === aboutB.id);
    assert.equal(l.answer, 'logged_out_device');
    assert.equal(l.answered_by, phone.deviceId);
    assert.equal(list.find((x) => x.id === aboutA.id).answered_by, null);
  }
  const sec = h.expectStatus(await phone.post('/v1/account/secure', { alert_id: aboutA.id }), 200);
  assert.deepEqual(sec.answered, { alert_id: aboutA.id, answer: 'secured_account' });
  const after = (await phone.alerts()).find((x) => x.id === aboutA.id);
  assert.equal(after.answer, 'secured_account');
  assert.equal(after.answered_by, phone.deviceId);
});
