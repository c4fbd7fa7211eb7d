// Accounts in the browser, end to end, with a real OpenID Provider and a real SMTP
// server: co-chairs sign in as they do at work, members by an emailed link, a guest
// keeps their seat in an account, and a day later (when every token has run out) each
// of them opens the app again and is the same person in the same seat.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, joinAs, launchBrowser, person, say, shot, startServer, axeViolations } from "./support.js";
import { signInOnProviderPage, startOidcProvider } from "./providers/oidc.mjs";
import { startSmtpSink } from "./providers/mail.mjs";


// Tokens live the shortest time the server allows, so that "a day later" is a minute.
const TOKEN_TTL_SECS = 60;
const LEEWAY_SECS = 5;

let browser;
let idp;
let mail;
let origin;
let port;


before(async () => {
  browser = await launchBrowser();
  mail = await startSmtpSink();
  port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  idp = await startOidcProvider({ redirectUris: [`${origin}/auth/oidc/sso/callback`] });
});

after(async () => {
  await browser?.close();
  await idp?.stop();
  await mail?.stop();
});

/** `caucus serve` with sign-in by the provider and by email; co-chair Ada is an admin. */
function accountsServer(data = mkdtempSync(join(tmpdir(), "caucus-accounts-"))) {
  return startServer({
    data,
    listen: `127.0.0.1:${port}`,
    env: {
      CAUCUS_PUBLIC_URL: origin,
      CAUCUS_OIDC_ISSUER: idp.issuer,
      CAUCUS_OIDC_CLIENT_ID: idp.clientId,
      CAUCUS_OIDC_CLIENT_SECRET: idp.clientSecret,
      CAUCUS_OIDC_NAME: "Community sign-in",
      CAUCUS_SMTP_URL: mail.url,
      CAUCUS_ADMINS: "ada@example.org",
      CAUCUS_TOKEN_TTL_SECS: String(TOKEN_TTL_SECS),
    },
  });
}

/** Signs in on the provider's own login page, from Caucus's start page. */
async function signInWithProvider(page, login) {
  await page.goto(`${origin}/`);
  await page.getByRole("link", { name: "Sign in with Community sign-in" }).click();
  await signInOnProviderPage(page, login);
  await page.waitForURL(`${origin}/**`);
  await page.getByRole("link", { name: "Account" }).waitFor();
}

/** Asks for a sign-in link on the page as it is, and reads it from the mail. */
async function emailedLink(page, email) {
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Email me a sign-in link" }).click();
  await page.getByRole("status").filter({ hasText: `Check your inbox at ${email}` }).waitFor();
  const message = await mail.waitForMail(email, 15000);
  const links = message.text.match(/https?:\/\/\S+#signin=[^\s<>"]+/g) ?? [];
  assert.equal(links.length, 1, `the mail holds exactly one sign-in link: ${message.text}`);
  assert.ok(links[0].startsWith(`${origin}/#signin=`), `the link leads to this server: ${links[0]}`);
  return links[0];
}

/** Signs in by an emailed link, asked for on the page as it is. */
async function signInByEmail(page, email) {
  await page.goto(await emailedLink(page, email));
  await page.getByRole("link", { name: "Account" }).waitFor();
  assert.ok(!page.url().includes("signin="), "the spent link is left in the address bar");
}


async function online(page) {
  await page.getByRole("status").filter({ hasText: "Online" }).waitFor();
}

/** Opens the session from the start page, as someone coming back to the app would. */
async function openFromStartPage(page, title) {
  await page.goto(`${origin}/`);
  await page.getByRole("heading", { name: "Your sessions" }).waitFor();
  await page.getByRole("link", { name: title }).click();
  await online(page);
}

/** How the server answers a hello with `token` alone: a welcome, or the close code. */
function helloWith(page, session, token) {
  return page.evaluate(({ session, token }) => new Promise((done) => {
    const socket = new WebSocket(`ws://${location.host}/ws`);
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", session, token, resume: {} }));
    socket.onmessage = (message) => {
      if (JSON.parse(message.data).type === "welcome") { socket.close(); done("welcome"); }
    };
    socket.onclose = (event) => done(event.code);
  }), { session, token });
}

test("co-chairs, a member and a guest sign in, and a day later are the same people in the same seats", { timeout: 360000 }, async () => {
  let server = await accountsServer();
  const title = "Monthly practice circle";
  try {
    // Ada, a co-chair and admin, signs in at the provider and creates the session.
    const ada = await person(browser);
    await signInWithProvider(ada, "ada");
    await ada.locator("#account-bar", { hasText: "Ada" }).waitFor();
    await ada.getByRole("heading", { name: "Who may facilitate" }).waitFor();
    await ada.getByLabel("Email address of a new facilitator").fill("cy@example.org");
    await ada.getByRole("button", { name: "Let them facilitate" }).click();
    await ada.getByRole("button", { name: "Remove cy@example.org" }).waitFor();
    await ada.getByRole("button", { name: "Remove cy@example.org" }).click();
    await ada.getByText("cy@example.org may no longer create sessions.").waitFor();
    await ada.getByLabel("Title").fill(title);
    await ada.getByRole("button", { name: "Create session" }).click();
    await online(ada);
    await ada.getByRole("button", { name: "Facilitator console" }).click();
    const invite = await ada.locator("#invite-link").inputValue();
    assert.match(invite, /#invite=/);

    // She adds co-chair Bea by the address Bea signs in with.
    await ada.getByLabel("Email address of a co-facilitator").fill("bea@example.org");
    await ada.getByLabel("Their name, if they have not signed in yet (optional)").fill("Bea Okafor");
    await ada.getByRole("button", { name: "Add", exact: true }).click();
    await ada.getByText("bea@example.org can now run this session").waitFor();
    await ada.getByRole("button", { name: "Plenary" }).click();
    await say(ada, "Ada: welcome back, everyone");

    // Bea signs in by an emailed link and finds the session on her start page at once.
    const bea = await person(browser);
    await bea.goto(`${origin}/`);
    await signInByEmail(bea, "bea@example.org");
    await bea.locator("#account-bar", { hasText: "Bea Okafor" }).waitFor();
    await bea.getByRole("heading", { name: "Your sessions" }).waitFor();
    await bea.locator(".sessions li", { hasText: title }).filter({ hasText: "you facilitate" }).waitFor();
    assert.equal(await bea.getByLabel(`Invite link for ${title}`).inputValue(), invite, "a co-chair's start page has the invite");
    // Replacing the link asks first, on the page, not in a browser dialog: here Bea keeps it.
    await bea.getByRole("button", { name: `New invite link for ${title}` }).click();
    await bea.getByText(`Make a new invite link for “${title}”?`).waitFor();
    await bea.getByRole("button", { name: "Keep this link" }).click();
    assert.equal(await bea.getByLabel(`Invite link for ${title}`).inputValue(), invite, "keeping the link replaced it");
    await bea.getByRole("link", { name: title }).click();
    await online(bea);
    await bea.getByRole("button", { name: "Facilitator console" }).waitFor();
    await say(bea, "Bea: co-chairing today");

    // Mo opens the invite, signs in from it by email, comes back to it and joins.
    const mo = await person(browser);
    await mo.goto(invite);
    await mo.getByRole("heading", { name: "Or sign in first" }).waitFor();
    await signInByEmail(mo, "mo@example.org");
    await mo.getByText("You join signed in as mo@example.org").waitFor();
    await mo.getByLabel("Your name, as others will see it").fill("Mo");
    await mo.getByLabel("I have read and accept the ground rules").check();
    await mo.getByRole("button", { name: "Join" }).click();
    await online(mo);
    assert.equal(await mo.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith("caucus.session.")).length), 0,
      "a signed-in member's seat was kept on the device");
    await say(mo, "Mo: glad to be here");

    // Gus joins as a guest by name, then signs in and keeps the seat in his account.
    const gus = await person(browser);
    await joinAs(gus, invite, "Gus");
    await say(gus, "Gus: joined as a guest");
    const guestToken = await gus.evaluate(() => Object.entries(localStorage).find(([key]) => key.startsWith("caucus.session."))[1]);
    const session = new URL(gus.url()).hash.replace("#session=", "");
    const lastTokenMinted = Date.now();
    await gus.goto(`${origin}/`);
    await signInByEmail(gus, "gus@example.org");
    await gus.getByRole("heading", { name: "Seats on this device" }).waitFor();
    await gus.getByRole("button", { name: `Keep this seat in your account (${title})` }).click();
    await gus.getByText(`Your seat in “${title}” is now kept in your account.`).waitFor();
    await gus.locator(".sessions li", { hasText: title }).filter({ hasText: "you are a member" }).waitFor();
    assert.equal(await gus.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith("caucus.session.")).length), 0,
      "the guest token stayed on the device after the seat moved to the account");
    await shot(gus, "accounts-start-page");

    // A day later: every token has run out, and the server has restarted.
    const wait = lastTokenMinted + (TOKEN_TTL_SECS + LEEWAY_SECS + 2) * 1000 - Date.now();
    if (wait > 0) await new Promise((wake) => setTimeout(wake, wait));
    for (const page of [ada, bea, mo, gus]) await page.goto("about:blank");
    await server.stop();
    server = await accountsServer(server.data);
    const stranger = await person(browser);
    await stranger.goto(`${origin}/`);
    assert.equal(await helloWith(stranger, session, guestToken), 4002, "the guest's token should have run out by now");

    // Each of them opens the app again: same name, same seat, and their words are theirs.
    const people = [[ada, "Ada", "Ada: welcome back, everyone"], [bea, "Bea Okafor", "Bea: co-chairing today"],
      [mo, "Mo", "Mo: glad to be here"], [gus, "Gus", "Gus: joined as a guest"]];
    for (const [page, name, words] of people) {
      await openFromStartPage(page, title);
      await page.locator("#messages li.mine", { hasText: words }).waitFor();
      await page.locator("#messages li.mine .who", { hasText: name }).first().waitFor();
      assert.equal(await page.locator("#messages li.mine").count(), 1, `${name} owns someone else's words`);
    }
    await ada.getByRole("button", { name: "Facilitator console" }).waitFor();
    await bea.getByRole("button", { name: "Facilitator console" }).waitFor();
    assert.equal(await mo.getByRole("button", { name: "Facilitator console" }).count(), 0);
    for (const page of [ada, bea, mo, gus, stranger]) assert.deepEqual(page.errors || [], []);
  } finally {
    await server.stop();
  }
});

test("signing out closes the session open in another tab and says so", { timeout: 120000 }, async () => {
  const server = await accountsServer();
  try {
    // bypassCSP lets the test inject axe; the app itself never loosens its policy.
    const ada = await person(browser, { bypassCSP: true });
    await ada.goto(`${origin}/`);
    await ada.getByRole("link", { name: "Sign in with Community sign-in" }).waitFor();
    assert.deepEqual(await axeViolations(ada), [], "start page");
    await signInWithProvider(ada, "ada");
    await ada.getByRole("heading", { name: "Who may facilitate" }).waitFor();
    assert.deepEqual(await axeViolations(ada), [], "signed-in start page");
    await ada.getByLabel("Title").fill("Signed out circle");
    await ada.getByRole("button", { name: "Create session" }).click();
    await online(ada);
    await say(ada, "before signing out");

    // Another tab of the same browser, at phone width, signs out from the account page.
    const other = await ada.context().newPage();
    await other.setViewportSize({ width: 390, height: 844 });
    await other.goto(`${origin}/#account`);
    await other.getByRole("heading", { name: "Your account", exact: true }).waitFor();
    assert.ok(await other.evaluate(() => document.documentElement.scrollWidth <= 390), "the account page scrolls sideways at 390 px");
    await other.getByRole("button", { name: "Delete my account" }).click();
    await other.getByRole("heading", { name: "Delete your account for good?" }).waitFor();
    assert.deepEqual(await axeViolations(other), [], "account page");
    await other.getByRole("button", { name: "Cancel" }).click();
    await shot(other, "accounts-account-page");
    await other.getByRole("button", { name: "Sign out", exact: true }).click();
    await other.getByText("You are signed out.").waitFor();

    await ada.getByText("You were signed out, so this session closed.").waitFor();
    await ada.getByRole("link", { name: "Sign in with Community sign-in" }).waitFor();
    assert.equal(await ada.getByRole("link", { name: "Account" }).count(), 0, "the top bar still shows an account");
    assert.deepEqual(ada.errors || [], []);
  } finally {
    await server.stop();
  }
});

test("keeping a guest seat in an account retires its token: a tab using it comes back signed in, another device is asked to sign in and loses nothing", { timeout: 180000 }, async () => {
  const server = await accountsServer();
  try {
    const ada = await person(browser);
    await signInWithProvider(ada, "ada");
    await ada.getByLabel("Title").fill("Kept seat circle");
    await ada.getByRole("button", { name: "Create session" }).click();
    await online(ada);
    await ada.getByRole("button", { name: "Facilitator console" }).click();
    const invite = await ada.locator("#invite-link").inputValue();
    await ada.getByRole("button", { name: "Plenary" }).click();

    // Gus joins as a guest, and the same seat is open in a second tab and on his phone
    // (a browser holding a copy of the token, not signed in).
    const gus = await person(browser);
    await joinAs(gus, invite, "Gus");
    const sessionUrl = gus.url();
    const [key, token] = await gus.evaluate(() => Object.entries(localStorage).find(([key]) => key.startsWith("caucus.session.")));
    const tab = await gus.context().newPage();
    await tab.goto(sessionUrl);
    await online(tab);
    const phone = await person(browser);
    await phone.goto(`${origin}/`);
    await phone.evaluate(([key, token]) => localStorage.setItem(key, token), [key, token]);
    await phone.goto(sessionUrl);
    await online(phone);

    // The phone loses its network, and what Gus types there waits.
    await phone.context().setOffline(true);
    await phone.locator("#status", { hasText: /lost|offline|reconnecting/i }).waitFor({ timeout: 20000 });
    const waiting = "Gus, from the phone: typed on the train";
    await phone.locator("#composer").fill(waiting);
    await phone.locator("#composer").press("Enter");
    await phone.locator("#outbox li", { hasText: waiting }).first().waitFor();

    // In the first tab he signs in and keeps the seat in his account.
    await gus.goto(`${origin}/`);
    await signInByEmail(gus, "gus@example.org");
    await gus.getByRole("button", { name: "Keep this seat in your account (Kept seat circle)" }).click();
    await gus.getByText("Your seat in “Kept seat circle” is now kept in your account.").waitFor();

    // The second tab's connection closes with the token; it comes back with the cookie,
    // as Gus, and what he says there is his.
    await tab.getByText("Your seat is now kept in your account.").first().waitFor();
    await online(tab);
    await say(tab, "Gus, from the second tab: still here");
    await ada.locator("#messages li", { hasText: "Gus, from the second tab: still here" }).locator(".who", { hasText: "Gus" }).waitFor();
    assert.equal(await helloWith(tab, new URL(sessionUrl).hash.replace("#session=", ""), token), 4012, "the retired token still opens the seat");

    // The phone comes back online: its token opens nothing now, so it asks Gus to sign in.
    await phone.context().setOffline(false);
    await phone.getByText("This seat is now kept in an account. Sign in with it to come back to the session.").waitFor({ timeout: 30000 });
    assert.equal(await phone.evaluate((key) => localStorage.getItem(key), key), null, "the retired token stayed on the phone");
    await signInByEmail(phone, "gus@example.org");
    await online(phone);
    // Nothing typed on the train was lost: it arrives once, as Gus's.
    await phone.locator(`#outbox li[data-state="sent"]`, { hasText: waiting }).first().waitFor({ timeout: 30000 });
    await ada.locator("#messages li", { hasText: waiting }).locator(".who", { hasText: "Gus" }).waitFor();
    assert.equal(await ada.locator("#messages li", { hasText: waiting }).count(), 1, "the waiting message arrived more than once");
    for (const page of [ada, gus, tab, phone]) assert.deepEqual(page.errors || [], []);
  } finally {
    await server.stop();
  }
});

test("a session closed to guests asks people to sign in, and an emailed link works only once", { timeout: 120000 }, async () => {
  const server = await accountsServer();
  try {
    const ada = await person(browser);
    await signInWithProvider(ada, "ada");
    await ada.getByLabel("Title").fill("Members only");
    await ada.getByLabel("Guests may join by name, without signing in").uncheck();
    await ada.getByRole("button", { name: "Create session" }).click();
    await online(ada);
    await ada.getByRole("button", { name: "Facilitator console" }).click();
    const invite = await ada.locator("#invite-link").inputValue();

    // A guest is told to sign in, with the ways to do it right there.
    const pat = await person(browser);
    await pat.goto(invite);
    await pat.getByLabel("Your name, as others will see it").fill("Pat");
    await pat.getByLabel("I have read and accept the ground rules").check();
    await pat.getByRole("button", { name: "Join" }).click();
    await pat.getByRole("alert").filter({ hasText: "Could not join:" }).waitFor();
    assert.equal(await pat.evaluate(() => document.activeElement?.textContent), "Sign in with Community sign-in",
      "focus stays on the join button instead of the ways to sign in");

    // Pat signs in by email from the invite, comes back to it and joins.
    const link = await emailedLink(pat, "pat@example.org");
    await pat.goto(link);
    await pat.getByText("You join signed in as pat@example.org").waitFor();
    await pat.getByLabel("Your name, as others will see it").fill("Pat");
    await pat.getByLabel("I have read and accept the ground rules").check();
    await pat.getByRole("button", { name: "Join" }).click();
    await online(pat);

    // The same link, opened again (say, from another device), is spent.
    const again = await person(browser);
    await again.goto(link);
    await again.getByRole("heading", { name: "This sign-in link did not work" }).waitFor();
    await again.getByRole("alert").filter({ hasText: /expired|used/ }).waitFor();
    await again.getByRole("button", { name: "Email me a new link" }).waitFor();
    assert.equal(await again.getByRole("link", { name: "Account" }).count(), 0, "a spent link signed someone in");
    for (const page of [ada, pat, again]) assert.deepEqual(page.errors || [], []);
  } finally {
    await server.stop();
  }
});

test("when an admin changes what someone may do, their open session says so and reconnects", { timeout: 120000 }, async () => {
  const server = await accountsServer();
  try {
    const ada = await person(browser);
    await signInWithProvider(ada, "ada");
    await ada.getByLabel("Email address of a new facilitator").fill("cy@example.org");
    await ada.getByRole("button", { name: "Let them facilitate" }).click();
    await ada.getByText("cy@example.org may now create and run sessions.").waitFor();

    // Cy, now allowed to facilitate, creates a session and has it open.
    const cy = await person(browser);
    await cy.goto(`${origin}/`);
    await signInByEmail(cy, "cy@example.org");
    await cy.getByLabel("Title").fill("Cy's circle");
    await cy.getByRole("button", { name: "Create session" }).click();
    await online(cy);
    await say(cy, "Cy: before the change");

    await ada.getByRole("button", { name: "Remove cy@example.org" }).click();
    await ada.getByText("cy@example.org may no longer create sessions.").waitFor();
    await cy.locator("#notices", { hasText: "Your role was changed by an admin." }).waitFor();
    await online(cy);
    await cy.locator("#messages li.mine", { hasText: "Cy: before the change" }).waitFor();

    // Back on the start page, Cy can no longer create sessions, and is told why.
    await cy.getByRole("link", { name: "Your sessions" }).click();
    await cy.getByText("An admin must let you facilitate before you can create sessions.").waitFor();
    assert.equal(await cy.getByRole("button", { name: "Create session" }).count(), 0);
    for (const page of [ada, cy]) assert.deepEqual(page.errors || [], []);
  } finally {
    await server.stop();
  }
});

test("the account page: a new name, a copy of my data, signing out everywhere and deleting the account", { timeout: 120000 }, async () => {
  const server = await accountsServer();
  try {
    const laptop = await person(browser);
    const phone = await person(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
    for (const device of [laptop, phone]) {
      await device.goto(`${origin}/`);
      await signInByEmail(device, "dee@example.org");
    }

    await laptop.getByRole("link", { name: "Account" }).click();
    await laptop.getByLabel("Display name").fill("Dee Mensah");
    await laptop.getByRole("button", { name: "Save name" }).click();
    await laptop.getByRole("status").filter({ hasText: "Saved. Your name is now Dee Mensah." }).waitFor();
    await laptop.locator("#account-bar", { hasText: "Dee Mensah" }).waitFor();

    const [download] = await Promise.all([
      laptop.waitForEvent("download"),
      laptop.getByRole("button", { name: "Download my data" }).click(),
    ]);
    const data = JSON.parse(readFileSync(await download.path(), "utf8"));
    assert.equal(data.account.email, "dee@example.org");
    assert.equal(data.account.name, "Dee Mensah");

    // Signing out everywhere signs the phone out too.
    await laptop.getByRole("button", { name: "Sign out everywhere" }).click();
    await laptop.getByText("You are signed out on every device.").waitFor();
    await phone.goto(`${origin}/`);
    await phone.getByRole("link", { name: "Sign in with Community sign-in" }).waitFor();
    assert.equal(await phone.getByRole("link", { name: "Account" }).count(), 0, "the phone is still signed in");

    // Deleting the account: the confirmation says what goes, and then it is gone.
    await signInByEmail(laptop, "dee@example.org");
    await laptop.getByRole("link", { name: "Account" }).click();
    await laptop.getByRole("button", { name: "Delete my account" }).click();
    const confirmation = laptop.getByRole("group", { name: "Delete your account for good?" });
    for (const gone of ["your name and email address", "the ways you sign in", "your sign-ins on every device", "your seats in sessions"]) {
      await confirmation.getByText(gone).waitFor();
    }
    await laptop.getByRole("button", { name: "Delete my account for good" }).click();
    await laptop.getByText("Your account is deleted.").waitFor();
    await laptop.goto(`${origin}/`);
    await signInByEmail(laptop, "dee@example.org");
    assert.equal(await laptop.locator("#account-bar", { hasText: "Dee Mensah" }).count(), 0, "a deleted account came back");
    for (const page of [laptop, phone]) assert.deepEqual(page.errors || [], []);
  } finally {
    await server.stop();
  }
});
