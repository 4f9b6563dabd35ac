// What every browser test shares: Debian's Chromium launched for a closed
// network, the environment the Rust test passes, console errors collected,
// and a failing expectation that says why.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const base = env("MART_URL");
export const artifacts = env("MART_ARTIFACTS");
mkdirSync(artifacts, { recursive: true });

// Flags for a closed network: without the background-networking ones,
// Chromium keeps trying to reach Google's hosts.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// Anything the page logs as an error (a CSP violation, an uncaught
// exception, a failed request) fails the test.
export function watchErrors(page, label) {
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`${label} console: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${label} exception: ${e.message}`));
  return errors;
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// Runs the checks in order, closing the browser whatever happens; the
// process fails with the first error's stack.
export async function run(browser, checks, done) {
  try {
    for (const check of checks) await check();
    console.log(done);
  } catch (error) {
    console.error(error.stack || String(error));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
