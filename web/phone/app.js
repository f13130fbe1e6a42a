// Linkward for phones: the primary device as a web app (PRODUCT §12).
//   register  no account on this phone yet
//   devices   linked devices, rename, log out one or all     (#devices)
//   link      scan a QR code or type a pairing code           (#link)
//   alerts    alerts with their answers                       (#alerts)
//   history   ended sessions                                  (#history)
//   security  PIN and settings                                (#security)
//   ended     this phone's own session is over

import * as session from '../js/session.js';
import { brand, dataUrl, focusHeading, h, icon } from '../js/ui.js';
import { mountLink } from './link.js';
import { mountAlerts, mountDevices, mountHistory, mountSecurity } from './manage.js';
import * as primary from './primary.js';

const root = document.getElementById('app');
const TABS = [
  ['devices', 'Devices', 'computer'],
  ['link', 'Link', 'phone'],
  ['alerts', 'Alerts', 'bell'],
  ['history', 'History', 'refresh'],
  ['security', 'Security', 'lock'],
];
let unmount = null;
let phone = null;
let flash = '';

function mount(name, fill) {
  if (unmount) unmount();
  unmount = null;
  root.replaceChildren();
  document.documentElement.dataset.screen = name;
  unmount = fill() || null;
  focusHeading(root);
}

function go(name) {
  if (location.hash !== `#${name}`) location.hash = name;
  else route();
}

function route() {
  if (!session.device()) return;
  const name = (location.hash || '#devices').slice(1);
  const tab = TABS.some(([n]) => n === name) ? name : 'devices';
  document.title = `${TABS.find(([n]) => n === tab)[1]} · Linkward`;
  mount(tab, () => {
    const main = h('main', { id: 'main', class: 'phone-main' });
    root.append(topbar(), main, nav(tab));
    const ctx = { phone, go, flash, showRecoveryKey, onDone: (msg) => { flash = msg; go('devices'); } };
    flash = '';
    if (tab === 'devices') return mountDevices(main, ctx);
    if (tab === 'link') return mountLink(main, ctx);
    if (tab === 'alerts') return mountAlerts(main, ctx);
    if (tab === 'history') return mountHistory(main, ctx);
    return mountSecurity(main, ctx);
  });
}

const topbar = () => h('header', { class: 'phone-top' }, brand(), h('span', { class: 'handle', testid: 'handle' }, phone?.handle || ''));

function nav(current) {
  return h('nav', { class: 'tabbar', 'aria-label': 'Sections' },
    TABS.map(([name, label, ic]) => h('a', { href: `#${name}`, class: 'tab', testid: `tab-${name}`,
      'aria-current': name === current ? 'page' : null }, icon(ic), h('span', {}, label))));
}

// ---------------------------------------------------------------------------
// Register

function showRegister(problem) {
  document.title = 'Set up · Linkward';
  mount('register', () => {
    const input = h('input', { type: 'text', id: 'handle-input', testid: 'handle-input', autocomplete: 'username', autocapitalize: 'none',
      spellcheck: 'false', maxlength: '64', 'aria-describedby': 'handle-help' });
    const invite = h('input', { type: 'text', id: 'invite-input', testid: 'invite-input', autocomplete: 'off', maxlength: '128' });
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'register-error' }, problem || '');
    const btn = h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'register-submit' }, 'Create my account');
    const form = h('form', { class: 'form', novalidate: true },
      h('label', { for: 'handle-input' }, 'Your handle'),
      h('p', { class: 'muted small', id: 'handle-help' }, 'A phone number (+351912345678) or a user name (3 to 32 letters, digits, ".", "_", "-").'),
      input,
      h('details', { class: 'code-alt' }, h('summary', {}, 'I have an invitation code'),
        h('div', { class: 'form' }, h('label', { for: 'invite-input' }, 'Invitation code'), invite)),
      err, btn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const handle = input.value.trim();
      const why = primary.handleProblem(handle);
      if (why) {
        err.textContent = why;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      input.removeAttribute('aria-invalid');
      btn.disabled = true;
      err.textContent = '';
      try {
        const answer = await primary.register(handle, invite.value.trim() || undefined);
        phone = await primary.phoneInfo();
        const key = answer.recovery_key;
        delete answer.recovery_key;
        await session.begin(answer);
        showRecoveryKey(key, () => go('devices'));
      } catch (e) {
        err.textContent = e.code === 'handle_taken' ? 'This handle is already registered. Choose another.'
          : e.code === 'invite_required' ? 'This server registers by invitation: open “I have an invitation code” and enter yours.'
            : e.message;
        btn.disabled = false;
      }
    });
    root.append(h('main', { id: 'main', class: 'phone-main register', testid: 'phone-register' },
      h('div', { class: 'register-band' }, brand()),
      h('section', { class: 'card', 'aria-labelledby': 'reg-title' },
        h('h1', { id: 'reg-title', class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'Make this phone your Linkward'),
        h('p', { class: 'muted' }, 'This phone holds your account key. You use it to link computers and to log them out.'),
        form),
      h('section', { class: 'card', 'aria-labelledby': 'have-title' },
        h('h2', { id: 'have-title', class: 'card-title' }, icon('phone'), 'I already have an account'),
        h('button', { class: 'btn btn-block', type: 'button', testid: 'move-start', onclick: () => showMoveHere() }, 'Move from my old phone'),
        h('button', { class: 'btn btn-block', type: 'button', testid: 'recover-start', onclick: () => showRecover() }, 'I lost my phone'))));
  });
}

// ---------------------------------------------------------------------------
// The recovery key, shown once and confirmed

/** Shows key once; then() runs when the person confirmed it by retyping one group. */
function showRecoveryKey(key, then) {
  document.title = 'Your recovery key · Linkward';
  const groups = key.split('-');
  const ask = 1 + Math.floor(Math.random() * groups.length); // 1-based
  mount('recovery-key', () => {
    const copied = h('p', { class: 'form-status ok', role: 'status', testid: 'recovery-copied' });
    const copy = h('button', { class: 'btn btn-block', type: 'button', testid: 'recovery-copy' }, 'Copy');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(key);
        copied.textContent = 'Copied. Keep it somewhere safe, away from this phone.';
      } catch {
        copied.textContent = 'This browser would not copy it: write it down instead.';
      }
    });
    const input = h('input', { type: 'text', id: 'recovery-confirm', testid: 'recovery-confirm', autocomplete: 'off',
      autocapitalize: 'characters', spellcheck: 'false', maxlength: '9' });
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'recovery-error' });
    const go_ = h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'recovery-done' }, 'I have saved it');
    const form = h('form', { class: 'form', novalidate: true },
      h('label', { for: 'recovery-confirm' }, `To be sure you have it, type group ${ask} of your key`), input, err, go_);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const typed = input.value.trim().toUpperCase().replace(/0/g, 'O').replace(/1/g, 'I');
      if (typed !== groups[ask - 1]) {
        err.textContent = `That is not group ${ask} of the key above. Look again: groups are 4 letters or digits.`;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      then();
    });
    root.append(h('main', { id: 'main', class: 'phone-main', testid: 'recovery-key-screen' },
      h('section', { class: 'card', 'aria-labelledby': 'rk-title' },
        h('h1', { id: 'rk-title', class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'Your recovery key'),
        h('p', {}, 'If you lose this phone, this key and your handle give your account back on a new one (every linked device is then logged out). It is shown only now: Linkward keeps only a check of it.'),
        h('p', { class: 'recovery-key', testid: 'recovery-key' }, groups.map((g, i) => h('span', { 'data-group': String(i + 1) }, g))),
        copy, copied, form)));
  });
}

// ---------------------------------------------------------------------------
// A new phone: move from the old one, or recover with the recovery key

function showMoveHere() {
  document.title = 'Move from my old phone · Linkward';
  let stopped = false;
  mount('move-here', () => {
    const status = h('p', { class: 'form-status', role: 'status', testid: 'move-status' }, 'Preparing…');
    const code = h('p', { class: 'pair-code', testid: 'move-code' });
    const qr = h('img', { class: 'phone-app-qr', alt: 'QR code for your old phone', testid: 'move-qr', width: '220', height: '220' });
    root.append(h('main', { id: 'main', class: 'phone-main', testid: 'move-screen' },
      h('section', { class: 'card', 'aria-labelledby': 'mv-title' },
        h('h1', { id: 'mv-title', class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'Move from my old phone'),
        h('p', {}, 'On your old phone open Linkward › Security › Move to a new phone, and type this code (or scan it). The old phone then stops being your Linkward; your linked computers stay linked.'),
        qr, code, status,
        h('button', { class: 'btn btn-block', type: 'button', onclick: () => { stopped = true; showRegister(); } }, 'Back'))));
    (async () => {
      let t;
      try {
        t = await primary.startMove();
      } catch (e) {
        status.textContent = `Cannot start: ${e.message}`;
        return;
      }
      code.textContent = t.code;
      qr.src = dataUrl('image/svg+xml', t.qr_svg);
      status.textContent = 'Waiting for your old phone…';
      const until = Date.now() + t.expires_in * 1000;
      while (!stopped) {
        await new Promise((r) => setTimeout(r, 1000));
        if (stopped) return;
        if (Date.now() > until) { status.textContent = 'This code expired. Go back and start again.'; return; }
        let answer;
        try {
          answer = await primary.claimMove(t);
        } catch (e) {
          status.textContent = e.code === 'expired' ? 'This code expired. Go back and start again.' : `Cannot move: ${e.message}`;
          return;
        }
        if (!answer) continue;
        phone = await primary.phoneInfo();
        await session.begin(answer);
        try {
          const n = await primary.resignCompanions(session.call);
          flash = n ? `This phone is your Linkward now; it signed your ${n} linked device${n === 1 ? '' : 's'} again.` : 'This phone is your Linkward now.';
        } catch (e) {
          flash = `This phone is your Linkward now, but re-signing your devices failed: ${e.message}`;
        }
        go('devices');
        return;
      }
    })();
    return () => { stopped = true; };
  });
}

function showRecover() {
  document.title = 'I lost my phone · Linkward';
  mount('recover', () => {
    const handle = h('input', { type: 'text', id: 'recover-handle', testid: 'recover-handle', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', maxlength: '64' });
    const key = h('input', { type: 'text', id: 'recover-key', testid: 'recover-key', autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', maxlength: '63' });
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'recover-error' });
    const btn = h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'recover-submit' }, 'Recover my account');
    const form = h('form', { class: 'form', novalidate: true },
      h('label', { for: 'recover-handle' }, 'Your handle'), handle,
      h('label', { for: 'recover-key' }, 'Your recovery key'), key, err, btn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const why = primary.handleProblem(handle.value.trim()) || primary.recoveryKeyProblem(key.value.trim());
      if (why) { err.textContent = why; return; }
      btn.disabled = true;
      try {
        const answer = await primary.recover(handle.value.trim(), key.value.trim());
        phone = await primary.phoneInfo();
        const next = answer.recovery_key;
        const ended = answer.ended;
        delete answer.recovery_key;
        delete answer.ended;
        await session.begin(answer);
        flash = `Your account is back on this phone; ${ended} device${ended === 1 ? ' was' : 's were'} logged out.`;
        showRecoveryKey(next, () => go('devices'));
      } catch (e) {
        err.textContent = e.code === 'recovery_refused' ? 'This handle and recovery key do not match. Check both and try again.' : e.message;
        btn.disabled = false;
      }
    });
    root.append(h('main', { id: 'main', class: 'phone-main', testid: 'recover-screen' },
      h('section', { class: 'card', 'aria-labelledby': 'rc-title' },
        h('h1', { id: 'rc-title', class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'I lost my phone'),
        h('p', {}, 'Your handle and the recovery key you saved make this phone your Linkward. Every device linked to the account is logged out, the lost phone too.'),
        form,
        h('button', { class: 'btn btn-block', type: 'button', onclick: () => showRegister() }, 'Back'))));
  });
}

function showUnsupported(reason) {
  document.title = 'Linkward';
  mount('unsupported', () => root.append(h('main', { id: 'main', class: 'phone-main' },
    h('section', { class: 'card', testid: 'unsupported' },
      h('h1', { class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'This browser cannot hold your account'),
      h('p', {}, reason)))));
}

function showEnded(message) {
  document.title = 'Signed out · Linkward';
  mount('ended', () => root.append(h('main', { id: 'main', class: 'phone-main' },
    h('section', { class: 'card', testid: 'session-ended' },
      h('h1', { class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'This phone is no longer your Linkward'),
      h('p', {}, message || 'Its session ended.'),
      h('button', { class: 'btn btn-primary btn-block', type: 'button', onclick: () => location.reload() }, 'Start again')))));
}

// ---------------------------------------------------------------------------
// Start

async function start() {
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/phone/sw.js', { scope: '/phone/' }).catch(() => {});
  const reason = await primary.unsupportedReason();
  if (reason) return showUnsupported(reason);
  session.events.addEventListener('ended', (e) => showEnded(e.detail.message));
  window.addEventListener('hashchange', route);
  const stored = await primary.store.get('device').catch(() => null);
  phone = await primary.phoneInfo().catch(() => null);
  if (stored && phone) {
    try {
      await session.resume(stored);
      return route();
    } catch (e) {
      if (session.isEnded()) return undefined; // the 'ended' screen is up
      return showRegister(`Cannot reach your account: ${e.message}`);
    }
  }
  if (await primary.companionHere()) {
    return showRegister('This browser is linked to Linkward as a computer. Use the phone app in a browser of its own (on your phone): one site keeps one session per browser.');
  }
  return showRegister();
}

start();
