// The link screen (PRODUCT §2): a QR code that rotates as the server pushes
// new refs, the pairing code as an alternative, and the states of the request.

import { ApiError, request, socketUrl } from './api.js';
import * as store from './keys.js';
import * as proof from './proof.mjs';
import { brand, dataUrl, h, icon } from './ui.js';

const STATUS = {
  loading: 'Getting a QR code…',
  pending: 'Scan this QR code with your phone.',
  scanned: 'Scanned — confirm on your phone',
  linking: 'Linking this browser…',
  denied: 'Linking was denied on your phone.',
  expired: 'QR code expired — click to reload',
  error: 'Could not get a QR code.',
};

/**
 * Mounts the link screen into root. opts.onLinked(answer) runs once the
 * browser holds its session; opts.notice is an optional line shown on top.
 * Returns the unmount function.
 */
export function mountLink(root, { onLinked, notice }) {
  let req = null;       // the open link request
  let sock = null;
  let pollTimer = 0;
  let expiryTimer = 0;
  let state = 'loading';
  let gone = false;
  let attempt = 0;      // bumps on each new request, so late answers of old ones are ignored

  const qrImg = h('img', { class: 'qr-img', alt: '', width: 264, height: 264 });
  const statusText = h('p', { class: 'qr-status-text' });
  const statusAction = h('div', { class: 'qr-status-action' });
  const status = h('div', { class: 'qr-status', role: 'status', 'aria-live': 'polite', testid: 'link-status' },
    statusText, statusAction);
  const qrBox = h('div', { class: 'qr-box is-loading', testid: 'link-qr' }, qrImg, status);
  const code = h('p', { class: 'pairing-code', testid: 'pairing-code' }, '····-····');
  const keep = h('input', { type: 'checkbox', id: 'keep-signed-in', checked: true });
  keep.addEventListener('change', () => start()); // "persistent" is part of the request: ask anew
  const errorLine = h('p', { class: 'form-error', role: 'alert', hidden: true });

  const view = h('div', { class: 'link-page' },
    h('header', { class: 'link-band' }, h('div', { class: 'link-band-inner' }, brand())),
    h('main', { class: 'link-main', id: 'main' },
      notice ? h('p', { class: 'notice', role: 'status' }, icon('warn'), h('span', {}, notice)) : null,
      h('section', { class: 'card link-card', 'aria-labelledby': 'link-title' },
        h('div', { class: 'link-text' },
          h('h1', { id: 'link-title', tabindex: '-1', 'data-focus': '' }, 'Use Linkward on this computer'),
          h('ol', { class: 'steps' },
            h('li', {}, 'Open ', h('strong', {}, 'Linkward'), ' on your phone'),
            h('li', {}, 'Go to ', h('strong', {}, 'Linked devices'), ' › ', h('strong', {}, 'Link a device')),
            h('li', {}, 'Point your phone at this screen to scan the QR code')),
          h('details', { class: 'code-alt' },
            h('summary', {}, 'Link with a code instead'),
            h('div', { class: 'code-alt-body' },
              h('p', {}, 'On your phone, open ', h('strong', {}, 'Linked devices'), ' › ',
                h('strong', {}, 'Link a device'), ' › ', h('strong', {}, 'Link with a code instead'),
                ', and enter this code:'),
              code)),
          h('p', { class: 'muted small' }, icon('shield', 'icon icon-inline'),
            ' This browser makes its own key; it never leaves this device. Only your phone can link it.')),
        h('div', { class: 'link-qr-col' },
          qrBox,
          h('div', { class: 'keep' },
            keep,
            h('label', { for: 'keep-signed-in' }, 'Keep me signed in'),
            h('p', { class: 'muted small', id: 'keep-help' },
              'Stay linked after you close the browser. Turn off on a shared computer.')),
          errorLine)),
      h('section', { class: 'card phone-app-card', testid: 'phone-app', 'aria-labelledby': 'phone-app-title' },
        h('img', { class: 'phone-app-qr', src: '/phone/qr.svg', alt: `QR code of ${location.origin}/phone/`, width: '120', height: '120' }),
        h('div', {},
          h('h2', { id: 'phone-app-title' }, 'No Linkward on your phone yet?'),
          h('p', { class: 'muted' }, 'Scan this with your phone\'s camera, or open ',
            h('a', { href: '/phone/', testid: 'phone-app-url' }, `${location.origin}/phone/`),
            ' on your phone, and add it to the home screen. Then link this browser from it.'))),
      h('p', { class: 'muted small center' }, 'Linkward links this browser to your account. ',
        'You can see and log out every linked device from your phone.')));
  keep.setAttribute('aria-describedby', 'keep-help');
  root.append(view);

  function setState(next, text) {
    state = next;
    qrBox.className = `qr-box is-${next}`;
    keep.disabled = next === 'scanned' || next === 'linking'; // the phone is deciding on this request
    statusText.textContent = text || STATUS[next];
    statusAction.replaceChildren();
    if (next === 'scanned' || next === 'linking' || next === 'loading') {
      statusText.prepend(h('span', { class: 'spinner', 'aria-hidden': 'true' }));
    }
    if (next === 'expired') {
      statusText.textContent = '';
      statusAction.append(h('button', { type: 'button', class: 'btn btn-primary reload', onclick: start },
        icon('refresh'), STATUS.expired));
    }
    if (next === 'denied' || next === 'error') {
      statusAction.append(h('button', { type: 'button', class: 'btn btn-primary', onclick: start }, 'Get a new QR code'));
    }
    if (next === 'expired' || next === 'denied' || next === 'error') code.textContent = '····-····';
  }

  function showQr(svg) {
    if (svg) qrImg.src = dataUrl('image/svg+xml', svg);
    qrImg.alt = 'QR code to link this browser. It changes every few seconds.';
  }

  function stop() {
    clearTimeout(pollTimer);
    clearTimeout(expiryTimer);
    if (sock) {
      const s = sock;
      sock = null;
      s.onclose = null;
      s.close(1000);
    }
  }

  async function start() {
    stop();
    const mine = ++attempt;
    req = null;
    errorLine.hidden = true;
    setState('loading');
    try {
      store.reopen();
      const pair = await store.deviceKey();
      const publicKey = await store.publicKey(pair);
      const ans = await request('POST', '/v1/link-requests',
        { public_key: publicKey, persistent: keep.checked, credential: 'cookie' });
      if (gone || mine !== attempt) return;
      req = { ...ans, pair };
      code.textContent = ans.code;
      showQr(ans.qr_svg);
      setState('pending');
      watchExpiry(ans.expires_in);
      listen(mine);
    } catch (e) {
      if (gone || mine !== attempt) return;
      const msg = e instanceof ApiError && e.code === 'rate_limited'
        ? 'Too many attempts from this network. Wait a minute, then try again.'
        : e instanceof ApiError && e.status === 0 ? 'Cannot reach the Linkward server. Check your connection.'
          : e instanceof ApiError ? e.message : 'This browser cannot make a device key.';
      setState('error', msg);
    }
  }

  /** A bound on waiting: if no word came by the end of the request's life, ask. */
  function watchExpiry(seconds) {
    clearTimeout(expiryTimer);
    expiryTimer = setTimeout(() => poll(attempt), (Number(seconds) + 2) * 1000);
  }

  function listen(mine) {
    const s = new WebSocket(socketUrl('/v1/ws?link=1'));
    sock = s;
    s.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (mine === attempt) onEvent(ev);
    };
    // Closed before a final word (a proxy, a restart): fall back to polling.
    s.onclose = () => {
      if (sock === s) sock = null;
      if (!gone && mine === attempt && ['pending', 'scanned'].includes(state)) pollTimer = setTimeout(() => poll(mine), 1000);
    };
  }

  async function poll(mine) {
    if (gone || mine !== attempt || !req) return;
    try {
      const ans = await request('GET', `/v1/link-requests/${encodeURIComponent(req.id)}`);
      if (mine !== attempt) return;
      if (ans.state === 'pending' && ans.qr_svg) showQr(ans.qr_svg);
      onEvent({ event: `link.${ans.state}` });
    } catch (e) {
      if (mine !== attempt) return;
      if (e instanceof ApiError && (e.status === 401 || e.status === 404 || e.status === 410)) {
        onEvent({ event: 'link.expired' });
        return;
      }
    }
    if (['pending', 'scanned'].includes(state) && !sock) pollTimer = setTimeout(() => poll(mine), 2000);
  }

  function onEvent(ev) {
    switch (ev.event) {
      case 'link.ref':
        if (state === 'pending') showQr(ev.qr_svg);
        break;
      case 'link.pending':
        break;
      case 'link.scanned':
        if (state === 'pending') setState('scanned');
        break;
      case 'link.approved':
        if (state === 'pending' || state === 'scanned') complete();
        break;
      case 'link.denied':
        stop();
        // At the device limit the server ends the request and says why (reason "limit").
        setState('denied', ev.reason === 'limit' && ev.message ? ev.message : undefined);
        break;
      case 'link.expired':
        if (state !== 'linking') {
          stop();
          setState('expired');
        }
        break;
      default:
        break;
    }
  }

  async function complete() {
    const mine = attempt;
    setState('linking');
    try {
      const signature = await store.signProof(req.pair, proof.LINK, req.id, store.b64d(req.nonce));
      const ans = await request('POST', `/v1/link-requests/${encodeURIComponent(req.id)}/complete`,
        { signature, credential: 'cookie' });
      if (gone || mine !== attempt) return;
      stop();
      await onLinked(ans);
    } catch (e) {
      if (gone || mine !== attempt) return;
      stop();
      if (e instanceof ApiError && e.code === 'device_limit') {
        setState('denied', e.message || 'Your account has reached its device limit. Log out a device from your phone, then try again.');
      } else if (e instanceof ApiError && e.code === 'expired') {
        setState('expired');
      } else {
        setState('error', e.message || STATUS.error);
      }
    }
  }

  start();
  return () => {
    gone = true;
    stop();
  };
}
