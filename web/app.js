// Linkward web client: which screen shows when.
//   link      not linked yet (or linked again after a logout)
//   home      this device, linked devices, alerts        (#)
//   settings  device name, idle lock, log out            (#settings)
//   lock      idle lock: account data is removed from the DOM
//   ended     "You were logged out", with the reason

import { Popups, rememberNames } from './js/alerts.js';
import { mountHome } from './js/home.js';
import * as store from './js/keys.js';
import { mountLink } from './js/link.js';
import * as lock from './js/lock.js';
import * as session from './js/session.js';
import { mountSettings } from './js/settings.js';
import { brand, focusHeading, h, icon } from './js/ui.js';

const root = document.getElementById('app');
const popups = new Popups();
let unmount = null;
let screen = 'boot';
let idle = null;

function mount(name, fill) {
  if (unmount) unmount();
  unmount = null;
  root.replaceChildren();
  screen = name;
  document.documentElement.dataset.screen = name;
  unmount = fill() || null;
  focusHeading(root);
}

// ---------------------------------------------------------------------------
// Screens

function showLink(notice) {
  stopIdle();
  popups.clear();
  document.title = 'Link this browser · Linkward';
  mount('link', () => mountLink(root, { onLinked, notice }));
}

async function onLinked(answer) {
  await session.begin(answer);
  if (location.hash) history.replaceState(null, '', location.pathname);
  route();
  startIdle();
}

/** A signed-in screen: top bar, main, pop-ups. */
function signedIn(name, fill) {
  mount(name, () => {
    const main = h('main', { id: 'main', class: 'app-main' });
    const box = h('div', { class: 'popups', 'aria-label': 'Notifications' });
    root.append(topbar(name), main, box);
    popups.attach(box);
    const done = fill(main);
    return () => {
      popups.detach();
      done?.();
    };
  });
}

function topbar(active) {
  const link = (href, label, name) => h('a', { href, class: 'nav-link', 'aria-current': active === name ? 'page' : null }, label);
  const skip = h('a', { href: '#main', class: 'skip' }, 'Skip to content');
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    document.querySelector('[data-focus]')?.focus();
  });
  const out = h('button', { type: 'button', class: 'btn btn-ghost topbar-logout', testid: 'logout' }, 'Log out');
  out.addEventListener('click', () => logout(out));
  return h('header', { class: 'topbar' },
    h('div', { class: 'topbar-inner' },
      skip,
      brand(),
      h('nav', { class: 'nav', 'aria-label': 'Main' },
        link('#', 'Devices', 'home'),
        link('#settings', 'Settings', 'settings')),
      h('span', { class: 'handle', title: 'Your account' }, session.device()?.handle || ''),
      out));
}

function route() {
  if (screen === 'lock' || screen === 'ended' || !session.device() || session.isEnded()) return;
  if (location.hash === '#settings') {
    document.title = 'Settings · Linkward';
    signedIn('settings', (main) => mountSettings(main, {
      onLockChanged: () => idle?.rearm(),
      onLockNow: lockNow,
      onLogout: logout,
    }));
  } else {
    document.title = 'Linked devices · Linkward';
    signedIn('home', (main) => mountHome(main, { popups }));
  }
}

async function logout(button, message) {
  if (button) {
    button.disabled = true;
    button.textContent = 'Logging out…';
  }
  try {
    await session.logout(message);
  } catch (e) {
    if (button) {
      button.disabled = false;
      button.textContent = 'Log out';
    }
    toast(`Could not log out: ${e.message}`);
  }
}

// Headlines for the ends that are not simply "logged out", and their sentence;
// for the other reasons the sentence is the server's (it names the reason).
const ENDED_TITLES = {
  account_deleted: 'The account was deleted',
};
const ENDED_TEXT = {
  account_deleted: 'The account was deleted from its phone. Every device linked to it was logged out.',
};

function showEnded({ reason, message }) {
  stopIdle();
  popups.clear();
  const title = ENDED_TITLES[reason] || 'You were logged out';
  document.title = `${title} · Linkward`;
  mount('ended', () => {
    const again = h('button', { type: 'button', class: 'btn btn-primary' }, 'Link this browser again');
    again.addEventListener('click', () => showLink());
    root.append(h('main', { class: 'center-page', id: 'main' },
      h('section', { class: 'card ended-card', testid: 'session-ended', 'data-reason': reason || '', 'aria-labelledby': 'ended-title' },
        brand(),
        h('span', { class: 'ended-icon' }, icon('shield', 'icon icon-xl')),
        h('h1', { id: 'ended-title', tabindex: '-1', 'data-focus': '' }, title),
        h('p', { class: 'ended-reason', testid: 'session-ended-reason' }, ENDED_TEXT[reason] || message || 'Your session ended.'),
        h('p', { class: 'muted' }, 'Everything Linkward kept in this browser was deleted. To use Linkward here again, link this browser with your phone.'),
        again)));
  });
}

function showProblem(text, retry) {
  mount('problem', () => {
    const again = h('button', { type: 'button', class: 'btn btn-primary' }, 'Try again');
    again.addEventListener('click', retry);
    root.append(h('main', { class: 'center-page', id: 'main' },
      h('section', { class: 'card ended-card', 'aria-labelledby': 'problem-title' },
        brand(),
        h('span', { class: 'ended-icon tone-warn' }, icon('warn', 'icon icon-xl')),
        h('h1', { id: 'problem-title', tabindex: '-1', 'data-focus': '' }, 'Linkward cannot start'),
        h('p', {}, text),
        retry ? again : null)));
  });
}

function toast(text) {
  const t = h('p', { class: 'toast', role: 'alert' }, text);
  root.append(t);
  setTimeout(() => t.remove(), 6000);
}

// ---------------------------------------------------------------------------
// Idle lock

function startIdle() {
  stopIdle();
  idle = lock.watchIdle(lockNow);
}

function stopIdle() {
  idle?.stop();
  idle = null;
}

async function lockNow() {
  if (screen === 'lock' || session.isEnded()) return;
  stopIdle();
  await lock.setLocked(true);
  showLock();
}

function showLock() {
  document.title = 'Locked · Linkward';
  mount('lock', () => lock.mountLock(root, {
    onUnlock: () => {
      screen = 'unlocking';
      route();
      startIdle();
    },
    onTooMany: () => session.logout(`This browser was logged out after ${lock.MAX_TRIES} wrong passcodes.`, true),
    onLogout: () => logout(null),
  }));
}

// ---------------------------------------------------------------------------
// Start

session.events.addEventListener('ended', (ev) => {
  const { reason, persistent } = ev.detail;
  if (reason === 'unauthenticated') {
    // The cookie is gone: the browser was closed with "Keep me signed in" off,
    // or its data was cleared. The old key is useless now: start again.
    showLink(persistent
      ? 'This browser is no longer signed in. Link it again with your phone.'
      : 'You were signed out when the browser closed, because \u201cKeep me signed in\u201d was off.');
    return;
  }
  showEnded(ev.detail);
});
session.events.addEventListener('device.linked', (ev) => rememberNames([ev.detail.device]));
session.events.addEventListener('alert', (ev) => {
  const a = ev.detail.alert;
  if (a.kind === 'device.linked' && a.device_id === session.device()?.id) return;
  popups.push(a);
});
window.addEventListener('hashchange', () => {
  if (screen === 'home' || screen === 'settings') route();
});

async function boot() {
  if (!(await store.supported())) {
    showProblem('This browser cannot keep a device key safely. Use a current Chrome, Edge, Firefox or Safari, ' +
      'over HTTPS (or on this computer).');
    return;
  }
  await session.sendPendingLogout();
  const saved = await store.get('device').catch(() => null);
  if (!saved) {
    showLink();
    return;
  }
  // Lock first: no account data is fetched into the page before the passcode.
  const locked = await lock.lockedAtStart();
  if (locked) showLock();
  try {
    await session.resume(saved);
  } catch (e) {
    if (session.isEnded()) return; // the "ended" handler shows why
    showProblem(`${e.message} Your session is kept; try again in a moment.`, () => boot());
    return;
  }
  if (!locked) {
    route();
    startIdle();
  }
}

// A new version was deployed while this page was open: offer a reload (the
// page itself never reloads on its own: the user may be mid-way through something).
window.addEventListener('lw-update', () => {
  if (document.querySelector('[data-testid="update-banner"]')) return;
  const reload = h('button', { type: 'button', class: 'btn btn-small' }, 'Reload');
  reload.addEventListener('click', () => location.reload());
  const banner = h('div', { class: 'update-banner', role: 'status', 'data-testid': 'update-banner' },
    h('span', {}, 'A new version of Linkward is available.'), reload);
  document.body.prepend(banner);
});

boot();
