/**
 * Writes docs/dashboard.png, the README's picture of the bundled example's dashboard: forecastd serves
 * examples/co2 in this process, headless Chromium (Debian's chromium, playwright-core) opens it at 1280×800,
 * waits for the tables and the chart, and takes the whole page with the pointer off the chart.
 *
 * Usage: npm run build && npx tsx tools/dashboard-screenshot.ts
 */
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../src/server/start.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const server = await startServer({ spicepod: `${REPO}examples/co2`, port: 0 });
try {
  await server.loaded();
  const browser = await chromium.launch({
    executablePath: process.env.FORECASTD_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(server.url + '/');
    await page.locator('#models tbody tr').first().waitFor();
    await page.locator('.chart-card canvas').waitFor();
    // The next poll (every 5 s) shows the metrics of the page's own first forecasts in the table.
    const first = await page.locator('#state').textContent();
    await page.waitForFunction((text) => document.getElementById('state')?.textContent !== text, first, { timeout: 15_000 });
    await page.screenshot({ path: `${REPO}docs/dashboard.png`, fullPage: true });
    console.log(`wrote ${REPO}docs/dashboard.png`);
  } finally {
    await browser.close();
  }
} finally {
  await server.close();
}
