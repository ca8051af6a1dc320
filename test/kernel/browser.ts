// Renders an HTML report in headless Chromium (Debian's package, driven by
// puppeteer-core) and says what a reader would see: console errors, every
// request the page made, the text, how long it took to draw, how many
// coloured pixels each chart canvas holds, and a screenshot.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers';

export const CHROMIUM = process.env.JITTERSCOPE_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots land here, kept after the run. */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');

export function browserSkipReason(): string | null {
  if (!fs.existsSync(CHROMIUM)) return `${CHROMIUM} is missing (npm test installs Debian's chromium)`;
  if (spawnSync(CHROMIUM, ['--version']).status !== 0) return `${CHROMIUM} --version fails`;
  return null;
}

export interface Rendered {
  errors: string[];
  requests: string[];
  text: string;
  /** performance.now() when the page script finished, cold (first load) and warm (second). */
  coldMs: number;
  warmMs: number;
  /** Pixels of strong colour (not grey, not white) per canvas id. */
  coloured: Record<string, number>;
  screenshot: string;
}

export async function render(file: string, name: string): Promise<Rendered> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a test-only dependency, loaded when a page is drawn
  const puppeteer = require('puppeteer-core');
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1000 });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m: any) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e: Error) => errors.push(String(e)));
    page.on('requestfailed', (r: any) => errors.push(`request failed: ${r.url()}`));
    page.on('request', (r: any) => requests.push(r.url()));
    const url = 'file://' + path.resolve(file);
    const load = async () => {
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForSelector('body[data-rendered]', { timeout: 20_000 });
      return Number(await page.evaluate(() => (document.body as HTMLElement).dataset.rendered));
    };
    const coldMs = await load();
    const warmMs = await load();
    const coloured = await page.evaluate(() => {
      const out: Record<string, number> = {};
      for (const c of Array.from(document.querySelectorAll('canvas'))) {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
          if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
        }
        out[c.id] = n;
      }
      return out;
    });
    const text = await page.evaluate(() => document.body.innerText);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const screenshot = path.join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    return { errors, requests: requests.filter((u, i) => requests.indexOf(u) === i), text, coldMs, warmMs, coloured, screenshot };
  } finally {
    await browser.close();
  }
}
