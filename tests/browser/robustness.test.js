// The web client under stress: a server crash and resume, hostile text, a keyboard-only
// member, an automated accessibility check and a phone-sized screen.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { joinAs, launchBrowser, person, say, startServer, axeViolations } from "./support.js";

let browser;

before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function createSession(page, server, title = "Robustness") {
  await page.goto(server.signIn);
  await page.getByLabel("Title").fill(title);
  await page.getByRole("button", { name: "Create session" }).click();
  await page.getByRole("status").filter({ hasText: "Online" }).waitFor();
  await page.getByRole("button", { name: "Facilitator console" }).click();
  return page.locator("#invite-link").inputValue();
}

test("after the server dies, pages show they are offline and resume without gaps or duplicates", async () => {
  const first = await startServer();
  const facilitator = await person(browser);
  const invite = await createSession(facilitator, first);
  const amara = await person(browser);
  const bayo = await person(browser);
  await joinAs(amara, invite, "Amara");
  await joinAs(bayo, invite, "Bayo");
  await say(amara, "before the crash one");
  await say(amara, "before the crash two");
  await bayo.locator("#messages li", { hasText: "before the crash two" }).waitFor();

  await first.stop(); // kill -9: no close frames, no goodbye
  await bayo.locator("#status", { hasText: /offline|reconnecting/i }).waitFor();
  const second = await startServer({ data: first.data, listen: `127.0.0.1:${first.port}` });
  try {
    await bayo.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
    await amara.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
    await say(amara, "after the restart");
    await bayo.locator("#messages li", { hasText: "after the restart" }).waitFor();
    for (const text of ["before the crash one", "before the crash two", "after the restart"]) {
      assert.equal(await bayo.locator("#messages li", { hasText: text }).count(), 1, `"${text}" is shown once`);
    }
  } finally {
    await second.stop();
  }
});

test("markup in names, messages and topics is shown as text and runs nothing", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server);
    const attack = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
    const mallory = await person(browser);
    const amara = await person(browser);
    await joinAs(mallory, invite, attack);
    await joinAs(amara, invite, "Amara");
    await say(mallory, attack);
    await mallory.getByLabel("Propose a topic").fill(attack);
    await mallory.getByRole("button", { name: "Propose", exact: true }).click();
    await amara.locator(".proposals li", { hasText: "onerror" }).waitFor();
    await facilitator.getByRole("button", { name: "Plenary" }).click();
    for (const page of [amara, facilitator, mallory]) {
      await page.locator("#messages li", { hasText: attack }).first().waitFor();
      assert.equal(await page.evaluate(() => window.__xss), undefined, "injected markup ran");
      assert.equal(await page.locator("#messages img").count(), 0, "markup became elements");
    }
    assert.ok((await amara.locator(".people").innerText()).includes(attack), "the name is shown as typed");
  } finally {
    await server.stop();
  }
});

/** Presses Tab until `locator` has focus; fails if it never does. */
async function tabTo(page, locator, limit = 40) {
  for (let presses = 0; presses < limit; presses++) {
    if (await locator.evaluate((element) => element === document.activeElement)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`could not reach ${locator} by keyboard`);
}

test("a member can do everything by keyboard alone", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server);
    const member = await person(browser);
    await member.goto(invite);
    await tabTo(member, member.getByLabel("Your name, as others will see it"));
    await member.keyboard.type("Keyboard Kai");
    await tabTo(member, member.getByLabel("I have read and accept the ground rules"));
    await member.keyboard.press("Space");
    await tabTo(member, member.getByRole("button", { name: "Join" }));
    await member.keyboard.press("Enter");
    await member.getByRole("status").filter({ hasText: "Online" }).waitFor();

    await tabTo(member, member.locator("#composer"));
    await member.keyboard.type("typed without a mouse");
    await member.keyboard.press("Enter");
    await facilitator.getByRole("button", { name: "Plenary" }).click();
    await facilitator.locator("#messages li", { hasText: "typed without a mouse" }).waitFor();

    await tabTo(member, member.getByLabel("Propose a topic"));
    await member.keyboard.type("Keyboard topic");
    await member.keyboard.press("Enter");
    await member.locator(".proposals li", { hasText: "Keyboard topic" }).waitFor();
    await tabTo(member, member.getByRole("button", { name: "Vote for Keyboard topic" }));
    await member.keyboard.press("Enter");
    await member.getByText("Keyboard topic — 1 vote").waitFor();

    await tabTo(member, member.getByRole("button", { name: "Choose White caucus" }));
    await member.keyboard.press("Enter");
    await member.getByText("Now: White caucus.").waitFor();

    // The facilitator opens the round; the member talks and writes a point by keyboard.
    await facilitator.getByRole("button", { name: "Facilitator console" }).click();
    await facilitator.getByRole("button", { name: "Open the caucuses" }).click();
    await member.locator("#room-heading", { hasText: "White caucus" }).waitFor();
    await tabTo(member, member.locator("#composer"));
    await member.keyboard.type("in the caucus by keyboard");
    await member.keyboard.press("Enter");
    await member.locator("#messages li", { hasText: "in the caucus by keyboard" }).waitFor();
    await tabTo(member, member.getByRole("button", { name: /^Flag as a point/ }));
    await member.keyboard.press("Enter");
    await member.locator("#points li", { hasText: "in the caucus by keyboard" }).waitFor();
  } finally {
    await server.stop();
  }
});


test("axe finds no serious or critical accessibility violations, and the app fits a phone", async () => {
  const server = await startServer();
  try {
    // bypassCSP lets the test inject axe; the app itself never loosens its policy.
    const facilitator = await person(browser, { bypassCSP: true });
    const invite = await createSession(facilitator, server);
    const member = await person(browser, { bypassCSP: true });
    await member.goto(invite);
    await member.getByLabel("Your name, as others will see it").waitFor();
    assert.deepEqual(await axeViolations(member), [], "join page");
    await member.getByLabel("Your name, as others will see it").fill("Amara");
    await member.getByLabel("I have read and accept the ground rules").check();
    await member.getByRole("button", { name: "Join" }).click();
    await member.getByRole("status").filter({ hasText: "Online" }).waitFor();
    await say(member, "hello");
    assert.deepEqual(await axeViolations(member), [], "plenary");
    await member.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
    await facilitator.getByRole("button", { name: "Open the caucuses" }).click();
    await member.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
    await say(member, "in the caucus");
    assert.deepEqual(await axeViolations(member), [], "caucus");
    assert.deepEqual(await axeViolations(facilitator), [], "facilitator console");

    const phone = await person(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
    await joinAs(phone, invite, "Phone");
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
  } finally {
    await server.stop();
  }
});

test("a new invite link from the console shuts the old one at once, and the facilitator finds the session again", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const old = await createSession(facilitator, server, "Invites");
    await facilitator.getByRole("button", { name: "New invite link" }).click();
    await facilitator.getByRole("button", { name: "Yes, make a new link" }).click();
    const box = facilitator.locator("#invite-link");
    await facilitator.waitForFunction((before) => document.querySelector("#invite-link")?.value !== before, old);
    const fresh = await box.inputValue();
    assert.notEqual(fresh, old);
    await facilitator.locator("#announcer", { hasText: "The old one no longer works" }).waitFor({ state: "attached" });

    const latecomer = await person(browser);
    await latecomer.goto(old);
    await latecomer.getByRole("heading", { name: "This invite does not work" }).waitFor();
    await joinAs(latecomer, fresh, "Latecomer");

    // The facilitator finds the session again from the start page, with no stored link.
    await facilitator.goto(`${new URL(server.signIn).origin}/`);
    await facilitator.getByRole("heading", { name: "Your sessions" }).waitFor();
    await facilitator.getByRole("link", { name: "Invites" }).click();
    await facilitator.getByRole("status").filter({ hasText: "Online" }).waitFor();
    await facilitator.getByRole("button", { name: "Facilitator console" }).click();
    assert.equal(await facilitator.locator("#invite-link").inputValue(), fresh);
  } finally {
    await server.stop();
  }
});

test("a co-facilitator added from the console finds the session on their start page and runs it", async () => {
  const server = await startServer();
  try {
    const ada = await person(browser);
    await createSession(ada, server, "Co-chaired circle");
    await ada.getByLabel("Name on their facilitator sign-in link").fill("Bea Okafor");
    await ada.getByRole("button", { name: "Add", exact: true }).click();
    await ada.getByText("Bea Okafor can now run this session").waitFor();

    const bea = await person(browser);
    await bea.goto(`${new URL(server.signIn).origin}/#token=${server.token("Bea Okafor")}`);
    await bea.getByRole("heading", { name: "Your sessions" }).waitFor();
    await bea.getByRole("link", { name: "Co-chaired circle" }).click();
    await bea.getByRole("status").filter({ hasText: "Online" }).waitFor();
    await bea.getByRole("button", { name: "Facilitator console" }).click();
    await bea.getByRole("button", { name: "Open the caucuses" }).click();
    await ada.getByText("Round 1: caucusing").first().waitFor();
  } finally {
    await server.stop();
  }
});
