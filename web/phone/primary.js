// The phone app as a primary device: its account key, registration, the
// account signature over a companion's key, and the checks of a scanned QR
// payload that `linkward phone link` makes (src/cli/cli_phone.c).
//
// The key is a WebCrypto Ed25519 key made non-extractable: scripts of this
// page can sign with it but never read it, and it lives in IndexedDB
// ("linkward-phone", apart from a companion's "linkward"). The credential is
// an HttpOnly cookie, as for the web client: registration answers with a
// bearer token, which is traded at once for the cookie by a refresh signed
// with the key (the same proof as web/js/session.js), so the live socket,
// which a page cannot give an Authorization header, is authenticated too.

import { ApiError, request } from '../js/api.js';
import * as store from '../js/keys.js';
import * as proof from '../js/proof.mjs';

store.useDatabase('linkward-phone');
export { store };

export const SUPPORTED = 'Chrome 137, Edge 137, Firefox 129 and Safari 17 (iOS 17) or newer';

/** Why this browser cannot be a primary, as a sentence; '' when it can. */
export async function unsupportedReason() {
  if (!globalThis.isSecureContext) {
    return 'This page is not in a secure context: open it over HTTPS (or on localhost). ' +
      'The camera, the key store and offline use need it.';
  }
  if (!globalThis.indexedDB) return 'This browser keeps no storage for this site (IndexedDB is off), so it cannot hold your account key.';
  if (!(await store.supported())) {
    return `This browser cannot make Ed25519 keys with WebCrypto. Use ${SUPPORTED}.`;
  }
  return '';
}

/** An E.164 number ("+" and 8-15 digits) or a user name of 3-32 of a-z 0-9 . _ - (as the CLI checks). */
export function handleProblem(handle) {
  if (!handle) return 'Enter a handle: your phone number (+351…) or a user name.';
  if (handle.startsWith('+')) {
    return /^\+[0-9]{8,15}$/.test(handle) ? '' : 'A phone number is + and 8 to 15 digits, like +351912345678.';
  }
  return /^[A-Za-z0-9._-]{3,32}$/.test(handle)
    ? '' : 'A user name is 3 to 32 letters, digits, ".", "_" or "-" (no spaces).';
}

/** True when this browser holds a linked companion (web client) session: one origin, one session cookie. */
export async function companionHere() {
  try {
    const dbs = await indexedDB.databases();
    return dbs.some((d) => d.name === 'linkward');
  } catch {
    return false;
  }
}

/**
 * Registers handle with a new key. Returns the answer to hand to
 * session.begin (device id, account, challenge, credential lifetime).
 */
export async function register(handle, invite) {
  const pair = await freshKey();
  const body = { handle, public_key: await store.publicKey(pair), client: { name: 'Phone' } };
  if (invite) body.invite = invite;
  const acct = await request('POST', '/v1/accounts', body);
  const answer = await adopt(pair, acct);
  // Shown once, never stored on the phone.
  answer.recovery_key = acct.recovery_key;
  return answer;
}

/** A new non-extractable account key in place of any earlier one, storage kept if the browser agrees. */
async function freshKey() {
  await store.del('key').catch(() => {});
  const pair = await store.deviceKey();
  try { await navigator.storage?.persist?.(); } catch { /* asked; the browser decides */ }
  return pair;
}

/**
 * Makes this phone the primary of acct (an answer of registration, recovery
 * or a claimed transfer, bearer token included): trades the bearer token for
 * the cookie with a refresh signed by pair, and keeps what the phone pins.
 * Returns the answer for session.begin.
 */
async function adopt(pair, acct) {
  const signature = await store.signProof(pair, proof.REFRESH, acct.device_id, store.b64d(acct.challenge));
  let res;
  try {
    res = await fetch('/v1/session/refresh', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${acct.token}` },
      body: JSON.stringify({ signature, credential: 'cookie' }),
    });
  } catch {
    throw new ApiError(0, null);
  }
  const ans = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, ans);
  await store.put('phone', { account_id: acct.account_id, handle: acct.handle, server_key: acct.server_key, origin: acct.origin });
  return {
    device_id: acct.device_id, account_id: acct.account_id, handle: acct.handle,
    challenge: ans.challenge, token_expires_in: ans.token_expires_in, persistent: true,
  };
}

/** "ABCD-EFGH-…" as a person may type it: 32 letters of A-Z and 2-7; '' when it is one. */
export function recoveryKeyProblem(text) {
  const letters = text.toUpperCase().replace(/[\s-]/g, '').replace(/0/g, 'O').replace(/1/g, 'I');
  if (!letters) return 'Enter your recovery key.';
  if (!/^[A-Z2-7]*$/.test(letters)) return 'A recovery key has only letters A to Z and digits 2 to 7.';
  if (letters.length !== 32) return `A recovery key has 32 letters and digits; this has ${letters.length}.`;
  return '';
}

/** "I lost my phone": handle + recovery key + a new key made here. The answer carries the next recovery key. */
export async function recover(handle, recoveryKey) {
  const pair = await freshKey();
  const acct = await request('POST', '/v1/account/recover',
    { handle, recovery_key: recoveryKey, public_key: await store.publicKey(pair), client: { name: 'Phone' } });
  const answer = await adopt(pair, acct);
  answer.recovery_key = acct.recovery_key;
  answer.ended = acct.ended;
  return answer;
}

/** "Move to a new phone", on the new phone: a new key and a transfer for the old phone to approve. */
export async function startMove() {
  const pair = await freshKey();
  return request('POST', '/v1/transfers', { public_key: await store.publicKey(pair) });
}

/** Asks whether the old phone approved: null while not; then this phone is the primary (answer for session.begin). */
export async function claimMove(t) {
  const acct = await request('POST', `/v1/transfers/${encodeURIComponent(t.id)}/claim`, { token: t.token, client: { name: 'Phone' } });
  if (acct.state === 'pending') return null;
  const pair = await store.loadKey();
  return adopt(pair, acct);
}

/**
 * After a move, the companions' records carry the old key's signature: sign
 * each companion's key with this phone's key (call is session.call).
 * Returns how many were re-signed.
 */
export async function resignCompanions(call) {
  const me = await phoneInfo();
  const { devices } = await call('GET', '/v1/devices');
  const signatures = [];
  for (const d of devices) {
    if (d.role === 'primary' || await signedByMe(me.account_id, d)) continue;
    signatures.push({ device_id: d.id, account_signature: await accountSignature(me.account_id, d.public_key) });
  }
  if (!signatures.length) return 0;
  return (await call('POST', '/v1/devices/signatures', { signatures })).signed;
}

export const phoneInfo = () => store.get('phone').then((p) => p || null);

/** The account signature over a companion's key (base64url), as the CLI makes it. */
export async function accountSignature(accountId, companionKey) {
  const pair = await store.loadKey();
  if (!pair) throw new Error('This phone has lost its account key.');
  return store.signProof(pair, proof.ACCOUNT, accountId, store.b64d(companionKey));
}

/** Whether a session record's account signature verifies with this phone's key. */
export async function signedByMe(accountId, rec) {
  if (rec.role === 'primary') return true;
  try {
    const pair = await store.loadKey();
    const msg = proof.buildProof(proof.ACCOUNT, accountId, store.b64d(rec.public_key));
    return await crypto.subtle.verify({ name: 'Ed25519' }, pair.publicKey, store.b64d(rec.account_signature || ''), msg);
  } catch {
    return false;
  }
}

/**
 * Checks a QR payload ("lw1:origin.ref.fp.sig", base64url fields) offline,
 * as `linkward phone link` does: this server's origin and its signature with
 * the key pinned at registration. Returns '' or why it is refused.
 */
export async function payloadProblem(text, phone) {
  const m = /^lw1:([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(text);
  if (!m) return 'This is not a Linkward QR code.';
  try {
    const origin = new TextDecoder('utf-8', { fatal: true }).decode(store.b64d(m[1]));
    const ref = store.b64d(m[2]);
    const fp = store.b64d(m[3]);
    const sig = store.b64d(m[4]);
    if (origin !== (phone?.origin || location.origin)) {
      return `This QR code is for another site (${origin}), not ${phone?.origin || location.origin}: do not link it.`;
    }
    if (ref.length !== 16 || fp.length !== 32 || sig.length !== 64) return 'This is not a Linkward QR code.';
    if (phone?.server_key) {
      const raw = new Uint8Array(48);
      raw.set(ref, 0);
      raw.set(fp, 16);
      const key = await crypto.subtle.importKey('raw', store.b64d(phone.server_key), { name: 'Ed25519' }, false, ['verify']);
      const ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, sig, proof.buildProof(proof.QR, origin, raw));
      if (!ok) return 'This QR code was not made by your Linkward server: do not link it.';
    }
    return '';
  } catch {
    return 'This is not a Linkward QR code.';
  }
}

/** "ABCD-EFGH" from what was typed (spaces, dashes, lower case), or null. */
export function normaliseCode(text) {
  const s = String(text || '').toUpperCase().replace(/[\s-]/g, '');
  return /^[A-Z0-9]{8}$/.test(s) ? `${s.slice(0, 4)}-${s.slice(4)}` : null;
}
