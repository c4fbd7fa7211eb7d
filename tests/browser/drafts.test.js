// Half-typed caucus text stays in its caucus. A member types in her caucus's message
// box and "Write a point" box and sends neither; then someone else changes her room: a
// reconvene, a move to the other caucus, the end of the session, the round's timer.
// Nothing she typed may then sit in another room's box, be sent by pressing Enter, or
// show up on anyone's page, in the minutes or in any file the server writes. She is
// told plainly what happened to her text and why her room changed. The same holds when
// she was offline at the reconvene, and when she pressed Enter just as it happened.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  command, cutConnection, everSaw, holdIncoming, joinAs, launchBrowser, makeConnectionControllable, pageContents,
  person, recordSentFrames, releaseIncoming, restoreConnection, say, shot, startServer, watchFor,
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

/**
 * A session in its first round: a facilitator (seated nowhere), Amara in caucus A,
 * Dana in caucus B and Pat in the plenary only. Amara has sent one message to her
 * caucus and left a message and a point half-typed, with her cursor still in the
 * message box. The other pages watch for her half-typed words from before she typed.
 */
async function roundWithDrafts({ autoReconvene = false, roundSecs = null } = {}) {
  sessions += 1;
  const facilitator = await person(browser);
  await facilitator.goto(server.signIn);
  await facilitator.getByLabel("Title").fill(`Drafts ${sessions}`);
  if (autoReconvene) await facilitator.getByLabel("Reconvene on its own when the timer ends").check();
  await facilitator.getByRole("button", { name: "Create session" }).click();
  await facilitator.getByRole("status").filter({ hasText: "Online" }).waitFor();
  await facilitator.getByRole("button", { name: "Facilitator console" }).click();
  const invite = await facilitator.locator("#invite-link").inputValue();

  const amara = await person(browser);
  const dana = await person(browser);
  const pat = await person(browser);
  recordSentFrames(amara);
  await makeConnectionControllable(amara);
  await joinAs(amara, invite, "Amara");
  await joinAs(dana, invite, "Dana");
  await joinAs(pat, invite, "Pat");
  await amara.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
  await dana.getByRole("button", { name: "Choose White caucus" }).click();
  await amara.getByText("Now: Racially minoritised caucus.").waitFor();
  await dana.getByText("Now: White caucus.").waitFor();

  const secret = {
    message: `A-unsent message ${sessions}: what it costs me to name it`,
    point: `A-unsent point ${sessions}: we need them to go first`,
    sent: `A-sent ${sessions}: said in the caucus`,
  };
  for (const page of [facilitator, dana, pat]) {
    await watchFor(page, secret.message);
    await watchFor(page, secret.point);
    await watchFor(page, secret.sent);
  }

  if (roundSecs) {
    const reply = await command(facilitator, { type: "open_caucuses", duration_secs: roundSecs });
    assert.equal(reply.type, "ack", JSON.stringify(reply));
  } else {
    await facilitator.getByLabel("Length in minutes (empty for no timer)").fill("");
    await facilitator.getByRole("button", { name: "Open the caucuses" }).click();
  }
  await amara.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  await dana.locator("#room-heading", { hasText: "White caucus" }).waitFor();
  await say(amara, secret.sent);

  await amara.getByLabel("Write a point").fill(secret.point);
  await amara.locator("#composer").fill(secret.message);
  assert.equal(await amara.locator("#composer").inputValue(), secret.message);
  return { facilitator, amara, dana, pat, secret };
}

/**
 * Amara goes on typing where she was and presses Enter, then also tries the message
 * box she now sees. Neither may send her caucus text anywhere.
 */
async function finishSentenceAndPressEnter(amara) {
  const focused = await amara.evaluate(() => document.activeElement?.tagName);
  assert.ok(!["TEXTAREA", "INPUT"].includes(focused), `the cursor was left in a ${focused} of another room`);
  await amara.keyboard.type(" and that is why.");
  await amara.keyboard.press("Enter");
  const composer = amara.locator("#composer");
  if (await composer.isVisible()) {
    await composer.press("Enter");
  }
  // Give anything that was sent time to arrive everywhere.
  await amara.waitForTimeout(750);
}

/** The half-typed words are nowhere: not sent, not shown, not exported, not stored. */
async function assertDraftsStayed({ facilitator, amara, dana, pat, secret }, { sentStillStored = true } = {}) {
  for (const frame of amara.sentFrames) {
    assert.ok(!frame.includes(secret.message) && !frame.includes(secret.point), `Amara's page sent her unsent text: ${frame}`);
  }
  const own = await pageContents(amara);
  assert.ok(!own.includes(secret.message), "Amara's page still holds her unsent message outside its caucus");
  assert.ok(!own.includes(secret.point), "Amara's page still holds her unsent point outside its caucus");
  for (const [name, page] of [["the facilitator", facilitator], ["Dana (caucus B)", dana], ["Pat (plenary)", pat]]) {
    for (const needle of [secret.message, secret.point, secret.sent]) {
      assert.equal(await everSaw(page, needle), false, `${name}'s page showed caucus A's words: ${needle}`);
      assert.ok(!(await pageContents(page)).includes(needle), `${name}'s page holds caucus A's words: ${needle}`);
    }
  }
  const minutes = await facilitator.evaluate(async () => {
    const session = new URLSearchParams(location.hash.slice(1)).get("session");
    const token = localStorage.getItem(`caucus.session.${session}`);
    const response = await fetch(`/api/sessions/${session}/minutes?format=json`, { headers: { authorization: `Bearer ${token}` } });
    return response.text();
  });
  assert.match(minutes, /"transcript"/);
  for (const needle of [secret.message, secret.point, secret.sent]) {
    assert.ok(!minutes.includes(needle), `the minutes hold caucus A's words: ${needle}`);
  }
  const stored = storedBytes();
  assert.ok(!stored.includes(secret.message) && !stored.includes(secret.point), "the server stored text that was never meant to be sent");
  // The scan can find text: what Amara did send to her caucus is in the store.
  if (sentStillStored) assert.ok(stored.includes(secret.sent), "the store scan found nothing; it checks nothing");
  for (const page of [facilitator, amara, dana, pat]) assert.deepEqual(page.errors || [], []);
}

/** Every file the server has written so far, as one string. */
function storedBytes() {
  const files = readdirSync(server.data, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
  return files.map((entry) => readFileSync(join(entry.parentPath ?? entry.path, entry.name)).toString("latin1")).join("\n");
}

/** The message box now shown is empty, and so is any "Write a point" box. */
async function assertBoxesEmpty(amara) {
  const composer = amara.locator("#composer");
  if (await composer.count()) assert.equal(await composer.inputValue(), "", "the message box holds another room's text");
  for (const box of await amara.getByLabel("Write a point").all()) {
    assert.equal(await box.inputValue(), "", "the point box holds another room's text");
  }
}

test("a reconvene discards the caucus drafts and says so; Enter sends nothing to the plenary", async () => {
  const round = await roundWithDrafts();
  const { facilitator, amara, pat } = round;
  await facilitator.getByRole("button", { name: "Reconvene" }).click();
  await amara.locator("#room-heading", { hasText: "Plenary" }).waitFor();
  await finishSentenceAndPressEnter(amara);
  await assertDraftsStayed(round);
  await assertBoxesEmpty(amara);
  assert.equal(await amara.locator("#composer-label").innerText(), "Message to Plenary");
  await amara.locator("#notices", { hasText: "The caucuses have reconvened" }).waitFor();
  await amara.locator("#notices", { hasText: "Racially minoritised caucus was discarded and not sent" }).waitFor();
  await shot(amara, "draft-discarded");

  // The plenary box works, for the plenary's own words.
  await say(amara, "Back in the plenary now.");
  await pat.locator("#messages li", { hasText: "Back in the plenary now." }).waitFor();
});

test("a move to the other caucus discards the old caucus's drafts and says so", async () => {
  const round = await roundWithDrafts();
  const { facilitator, amara, dana } = round;
  await facilitator.getByLabel("Move Amara to").selectOption({ label: "White caucus" });
  await facilitator.getByRole("button", { name: "Move Amara" }).click();
  await amara.locator("#room-heading", { hasText: "White caucus" }).waitFor();
  await finishSentenceAndPressEnter(amara);
  await assertDraftsStayed(round);
  await assertBoxesEmpty(amara);
  assert.equal(await amara.locator("#composer-label").innerText(), "Message to White caucus");
  await amara.locator("#notices", { hasText: "You were moved to White caucus" }).waitFor();
  await amara.locator("#notices", { hasText: "Racially minoritised caucus was discarded and not sent" }).waitFor();

  // Her new caucus hears what she types there, and nothing from before.
  await say(amara, "B-hello: I was moved here");
  await dana.locator("#messages li", { hasText: "B-hello: I was moved here" }).waitFor();
});

test("the end of the session discards every draft and says so", async () => {
  const round = await roundWithDrafts();
  const { facilitator, amara } = round;
  await facilitator.getByRole("button", { name: "End the session" }).click();
  await facilitator.getByRole("button", { name: "Yes, end the session" }).click();
  await amara.locator("#phase", { hasText: "Ended" }).waitFor();
  await finishSentenceAndPressEnter(amara);
  // The caucus rooms are purged at the end (retention 0), so the sent text is gone too.
  await assertDraftsStayed(round, { sentStillStored: false });
  await assertBoxesEmpty(amara);
  assert.equal(await amara.locator("#composer").isVisible(), false, "a message box is offered in an ended session");
  await amara.locator("#notices", { hasText: "The session has ended" }).waitFor();
  await amara.locator("#notices", { hasText: "Racially minoritised caucus was discarded and not sent" }).waitFor();
});

test("when time runs out and the session reconvenes on its own, the drafts are discarded and the member is told", async () => {
  const round = await roundWithDrafts({ autoReconvene: true, roundSecs: 12 });
  const { amara } = round;
  assert.match(await amara.locator("#phase").innerText(), /caucusing/, "the round ended before the member typed");
  await amara.locator("#room-heading", { hasText: "Plenary" }).waitFor({ timeout: 30000 });
  await finishSentenceAndPressEnter(amara);
  await assertDraftsStayed(round);
  await assertBoxesEmpty(amara);
  await amara.locator("#notices", { hasText: "Time is up: the caucuses have closed" }).waitFor();
  await amara.locator("#notices", { hasText: "Racially minoritised caucus was discarded and not sent" }).waitFor();
});

test("when time runs out and the facilitators decide, the caucus stays open and the draft stays in it", async () => {
  const round = await roundWithDrafts({ roundSecs: 4 });
  const { amara, dana, pat, secret } = round;
  await amara.locator("#countdown", { hasText: "Time is up" }).waitFor({ timeout: 20000 });
  // The server only told the facilitators; the caucus is still open and still hers.
  await amara.waitForTimeout(1500);
  assert.equal(await amara.locator("#room-heading").innerText(), "Racially minoritised caucus");
  assert.equal(await amara.locator("#composer").inputValue(), secret.message);
  assert.equal(await amara.getByLabel("Write a point").inputValue(), secret.point);
  assert.equal(await amara.locator("#notices", { hasText: "discarded" }).count(), 0);
  await amara.locator("#composer").press("Enter");
  await amara.locator("#messages li", { hasText: secret.message }).waitFor();
  await amara.waitForTimeout(500);
  for (const page of [dana, pat]) assert.equal(await everSaw(page, secret.message), false, "caucus A's message left the caucus");
});

test("clicking between rooms keeps each room's draft in its own room", async () => {
  const round = await roundWithDrafts();
  const { facilitator, amara, secret } = round;
  await amara.getByRole("button", { name: "Plenary", exact: true }).click();
  await amara.locator("#room-heading", { hasText: "Plenary" }).waitFor();
  assert.ok(!(await pageContents(amara)).includes(secret.message), "the plenary view holds the caucus draft");
  assert.equal(await amara.locator("#notices", { hasText: "discarded" }).count(), 0, "a plain click discarded a draft");
  await amara.getByRole("button", { name: "Racially minoritised caucus", exact: true }).click();
  await amara.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  assert.equal(await amara.locator("#composer").inputValue(), secret.message, "the caucus draft was lost on a click");
  assert.equal(await amara.getByLabel("Write a point").inputValue(), secret.point, "the point draft was lost on a click");

  // A facilitator's plenary draft stays in the plenary when they look at their console.
  await facilitator.getByRole("button", { name: "Plenary" }).click();
  await facilitator.locator("#composer").fill("F-draft: for the plenary only");
  await facilitator.getByRole("button", { name: "Facilitator console" }).click();
  await facilitator.getByRole("button", { name: "Plenary" }).click();
  assert.equal(await facilitator.locator("#composer").inputValue(), "F-draft: for the plenary only");
});

test("a reconvene while the member is offline discards the drafts when she is back, and says so", async () => {
  const round = await roundWithDrafts();
  const { facilitator, amara } = round;
  await cutConnection(amara);
  await amara.locator("#status", { hasText: /offline|reconnecting/i }).waitFor();
  await facilitator.getByRole("button", { name: "Reconvene" }).click();
  await facilitator.locator("#phase", { hasText: "reconvened" }).waitFor();
  await restoreConnection(amara);
  await amara.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
  await amara.locator("#room-heading", { hasText: "Plenary" }).waitFor();
  await finishSentenceAndPressEnter(amara);
  await assertDraftsStayed(round);
  await assertBoxesEmpty(amara);
  await amara.locator("#notices", { hasText: "The caucuses reconvened while you were offline" }).waitFor();
  await amara.locator("#notices", { hasText: "Racially minoritised caucus was discarded and not sent" }).waitFor();
});

test("a caucus message sent just as the caucuses reconvene is refused, and never comes back in the plenary's box", async () => {
  const round = await roundWithDrafts();
  const { facilitator, amara, secret } = round;
  // Amara's page has not yet heard of the reconvene when she presses Enter.
  await holdIncoming(amara);
  await facilitator.getByRole("button", { name: "Reconvene" }).click();
  await facilitator.locator("#phase", { hasText: "reconvened" }).waitFor();
  await amara.locator("#composer").press("Enter");
  await amara.waitForTimeout(500);
  assert.ok(amara.sentFrames.some((frame) => frame.includes(secret.message) && frame.includes('"room":"caucus_a"')),
    "the message went to the caucus it was written in");
  // Only that frame, to caucus A, which the server refuses, may carry the text.
  amara.sentFrames = amara.sentFrames.filter((frame) => !frame.includes('"room":"caucus_a"'));
  await releaseIncoming(amara);
  await amara.locator("#room-heading", { hasText: "Plenary" }).waitFor();
  await amara.waitForTimeout(250);
  await finishSentenceAndPressEnter(amara);
  await assertDraftsStayed(round);
  await assertBoxesEmpty(amara);
  await amara.locator("#notices", { hasText: "Your message to Racially minoritised caucus was not sent" }).waitFor();
});
