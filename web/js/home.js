// Home: this device, every linked device (kept live), and the alerts.

import { ANSWER_ON_PHONE, alertIcon, answerText, describeAlert, rememberNames } from './alerts.js';
import * as session from './session.js';
import { ago, describeClient, describePlace, formatDate, h, icon, sr } from './ui.js';

const MAX_ALERTS = 20;

/** Fills main; returns the unmount function. ctx: {popups}. */
export function mountHome(main, ctx) {
  let me = null;
  let devices = [];
  let alerts = [];
  let gone = false;

  const heading = h('h1', { class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'Linked devices');
  const thisDevice = h('div', { class: 'this-device' }, h('p', { class: 'muted' }, 'Loading…'));
  const devList = h('ul', { class: 'device-list', testid: 'devices-list', 'aria-labelledby': 'devices-title' });
  const devCount = h('span', { class: 'count' });
  const alertList = h('ul', { class: 'alert-list', testid: 'alerts-list', 'aria-labelledby': 'alerts-title' });
  const problem = h('p', { class: 'form-error', role: 'alert', hidden: true });

  main.append(
    h('div', { class: 'page-head' }, heading,
      h('p', { class: 'muted' }, 'Only your phone can link new devices or log devices out.')),
    problem,
    h('div', { class: 'home-grid' },
      h('div', { class: 'home-col' },
        h('section', { class: 'card', 'aria-labelledby': 'this-title' },
          h('h2', { id: 'this-title', class: 'card-title' }, icon('computer'), 'This device'),
          thisDevice),
        h('section', { class: 'card', 'aria-labelledby': 'devices-title' },
          h('h2', { id: 'devices-title', class: 'card-title' }, icon('phone'), 'Devices on this account', devCount),
          devList)),
      h('section', { class: 'card alerts-card', 'aria-labelledby': 'alerts-title' },
        h('h2', { id: 'alerts-title', class: 'card-title' }, icon('bell'), 'Security alerts'),
        alertList)));


  function renderThis() {
    if (!me) return;
    const d = me.device;
    thisDevice.replaceChildren(
      h('p', { class: 'this-name' }, d.name || describeClient(d)),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', {}, 'Browser'), h('dd', {}, describeClient(d))),
        h('div', {}, h('dt', {}, 'Linked since'), h('dd', {}, formatDate(d.linked_at))),
        h('div', {}, h('dt', {}, 'Account'), h('dd', {}, me.account?.handle || '')),
        h('div', {}, h('dt', {}, 'Keep me signed in'), h('dd', {}, d.persistent === false ? 'Off — ends when the browser closes' : 'On'))));
  }

  function deviceRow(d) {
    const isPhone = d.role === 'primary';
    const badge = d.current ? h('span', { class: 'badge badge-accent' }, 'This device')
      : isPhone ? h('span', { class: 'badge' }, 'Phone') : null;
    const where = [describePlace(d), d.network, d.ip].filter(Boolean).join(' · ');
    const active = d.current ? 'Active now' : `Active ${ago(d.last_active_at)}`;
    return h('li', { class: `device-row${d.current ? ' is-current' : ''}${d.fresh ? ' is-new' : ''}`, testid: 'device-row',
      'data-device-id': d.id, 'data-last-active': d.last_active_at || '' },
      h('span', { class: 'device-icon' }, icon(isPhone ? 'phone' : 'computer')),
      h('div', { class: 'device-body' },
        h('p', { class: 'device-name' }, h('span', {}, d.name || describeClient(d)), badge),
        h('p', { class: 'device-meta' }, sr('Browser and system: '), describeClient(d)),
        h('p', { class: 'device-meta' }, sr('Place and network: '), where)),
      h('div', { class: 'device-when' },
        h('p', { class: 'device-active', title: d.last_active_at ? formatDate(d.last_active_at) : '' }, active),
        h('p', { class: 'muted small' }, `Linked ${formatDate(d.linked_at)}`)));
  }

  function renderDevices() {
    const order = (d) => (d.role === 'primary' ? 0 : d.current ? 1 : 2);
    const sorted = [...devices].sort((a, b) => order(a) - order(b) || String(b.linked_at).localeCompare(String(a.linked_at)));
    devList.replaceChildren(...sorted.map(deviceRow));
    devCount.textContent = String(devices.length);
    devCount.setAttribute('aria-label', `${devices.length} devices`);
  }

  function alertRow(a) {
    const { title, text, tone } = describeAlert(a);
    // Only the phone answers: this browser says where, or how it was answered.
    const answered = answerText(a);
    const action = answered
      ? h('p', { class: 'acked small' }, icon('check', 'icon icon-inline'), ` ${answered}`)
      : h('p', { class: 'answer-hint small', testid: 'answer-on-phone' }, ANSWER_ON_PHONE);
    return h('li', { class: `alert-row tone-${tone}${a.acked ? '' : ' is-open'}`, 'data-alert-id': a.id },
      alertIcon(tone),
      h('div', { class: 'alert-body' },
        h('p', { class: 'alert-title' }, title),
        h('p', { class: 'alert-text' }, text),
        h('p', { class: 'muted small' }, h('time', { datetime: a.created_at, title: formatDate(a.created_at) }, ago(a.created_at)))),
      h('div', { class: 'alert-action' }, action));
  }

  function renderAlerts() {
    if (!alerts.length) {
      alertList.replaceChildren(h('li', { class: 'empty' }, icon('shield'), h('span', {}, 'No alerts. Everything looks normal.')));
      return;
    }
    // A live alert re-renders the list: keep the keyboard focus where it was.
    const focusedId = document.activeElement?.closest?.('[data-alert-id]')?.dataset.alertId;
    alertList.replaceChildren(...alerts.slice(0, MAX_ALERTS).map(alertRow));
    if (focusedId) {
      const row = alertList.querySelector(`[data-alert-id="${CSS.escape(focusedId)}"]`);
      const target = row?.querySelector('button') || row?.querySelector('time');
      if (target) {
        if (target.tagName !== 'BUTTON') target.setAttribute('tabindex', '-1');
        target.focus();
      }
    }
  }

  function showProblem(e) {
    if (session.isEnded()) return;
    problem.hidden = false;
    problem.textContent = e.message;
  }

  const onLinked = (ev) => {
    const d = { ...ev.detail.device, fresh: true };
    devices = devices.filter((x) => x.id !== d.id).concat(d);
    rememberNames([d]);
    renderDevices();
  };
  const onEnded = (ev) => {
    // Several devices ending together (a logout-all) come as one event with device_ids.
    const gone = new Set(ev.detail.device_ids || [ev.detail.device_id]);
    devices = devices.filter((x) => !gone.has(x.id));
    renderDevices();
  };
  const onAlert = (ev) => {
    // An alert seen before is an update (a burst counted into it): replaced in place.
    const a = ev.detail.alert;
    const i = alerts.findIndex((x) => x.id === a.id);
    if (i >= 0) alerts[i] = a;
    else alerts.unshift(a);
    renderAlerts();
  };
  session.events.addEventListener('device.linked', onLinked);
  session.events.addEventListener('device.ended', onEnded);
  session.events.addEventListener('alert', onAlert);
  session.events.addEventListener('resync', load); // the socket was away: look again

  async function load() {
    try {
      const [s, dv, al] = await Promise.all([
        session.call('GET', '/v1/session'),
        session.call('GET', '/v1/devices'),
        session.call('GET', '/v1/alerts'),
      ]);
      if (gone) return;
      me = s;
      devices = dv.devices || [];
      rememberNames(devices);
      // Events that came while loading are already in the lists.
      const seen = new Set(al.alerts.map((a) => a.id));
      alerts = alerts.filter((a) => !seen.has(a.id)).concat(al.alerts || []);
      problem.hidden = true;
      renderThis();
      renderDevices();
      renderAlerts();
    } catch (e) {
      if (!gone) showProblem(e);
    }
  }

  load();
  // "Last active" is kept by the server (written at most once a minute per
  // device, and brought up to date when the list is asked for): look again
  // every minute, and when the tab comes back. <html data-refresh-ms> shortens
  // the period (tests), read at each turn.
  let reload = 0;
  const again = () => {
    reload = setTimeout(async () => {
      await load();
      if (!gone) again();
    }, Number(document.documentElement.dataset.refreshMs) || 60000);
  };
  again();
  const tick = setInterval(() => {
    renderDevices();
    for (const t of alertList.querySelectorAll('time')) t.textContent = ago(t.dateTime);
  }, 30000);
  const onVisible = () => { if (document.visibilityState === 'visible') load(); };
  document.addEventListener('visibilitychange', onVisible);

  return () => {
    gone = true;
    clearTimeout(reload);
    clearInterval(tick);
    document.removeEventListener('visibilitychange', onVisible);
    session.events.removeEventListener('device.linked', onLinked);
    session.events.removeEventListener('device.ended', onEnded);
    session.events.removeEventListener('alert', onAlert);
    session.events.removeEventListener('resync', load);
  };
}
