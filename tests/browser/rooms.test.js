// Rooms that say where you are, and a console that shows every room at a glance: the
// facilitators' live board (names and numbers, never a caucus's words), each room's
// banner and colour, unread counts, same-name people told apart, ground rules one click
// away, a phone through a round, the end of a session, confirmations on the page, a
// calm palette, quiet countdowns, and a click right after joining that is not lost.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  axeViolations, cutConnection, everSaw, joinAs, launchBrowser, makeConnectionControllable, person, restoreConnection,
  say, startServer, watchFor,
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

const A = "Racially minoritised caucus";
const B = "White caucus";

/** Any browser dialog is a failure here: every question is asked on the page. */
function noDialogs(page) {
  page.dialogs = [];
  page.on("dialog", (dialog) => page.dialogs.push(dialog.type()));
}

async function createSession(ada) {
  sessions += 1;
  noDialogs(ada);
  await ada.goto(server.signIn);
  await ada.getByLabel("Title").fill(`Rooms ${sessions}`);
  await ada.getByRole("button", { name: "Create session" }).click();
  await ada.getByRole("status").filter({ hasText: "Online" }).waitFor();
  await ada.getByRole("button", { name: "Facilitator console" }).click();
  return ada.locator("#invite-link").inputValue();
}

async function member(invite, name, caucus, options = {}) {
  const page = await person(browser, options);
  noDialogs(page);
  if (options.controllable) await makeConnectionControllable(page);
  await joinAs(page, invite, name);
  if (caucus) {
    await page.getByRole("button", { name: `Choose ${caucus}` }).click();
    await page.getByText(`Now: ${caucus}.`).waitFor();
  }
  return page;
}

async function openRound(ada, minutes = "") {
  await ada.getByRole("button", { name: "Facilitator console" }).click();
  await ada.getByLabel("Length in minutes (empty for no timer)").fill(minutes);
  await ada.getByRole("button", { name: "Open the caucuses" }).click();
  await ada.locator("#phase", { hasText: "caucusing" }).waitFor();
}

async function addPoint(page, text) {
  await page.getByLabel("Write a point").fill(text);
  await page.getByRole("button", { name: "Add point" }).click();
  await page.locator("#points ol.points li", { hasText: text }).waitFor();
}

const boardRoom = (page, room) => page.locator(`#board [data-room="${room}"]`);

test("the console's board shows each room's people, its live points as a number, the time left and requests for help, never a caucus's words", async () => {
  // bypassCSP lets the test inject axe; the app itself never loosens its policy.
  const ada = await person(browser, { bypassCSP: true });
  const invite = await createSession(ada);
  const amara = await member(invite, "Amara", A, { bypassCSP: true });
  const ben = await member(invite, "Ben", A);
  await member(invite, "Dana", B);
  await member(invite, "Sol", null);
  await watchFor(ada, "hushword");

  await boardRoom(ada, "caucus_a").filter({ hasText: "Amara" }).filter({ hasText: "Ben" }).waitFor();
  await boardRoom(ada, "caucus_b").filter({ hasText: "Dana" }).waitFor();
  await boardRoom(ada, "plenary").filter({ hasText: "Sol" }).waitFor();

  await openRound(ada, "10");
  await ada.locator("#board-time", { hasText: /\d+:\d\d left/ }).waitFor();
  await boardRoom(ada, "caucus_a").locator(".board-points", { hasText: "0 live points" }).waitFor();

  await amara.locator("#room-heading", { hasText: A }).waitFor();
  await say(amara, "hushword sentence from the caucus");
  await addPoint(amara, "hushword point, first");
  await addPoint(ben, "hushword point, second");
  await boardRoom(ada, "caucus_a").locator(".board-points", { hasText: "2 live points" }).waitFor();
  await amara.getByRole("button", { name: "Withdraw point 1" }).click();
  await boardRoom(ada, "caucus_a").locator(".board-points", { hasText: "1 live point" }).waitFor();
  await boardRoom(ada, "caucus_b").locator(".board-points", { hasText: "0 live points" }).waitFor();

  await ben.getByRole("button", { name: "Ask for a facilitator" }).click();
  await boardRoom(ada, "caucus_a").locator(".board-help", { hasText: "Asks for a facilitator" }).waitFor();
  assert.equal(await everSaw(ada, "hushword"), false, "the facilitator's page received a caucus's words");

  // A calm palette: during a round, Reconvene is the console's one filled action, and
  // ending the session stands apart, in red.
  const filled = await ada.evaluate(() => [...document.querySelectorAll("#room button")]
    .filter((button) => button.offsetParent !== null)
    .filter((button) => !["rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"].includes(getComputedStyle(button).backgroundColor))
    .map((button) => button.textContent.trim()));
  assert.deepEqual(filled, ["Reconvene"]);
  const end = ada.getByRole("button", { name: "End the session" });
  assert.ok(await end.evaluate((button) => button.classList.contains("danger") && Boolean(button.closest(".danger-zone"))));
  assert.ok(await end.evaluate((button) => !button.closest(".danger-zone").contains(document.querySelector("[data-round]"))),
    "End the session sits next to Reconvene");
  assert.deepEqual(await axeViolations(ada), [], "the console");
  assert.deepEqual(await axeViolations(amara), [], "a caucus");

  await ada.getByRole("button", { name: "Reconvene" }).click();
  await ada.getByRole("button", { name: "Open the next round" }).waitFor();
  assert.equal(await boardRoom(ada, "caucus_a").locator(".board-points").count(), 0, "point counts outlive the round");
});

test("each room's banner says who can read it, in the room's colour; same-named people are told apart; other rooms count unread messages", async () => {
  const ada = await person(browser);
  const invite = await createSession(ada);
  const amara = await member(invite, "Amara", A);
  const sam1 = await member(invite, "Sam", A);
  const sam2 = await member(invite, "Sam", A);
  await member(invite, "Dana", B);

  await amara.getByRole("button", { name: "Plenary", exact: true }).click();
  await amara.locator("#room-banner", { hasText: "Plenary — everyone in the session can read this." }).waitFor();
  await openRound(ada);
  await amara.locator("#room-heading", { hasText: A }).waitFor();

  const banner = amara.locator("#room-banner");
  await banner.filter({ hasText: `${A} — only its current members can read this:` }).waitFor();
  const text = await banner.textContent();
  const tags = text.match(/Sam · [0-9a-z]{4}/g) ?? [];
  assert.equal(new Set(tags).size, 2, `the two Sams cannot be told apart in the banner: ${text}`);
  assert.ok(text.includes("Amara") && !text.includes("Dana"), text);

  // One colour per room, the same on its tab and its banner, and different from the others'.
  const colours = await amara.evaluate(() => {
    const tab = (room) => getComputedStyle(document.querySelector(`#room-list [data-room="${room}"]`)).borderLeftColor;
    return { banner: getComputedStyle(document.querySelector("#room-banner")).borderLeftColor, caucus: tab("caucus_a"), plenary: tab("plenary") };
  });
  assert.equal(colours.banner, colours.caucus);
  assert.notEqual(colours.caucus, colours.plenary);

  // The same two tags everywhere names show: messages, the roster, the board.
  await say(sam1, "first Sam here");
  await say(sam2, "second Sam here");
  const who = async (page, words) => page.locator("#messages li", { hasText: words }).locator(".who").textContent();
  const first = await who(amara, "first Sam here");
  const second = await who(amara, "second Sam here");
  assert.notEqual(first, second);
  for (const name of [first, second]) assert.ok(tags.includes(name.trim()), `${name} is not one of ${tags}`);
  await ada.getByRole("button", { name: "Facilitator console" }).click();
  for (const tag of tags) {
    await ada.getByLabel(`Move ${tag} to`).waitFor();
    await boardRoom(ada, "caucus_a").filter({ hasText: tag }).waitFor();
  }

  // A plenary message during the round marks the plenary's tab until it is viewed.
  await ada.getByRole("button", { name: "Plenary", exact: true }).click();
  await say(ada, "plenary notice during the round");
  const plenaryTab = amara.locator('#room-list [data-room="plenary"]');
  await plenaryTab.locator(".unread", { hasText: "1" }).waitFor();
  await amara.locator("#unread-plenary", { hasText: "1 unread" }).waitFor({ state: "attached" });
  assert.equal(await plenaryTab.getAttribute("aria-describedby"), "unread-plenary");
  await amara.waitForFunction(() => document.querySelector("#announcer")?.textContent.includes("unread in Plenary"));
  await plenaryTab.click();
  await amara.locator("#messages li", { hasText: "plenary notice during the round" }).waitFor();
  assert.equal(await plenaryTab.locator(".unread").count(), 0, "viewing the plenary did not clear its count");
});

test("ground rules are one click away, and on a phone the round's time stays in view and the feedback comes into view", async () => {
  const ada = await person(browser);
  const invite = await createSession(ada);
  const phone = await member(invite, "Amara", A, { viewport: { width: 390, height: 640 }, isMobile: true, hasTouch: true });
  const ben = await member(invite, "Ben", A);

  await phone.locator("#ground-rules summary", { hasText: "Ground rules" }).click();
  await phone.locator("#ground-rules-text", { hasText: "What is said in a caucus stays in the caucus." }).waitFor();
  await phone.locator("#ground-rules summary").click();

  await openRound(ada, "15");
  await phone.locator("#room-heading", { hasText: A }).waitFor();
  for (let index = 1; index <= 6; index += 1) await say(ben, `line ${index} of a long caucus conversation`);
  await addPoint(phone, "carried from the phone");
  await phone.locator("#messages li", { hasText: "line 6" }).waitFor();
  await phone.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await phone.waitForFunction(() => window.scrollY > 0);
  const timer = await phone.evaluate(() => {
    const element = document.querySelector("#round-timer");
    const box = element.getBoundingClientRect();
    return { text: element.textContent, top: box.top, bottom: box.bottom, visible: element.offsetParent !== null };
  });
  assert.ok(timer.visible && timer.top >= 0 && timer.bottom <= 80, `the timer scrolled away: ${JSON.stringify(timer)}`);
  assert.match(timer.text, /\d+:\d\d left/);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);

  await phone.evaluate(() => window.scrollTo(0, 0));
  await ada.getByRole("button", { name: "Reconvene" }).click();
  await phone.locator("#feedback", { hasText: "carried from the phone" }).waitFor();
  await phone.waitForFunction(() => {
    const box = document.querySelector("#feedback").getBoundingClientRect();
    return box.top >= -1 && box.top < window.innerHeight / 2;
  }).catch(async (err) => {
    console.log(await phone.evaluate(() => JSON.stringify({ box: document.querySelector("#feedback").getBoundingClientRect(), y: scrollY, h: document.documentElement.scrollHeight, ih: innerHeight })));
    throw err;
  });
});

test("when the session ends, open pages show the end and drop every caucus's words; the plenary and the carried points stay", async () => {
  const ada = await person(browser);
  const invite = await createSession(ada);
  const amara = await member(invite, "Amara", A, { controllable: true });
  const ben = await member(invite, "Ben", A);
  await say(amara, "plenary words stay");
  await openRound(ada);
  await ben.locator("#room-heading", { hasText: A }).waitFor();
  await say(ben, "caucus words to forget");
  await addPoint(ben, "a carried point stays");
  await amara.locator("#messages li", { hasText: "caucus words to forget" }).waitFor();

  // Amara is offline with a caucus message waiting in session storage when it ends.
  await cutConnection(amara);
  await amara.locator("#composer").fill("waiting caucus words");
  await amara.locator("#composer").press("Enter");
  await amara.locator("#outbox li", { hasText: "waiting caucus words" }).waitFor();
  assert.ok(await amara.evaluate(() => JSON.stringify(sessionStorage).includes("waiting caucus words")));

  await ada.getByRole("button", { name: "End the session" }).click();
  await ada.getByRole("button", { name: "Yes, end the session" }).click();
  await restoreConnection(amara);

  for (const page of [ben, amara]) {
    await page.getByRole("heading", { name: "This session has ended" }).waitFor({ timeout: 30000 });
    await page.locator("#feedback", { hasText: "a carried point stays" }).waitFor();
    await page.locator("#messages li", { hasText: "plenary words stay" }).waitFor();
    assert.equal(await page.locator(`#room-list [data-room^="caucus_"]`).count(), 0, "the caucus can still be opened");
    const html = await page.evaluate(() => document.body.innerHTML + JSON.stringify(sessionStorage));
    for (const words of ["caucus words to forget", "waiting caucus words"]) assert.ok(!html.includes(words), `"${words}" is still on the page`);
  }
  // Reloaded, the page still shows no caucus.
  await ben.reload();
  await ben.getByRole("heading", { name: "This session has ended" }).waitFor();
  assert.equal(await ben.locator(`#room-list [data-room^="caucus_"]`).count(), 0);
  assert.ok(!(await ben.evaluate(() => document.body.innerHTML)).includes("caucus words to forget"));
});

test("a new invite link, removing and erasing someone are confirmed on the page, never in a browser dialog", async () => {
  const ada = await person(browser);
  const invite = await createSession(ada);
  await member(invite, "Sol", null);
  await member(invite, "Tam", null);

  await ada.getByRole("button", { name: "New invite link" }).click();
  await ada.getByRole("button", { name: "Keep this link" }).click();
  assert.equal(await ada.locator("#invite-link").inputValue(), invite);
  await ada.getByRole("button", { name: "New invite link" }).click();
  await ada.getByRole("button", { name: "Yes, make a new link" }).click();
  await ada.waitForFunction((old) => document.querySelector("#invite-link")?.value !== old, invite);

  await ada.locator("summary", { hasText: "Sol:" }).click();
  await ada.getByRole("button", { name: "Remove Sol from the session" }).click();
  await ada.getByText("Remove Sol from the session? They can no longer join it with their link.").waitFor();
  await ada.getByRole("button", { name: "Yes, remove Sol" }).click();
  await ada.getByLabel("Move Sol to").waitFor({ state: "detached" });

  await ada.locator("summary", { hasText: "Tam:" }).click();
  await ada.getByRole("button", { name: "Erase Tam's data" }).click();
  await ada.getByRole("button", { name: "Yes, erase Tam's data" }).click();
  await ada.getByLabel("Move Tam to").waitFor({ state: "detached" });
  assert.deepEqual(ada.dialogs, [], "a browser dialog asked instead of the page");
});

test("countdowns do not rewrite a live region every second", async () => {
  const ada = await person(browser);
  const invite = await createSession(ada);
  const amara = await member(invite, "Amara", A, { controllable: true });
  await openRound(ada, "10");
  await amara.locator("#countdown", { hasText: "left" }).waitFor();
  // Every change to a region a screen reader reads out, from now on.
  await amara.evaluate(() => {
    window.__liveChanges = [];
    const live = () => [...document.querySelectorAll('[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"]')];
    new MutationObserver((records) => {
      for (const record of records) {
        const region = live().find((element) => element.contains(record.target));
        if (region) window.__liveChanges.push(`${region.id}: ${region.textContent}`);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  const seconds = async (selector, times) => {
    const seen = new Set();
    while (seen.size < times) {
      await amara.waitForFunction(([selector, seen]) => {
        const text = document.querySelector(selector)?.textContent;
        return text && !seen.includes(text);
      }, [selector, [...seen]], { timeout: 15000 });
      seen.add(await amara.locator(selector).textContent());
    }
  };
  await seconds("#countdown", 3);
  assert.deepEqual(await amara.evaluate(() => window.__liveChanges), [], "the round's countdown is read out");

  await cutConnection(amara);
  await amara.locator("#status", { hasText: "reconnecting" }).waitFor();
  await seconds("#status-countdown", 3);
  const statuses = new Set(await amara.evaluate(() => window.__liveChanges.filter((change) => change.startsWith("status:"))));
  assert.ok(statuses.size <= 2, `the status is read out as it counts down: ${[...statuses].join(" | ")}`);
  await restoreConnection(amara);
});

test("a button on screen just after joining stays the same button while the page catches up", async () => {
  const ada = await person(browser);
  const invite = await createSession(ada);
  const amara = await member(invite, "Amara", null);
  const choose = await amara.getByRole("button", { name: `Choose ${A}` }).elementHandle();
  await member(invite, "Ben", null); // a join and a presence change: Amara's page renders again
  await amara.locator("#side", { hasText: "Ben" }).waitFor();
  assert.ok(await choose.evaluate((button) => button.isConnected), "the button was replaced by a re-render");
  await choose.click();
  await amara.getByText(`Now: ${A}.`).waitFor();
});
