// Idle lock (PRODUCT §3): after a chosen idle time the page is replaced by a
// lock screen that needs this browser's passcode. The passcode is kept only as
// a salted PBKDF2 hash in IndexedDB. Locking keeps the session; five wrong
// passcodes log this browser out.

import * as store from './keys.js';
import { brand, h, icon } from './ui.js';

export const CHOICES = [
  { id: 'off', label: 'Off', ms: 0 },
  { id: '1m', label: 'After 1 minute', ms: 60 * 1000 },
  { id: '15m', label: 'After 15 minutes', ms: 15 * 60 * 1000 },
  { id: '1h', label: 'After 1 hour', ms: 60 * 60 * 1000 },
];
export const MAX_TRIES = 5;
export const MIN_LENGTH = 4;
const ITERATIONS = 200000;

const DEFAULTS = { idle: 'off', hash: null, salt: null, failures: 0, locked: false, last_active: 0 };

export async function settings() {
  return { ...DEFAULTS, ...((await store.get('lock').catch(() => null)) || {}) };
}

/**
 * The idle time in ms (0: off). `<html data-idle-ms="…">` overrides the
 * chosen time, so tests need not wait a minute.
 */
export function idleMs(s) {
  const choice = CHOICES.find((c) => c.id === s.idle)?.ms || 0;
  if (!choice || !s.hash) return 0;
  const override = Number(document.documentElement.dataset.idleMs);
  return override > 0 ? override : choice;
}

async function derive(passcode, salt) {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(passcode), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: ITERATIONS }, base, 256);
  return store.b64e(bits);
}

/** Saves the idle time and, when given, a new passcode. "off" forgets the passcode. */
export async function save(idle, passcode) {
  const s = await settings();
  if (idle === 'off') {
    await store.put('lock', { ...DEFAULTS });
    return;
  }
  if (passcode) {
    const salt = crypto.getRandomValues(new Uint8Array(16));
    s.salt = store.b64e(salt);
    s.hash = await derive(passcode, salt);
  }
  if (!s.hash) throw new Error('Choose a passcode first.');
  await store.put('lock', { ...s, idle, failures: 0, locked: false, last_active: Date.now() });
}

/** Checks a passcode: {ok, left}. Wrong ones are counted in storage (a reload does not reset them). */
export async function check(passcode) {
  const s = await settings();
  if (!s.hash) return { ok: true, left: MAX_TRIES };
  const ok = (await derive(passcode, store.b64d(s.salt))) === s.hash;
  const failures = ok ? 0 : s.failures + 1;
  await store.put('lock', { ...s, failures, locked: !ok, last_active: Date.now() });
  return { ok, left: Math.max(0, MAX_TRIES - failures) };
}

export async function setLocked(locked) {
  const s = await settings();
  if (s.hash) await store.put('lock', { ...s, locked, last_active: Date.now() });
}

/** True if the page must start locked: locked before, or idle for longer than allowed while closed. */
export async function lockedAtStart() {
  const s = await settings();
  const ms = idleMs(s);
  if (!ms) return false;
  return s.locked || (s.last_active > 0 && Date.now() - s.last_active > ms);
}

/**
 * Calls onIdle once no input came for the idle time. Returns stop().
 * Activity is written to storage at most every 15 s, so a page closed and
 * reopened later still locks.
 */
export function watchIdle(onIdle) {
  let timer = 0;
  let lastWrite = 0;
  let stopped = false;
  let current = { ...DEFAULTS };

  function restart() {
    clearTimeout(timer);
    const ms = idleMs(current);
    if (ms && !stopped) timer = setTimeout(() => { if (!stopped) onIdle(); }, ms);
    return ms;
  }
  async function arm() {
    current = await settings();
    restart();
  }
  function activity() {
    if (stopped || !restart()) return;
    const now = Date.now();
    if (now - lastWrite > 15000) {
      lastWrite = now;
      settings().then((s) => s.hash && !s.locked && store.put('lock', { ...s, last_active: now })).catch(() => {});
    }
  }
  const kinds = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll'];
  for (const k of kinds) window.addEventListener(k, activity, { passive: true, capture: true });
  arm();
  return {
    rearm: arm,
    stop() {
      stopped = true;
      clearTimeout(timer);
      for (const k of kinds) window.removeEventListener(k, activity, { capture: true });
    },
  };
}

/** The lock screen. opts: {onUnlock(), onTooMany()}; returns unmount. */
export function mountLock(root, { onUnlock, onTooMany, onLogout }) {
  const input = h('input', { id: 'passcode', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'lock-error' });
  const error = h('p', { id: 'lock-error', class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Unlock');
  const form = h('form', { class: 'lock-form', novalidate: true },
    h('label', { for: 'passcode' }, 'Passcode'), input, error, submit);
  let gone = false;

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!input.value) {
      error.textContent = 'Enter the passcode.';
      input.focus();
      return;
    }
    submit.disabled = true;
    input.disabled = true;
    const { ok, left } = await check(input.value);
    if (gone) return;
    if (ok) {
      onUnlock();
      return;
    }
    if (left <= 0) {
      onTooMany();
      return;
    }
    input.value = '';
    input.disabled = false;
    submit.disabled = false;
    error.textContent = `Wrong passcode. ${left} ${left === 1 ? 'try' : 'tries'} left before this browser is logged out.`;
    input.focus();
  });

  const logout = h('button', { type: 'button', class: 'link-btn' }, 'Forgot it? Log out this browser');
  logout.addEventListener('click', () => onLogout());

  root.append(h('main', { class: 'lock-page', id: 'main', testid: 'lock-screen' },
    h('div', { class: 'card lock-card' },
      brand(),
      h('span', { class: 'lock-icon' }, icon('lock', 'icon icon-xl')),
      h('h1', { tabindex: '-1', 'data-focus': '' }, 'Linkward is locked'),
      h('p', { class: 'muted' }, 'This browser was idle. Enter its passcode to continue.'),
      form,
      logout)));
  settings().then((s) => {
    if (!gone && s.failures > 0) error.textContent = `${MAX_TRIES - s.failures} tries left before this browser is logged out.`;
  });
  queueMicrotask(() => input.focus());
  return () => { gone = true; };
}
