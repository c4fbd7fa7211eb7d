// Test support for the browser tests: the real `caucus` binary, headless Chromium,
// and helpers that fail loudly instead of hanging.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "..", "..");
// Screenshots go to target/ on every run, and into docs/ (shown in the README) when
// CAUCUS_UPDATE_SCREENSHOTS=1, so that a test run leaves the work tree as it was.
export const screenshots = process.env.CAUCUS_UPDATE_SCREENSHOTS === "1"
  ? join(repo, "docs", "screenshots")
  : join(repo, "target", "screenshots");

/**
 * Starts `caucus serve` and resolves once it prints its address and sign-in link.
 * `env`: more environment variables for the server (they win over the defaults here);
 * `args`: more arguments after `serve` (e.g. `["--config", file]`). To restart on the
 * same data, pass the `data` (and `listen: 127.0.0.1:<port>`) of the server returned.
 */
export async function startServer({ data = mkdtempSync(join(tmpdir(), "caucus-browser-")), listen = "127.0.0.1:0", env = {}, args = [] } = {}) {
  const binary = process.env.CAUCUS_BIN || join(repo, "target", "debug", "caucus");
  const child = spawn(binary, ["serve", ...args], {
    env: { ...process.env, CAUCUS_LISTEN: listen, CAUCUS_DATA_DIR: data, CAUCUS_LOG: "warn", CAUCUS_SIGN_IN_LINK: "1", ...env },
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
    /** A facilitator token for `name`, minted as an operator would, with the same key. */
    token: (name) => execFileSync(binary, ["token", "facilitator", "--name", name], {
      env: { ...process.env, CAUCUS_DATA_DIR: data, ...env },
    }).toString().trim(),
    /** Runs another `caucus` command (e.g. `["signin-link", email]`) on this server's data. */
    cli: (commandArgs) => execFileSync(binary, commandArgs, {
      env: { ...process.env, CAUCUS_DATA_DIR: data, ...env },
    }).toString().trim(),
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

/** Everything a page holds on screen now: its text, its markup and every field's value. */
export async function pageContents(page) {
  return page.evaluate(() => [
    document.body.innerText,
    document.body.innerHTML,
    ...[...document.querySelectorAll("input, textarea")].map((input) => input.value),
  ].join("\n"));
}

/** Keeps every WebSocket frame the page sends from now on, in `page.sentFrames`. */
export function recordSentFrames(page) {
  page.sentFrames = [];
  page.on("websocket", (socket) => socket.on("framesent", ({ payload }) => page.sentFrames.push(String(payload))));
}

/**
 * Sends one command as the person signed in on `page`, over a WebSocket of its own, and
 * resolves with the server's `ack` or `error`. For what the UI cannot do, such as a
 * round of a few seconds.
 */
export async function command(page, frame) {
  return page.evaluate((frame) => new Promise((done, fail) => {
    const session = new URLSearchParams(location.hash.slice(1)).get("session");
    const token = localStorage.getItem(`caucus.session.${session}`);
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    const timer = setTimeout(() => fail(new Error("no answer to the command within 10 s")), 10000);
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", session, token, resume: {} }));
    socket.onmessage = (message) => {
      const reply = JSON.parse(message.data);
      if (reply.type === "welcome") socket.send(JSON.stringify({ ...frame, client_id: "test-command" }));
      if ((reply.type === "ack" || reply.type === "error") && reply.client_id === "test-command") {
        clearTimeout(timer);
        socket.close();
        done(reply);
      }
    };
  }), frame);
}

/**
 * Lets a test play with the page's connection: `cutConnection(page)` closes its
 * WebSockets and makes every reconnect fail until `restoreConnection(page)`;
 * `holdIncoming(page)` keeps what the server sends from reaching the app until
 * `releaseIncoming(page)`, as a slow network would. Call before the page loads the app.
 */
export async function makeConnectionControllable(page) {
  await page.addInitScript(() => {
    const Original = window.WebSocket;
    window.__sockets = [];
    window.__connectionCut = false;
    window.__held = null; // while holding: the deliveries waiting
    window.WebSocket = class extends Original {
      constructor(url, protocols) {
        // A path that never upgrades: the attempt fails as a dropped network would.
        super(window.__connectionCut ? String(url).replace(/\/ws$/, "/no-such-socket") : url, protocols);
        window.__sockets.push(this);
      }

      addEventListener(type, listener, options) {
        if (type !== "message") return super.addEventListener(type, listener, options);
        return super.addEventListener(type, (event) => {
          if (window.__held) window.__held.push(() => listener(event));
          else listener(event);
        }, options);
      }
    };
  });
}

export async function cutConnection(page) {
  await page.evaluate(() => {
    window.__connectionCut = true;
    for (const socket of window.__sockets) socket.close();
  });
}

export async function restoreConnection(page) {
  await page.evaluate(() => { window.__connectionCut = false; });
}

export async function holdIncoming(page) {
  await page.evaluate(() => { window.__held = []; });
}

export async function releaseIncoming(page) {
  await page.evaluate(() => {
    const held = window.__held ?? [];
    window.__held = null;
    for (const deliver of held) deliver();
  });
}

/** A loopback port free now: for a server whose address must be known before it starts
 * (an identity provider's redirect URIs name it). */
export function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

const require = createRequire(import.meta.url);

/** The serious and critical WCAG 2.2 AA problems axe-core finds on the page. */
export async function axeViolations(page) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const results = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
  }));
  return results.violations
    .filter((violation) => ["serious", "critical"].includes(violation.impact))
    .map((violation) => `${violation.id}: ${violation.help} (${violation.nodes.map((node) => node.target.join(" ")).join(", ")})`);
}
