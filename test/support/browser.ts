import fs from 'node:fs';
import path from 'node:path';

/** Debian's Chromium unless CHROME_PATH says otherwise. */
export const CHROME_PATH = process.env['CHROME_PATH'] ?? '/usr/bin/chromium';
export const RESULTS_DIR = path.join(__dirname, '..', '..', 'test-results');
export const MISSING_CHROMIUM =
  `Chromium was not found at ${CHROME_PATH}. Install it with \`apt-get install -y chromium\`, ` + 'or set CHROME_PATH to a Chromium or Chrome executable.';

export const haveChromium = fs.existsSync(CHROME_PATH);
const inCi = process.env['CI'] === 'true';

/**
 * `describe` for browser tests: skipped, with a warning, where Chromium is missing; in CI a
 * missing browser must fail the run, not quietly skip the only browser coverage.
 */
export function describeBrowser(name: string, fn: () => void): void {
  if (!haveChromium && !inCi) {
    console.warn(`Skipping "${name}": ${MISSING_CHROMIUM}`);
    describe.skip(name, fn);
    return;
  }
  describe(name, fn);
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
