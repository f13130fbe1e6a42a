// Helpers of the phone app's browser tests (tests/browser/phone*.test.js):
// a phone browser whose fake camera films a given QR code, and the app's
// registration. See browser.js for servers, pages and their problems.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as b from './browser.js';

const { h } = b;
export const W = 640;
export const H = 480;
const FRAMES = 4;

/**
 * A y4m video (4:2:0, a few identical frames) of the image in png, centred
 * on white: what Chromium's fake camera plays in a loop. The luminance plane
 * comes from the pixels (read in a blank page of browser: Chromium decodes
 * the PNG), the chroma planes are 128 (grey).
 */
export async function y4mOf(browser, png, file) {
  const page = await browser.newPage();
  try {
    const luma = await page.evaluate(async ({ src, W, H }) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = W;
      c.height = H;
      const ctx = c.getContext('2d');
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, W, H);
      const side = Math.min(W, H) - 40;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(img, (W - side) / 2, (H - side) / 2, side, side);
      const d = ctx.getImageData(0, 0, W, H).data;
      const y = new Array(W * H);
      for (let i = 0; i < W * H; i++) y[i] = Math.round(0.299 * d[4 * i] + 0.587 * d[4 * i + 1] + 0.114 * d[4 * i + 2]);
      return y;
    }, { src: `data:image/png;base64,${fs.readFileSync(png).toString('base64')}`, W, H });
    const header = Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`);
    const frame = Buffer.concat([Buffer.from('FRAME\n'), Buffer.from(luma), Buffer.alloc(W * H / 2, 128)]);
    fs.writeFileSync(file, Buffer.concat([header, ...Array(FRAMES).fill(frame)]));
  } finally {
    await page.close();
  }
  return file;
}

/** A phone browser; with video, its camera plays that y4m file. */
export function launchPhone(video) {
  const args = [...b.ARGS];
  if (video) args.push('--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${video}`, '--use-fake-ui-for-media-stream');
  return chromium.launch({ executablePath: b.CHROMIUM, headless: true, args });
}

export const PHONE_UA = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36';

/** A phone-sized context on /phone/, watched; camera granted unless opts.camera === false. */
export async function openPhone(browser, server, opts = {}) {
  const context = await browser.newContext({
    viewport: b.PHONE, userAgent: PHONE_UA, isMobile: true, hasTouch: true, deviceScaleFactor: 1,
    extraHTTPHeaders: b.GEO ? { 'x-forwarded-for': b.LISBON } : {},
  });
  if (opts.camera !== false) await context.grantPermissions(['camera'], { origin: server.url });
  const page = await context.newPage();
  await b.watch(page);
  await page.goto(`${server.url}/phone/`);
  return { context, page };
}

/** Registers a new account in the app, confirming the recovery key it shows once; returns the handle. */
export async function register(page, prefix = 'ph') {
  return (await registerWithKey(page, prefix)).handle;
}

/** As register; returns {handle, recoveryKey}. */
export async function registerWithKey(page, prefix = 'ph') {
  const handle = h.uniqueHandle(prefix);
  await b.see(page, 'phone-register');
  await b.byId(page, 'handle-input').fill(handle);
  await b.byId(page, 'register-submit').click();
  const recoveryKey = await confirmRecoveryKey(page);
  await b.see(page, 'devices-list', 8000);
  return { handle, recoveryKey };
}

/** On the recovery-key screen: reads the key, retypes the group asked for, goes on. Returns the key. */
export async function confirmRecoveryKey(page) {
  await b.see(page, 'recovery-key-screen', 8000);
  const key = (await b.byId(page, 'recovery-key').innerText()).trim().split(/\s+/).join('-');
  const label = await page.locator('label[for="recovery-confirm"]').innerText();
  const n = Number(/group (\d+)/.exec(label)[1]);
  await b.byId(page, 'recovery-confirm').fill(key.split('-')[n - 1].toLowerCase());
  await b.byId(page, 'recovery-done').click();
  return key;
}

/** Sets the PIN in the Security tab. */
export async function setPin(page, pin) {
  await b.byId(page, 'tab-security').click();
  await b.see(page, 'pin-new');
  await b.byId(page, 'pin-new').fill(pin);
  await b.byId(page, 'pin-repeat').fill(pin);
  await b.byId(page, 'pin-save').click();
  await b.byId(page, 'pin-status').filter({ hasText: /PIN set/ }).waitFor({ timeout: h.T(5000) });
}

/** The companion page's QR code as a PNG file. */
export async function qrPng(page) {
  const file = path.join(h.tempDir('lw-phone-qr-'), 'qr.png');
  await b.byId(page, 'link-qr').locator('img').screenshot({ path: file });
  return file;
}
