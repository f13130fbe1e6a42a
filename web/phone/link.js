// Link a device: scan its QR code with the camera (or type its pairing
// code), see who asks, approve with the PIN or deny. The order is the CLI's
// (src/cli/cli_phone.c): the payload is checked offline first, the scan shows
// the request, and only an approval signs the requester's key.

import * as session from '../js/session.js';
import { describeClient, describePlace, h, icon } from '../js/ui.js';
import * as primary from './primary.js';

const SCAN_EVERY_MS = 120;

let jsqrLoading = null;
/** The vendored jsQR (a classic script setting window.jsQR), loaded once when first needed. */
function loadJsqr() {
  if (globalThis.jsQR) return Promise.resolve(globalThis.jsQR);
  jsqrLoading ||= new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = '/phone/vendor/jsQR.js';
    s.onload = () => (globalThis.jsQR ? resolve(globalThis.jsQR) : reject(new Error('no decoder')));
    s.onerror = () => { jsqrLoading = null; reject(new Error('no decoder')); };
    document.head.append(s);
  });
  return jsqrLoading;
}

/** A function (canvas) → QR text or null: BarcodeDetector where the browser has one for QR, else jsQR. */
async function makeDecoder() {
  if (globalThis.BarcodeDetector) {
    try {
      const formats = await globalThis.BarcodeDetector.getSupportedFormats();
      if (formats.includes('qr_code')) {
        const det = new globalThis.BarcodeDetector({ formats: ['qr_code'] });
        return async (canvas) => (await det.detect(canvas))[0]?.rawValue || null;
      }
    } catch { /* fall through to jsQR */ }
  }
  const jsQR = await loadJsqr();
  return async (canvas) => {
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    return jsQR(img.data, img.width, img.height, { inversionAttempts: 'attemptBoth' })?.data || null;
  };
}

/** Why the camera cannot be used, as a sentence for the person. */
function cameraProblem(e) {
  if (!globalThis.isSecureContext) return 'The camera needs a secure page (HTTPS), so type the pairing code instead.';
  switch (e?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The camera was not allowed, so type the pairing code shown under the QR code instead. ' +
        '(You can allow the camera for this site in the browser\'s settings.)';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'This device has no camera we can use, so type the pairing code shown under the QR code instead.';
    case 'NotReadableError':
      return 'The camera is busy in another app, so type the pairing code shown under the QR code instead.';
    case 'NoDecoder':
      return 'This browser cannot read QR codes, so type the pairing code shown under the QR code instead.';
    default:
      return 'The camera could not be started, so type the pairing code shown under the QR code instead.';
  }
}

/** Fills main with the scan screen; returns the unmount function. ctx: {phone, onDone(message)}. */
export function mountLink(main, ctx) {
  let stream = null;
  let timer = 0;
  let gone = false;
  let busy = false;

  const video = h('video', { class: 'scan-video', playsinline: true, muted: true, 'aria-label': 'Camera view' });
  video.muted = true;
  const canvas = h('canvas', { class: 'scan-canvas', hidden: true });
  const camStatus = h('p', { class: 'scan-status', role: 'status', testid: 'scan-status' }, 'Starting the camera…');
  const codeInput = h('input', { type: 'text', id: 'code-input', testid: 'code-input', autocomplete: 'off', autocapitalize: 'characters',
    spellcheck: 'false', inputmode: 'text', maxlength: '12', placeholder: 'XXXX-XXXX', 'aria-describedby': 'code-help' });
  const codeError = h('p', { class: 'form-error', role: 'alert', testid: 'code-error' });
  const codeBtn = h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'code-submit' }, 'Continue');
  const scanError = h('p', { class: 'form-error', role: 'alert', testid: 'scan-error' });

  const codeForm = h('form', { class: 'form', testid: 'code-form', novalidate: true },
    h('label', { for: 'code-input' }, 'Pairing code'),
    h('p', { class: 'muted small', id: 'code-help' }, 'On the computer, open “Link with a code instead” under the QR code.'),
    codeInput, codeError, codeBtn);

  const scanView = h('section', { class: 'card', 'aria-labelledby': 'scan-title', testid: 'scan' },
    h('h1', { id: 'scan-title', class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'Link a device'),
    h('p', { class: 'muted' }, 'Open Linkward on the computer and point this phone at its QR code.'),
    h('div', { class: 'scan-frame' }, video, h('span', { class: 'scan-aim', 'aria-hidden': 'true' })),
    camStatus, scanError, canvas);
  const codeView = h('section', { class: 'card', 'aria-labelledby': 'code-title' },
    h('h2', { id: 'code-title', class: 'card-title' }, 'Link with a code instead'), codeForm);
  const wrap = h('div', { class: 'stack' }, scanView, codeView);
  main.append(wrap);

  function stopCamera() {
    clearTimeout(timer);
    timer = 0;
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    video.srcObject = null;
  }

  function noCamera(message) {
    stopCamera();
    camStatus.textContent = message;
    camStatus.dataset.state = 'off';
    video.hidden = true;
    scanView.classList.add('no-camera');
  }

  async function startCamera() {
    if (!navigator.mediaDevices?.getUserMedia) return noCamera(cameraProblem(globalThis.isSecureContext ? { name: 'NotFoundError' } : null));
    let decode;
    try {
      decode = await makeDecoder();
    } catch {
      return noCamera(cameraProblem({ name: 'NoDecoder' }));
    }
    try {
      // The rear camera where there is one: it faces the computer's screen.
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: 'environment' } }, audio: false });
    } catch (e) {
      return noCamera(cameraProblem(e));
    }
    if (gone) return stopCamera();
    video.srcObject = stream;
    try { await video.play(); } catch { /* autoplay of a muted stream is allowed; keep reading frames anyway */ }
    camStatus.textContent = 'Looking for a QR code…';
    camStatus.dataset.state = 'on';
    const tick = async () => {
      timer = 0;
      if (gone || !stream || busy) return;
      if (video.videoWidth > 0) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        canvas.getContext('2d', { willReadFrequently: true }).drawImage(video, 0, 0);
        let text = null;
        try { text = await decode(canvas); } catch { /* a frame it could not read */ }
        if (text && !gone) {
          await onPayload(text.trim());
          if (gone) return;
        }
      }
      if (!gone && stream) timer = setTimeout(tick, SCAN_EVERY_MS);
    };
    timer = setTimeout(tick, 0);
  }

  let lastBad = '';
  async function onPayload(text) {
    if (text === lastBad) return;
    busy = true;
    try {
      const why = await primary.payloadProblem(text, ctx.phone);
      if (why) {
        lastBad = text;
        scanError.textContent = why;
        return;
      }
      stopCamera();
      await doScan({ payload: text }, scanError);
    } finally {
      busy = false;
    }
  }

  async function doScan(body, errorLine) {
    errorLine.textContent = '';
    let res;
    try {
      res = await session.call('POST', '/v1/link-requests/scan', body);
    } catch (e) {
      errorLine.textContent = scanErrorText(e);
      if (body.payload && !gone && !stream) startCamera();
      return;
    }
    if (body.payload) {
      // The payload of the scanned ref must be this server's (for a code, the answer carries it).
    } else if (res.payload) {
      const why = await primary.payloadProblem(res.payload, ctx.phone);
      if (why) {
        errorLine.textContent = why;
        await session.call('POST', `/v1/link-requests/${res.request.id}/deny`, {}).catch(() => {});
        return;
      }
    }
    stopCamera();
    wrap.replaceChildren(confirmView(res));
    wrap.querySelector('[data-focus]')?.focus();
  }

  codeForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const code = primary.normaliseCode(codeInput.value);
    if (!code) {
      codeError.textContent = codeInput.value.trim()
        ? 'A pairing code is 8 letters and digits, like K7PM-3QXD.' : 'Type the pairing code shown on the computer.';
      codeInput.setAttribute('aria-invalid', 'true');
      codeInput.focus();
      return;
    }
    codeInput.removeAttribute('aria-invalid');
    codeBtn.disabled = true;
    try {
      await doScan({ code }, codeError);
    } finally {
      codeBtn.disabled = false;
    }
  });

  // ---- who asks, and the answer ----
  function confirmView(res) {
    const r = res.request || {};
    const risk = res.risk || { level: 'unknown', reasons: [] };
    const high = risk.level === 'high';
    const place = describePlace(r);
    const network = typeof r.network === 'string' ? r.network : '';
    const distance = Number.isInteger(r.distance_km) ? `${r.distance_km} km from this phone` : 'Unknown';
    const pin = h('input', { type: 'password', id: 'pin-input', testid: 'pin-input', inputmode: 'numeric', autocomplete: 'off',
      maxlength: '6', pattern: '[0-9]*', 'aria-describedby': 'pin-help' });
    const error = h('p', { class: 'form-error', role: 'alert', testid: 'approve-error' });
    const approveBtn = h('button', { class: 'btn btn-primary btn-block', type: 'button', testid: 'approve' }, 'Approve');
    const denyBtn = h('button', { class: 'btn btn-danger-ghost btn-block', type: 'button', testid: 'deny' }, 'Deny');
    const reasons = (risk.reasons || []).map((x) => (typeof x === 'string' ? x : x.message || x.code)).filter(Boolean);
    let riskAccepted = false;

    const highBox = h('div', { class: 'high-risk', role: 'alertdialog', 'aria-labelledby': 'high-title', testid: 'high-risk-confirm', hidden: true },
      h('p', { id: 'high-title', class: 'alert-title' }, icon('warn'), ' This request is HIGH risk.'),
      h('p', {}, 'Approve only if you are linking this device yourself, right now. Are you sure it is you?'),
      h('div', { class: 'stack-tight' },
        h('button', { class: 'btn btn-danger btn-block', type: 'button', testid: 'accept-risk', onclick: () => { riskAccepted = true; highBox.hidden = true; approve(); } },
          'Yes, it is me: link it'),
        h('button', { class: 'btn btn-ghost btn-block', type: 'button', onclick: () => { highBox.hidden = true; } }, 'Go back')));

    const blocked = !!res.blocked;
    const facts = [
      ['Name', r.name || '(no name)'],
      ['Browser', [r.browser, r.browser_version && r.browser_version.split('.')[0]].filter(Boolean).join(' ') || 'Unknown'],
      ['System', [r.os, r.os_version].filter(Boolean).join(' ') || 'Unknown'],
      ['Device', r.device_model || '-'],
      ['Address', r.ip || '-'],
      ['Place', place],
      ['Network', network || '-'],
      ['Distance', distance],
    ];
    const view = h('section', { class: 'card confirm', testid: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h1', { id: 'confirm-title', class: 'page-title', tabindex: '-1', 'data-focus': '' }, 'A device asks to be linked'),
      h('p', { class: 'confirm-who', testid: 'confirm-who' }, describeClient(r)),
      h('dl', { class: 'facts', testid: 'request-facts' }, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
      h('div', { class: `risk risk-${risk.level}`, testid: 'risk' },
        h('p', { class: 'risk-level' }, `Risk: ${risk.level}`),
        reasons.length ? h('ul', { class: 'risk-reasons' }, reasons.map((t) => h('li', {}, t))) : null),
      blocked ? h('p', { class: 'notice', role: 'status' }, icon('warn'),
        h('span', {}, 'This server refuses high-risk links: this device cannot be linked. Deny it.')) : null,
      res.pin_required ? h('div', { class: 'form' },
        h('label', { for: 'pin-input' }, 'Two-step verification PIN'),
        h('p', { class: 'muted small', id: 'pin-help' }, 'The 6 digits you chose for this account.'),
        pin) : null,
      error,
      highBox,
      h('div', { class: 'stack-tight' }, blocked ? null : approveBtn, denyBtn));

    async function approve() {
      error.textContent = '';
      const body = {};
      if (res.pin_required) {
        if (!/^[0-9]{6}$/.test(pin.value)) {
          error.textContent = pin.value ? 'The PIN is 6 digits.' : 'Enter your two-step verification PIN.';
          pin.setAttribute('aria-invalid', 'true');
          pin.focus();
          return;
        }
        pin.removeAttribute('aria-invalid');
        body.pin = pin.value;
      }
      if (high && !riskAccepted) {
        highBox.hidden = false;
        highBox.querySelector('button')?.focus();
        return;
      }
      if (high) body.accept_risk = true;
      approveBtn.disabled = denyBtn.disabled = true;
      try {
        body.account_signature = await primary.accountSignature(ctx.phone.account_id, r.public_key);
        await session.call('POST', `/v1/link-requests/${r.id}/approve`, body);
        pin.value = '';
        ctx.onDone(`Approved. ${describeClient(r)} is being linked to your account.`);
      } catch (e) {
        pin.value = '';
        error.textContent = approveErrorText(e);
        const final = ['not_pending', 'expired', 'risk_blocked', 'device_limit', 'not_found', 'pin_locked'].includes(e.code);
        approveBtn.disabled = final;
        denyBtn.disabled = false;
        if (e.code === 'wrong_pin') pin.focus();
      }
    }
    approveBtn.addEventListener('click', approve);
    denyBtn.addEventListener('click', async () => {
      approveBtn.disabled = denyBtn.disabled = true;
      try {
        await session.call('POST', `/v1/link-requests/${r.id}/deny`, {});
        ctx.onDone('Denied. That device was not linked.');
      } catch (e) {
        error.textContent = e.message;
        denyBtn.disabled = false;
      }
    });
    return view;
  }

  startCamera();
  return () => {
    gone = true;
    stopCamera();
  };
}

function scanErrorText(e) {
  switch (e.code) {
    case 'invalid_code': return 'No device is waiting with this code. Check it on the computer (it changes when the page reloads) and try again.';
    case 'expired': return 'This QR code or code has expired. Reload the page on the computer and scan the new one.';
    case 'already_scanned': return 'This device was already scanned. Reload the page on the computer to start again.';
    case 'not_pending': return 'This request was already answered. Reload the page on the computer to start again.';
    case 'invalid_signature': return 'This QR code was not made by your Linkward server: do not link it.';
    case 'wrong_origin': return 'This QR code is for another site: do not link it.';
    default: return e.message;
  }
}

function approveErrorText(e) {
  switch (e.code) {
    case 'wrong_pin': return /pin/i.test(e.message) ? e.message : `Wrong PIN. ${e.message}`;
    case 'pin_required': return 'Enter your two-step verification PIN.';
    case 'pin_change_required': return 'Your account was secured: set a new PIN (Security tab) before linking devices.';
    default: return e.message;
  }
}
