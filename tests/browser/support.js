// Test support for the browser tests: the real `caucus` binary, headless Chromium,
// and helpers that fail loudly instead of hanging.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "..", "..");
// Screenshots go to target/ on every run, and into docs/ (shown in the README) when
// CAUCUS_UPDATE_SCREENSHOTS=1, so that a test run leaves the work tree as it was.
export const screenshots = process.env.CAUCUS_UPDATE_SCREENSHOTS === "1"
  ? join(repo, "docs", "screenshots")
  : join(repo, "target", "screenshots");

/** Starts `caucus serve` and resolves once it prints its address and sign-in link. */
export async function startServer({ data = mkdtempSync(join(tmpdir(), "caucus-browser-")), listen = "127.0.0.1:0" } = {}) {
  const binary = process.env.CAUCUS_BIN || join(repo, "target", "debug", "caucus");
  const child = spawn(binary, ["serve"], {
    env: { ...process.env, CAUCUS_LISTEN: listen, CAUCUS_DATA_DIR: data, CAUCUS_LOG: "warn", CAUCUS_SIGN_IN_LINK: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  let url;
  let signIn;
  await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error("caucus serve did not start within 20 s")), 20000);
    child.on("exit", (code) => fail(new Error(`caucus serve exited with ${code}`)));
    lines.on("line", (line) => {
      const listening = line.match(/listening on (http:\/\/\S+)/);
      if (listening) url = listening[1];
      const link = line.match(/Facilitator: (\S+#token=\S+)/);
      if (link) signIn = link[1];
      if (url && signIn) { clearTimeout(timer); done(); }
    });
  });
  return {
    url, signIn, data, child,
    port: new URL(url).port,
    stop: () => new Promise((done) => { child.once("exit", done); child.kill("SIGKILL"); }),
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** A new isolated browser context and page, as a different person on another machine. */
export async function person(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("dialog", (dialog) => dialog.accept(dialog.type() === "prompt" ? page.promptAnswer ?? "" : undefined));
  page.on("pageerror", (error) => { page.errors = [...(page.errors || []), error]; });
  return page;
}

/** Records, from now on, whether `needle` ever appears anywhere in the page's DOM. */
export async function watchFor(page, needle) {
  await page.evaluate((needle) => {
    window.__sawText = window.__sawText || {};
    window.__sawText[needle] = document.body.innerText.includes(needle);
    new MutationObserver(() => {
      if (document.body.innerText.includes(needle) || document.body.innerHTML.includes(needle)) window.__sawText[needle] = true;
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  }, needle);
}

export async function everSaw(page, needle) {
  return page.evaluate((needle) => Boolean(window.__sawText?.[needle]) || document.body.innerHTML.includes(needle), needle);
}

export async function joinAs(page, inviteUrl, name) {
  await page.goto(inviteUrl);
  await page.getByLabel("Your name, as others will see it").fill(name);
  await page.getByLabel("I have read and accept the ground rules").check();
  await page.getByRole("button", { name: "Join" }).click();
  await page.getByRole("status").filter({ hasText: "Online" }).waitFor();
}

export async function say(page, text) {
  await page.locator("#composer").fill(text);
  await page.locator("#composer").press("Enter");
  await page.locator("#messages li", { hasText: text }).first().waitFor();
}

export function shot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  return page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}
