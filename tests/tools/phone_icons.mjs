// Draws the phone app's icons (web/phone/icon-192.png, icon-512.png): the
// Linkward shield of web/favicon.svg on a full-bleed square (so a maskable
// crop keeps it), rendered by the Chromium the browser tests use. Run from
// the repository: node tests/tools/phone_icons.mjs
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const svg = (size) => `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 32 32">
<rect width="32" height="32" fill="#0b7a62"/>
<g transform="translate(6.4 6.4) scale(0.6)"><path d="M16 5.5 8 9v5.5c0 4.6 3.3 8.7 8 10 4.7-1.3 8-5.4 8-10V9z" fill="none" stroke="#fff" stroke-width="2" stroke-linejoin="round"/>
<path d="m12.3 15.5 2.5 2.5 5-5" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></g></svg>`;

const browser = await chromium.launch({ executablePath: process.env.LINKWARD_CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
for (const size of [192, 512]) {
  const page = await browser.newPage({ viewport: { width: size, height: size } });
  await page.setContent(`<style>html,body{margin:0}</style>${svg(size)}`);
  await page.screenshot({ path: path.join(repo, 'web', 'phone', `icon-${size}.png`), omitBackground: false });
  await page.close();
}
await browser.close();
