// What `linkward phone devices | logout | history | alerts | secure | pin |
// settings` do, as screens: every call is the CLI's, over the same API.

import { alertIcon, describeAlert, rememberNames } from '../js/alerts.js';
import * as session from '../js/session.js';
import { ago, describeClient, describePlace, formatDate, h, icon } from '../js/ui.js';
import * as primary from './primary.js';

const ANSWERS = {
  it_was_me: 'Answered: it was you.',
  logged_out_device: 'Answered: that device was logged out.',
  secured_account: 'Answered: the account was secured.',
};

/** An inline "are you sure" row under a button: resolves true (yes) or false. */
function confirmInline(anchor, question, yesText, testid) {
  return new Promise((resolve) => {
    const done = (v) => { box.remove(); resolve(v); };
    const box = h('div', { class: 'confirm-box', role: 'alertdialog', 'aria-label': question, testid },
      h('p', {}, question),
      h('div', { class: 'row' },
        h('button', { class: 'btn btn-danger', type: 'button', testid: `${testid}-yes`, onclick: () => done(true) }, yesText),
        h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => done(false) }, 'Cancel')));
    anchor.after(box);
    box.querySelector('button').focus();
  });
}

const title = (text) => h('h1', { class: 'page-title', tabindex: '-1', 'data-focus': '' }, text);

// ---------------------------------------------------------------------------
// Devices

export function mountDevices(main, ctx) {
  let devices = [];
  const list = h('ul', { class: 'device-list', testid: 'devices-list', 'aria-label': 'Devices on this account' });
  const problem = h('p', { class: 'form-error', role: 'alert', testid: 'devices-error' });
  const status = h('p', { class: 'form-status ok', role: 'status', testid: 'devices-status' }, ctx.flash || '');
  const allBtn = h('button', { class: 'btn btn-danger-ghost btn-block', type: 'button', testid: 'logout-all' }, 'Log out all other devices');
  main.append(h('section', { class: 'card', 'aria-labelledby': 'devices-title' },
    h('div', { class: 'page-head' }, title('Linked devices'),
      h('p', { class: 'muted' }, 'Devices you linked with this phone. Only this phone can link or log them out.')),
    h('button', { class: 'btn btn-primary btn-block', type: 'button', testid: 'link-device', onclick: () => ctx.go('link') },
      icon('computer'), 'Link a device'),
    status, problem, list, allBtn));

  async function row(d) {
    const isPhone = d.role === 'primary';
    const trusted = await primary.signedByMe(ctx.phone.account_id, d);
    const name = h('span', {}, d.name || describeClient(d));
    const where = [describePlace(d), d.network, d.ip].filter(Boolean).join(' · ');
    const actions = h('div', { class: 'row device-actions' });
    const li = h('li', { class: 'device-row phone-row', testid: 'device-row', 'data-device-id': d.id },
      h('span', { class: 'device-icon' }, icon(isPhone ? 'phone' : 'computer')),
      h('div', { class: 'device-body' },
        h('p', { class: 'device-name' }, name, d.current ? h('span', { class: 'badge badge-accent' }, 'This phone') : null),
        h('p', { class: 'device-meta' }, describeClient(d)),
        h('p', { class: 'device-meta' }, where),
        h('p', { class: 'device-meta' }, d.current ? 'Active now' : `Active ${ago(d.last_active_at)}`, ` · Linked ${formatDate(d.linked_at)}`),
        trusted ? null : h('p', { class: 'form-error', testid: 'unsigned' }, icon('warn'),
          ' This phone never approved this device. Log it out and do not trust this server.'),
        actions));
    const rename = h('button', { class: 'btn btn-ghost btn-small touch', type: 'button', testid: 'rename' }, 'Rename');
    rename.addEventListener('click', () => renameForm(li, d, actions));
    actions.append(rename);
    if (!isPhone) {
      const out = h('button', { class: 'btn btn-danger-ghost btn-small touch', type: 'button', testid: 'logout' }, 'Log out');
      out.addEventListener('click', async () => {
        if (!(await confirmInline(actions, `Log out ${d.name || describeClient(d)}?`, 'Log out', 'confirm-logout'))) return;
        try {
          await session.call('DELETE', `/v1/devices/${d.id}`, {});
          status.textContent = `${d.name || describeClient(d)} was logged out.`;
          load();
        } catch (e) { problem.textContent = e.message; }
      });
      actions.append(out);
    }
    return li;
  }

  function renameForm(li, d, actions) {
    if (li.querySelector('form')) return;
    const input = h('input', { type: 'text', id: `name-${d.id}`, maxlength: '63', value: d.name || '', testid: 'rename-input', 'aria-label': 'New name' });
    const err = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', { class: 'form', novalidate: true },
      input, err,
      h('div', { class: 'row' },
        h('button', { class: 'btn btn-primary', type: 'submit', testid: 'rename-save' }, 'Save'),
        h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => form.remove() }, 'Cancel')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name || new TextEncoder().encode(name).length > 63) {
        err.textContent = 'A name is 1 to 63 characters.';
        return;
      }
      try {
        await session.call('PATCH', `/v1/devices/${d.id}`, { name });
        status.textContent = `Renamed to ${name}.`;
        load();
      } catch (e) { err.textContent = e.message; }
    });
    actions.after(form);
    input.focus();
  }

  async function load() {
    try {
      devices = (await session.call('GET', '/v1/devices')).devices || [];
    } catch (e) {
      problem.textContent = e.message;
      return;
    }
    rememberNames(devices);
    const order = (d) => (d.role === 'primary' ? 0 : 1);
    const sorted = [...devices].sort((a, b) => order(a) - order(b) || String(b.linked_at).localeCompare(String(a.linked_at)));
    list.replaceChildren(...(await Promise.all(sorted.map(row))));
    allBtn.disabled = !devices.some((d) => d.role !== 'primary');
  }

  allBtn.addEventListener('click', async () => {
    if (!(await confirmInline(allBtn, 'Log out every device except this phone? Each will have to be linked again.', 'Log out all', 'confirm-logout-all'))) return;
    try {
      const ans = await session.call('POST', '/v1/devices/logout-all', {});
      status.textContent = `${ans.ended} ${ans.ended === 1 ? 'device was' : 'devices were'} logged out.`;
      load();
    } catch (e) { problem.textContent = e.message; }
  });

  const live = () => load();
  session.events.addEventListener('device.linked', live);
  session.events.addEventListener('device.ended', live);
  session.events.addEventListener('resync', live);
  load();
  return () => {
    session.events.removeEventListener('device.linked', live);
    session.events.removeEventListener('device.ended', live);
    session.events.removeEventListener('resync', live);
  };
}

// ---------------------------------------------------------------------------
// History

export function mountHistory(main) {
  const list = h('ul', { class: 'device-list', testid: 'history-list', 'aria-label': 'Ended sessions' });
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const status = h('p', { class: 'form-status ok', role: 'status' });
  const clearBtn = h('button', { class: 'btn btn-danger-ghost btn-block', type: 'button', testid: 'history-clear' }, 'Delete all history');
  main.append(h('section', { class: 'card' },
    h('div', { class: 'page-head' }, title('History'), h('p', { class: 'muted' }, 'Devices that were linked and have ended.')),
    status, problem, list, clearBtn));

  async function load() {
    let rows;
    try { rows = (await session.call('GET', '/v1/history')).sessions || []; } catch (e) { problem.textContent = e.message; return; }
    list.replaceChildren(...rows.map((d) => {
      const del = h('button', { class: 'btn btn-ghost btn-small touch', type: 'button', testid: 'history-delete' }, 'Delete');
      del.addEventListener('click', async () => {
        try { await session.call('DELETE', `/v1/history/${d.id}`); status.textContent = 'Deleted.'; load(); } catch (e) { problem.textContent = e.message; }
      });
      return h('li', { class: 'device-row phone-row', testid: 'history-row' },
        h('span', { class: 'device-icon' }, icon(d.role === 'primary' ? 'phone' : 'computer')),
        h('div', { class: 'device-body' },
          h('p', { class: 'device-name' }, d.name || describeClient(d)),
          h('p', { class: 'device-meta' }, describeClient(d), ' · ', describePlace(d)),
          h('p', { class: 'device-meta' }, `Linked ${formatDate(d.linked_at)} · ended ${formatDate(d.ended_at)} (${(d.end_reason || '').replace(/_/g, ' ')})`),
          h('div', { class: 'row device-actions' }, del)));
    }));
    if (!rows.length) list.replaceChildren(h('li', { class: 'empty' }, 'No ended sessions.'));
    clearBtn.disabled = !rows.length;
  }
  clearBtn.addEventListener('click', async () => {
    if (!(await confirmInline(clearBtn, 'Delete the whole history?', 'Delete all', 'confirm-history'))) return;
    try {
      const ans = await session.call('DELETE', '/v1/history');
      status.textContent = `${ans.deleted} deleted.`;
      load();
    } catch (e) { problem.textContent = e.message; }
  });
  const live = () => load();
  session.events.addEventListener('device.ended', live);
  load();
  return () => session.events.removeEventListener('device.ended', live);
}

// ---------------------------------------------------------------------------
// Alerts

export function mountAlerts(main) {
  let alerts = [];
  const list = h('ul', { class: 'alert-list', testid: 'alerts-list', 'aria-label': 'Security alerts' });
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const status = h('p', { class: 'form-status ok', role: 'status', testid: 'alerts-status' });
  main.append(h('section', { class: 'card' },
    h('div', { class: 'page-head' }, title('Security alerts'),
      h('p', { class: 'muted' }, 'What happened on your account. Only this phone can answer.')),
    status, problem, list));

  async function answer(a, how) {
    problem.textContent = '';
    try {
      if (how === 'it_was_me') await session.call('POST', `/v1/alerts/${a.id}/ack`, {});
      else if (how === 'logout') await session.call('DELETE', `/v1/devices/${a.device_id}`, { alert_id: a.id });
      else await session.call('POST', '/v1/account/secure', { alert_id: a.id });
      status.textContent = how === 'secure' ? 'Every device was logged out. Set a new PIN before linking again.' : 'Answered.';
      load();
    } catch (e) { problem.textContent = e.message; }
  }

  function row(a) {
    const { title: t, text, tone } = describeAlert(a);
    const answered = a.answer || a.acked;
    const li = h('li', { class: 'alert-row', testid: 'alert-row', 'data-alert-id': a.id, 'data-kind': a.kind },
      alertIcon(tone),
      h('div', {},
        h('p', { class: 'alert-title' }, t, a.count > 1 ? ` (${a.count})` : ''),
        h('p', { class: 'alert-text' }, text),
        h('p', { class: 'muted small' }, ago(a.created_at))),
      answered ? h('p', { class: 'acked alert-action', testid: 'alert-answer' }, ANSWERS[a.answer] || 'Answered.') : null);
    if (!answered) {
      const acts = h('div', { class: 'stack-tight alert-action' },
        h('button', { class: 'btn btn-secondary btn-block', type: 'button', testid: 'alert-it-was-me', onclick: () => answer(a, 'it_was_me') }, 'It was me'));
      if (a.device_id) {
        acts.append(h('button', { class: 'btn btn-danger-ghost btn-block', type: 'button', testid: 'alert-logout',
          onclick: () => answer(a, 'logout') }, 'Log out that device'));
      }
      const sec = h('button', { class: 'btn btn-danger btn-block', type: 'button', testid: 'alert-secure' }, 'Secure my account');
      sec.addEventListener('click', async () => {
        if (await confirmInline(sec, 'Log out every device and require a new PIN before linking?', 'Secure my account', 'confirm-secure')) answer(a, 'secure');
      });
      acts.append(sec);
      li.append(acts);
    }
    return li;
  }

  async function load() {
    try { alerts = (await session.call('GET', '/v1/alerts')).alerts || []; } catch (e) { problem.textContent = e.message; return; }
    list.replaceChildren(...alerts.map(row));
    if (!alerts.length) list.replaceChildren(h('li', { class: 'empty' }, icon('check'), 'No alerts.'));
  }
  const live = () => load();
  session.events.addEventListener('alert', live);
  session.events.addEventListener('resync', live);
  load();
  return () => {
    session.events.removeEventListener('alert', live);
    session.events.removeEventListener('resync', live);
  };
}

// ---------------------------------------------------------------------------
// Alerts as notifications (Web Push): the browser subscribes with the
// server's VAPID key and the server keeps the subscription; each alert then
// arrives as a push holding its id and kind only (sw.js shows it).

/** base64url (the server's key) to the bytes pushManager.subscribe wants. */
function b64urlBytes(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

async function pushRegistration() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) return null;
  return (await navigator.serviceWorker.getRegistration('/phone/')) || null;
}

function renderPush(card) {
  const err = h('p', { class: 'form-error', role: 'alert', testid: 'push-error' });
  const status = h('p', { class: 'muted', role: 'status', testid: 'push-status' });
  const button = h('button', { class: 'btn btn-primary btn-block', type: 'button', testid: 'push-toggle' }, 'Notify me of alerts');
  card.replaceChildren(h('h2', { id: 'push-title', class: 'card-title' }, icon('bell'), 'Alert notifications'), status, err, button);
  let current = null;
  const show = (sub) => {
    current = sub;
    status.textContent = sub ? 'On: alerts reach this phone even when the app is closed.'
      : 'Off. Turn them on to hear of an alert while the app is closed.';
    button.textContent = sub ? 'Turn notifications off' : 'Notify me of alerts';
  };
  pushRegistration().then(async (reg) => {
    if (!reg) {
      status.textContent = 'This browser cannot show notifications from this app (it needs a service worker and push support).';
      button.hidden = true;
      return;
    }
    show(await reg.pushManager.getSubscription());
  }, () => show(null));
  button.addEventListener('click', async () => {
    err.textContent = '';
    button.disabled = true;
    try {
      const reg = await pushRegistration();
      if (!reg) throw new Error('This browser cannot show notifications from this app.');
      if (current) {
        const endpoint = current.endpoint;
        await current.unsubscribe().catch(() => {});
        await session.call('DELETE', '/v1/push/subscriptions', { endpoint }).catch((e) => { if (e.status !== 404) throw e; });
        show(null);
        return;
      }
      if (await Notification.requestPermission() !== 'granted') {
        throw new Error('Notifications are blocked for this site: allow them in the browser\'s settings, then try again.');
      }
      const { public_key: key } = await session.call('GET', '/v1/push/vapid-key');
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) });
      await session.call('POST', '/v1/push/subscriptions', sub.toJSON());
      show(sub);
    } catch (e) {
      err.textContent = e.message || 'Notifications could not be turned on.';
    } finally {
      button.disabled = false;
    }
  });
}

// Security: the PIN and the settings

export function mountSecurity(main, ctx) {
  const pinCard = h('section', { class: 'card', 'aria-labelledby': 'pin-title', testid: 'pin-card' });
  const ttlCard = h('section', { class: 'card', 'aria-labelledby': 'ttl-title', testid: 'settings-card' });
  const pushCard = h('section', { class: 'card', 'aria-labelledby': 'push-title', testid: 'push-card' });
  main.append(h('div', { class: 'page-head' }, title('Security')), pinCard, pushCard, ttlCard,
    h('section', { class: 'card' },
      h('h2', { class: 'card-title' }, icon('phone'), 'This phone'),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', {}, 'Account'), h('dd', { testid: 'account-handle' }, ctx.phone.handle)),
        h('div', {}, h('dt', {}, 'Server'), h('dd', {}, ctx.phone.origin || location.origin))),
      h('p', { class: 'muted small' }, 'Your account key was made on this phone and cannot be copied out of it.')));

  const pinField = (id, label, testid) => {
    const input = h('input', { type: 'password', id, inputmode: 'numeric', autocomplete: 'off', maxlength: '6', testid });
    return [h('label', { for: id }, label), input];
  };

  function renderPin(hasPin) {
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'pin-error' });
    const ok = h('p', { class: 'form-status ok', role: 'status', testid: 'pin-status' });
    const [curL, cur] = pinField('pin-current', 'Current PIN', 'pin-current');
    const [newL, neu] = pinField('pin-new', hasPin ? 'New PIN' : 'PIN (6 digits)', 'pin-new');
    const [repL, rep] = pinField('pin-repeat', 'Repeat the new PIN', 'pin-repeat');
    const form = h('form', { class: 'form', novalidate: true },
      hasPin ? [curL, cur] : null, newL, neu, repL, rep, err,
      h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'pin-save' }, hasPin ? 'Change PIN' : 'Set PIN'));
    const disable = hasPin ? h('button', { class: 'btn btn-danger-ghost btn-block', type: 'button', testid: 'pin-disable' }, 'Turn the PIN off') : null;
    const six = (v) => /^[0-9]{6}$/.test(v);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      if (hasPin && !six(cur.value)) { err.textContent = 'Enter your current PIN (6 digits).'; return; }
      if (!six(neu.value)) { err.textContent = 'A PIN is exactly 6 digits.'; return; }
      if (neu.value !== rep.value) { err.textContent = 'The two new PINs differ.'; return; }
      const body = { new_pin: neu.value };
      if (hasPin) body.pin = cur.value;
      try {
        await session.call('POST', '/v1/pin', body);
        renderPin(true);
        pinChanged(true);
        pinCard.querySelector('[data-testid="pin-status"]').textContent = hasPin ? 'PIN changed.' : 'PIN set. Linking a device now asks for it.';
      } catch (e) {
        err.textContent = e.message;
      } finally {
        cur.value = neu.value = rep.value = '';
      }
    });
    disable?.addEventListener('click', async () => {
      err.textContent = '';
      if (!six(cur.value)) { err.textContent = 'Enter your current PIN to turn it off.'; cur.focus(); return; }
      try {
        await session.call('POST', '/v1/pin/disable', { pin: cur.value });
        renderPin(false);
        pinChanged(false);
        pinCard.querySelector('[data-testid="pin-status"]').textContent = 'PIN turned off.';
      } catch (e) {
        err.textContent = e.message;
      } finally {
        cur.value = '';
      }
    });
    pinCard.replaceChildren(
      h('h2', { id: 'pin-title', class: 'card-title' }, icon('lock'), 'Two-step verification PIN'),
      h('p', { class: 'muted' }, hasPin ? 'On. Linking a device asks for this PIN.' : 'Off. Set a PIN so that linking a device needs it.'),
      ok, form, disable);
  }

  function renderTtl(s) {
    const input = h('input', { type: 'text', id: 'ttl-days', inputmode: 'numeric', value: String(s.inactive_ttl_days), testid: 'ttl-input', 'aria-describedby': 'ttl-help' });
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'ttl-error' });
    const ok = h('p', { class: 'form-status ok', role: 'status', testid: 'ttl-status' });
    const form = h('form', { class: 'form', novalidate: true },
      h('label', { for: 'ttl-days' }, 'Log out devices unused for (days)'),
      h('p', { class: 'muted small', id: 'ttl-help' }, 'From 7 to 365 days.'),
      input, err, ok, h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'ttl-save' }, 'Save'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = ok.textContent = '';
      const days = Number(input.value.trim());
      if (!/^[0-9]+$/.test(input.value.trim()) || days < 7 || days > 365) { err.textContent = 'Enter a whole number of days from 7 to 365.'; return; }
      try {
        const ans = await session.call('PATCH', '/v1/settings', { inactive_ttl_days: days });
        ok.textContent = `Saved: ${ans.inactive_ttl_days} days.`;
      } catch (e) { err.textContent = e.message; }
    });
    ttlCard.replaceChildren(h('h2', { id: 'ttl-title', class: 'card-title' }, icon('gear'), 'Inactive devices'), form);
  }

  // Move to a new phone: the new phone shows a code; this phone approves it.
  const moveCard = h('section', { class: 'card', 'aria-labelledby': 'move-title', testid: 'move-card' });
  const keyCard = h('section', { class: 'card', 'aria-labelledby': 'rkey-title', testid: 'recovery-card' });
  main.insertBefore(moveCard, ttlCard.nextSibling);
  main.insertBefore(keyCard, moveCard.nextSibling);

  function renderMove(hasPin) {
    const code = h('input', { type: 'text', id: 'move-code-input', testid: 'move-code-input', autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', maxlength: '40' });
    const [pinL, pin] = pinField('move-pin', 'Your PIN', 'move-pin');
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'move-error' });
    const ok = h('p', { class: 'form-status ok', role: 'status', testid: 'move-approved' });
    const form = h('form', { class: 'form', novalidate: true },
      h('label', { for: 'move-code-input' }, 'The code your new phone shows'), code,
      hasPin ? [pinL, pin] : null, err, ok,
      h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'move-approve' }, 'Move my account to that phone'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = ok.textContent = '';
      const letters = code.value.toUpperCase().replace(/[\s-]/g, '');
      if (!/^[A-Z0-9]{12}$/.test(letters)) { err.textContent = 'The code is 12 letters and digits, like ABCD-EFGH-JKLM.'; return; }
      if (hasPin && !/^[0-9]{6}$/.test(pin.value)) { err.textContent = 'Enter your PIN (6 digits).'; return; }
      const body = { code: code.value.trim() };
      if (hasPin) body.pin = pin.value;
      try {
        const ans = await session.call('POST', '/v1/transfers/approve', body);
        ok.textContent = `Approved. Your new phone (key ${ans.key_fingerprint.slice(0, 8)}…) takes over now; this phone will be signed out.`;
      } catch (e) {
        err.textContent = e.message;
      } finally {
        pin.value = '';
      }
    });
    moveCard.replaceChildren(h('h2', { id: 'move-title', class: 'card-title' }, icon('phone'), 'Move to a new phone'),
      h('p', { class: 'muted' }, 'On the new phone open Linkward and choose “Move from my old phone”. Your linked devices stay linked.'), form);
  }

  // The cards that ask for the PIN follow it being set or turned off.
  let hasKeyNow = false;
  function pinChanged(hasPin) {
    renderMove(hasPin);
    renderKey(hasPin, hasKeyNow);
  }

  function renderKey(hasPin, hasKey) {
    hasKeyNow = hasKey;
    const [pinL, pin] = pinField('rkey-pin', 'Your PIN', 'rkey-pin');
    const err = h('p', { class: 'form-error', role: 'alert', testid: 'rkey-error' });
    const btn = h('button', { class: 'btn btn-block', type: 'submit', testid: 'rkey-new' }, hasKey ? 'Make a new recovery key' : 'Make a recovery key');
    const form = h('form', { class: 'form', novalidate: true }, hasPin ? [pinL, pin] : null, err, btn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      if (hasPin && !/^[0-9]{6}$/.test(pin.value)) { err.textContent = 'Enter your PIN (6 digits).'; return; }
      try {
        const ans = await session.call('POST', '/v1/account/recovery-key', hasPin ? { pin: pin.value } : {});
        ctx.showRecoveryKey(ans.recovery_key, () => ctx.go('security'));
      } catch (e) {
        err.textContent = e.message;
      } finally {
        pin.value = '';
      }
    });
    keyCard.replaceChildren(h('h2', { id: 'rkey-title', class: 'card-title' }, icon('shield'), 'Recovery key'),
      h('p', { class: 'muted', testid: 'rkey-state' }, hasKey ? 'Set. A new one replaces it: the old one stops working.'
        : 'None yet. Without one, losing this phone loses the account.'), form);
  }


  renderPush(pushCard);
  session.call('GET', '/v1/settings').then((s) => { renderPin(!!s.has_pin); renderTtl(s); renderMove(!!s.has_pin); },
    (e) => pinCard.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, e.message)));
  session.call('GET', '/v1/session').then((s) => renderKey(!!s.account.has_pin, !!s.account.has_recovery_key),
    (e) => keyCard.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, e.message)));
}
