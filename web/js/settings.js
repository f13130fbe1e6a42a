// Settings: this device's name, the idle lock, logging out.

import * as lock from './lock.js';
import * as session from './session.js';
import { formatDate, h, icon } from './ui.js';

/** Fills main; returns unmount. ctx: {onLockChanged(), onLockNow(), onLogout()} */
export function mountSettings(main, ctx) {
  let gone = false;

  // --- device name
  const nameInput = h('input', { id: 'device-name', type: 'text', maxlength: 64, autocomplete: 'off', required: true, testid: 'device-name' });
  const nameStatus = h('p', { class: 'form-status', role: 'status' });
  const nameForm = h('form', { class: 'form', novalidate: true },
    h('label', { for: 'device-name' }, 'Name of this device'),
    h('p', { class: 'muted small', id: 'device-name-help' }, 'Shown in the list of linked devices on your phone and your other devices.'),
    h('div', { class: 'row' }, nameInput, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save name')),
    nameStatus);
  nameInput.setAttribute('aria-describedby', 'device-name-help');
  nameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      nameStatus.className = 'form-error';
      nameStatus.textContent = 'Enter a name.';
      return;
    }
    try {
      const rec = await session.call('PATCH', `/v1/devices/${encodeURIComponent(session.device().id)}`, { name });
      nameInput.value = rec.name;
      nameStatus.className = 'form-status ok';
      nameStatus.textContent = 'Saved.';
    } catch (err) {
      nameStatus.className = 'form-error';
      nameStatus.textContent = err.message;
    }
  });

  // --- idle lock
  const idle = h('select', { id: 'idle-time', testid: 'idle-time' },
    lock.CHOICES.map((c) => h('option', { value: c.id }, c.label)));
  const pass1 = h('input', { id: 'passcode-new', type: 'password', autocomplete: 'new-password', minlength: lock.MIN_LENGTH, testid: 'passcode-new' });
  const pass2 = h('input', { id: 'passcode-confirm', type: 'password', autocomplete: 'new-password', minlength: lock.MIN_LENGTH, testid: 'passcode-confirm' });
  const passHelp = h('p', { class: 'muted small', id: 'passcode-help' });
  const lockStatus = h('p', { class: 'form-status', role: 'status' });
  const lockNow = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true, testid: 'lock-now' }, icon('lock'), 'Lock now');
  lockNow.addEventListener('click', () => ctx.onLockNow());
  const lockForm = h('form', { class: 'form', novalidate: true },
    h('label', { for: 'idle-time' }, 'Lock this browser when idle'), idle,
    h('div', { class: 'pass-grid' },
      h('div', {}, h('label', { for: 'passcode-new' }, 'Passcode'), pass1),
      h('div', {}, h('label', { for: 'passcode-confirm' }, 'Passcode again'), pass2)),
    passHelp,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'lock-save' }, 'Save lock settings'), lockNow),
    lockStatus);
  pass1.setAttribute('aria-describedby', 'passcode-help');

  async function showLock() {
    const s = await lock.settings();
    if (gone) return;
    idle.value = s.hash ? s.idle : 'off';
    passHelp.textContent = s.hash
      ? 'A passcode is set. Leave these empty to keep it, or type a new one.'
      : `At least ${lock.MIN_LENGTH} characters. It stays in this browser and is never sent anywhere.`;
    lockNow.hidden = !s.hash;
  }

  lockForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    lockStatus.className = 'form-error';
    const s = await lock.settings();
    const wanted = idle.value;
    const p = pass1.value;
    if (wanted !== 'off') {
      if (!p && !s.hash) return say('Choose a passcode to turn the lock on.', pass1);
      if (p && p.length < lock.MIN_LENGTH) return say(`The passcode needs at least ${lock.MIN_LENGTH} characters.`, pass1);
      if (p !== pass2.value) return say('The two passcodes differ.', pass2);
    }
    try {
      await lock.save(wanted, p || null);
    } catch (err) {
      return say(err.message, pass1);
    }
    pass1.value = '';
    pass2.value = '';
    lockStatus.className = 'form-status ok';
    lockStatus.textContent = wanted === 'off' ? 'Lock turned off.' : 'Lock settings saved.';
    await showLock();
    ctx.onLockChanged();
    return undefined;
  });

  function say(text, field) {
    lockStatus.className = 'form-error';
    lockStatus.textContent = text;
    field.focus();
  }

  // --- session
  const facts = h('dl', { class: 'facts' });
  const out = h('button', { type: 'button', class: 'btn btn-danger', testid: 'settings-logout' }, 'Log out of this browser');
  out.addEventListener('click', () => ctx.onLogout(out));

  main.append(
    h('div', { class: 'page-head' },
      h('h1', { class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'Settings')),
    h('div', { class: 'settings-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'set-name' },
        h('h2', { id: 'set-name', class: 'card-title' }, icon('computer'), 'Device name'), nameForm),
      h('section', { class: 'card', 'aria-labelledby': 'set-lock' },
        h('h2', { id: 'set-lock', class: 'card-title' }, icon('lock'), 'Screen lock'),
        h('p', { class: 'muted' }, 'Hide your account behind a passcode when this browser is left alone. ',
          `After ${lock.MAX_TRIES} wrong passcodes, this browser is logged out.`),
        lockForm),
      h('section', { class: 'card', 'aria-labelledby': 'set-session' },
        h('h2', { id: 'set-session', class: 'card-title' }, icon('shield'), 'This browser\u2019s session'),
        facts,
        h('p', { class: 'muted small' }, 'Logging out deletes this browser\u2019s key and everything Linkward stored here.'),
        out)));

  session.call('GET', '/v1/session').then((me) => {
    if (gone) return;
    nameInput.value = me.device.name || '';
    const fp = (me.device.key_fingerprint || '').slice(0, 32).replace(/(.{4})/g, '$1 ').trim();
    facts.replaceChildren(
      h('div', {}, h('dt', {}, 'Account'), h('dd', {}, me.account?.handle || '')),
      h('div', {}, h('dt', {}, 'Linked since'), h('dd', {}, formatDate(me.device.linked_at))),
      h('div', {}, h('dt', {}, 'Keep me signed in'), h('dd', {}, me.device.persistent === false ? 'Off' : 'On')),
      h('div', {}, h('dt', {}, 'Device key'), h('dd', { class: 'mono' }, fp)));
  }).catch(() => {});
  showLock();

  return () => { gone = true; };
}
