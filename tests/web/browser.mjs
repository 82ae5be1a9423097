// What the browser scripts share: Debian's Chromium through playwright-core, a check that
// prints what held, and JSON from the server under test.
import { chromium } from "playwright-core";

/** Chromium, headless, with nothing running in the background that could reach the network. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Throws `what` unless `ok`; prints it when it holds. */
export function check(ok, what) {
  if (!ok) throw new Error(what);
  console.log(`ok: ${what}`);
}

/** GET `path` of the server at `url` as JSON. */
export function jsonFrom(url) {
  return async (path) => (await fetch(url + path)).json();
}

/** Run `checks(browser)` in a fresh browser; print what failed, close it, and exit 0 or 1. */
export async function run(checks) {
  const browser = await launch();
  let failed = false;
  try {
    await checks(browser);
  } catch (e) {
    console.error(`FAILED: ${e.message}`);
    failed = true;
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}
