// The facilitator's console and a caucus's points, through the web client: requests
// for help answered by one of two facilitators, a console that stays put through a
// reconvene and says what became of each action, and points whose history stays
// honest (who wrote, who edited, who withdrew, and the undo), by mouse and by keyboard.
// Privacy is checked on the way: a facilitator not seated in a caucus never sees its
// points, and a help request on the console names the caucus only.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  command, everSaw, holdIncoming, joinAs, launchBrowser, makeConnectionControllable, person, releaseIncoming, startServer,
  watchFor,
} from "./support.js";

let server;
let browser;
let sessions = 0;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Any browser dialog (confirm, prompt) is a failure here: everything happens in the page. */
function noDialogs(page) {
  page.dialogs = [];
  page.on("dialog", (dialog) => page.dialogs.push(dialog.type()));
}

/**
 * Chooses caucus A. Right after joining, the page renders again as the welcome's replay
 * and presence arrive; the button stays the same element through that, so one click is enough.
 */
async function chooseCaucusA(page) {
  await page.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
  await page.getByText("Now: Racially minoritised caucus.").waitFor();
}

/**
 * A session with a facilitator (named "Facilitator" on the printed link, seated nowhere), optionally a co-facilitator (Bea),
 * and members seated in caucus A; the round is open unless `open` is false.
 */
async function session({ members = ["Amara"], coFacilitator = false, open = true, controllable = false } = {}) {
  sessions += 1;
  const ada = await person(browser);
  noDialogs(ada);
  if (controllable) await makeConnectionControllable(ada);
  await ada.goto(server.signIn);
  await ada.getByLabel("Title").fill(`Console ${sessions}`);
  await ada.getByRole("button", { name: "Create session" }).click();
  await ada.getByRole("status").filter({ hasText: "Online" }).waitFor();
  const id = new URLSearchParams(new URL(ada.url()).hash.slice(1)).get("session");
  await ada.getByRole("button", { name: "Facilitator console" }).click();
  const invite = await ada.locator("#invite-link").inputValue();

  let bea = null;
  if (coFacilitator) {
    await ada.getByLabel("Name on their facilitator sign-in link").fill("Bea");
    await ada.getByRole("button", { name: "Add", exact: true }).click();
    await ada.getByText("Bea can now run this session").waitFor();
    bea = await person(browser);
    noDialogs(bea);
    await bea.goto(`${server.url.replace(/\/$/, "")}/#token=${server.token("Bea")}`);
    await bea.getByRole("link", { name: `Console ${sessions}` }).click();
    await bea.getByRole("status").filter({ hasText: "Online" }).waitFor();
  }

  const people = {};
  for (const name of members) {
    const page = await person(browser);
    noDialogs(page);
    await joinAs(page, invite, name);
    await chooseCaucusA(page);
    people[name] = page;
  }
  if (open) {
    await ada.getByLabel("Length in minutes (empty for no timer)").fill("");
    await ada.getByRole("button", { name: "Open the caucuses" }).click();
    for (const page of Object.values(people)) await page.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  }
  return { id, ada, bea, ...people };
}

/** The accessible name of what has focus: its aria-label, or its text. */
function focusedName(page) {
  return page.evaluate(() => {
    const active = document.activeElement;
    return active?.getAttribute("aria-label") || active?.textContent?.trim() || active?.tagName || "";
  });
}

/** Presses Tab until the control named `name` has focus, as a keyboard user would. */
async function tabTo(page, name, most = 80) {
  for (let step = 0; step < most; step += 1) {
    await page.keyboard.press("Tab");
    if ((await focusedName(page)) === name) return;
  }
  throw new Error(`Tab never reached "${name}"`);
}

async function waitForFocus(page, name) {
  await page.waitForFunction((name) => {
    const active = document.activeElement;
    return (active?.getAttribute("aria-label") || active?.textContent?.trim()) === name;
  }, name, { timeout: 5000 }).catch(async () => {
    assert.fail(`focus is on "${await focusedName(page)}", not on "${name}"`);
  });
}

async function addPoint(page, text) {
  await page.getByLabel("Write a point").fill(text);
  await page.getByRole("button", { name: "Add point" }).click();
  await page.locator("#points ol.points li", { hasText: text }).waitFor();
}

test("one facilitator answers a caucus's request for help: the other's alert clears, the caucus learns who is coming", async () => {
  const { ada, bea, Amara: amara } = await session({ coFacilitator: true });
  await watchFor(ada, "Amara asked");
  // Both facilitators are on the plenary, far from the console.
  for (const page of [ada, bea]) await page.getByRole("button", { name: "Plenary" }).click();

  await amara.getByRole("button", { name: "Ask for a facilitator" }).click();
  await amara.locator("#points", { hasText: "Your request was sent" }).waitFor();
  for (const page of [ada, bea]) {
    const alert = page.locator("#help-alerts .help-alert", { hasText: "Racially minoritised caucus asks for a facilitator" });
    await alert.waitFor();
    assert.ok(await alert.isVisible(), "the alert is not visible on the plenary");
    await alert.getByRole("button", { name: "On my way" }).waitFor();
    await alert.getByRole("button", { name: "Join this caucus" }).waitFor();
    await page.waitForFunction(() => document.querySelector("#announcer")?.textContent.includes("asks for a facilitator"));
  }
  // Asking again updates the request: still one row per caucus.
  await amara.getByRole("button", { name: "Ask for a facilitator" }).click();
  await ada.waitForTimeout(500);
  for (const page of [ada, bea]) assert.equal(await page.locator("#help-alerts .help-alert").count(), 1, "a repeated ask made a second row");
  assert.ok(!(await ada.locator("#help-alerts").innerText()).includes("Amara"), "the facilitators' alert names who asked");

  // Bea answers: Ada's alert clears, and Amara sees who is coming.
  await bea.getByRole("button", { name: "On my way" }).click();
  await ada.locator("#help-alerts .help-alert").waitFor({ state: "detached" });
  await bea.locator("#help-alerts .help-alert").waitFor({ state: "detached" });
  await amara.locator("#points", { hasText: "Bea is on the way." }).waitFor();
  await amara.waitForFunction(() => document.querySelector("#announcer")?.textContent.includes("Bea is on the way"));

  // A new request; Ada joins the caucus from the alert, and is seated there.
  await amara.getByRole("button", { name: "Ask for a facilitator" }).click();
  await ada.getByRole("button", { name: "Join this caucus" }).click();
  await ada.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  await amara.locator("#messages li", { hasText: "Facilitator joined this caucus." }).waitFor();
  await amara.locator("#points", { hasText: "Facilitator is on the way." }).waitFor();
  await bea.locator("#help-alerts .help-alert").waitFor({ state: "detached" });
  assert.equal(await everSaw(ada, "Amara asked"), false, "a facilitator saw who asked for help");
  for (const page of [ada, bea, amara]) assert.deepEqual(page.errors || [], []);
});

test("a reconvene leaves the facilitator in the console, where the next round opens; ending asks on the page", async () => {
  const { ada, Amara: amara } = await session();
  // The facilitator seats herself in caucus A, then goes back to the console.
  await ada.getByLabel("Move Facilitator to").selectOption({ label: "Racially minoritised caucus" });
  await ada.getByRole("button", { name: "Move Facilitator" }).click();
  await ada.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  await ada.getByRole("button", { name: "Facilitator console" }).click();
  await ada.getByText("(you: its members see you there)").waitFor();
  await ada.getByRole("button", { name: "Reconvene" }).click();
  await amara.locator("#phase", { hasText: "Round 1: reconvened" }).waitFor();
  await ada.locator("#phase", { hasText: "Round 1: reconvened" }).waitFor();
  await ada.getByRole("button", { name: "Open the next round" }).waitFor();
  assert.equal(await ada.locator("#room-heading").innerText(), "Facilitator console");
  // Opening the next round does not take her away either, though she has a seat.
  await ada.getByRole("button", { name: "Open the next round" }).click();
  await ada.locator("#phase", { hasText: "Round 2: caucusing" }).waitFor();
  await amara.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  await ada.waitForTimeout(300);
  assert.equal(await ada.locator("#room-heading").innerText(), "Facilitator console");
  await ada.getByRole("button", { name: "Reconvene" }).click();
  await ada.locator("#phase", { hasText: "Round 2: reconvened" }).waitFor();
  assert.equal(await ada.locator("#room-heading").innerText(), "Facilitator console");

  // "End the session" is apart from the round's buttons, and asks first, in the page.
  const round = ada.locator("#console section.card", { has: ada.locator("#round-heading") });
  assert.equal(await round.getByRole("button", { name: "End the session" }).count(), 0, "End the session sits with the round's buttons");
  await ada.getByRole("button", { name: "End the session" }).click();
  await ada.getByRole("button", { name: "Keep it going" }).click();
  await ada.waitForTimeout(300);
  assert.equal(await ada.locator("#phase").innerText(), "Round 2: reconvened", "the session ended without confirmation");
  await ada.getByRole("button", { name: "End the session" }).click();
  await ada.getByRole("button", { name: "Yes, end the session" }).click();
  await amara.locator("#phase", { hasText: "Ended" }).waitFor();
  assert.deepEqual(ada.dialogs, [], "a browser dialog was used");
  assert.equal(await ada.locator("#room-heading").innerText(), "Facilitator console");
});

test("console actions say what became of them: a broadcast is confirmed, a refusal is shown next to the console", async () => {
  const { ada, id } = await session({ open: false, members: [], controllable: true });
  await ada.getByLabel("Broadcast to every room").fill("Welcome, everyone");
  await ada.getByRole("button", { name: "Broadcast" }).click();
  await ada.locator("#console", { hasText: "Sent to everyone." }).waitFor();
  await ada.waitForFunction(() => document.querySelector("#announcer")?.textContent.includes("Sent to everyone"));

  // The session ends elsewhere while this page has not heard yet; its broadcast is refused.
  await holdIncoming(ada);
  const ended = await command(ada, { type: "end_session" });
  assert.equal(ended.type, "ack", JSON.stringify(ended));
  await ada.getByLabel("Broadcast to every room").fill("One more thing");
  await ada.getByRole("button", { name: "Broadcast" }).click();
  await ada.waitForTimeout(500);
  await releaseIncoming(ada);
  const shown = ada.locator("#console .error", { hasText: "the session has ended and is read-only" });
  await shown.waitFor();
  assert.ok(await shown.isVisible(), "the error is not visible");
  await ada.waitForFunction(() => document.querySelector("#announcer")?.textContent.includes("read-only"));
  assert.equal(await ada.locator("#room-heading").innerText(), "Facilitator console");
  assert.ok(id);
});

test("editing another's point keeps the log honest, and the point says who wrote and who edited it", async () => {
  const { ada, Amara: amara, Bayo: bayo } = await session({ members: ["Amara", "Bayo"] });
  await watchFor(ada, "P-original");
  await watchFor(ada, "P-reworded");
  await addPoint(amara, "P-original: we want them to go first");
  await bayo.locator("#points li", { hasText: "P-original" }).waitFor();
  await bayo.getByRole("button", { name: "Edit point 1" }).click();
  const box = bayo.getByLabel("Edit point 1");
  assert.equal(await box.inputValue(), "P-original: we want them to go first");
  await box.fill("P-reworded by Bayo: we ask them to go first");
  await bayo.getByRole("button", { name: "Save" }).click();
  for (const page of [amara, bayo]) {
    const point = page.locator("#points ol.points li", { hasText: "P-reworded by Bayo" });
    await point.waitFor();
    assert.match(await point.innerText(), /Written by Amara, edited by Bayo at \d/);
    await page.locator("#messages li", { hasText: "Amara added a point: P-original: we want them to go first" }).waitFor();
    await page.locator("#messages li", { hasText: "Bayo edited a point: P-reworded by Bayo" }).waitFor();
    assert.equal(await page.locator("#messages li", { hasText: "added a point: P-reworded" }).count(), 0, "the log was rewritten by the edit");
  }
  // A reload reads the same history from the server.
  await amara.reload();
  await amara.locator("#messages li", { hasText: "Amara added a point: P-original" }).waitFor();
  assert.match(await amara.locator("#points ol.points li", { hasText: "P-reworded" }).innerText(), /Written by Amara, edited by Bayo/);
  for (const page of [amara, bayo]) assert.deepEqual(page.dialogs, [], "editing used a browser dialog");
  assert.equal(await everSaw(ada, "P-original"), false, "the facilitator saw a caucus's point");
});

test("a withdrawn point says who withdrew it and can be undone; the record stays, and feedback has no names", async () => {
  const { ada, Amara: amara, Bayo: bayo } = await session({ members: ["Amara", "Bayo"] });
  await watchFor(ada, "W-point");
  await addPoint(amara, "W-point: time without explaining ourselves");
  await bayo.getByRole("button", { name: "Withdraw point 1" }).click();
  for (const page of [amara, bayo]) {
    const record = page.locator("#points .withdrawn li", { hasText: "W-point" });
    await record.waitFor();
    assert.match(await record.innerText(), /Withdrawn by Bayo ·\s*Undo/);
    await page.locator("#messages li", { hasText: "Bayo withdrew a point: W-point" }).waitFor();
  }
  assert.equal(await amara.locator("#points ol.points li", { hasText: "W-point" }).count(), 0);
  await amara.getByRole("button", { name: /^Undo the withdrawal of W-point/ }).click();
  await bayo.locator("#points ol.points li", { hasText: "W-point" }).waitFor();
  await bayo.locator("#messages li", { hasText: "Amara brought back a point: W-point" }).waitFor();
  await bayo.locator("#messages li", { hasText: "Bayo withdrew a point: W-point" }).waitFor();
  assert.equal(await bayo.locator("#points .withdrawn").count(), 0);

  await ada.getByRole("button", { name: "Reconvene" }).click();
  const feedback = amara.locator("#feedback");
  await feedback.filter({ hasText: "W-point: time without explaining ourselves" }).waitFor();
  for (const name of ["Amara", "Bayo"]) assert.ok(!(await feedback.innerText()).includes(name), `feedback names ${name}`);
  await ada.getByRole("button", { name: "Plenary" }).click();
  await ada.locator("#feedback", { hasText: "W-point" }).waitFor();
  assert.ok(!(await ada.locator("#feedback").innerText()).includes("Amara"));
});

test("points by keyboard only: edit, cancel, save, move, withdraw and undo, with focus kept", async () => {
  const { Amara: amara } = await session();
  await amara.getByLabel("Write a point").focus();
  await amara.keyboard.type("K-first point");
  await amara.keyboard.press("Enter");
  await amara.locator("#points ol.points li", { hasText: "K-first point" }).waitFor();
  await amara.getByLabel("Write a point").focus();
  await amara.keyboard.type("K-second point");
  await amara.keyboard.press("Enter");
  await amara.locator("#points ol.points li", { hasText: "K-second point" }).waitFor();
  for (const button of await amara.locator("#points ol.points button").all()) {
    const box = await button.boundingBox();
    assert.ok(box.height >= 44, `a point button is ${box.height} px tall`);
  }

  // Edit, then Escape: nothing changes and focus is back on Edit.
  await amara.locator("#room-heading").focus();
  await tabTo(amara, "Edit point 1");
  await amara.keyboard.press("Enter");
  await amara.waitForFunction(() => document.activeElement?.id?.startsWith("edit-point-"));
  await amara.keyboard.press("Escape");
  await waitForFocus(amara, "Edit point 1");
  assert.equal(await amara.locator("#points input[id^=edit-point-]").count(), 0);

  // Edit, then Enter saves: focus is back on Edit.
  await amara.keyboard.press("Enter");
  await amara.waitForFunction(() => document.activeElement?.id?.startsWith("edit-point-"));
  await amara.keyboard.press("ControlOrMeta+a");
  await amara.keyboard.type("K-first point, reworded");
  await amara.keyboard.press("Enter");
  await amara.locator("#points ol.points li", { hasText: "K-first point, reworded" }).waitFor();
  await waitForFocus(amara, "Edit point 1");

  // Move the first point down: focus stays with the point, on its other arrow.
  await tabTo(amara, "Move point 1 down");
  await amara.keyboard.press("Enter");
  await amara.locator("#points ol.points li").nth(1).filter({ hasText: "K-first point, reworded" }).waitFor();
  await waitForFocus(amara, "Move point 2 up");

  // Withdraw, then Undo, by Enter: focus goes from one to the other.
  await amara.locator("#room-heading").focus();
  await tabTo(amara, "Withdraw point 2");
  await amara.keyboard.press("Enter");
  await amara.locator("#points .withdrawn li", { hasText: "K-first point, reworded" }).waitFor();
  await waitForFocus(amara, "Undo the withdrawal of K-first point, reworded");
  await amara.keyboard.press("Enter");
  await amara.locator("#points ol.points li", { hasText: "K-first point, reworded" }).waitFor();
  await waitForFocus(amara, "Withdraw point 2");
  assert.deepEqual(amara.dialogs, []);
  assert.deepEqual(amara.errors || [], []);
});
