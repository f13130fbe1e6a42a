// DOM helpers and formatting. Everything is built with createElement and
// textContent: no HTML strings, so server data can never become markup.

/** h('p', {class: 'x', testid: 'y', onclick: fn}, 'text', child…) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Small line icons (24×24, stroked with currentColor). */
const ICONS = {
  logo: ['M12 2.5 4 6v5.5c0 4.6 3.3 8.7 8 10 4.7-1.3 8-5.4 8-10V6z', 'M8.5 12.5l2.3 2.3 4.7-4.8'],
  phone: ['M8 2.5h8a1.5 1.5 0 0 1 1.5 1.5v16a1.5 1.5 0 0 1-1.5 1.5H8A1.5 1.5 0 0 1 6.5 20V4A1.5 1.5 0 0 1 8 2.5z', 'M11 18.5h2'],
  computer: ['M4 5h16v10.5H4z', 'M2 19h20', 'M9 15.5 8.5 19M15 15.5l.5 3.5'],
  bell: ['M6 16V11a6 6 0 0 1 12 0v5l1.5 2h-15z', 'M10 20.5a2 2 0 0 0 4 0'],
  shield: ['M12 2.5 4 6v5.5c0 4.6 3.3 8.7 8 10 4.7-1.3 8-5.4 8-10V6z'],
  lock: ['M6 10.5h12v10H6z', 'M8.5 10.5V7.5a3.5 3.5 0 0 1 7 0v3', 'M12 14.5v2.5'],
  check: ['M5 12.5l4.5 4.5L19 7.5'],
  warn: ['M12 3 2.5 20h19z', 'M12 9.5v5', 'M12 17.2v.3'],
  gear: ['M12 8.5a3.5 3.5 0 1 0 0 7 3.5 3.5 0 0 0 0-7z',
    'M19.4 13.5l1.6 1.2-1.8 3.1-1.9-.7a7 7 0 0 1-1.9 1.1L15 20.5h-3.6l-.4-2.3a7 7 0 0 1-1.9-1.1l-1.9.7-1.8-3.1 1.6-1.2a7 7 0 0 1 0-2.2L4.6 10l1.8-3.1 1.9.7A7 7 0 0 1 10.2 6.5l.4-2.3h3.6l.4 2.3a7 7 0 0 1 1.9 1.1l1.9-.7 1.8 3.1-1.6 1.2a7 7 0 0 1 0 2.3z'],
  refresh: ['M19.5 12a7.5 7.5 0 1 1-2.2-5.3', 'M19.5 4v4.5H15'],
  close: ['M6 6l12 12M18 6 6 18'],
};

export function icon(name, cls = 'icon') {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of ICONS[name] || []) {
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

/** The Linkward word mark. */
export function brand() {
  return h('span', { class: 'brand' }, icon('logo', 'icon brand-mark'), h('span', { class: 'brand-name' }, 'Linkward'));
}

/** A text as a data: URL (for the server's SVG QR code in an <img>). */
export function dataUrl(type, text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return `data:${type};base64,${btoa(bin)}`;
}

// ---------------------------------------------------------------------------
// Formatting

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function formatDate(iso) {
  const t = Date.parse(iso || '');
  return Number.isFinite(t) ? dateFmt.format(t) : 'unknown';
}

/** "just now", "5 minutes ago", "yesterday", then a date. */
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso || '');
  if (!Number.isFinite(t)) return 'unknown';
  const s = Math.round((t - now) / 1000);
  if (s > -60) return 'just now';
  const steps = [[60, 'minute'], [3600, 'hour'], [86400, 'day']];
  for (let i = steps.length - 1; i >= 0; i--) {
    const [unit, name] = steps[i];
    if (-s >= unit) {
      if (name === 'day' && -s >= 7 * 86400) return formatDate(iso);
      return rel.format(Math.round(s / unit), name);
    }
  }
  return 'just now';
}

// "Chrome 156"; a 0.x version keeps its minor part ("Linkward CLI 0.1"), as 0 alone says nothing.
const major = (v) => {
  const parts = (v || '').split('.');
  return parts[0] === '0' && parts.length > 1 ? `0.${parts[1]}` : parts[0];
};

/** "Chrome 124 on Windows 10" from a session record. */
export function describeClient(d) {
  const browser = [d.browser, major(d.browser_version)].filter(Boolean).join(' ');
  const os = [d.os, d.os_version].filter(Boolean).join(' ');
  const model = d.device_model ? ` (${d.device_model})` : '';
  if (browser && os) return `${browser} on ${os}${model}`;
  return (browser || os || 'Unknown device') + model;
}

/** "Lisbon, PT" (or the IP address when no place is known). */
export function describePlace(d) {
  const place = [d.city, d.region && d.region !== d.city ? d.region : '', d.country].filter(Boolean).join(', ');
  return place || 'Place unknown';
}

/** Visually hidden text for screen readers. */
export const sr = (text) => h('span', { class: 'sr-only' }, text);

/** Moves keyboard focus to the screen's heading (it has tabindex=-1). */
export function focusHeading(root) {
  const el = root.querySelector('[data-focus]');
  if (el) el.focus({ preventScroll: false });
}
