// Security alerts (PRODUCT §6): their words, and the live pop-ups.

import { ago, h, icon } from './ui.js';

const ENDED = {
  logout: 'logged out on that device',
  remote_logout: 'logged out from your phone',
  logout_all: 'logged out from your phone (all devices)',
  inactive: 'logged out after a long time without use',
  primary_inactive: 'logged out because your phone was not used for 14 days',
  max_age: 'logged out: the session reached its maximum age',
  token_theft: 'logged out: its credential was used without its key',
  account_reset: 'logged out: the account was reset',
  admin_logout: 'logged out by the server\'s administrator',
  account_deleted: 'logged out: the account was deleted',
};

const TITLES = {
  'device.linked': 'New device linked',
  'device.ended': 'Device logged out',
  'link.new_country': 'Link from a new country',
  'link.far_from_primary': 'Link far from your phone',
  'link.anonymous_network': 'Link from an anonymous network',
  'link.rate_limited': 'Link attempts refused',
  'session.impossible_travel': 'Impossible travel',
  'session.country_changed': 'Device changed country',
  'token.theft_suspected': 'Possible stolen credential',
  'pin.failed': 'Wrong PIN entered',
  'pin.locked': 'PIN locked',
};

const SERIOUS = new Set(['token.theft_suspected', 'pin.locked', 'session.impossible_travel',
  'link.anonymous_network', 'link.rate_limited']);

/** Names of the devices seen in this page, kept after they leave the list (for "X was logged out"). */
const knownNames = new Map();
export function rememberNames(devices) {
  for (const d of devices) if (d.id && d.name) knownNames.set(d.id, d.name);
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** {title, text, tone} for an alert; `names` maps device ids to names. The
 * server writes every alert's sentence (details.message, "Wrong PIN entered 3
 * times; 7 tries left."); the words here are for a server that did not. */
export function describeAlert(a, names = knownNames) {
  const d = a.details || {};
  const who = names.get(a.device_id) || d.name || 'A device';
  let text = d.message;
  if (!text) {
    switch (a.kind) {
      case 'device.linked':
        text = `A new device was linked: ${d.name || 'unknown device'}.`;
        break;
      case 'device.ended':
        text = (d.count > 1 ? `${d.count} devices were ` : `${who} was `) + (ENDED[d.reason] || 'logged out') + '.';
        break;
      case 'token.theft_suspected':
        text = `The credential of ${who} was used without its device key${d.ip ? ` (from ${d.ip})` : ''}. ` +
          'That session was ended.';
        break;
      case 'pin.failed':
        text = Number.isFinite(d.attempts_left)
          ? `A wrong PIN was entered; ${d.attempts_left > 0 ? plural(d.attempts_left, 'try', 'tries') : 'no tries'} left.`
          : 'A wrong PIN was entered.';
        break;
      case 'pin.locked':
        text = `Too many wrong PINs: PIN entry is locked${d.locked_for_seconds ? ` for ${plural(Math.ceil(d.locked_for_seconds / 60), 'minute', 'minutes')}` : ''}.`;
        break;
      default:
        text = 'Something happened on your account that you should look at.';
    }
  }
  const tone = SERIOUS.has(a.kind) ? 'danger' : a.kind === 'device.ended' ? 'info' : 'warn';
  return { title: TITLES[a.kind] || 'Security alert', text, tone };
}

export const alertIcon = (tone) => icon(tone === 'info' ? 'bell' : 'warn', `icon alert-icon tone-${tone}`);

/** Only the phone answers alerts (the server refuses a companion): a stolen browser must not be
 * able to silence an alert, so this client shows them and sends the holder to
 * the phone. */
export const ANSWER_ON_PHONE = 'Answer on your phone.';

const ANSWERS = {
  it_was_me: 'Answered on your phone: it was you.',
  logged_out_device: 'Answered on your phone: that device was logged out.',
  secured_account: 'Answered on your phone: the account was secured.',
};
/** How the phone answered an alert, as a sentence ("" when it has not). */
export function answerText(a) {
  if (!a.acked && !a.answer) return '';
  return ANSWERS[a.answer] || 'Answered on your phone.';
}

/**
 * Live pop-ups for new alerts. They are shown only while a signed-in screen
 * is attached; while the screen is locked they wait in memory, not in the DOM.
 */
export class Popups {
  constructor() {
    this.queue = [];
    this.box = null;
  }

  attach(box) {
    this.box = box;
    for (const a of this.queue) box.prepend(this.render(a));
  }

  detach() {
    this.box = null;
  }

  push(alert) {
    // The same alert again is an update (a burst counted into it): shown in place.
    const old = this.queue.find((a) => a.id === alert.id);
    if (old) {
      this.queue[this.queue.indexOf(old)] = alert;
      if (old.el && this.box) {
        this.render(alert);
        old.el.replaceWith(alert.el);
      }
      return;
    }
    this.queue.push(alert);
    if (this.queue.length > 4) this.queue.shift()?.el?.remove();
    if (this.box) this.box.prepend(this.render(alert));
  }

  dismiss(alert) {
    this.queue = this.queue.filter((a) => a !== alert);
    alert.el?.remove();
  }

  clear() {
    for (const a of this.queue) a.el?.remove();
    this.queue = [];
  }

  /** Builds the pop-up of an alert: what happened and where to answer it; no answer here. */
  render(alert) {
    const { title, text, tone } = describeAlert(alert);
    const titleId = `popup-t-${alert.id}`;
    const close = h('button', { type: 'button', class: 'icon-btn popup-close', 'aria-label': 'Dismiss' }, icon('close'));
    close.addEventListener('click', () => this.dismiss(alert));
    alert.el = h('section', { class: `popup tone-${tone}`, role: 'alert', 'aria-labelledby': titleId, testid: 'alert-popup' },
      alertIcon(tone),
      h('div', { class: 'popup-body' },
        h('h2', { class: 'popup-title', id: titleId }, title),
        h('p', { class: 'popup-text' }, text),
        h('p', { class: 'muted small' }, ago(alert.created_at)),
        h('p', { class: 'popup-hint', testid: 'answer-on-phone' }, answerText(alert) || ANSWER_ON_PHONE)),
      close);
    return alert.el;
  }
}
