// This browser's storage and device key.
//
// One IndexedDB database, "linkward", with one key/value store:
//   key    the device key pair (WebCrypto Ed25519; the private half is
//          non-extractable: scripts can sign with it but never read it)
//   device the linked session: id, account, latest challenge, credential expiry
//   lock   the idle-lock settings and the passcode hash
// The session credential itself is an HttpOnly cookie the page cannot read.

import { buildProof } from './proof.mjs';

let DB_NAME = 'linkward';
const STORE = 'kv';

/**
 * Names the database before its first use: the phone app (/phone/) keeps
 * its primary key and session in "linkward-phone", apart from a companion's.
 */
export function useDatabase(name) {
  if (dbPromise) throw new Error('storage is already open');
  DB_NAME = name;
}

let dbPromise = null;
let wiped = false; // after wipe(), nothing may recreate the database until reopen()

function openDb() {
  if (wiped) return Promise.reject(new Error('storage was wiped'));
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const rq = indexedDB.open(DB_NAME, 1);
      rq.onupgradeneeded = () => rq.result.createObjectStore(STORE);
      rq.onsuccess = () => {
        const db = rq.result;
        // Another tab deletes the database, or Clear-Site-Data clears it: let go.
        db.onversionchange = () => { db.close(); dbPromise = null; };
        db.onclose = () => { dbPromise = null; };
        resolve(db);
      };
      rq.onerror = () => { dbPromise = null; reject(rq.error); };
      rq.onblocked = () => { dbPromise = null; reject(new Error('storage is blocked by another tab')); };
    });
  }
  return dbPromise;
}

async function tx(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const rq = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(rq?.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error('storage transaction aborted'));
  });
}

export const get = (k) => tx('readonly', (s) => s.get(k));
export const put = (k, v) => tx('readwrite', (s) => s.put(v, k));
export const del = (k) => tx('readwrite', (s) => s.delete(k));

/** Forgets everything this origin stored in the browser (the cookie is the server's to clear). */
export async function wipe() {
  wiped = true;
  const pending = dbPromise;
  dbPromise = null;
  if (pending) {
    try { (await pending).close(); } catch { /* never opened */ }
  }
  await new Promise((resolve) => {
    const rq = indexedDB.deleteDatabase(DB_NAME);
    rq.onsuccess = rq.onerror = rq.onblocked = () => resolve();
  });
  try { localStorage.clear(); sessionStorage.clear(); } catch { /* storage disabled */ }
  if (globalThis.caches) {
    try { await Promise.all((await caches.keys()).map((k) => caches.delete(k))); } catch { /* ignore */ }
  }
}

/** Allows storage again (a new link after a logout). */
export function reopen() {
  wiped = false;
}

// ---------------------------------------------------------------------------
// The device key

/** True if this browser can make Ed25519 keys (secure context, recent engine). */
export async function supported() {
  if (!globalThis.isSecureContext || !crypto?.subtle || !globalThis.indexedDB) return false;
  try {
    await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    return true;
  } catch {
    return false;
  }
}

/** The stored key pair, or null. */
export const loadKey = () => get('key').then((k) => k || null);

/** The stored key pair, made (non-extractable) and stored on first use. */
export async function deviceKey() {
  const have = await loadKey();
  if (have) return have;
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  await put('key', pair);
  return pair;
}

export async function publicKey(pair) {
  return b64e(await crypto.subtle.exportKey('raw', pair.publicKey));
}

/** Ed25519 by the device key over the message of domain (proof.mjs), base64url. */
export async function signProof(pair, domain, id, raw) {
  return b64e(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, buildProof(domain, id, raw)));
}

// ---------------------------------------------------------------------------
// base64url

export function b64e(buf) {
  const bytes = new Uint8Array(buf);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function b64d(text) {
  const s = String(text).replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(s + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
