// Linkward for phones: the primary device as a web app (PRODUCT §12).
//   register  no account on this phone yet
//   devices   linked devices, rename, log out one or all     (#devices)
//   link      scan a QR code or type a pairing code           (#link)
//   alerts    alerts with their answers                       (#alerts)
//   history   ended sessions                                  (#history)
//   security  PIN and settings                                (#security)
//   ended     this phone's own session is over

import * as session from '../js/session.js';
import { brand, focusHeading, h, icon } from '../js/ui.js';
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
    const ctx = { phone, go, flash, onDone: (msg) => { flash = msg; go('devices'); } };
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
        await session.begin(answer);
        go('devices');
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
        form)));
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
