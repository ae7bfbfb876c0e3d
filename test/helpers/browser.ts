import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

/**
 * Headless Chromium for the dashboard tests: Debian's `chromium` package (or FORECASTD_CHROMIUM), driven by
 * playwright-core. When it is missing: under CI=true the test file fails (.ci/run installs it); elsewhere a
 * banner says the browser tests are skipped and why.
 */

export const CHROMIUM = process.env.FORECASTD_CHROMIUM ?? '/usr/bin/chromium';

/** Screenshots the tests take, for people to look at; not committed (.gitignore). */
export const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-artifacts');

export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const reason = `no Chromium at ${CHROMIUM}`;
  if (process.env.CI === 'true') throw new Error(`${reason}. CI=true requires it for the dashboard tests (.ci/run installs Debian's chromium).`);
  const line = '!'.repeat(100);
  console.warn(`\n${line}\n!! SKIPPED: dashboard browser tests.\n!! ${reason}: apt-get install chromium, or set FORECASTD_CHROMIUM.\n${line}\n`);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
