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
  await store.del('key').catch(() => {});
  const pair = await store.deviceKey();
  try { await navigator.storage?.persist?.(); } catch { /* asked; the browser decides */ }
  const body = { handle, public_key: await store.publicKey(pair), client: { name: 'Phone' } };
  if (invite) body.invite = invite;
  const acct = await request('POST', '/v1/accounts', body);
  // The bearer token, once, for the cookie.
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
