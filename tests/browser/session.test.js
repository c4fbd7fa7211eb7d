// A whole session through the web client, in four browser contexts at once: a
// facilitator, two members of caucus A and one of caucus B. Everything goes through
// the UI. Privacy is checked in the DOM: caucus B's page and the facilitator's page
// never contain caucus A's private words, at any point.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { everSaw, joinAs, launchBrowser, person, say, shot, startServer, watchFor } from "./support.js";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a facilitator and three members go from invite to minutes", async () => {
  const facilitator = await person(browser);
  const amara = await person(browser);
  const bayo = await person(browser);
  const dana = await person(browser);

  // The facilitator signs in with the printed link and creates the session.
  await facilitator.goto(server.signIn);
  await facilitator.getByLabel("Title").fill("Anti-racism practice circle");
  await facilitator.getByRole("button", { name: "Create session" }).click();
  await facilitator.getByRole("status").filter({ hasText: "Online" }).waitFor();
  await facilitator.getByRole("button", { name: "Facilitator console" }).click();
  const invite = await facilitator.locator("#invite-link").inputValue();
  assert.match(invite, /#invite=/);

  // Members join by invite, accepting the ground rules.
  await joinAs(amara, invite, "Amara");
  await joinAs(bayo, invite, "Bayo");
  await joinAs(dana, invite, "Dana");
  for (const page of [dana, facilitator]) await watchFor(page, "A-private");

  // Topic: proposed, voted on, set by the facilitator.
  await amara.getByLabel("Propose a topic").fill("Microaggressions at work");
  await amara.getByRole("button", { name: "Propose", exact: true }).click();
  await bayo.getByRole("button", { name: "Vote for Microaggressions at work" }).click();
  await dana.getByRole("button", { name: "Vote for Microaggressions at work" }).click();
  await amara.getByText("Microaggressions at work — 2 votes").waitFor();
  await facilitator.getByRole("button", { name: "Plenary" }).click();
  await facilitator.getByRole("button", { name: "Set the topic to Microaggressions at work" }).click();
  for (const page of [amara, bayo, dana]) await page.locator("#topic", { hasText: "Microaggressions at work" }).waitFor();
  await say(amara, "Hello everyone, glad to be here.");
  await shot(amara, "plenary");

  // Caucuses, chosen privately.
  await amara.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
  await bayo.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
  await dana.getByRole("button", { name: "Choose White caucus" }).click();
  await dana.getByText("Now: White caucus.").waitFor();
  await amara.getByText("Now: Racially minoritised caucus.").waitFor();
  await bayo.getByText("Now: Racially minoritised caucus.").waitFor();

  // The facilitator opens a timed round.
  await facilitator.getByRole("button", { name: "Facilitator console" }).click();
  await facilitator.getByLabel("Length in minutes (empty for no timer)").fill("15");
  await facilitator.getByRole("button", { name: "Open the caucuses" }).click();
  for (const page of [amara, bayo, dana]) await page.locator("#phase", { hasText: "Round 1: caucusing" }).waitFor();
  await amara.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
  await amara.locator("#countdown", { hasText: "left" }).waitFor();

  // Talk and flagging in both caucuses.
  await say(amara, "A-private: being the only one in the room wears me down");
  await say(bayo, "A-carried: we want managers to name it first");
  await bayo.getByRole("button", { name: /^Flag as a point: A-carried/ }).click();
  await amara.locator("#points li", { hasText: "A-carried: we want managers to name it first" }).waitFor();
  await say(dana, "B-carried: we stayed silent when it mattered");
  await dana.getByRole("button", { name: /^Flag as a point: B-carried/ }).click();
  await dana.locator("#points li", { hasText: "B-carried" }).waitFor();
  await amara.getByLabel("Write a point").fill("A-carried: time to talk without explaining ourselves");
  await amara.getByRole("button", { name: "Add point" }).click();
  await bayo.locator("#points li", { hasText: "time to talk without explaining" }).waitFor();
  await amara.locator("#room-banner", { hasText: "only its current members can read this" }).waitFor();
  await shot(amara, "caucus");
  await amara.setViewportSize({ width: 390, height: 844 });
  await shot(amara, "caucus-phone");
  await amara.setViewportSize({ width: 1280, height: 860 });

  // The facilitator sees who is where and how many points each caucus has, never what is said.
  await facilitator.getByText("Who is where").waitFor();
  await facilitator.locator('#board [data-room="caucus_a"] .board-points', { hasText: "2 live points" }).waitFor();
  await shot(facilitator, "facilitator-console");
  await facilitator.setViewportSize({ width: 390, height: 844 });
  await shot(facilitator, "facilitator-console-phone");
  await facilitator.setViewportSize({ width: 1280, height: 860 });

  // A move between caucuses: Bayo to the white caucus.
  await facilitator.getByLabel("Move Bayo to").selectOption({ label: "White caucus" });
  await facilitator.getByRole("button", { name: "Move Bayo" }).click();
  await bayo.locator("#room-heading", { hasText: "White caucus" }).waitFor();
  await bayo.locator("#notices", { hasText: "You were moved to White caucus." }).waitFor();
  assert.equal(await bayo.locator("#messages", { hasText: "A-private" }).count(), 0, "a moved member still sees the old caucus");
  await say(bayo, "B-chat: glad to join you");
  await dana.locator("#messages li", { hasText: "B-chat: glad to join you" }).waitFor();

  // Reconvene: the feedback panel shows each caucus's points, with no author.
  await facilitator.getByRole("button", { name: "Reconvene" }).click();
  // The facilitator stays in the console through the reconvene, and goes to the plenary to read the feedback.
  await facilitator.getByRole("button", { name: "Open the next round" }).waitFor();
  await facilitator.getByRole("button", { name: "Plenary" }).click();
  for (const page of [facilitator, amara, bayo, dana]) {
    await page.locator("#feedback", { hasText: "A-carried: we want managers to name it first" }).waitFor();
    await page.locator("#feedback", { hasText: "B-carried: we stayed silent when it mattered" }).waitFor();
  }
  const feedback = await dana.locator("#feedback").innerText();
  assert.ok(feedback.includes("A-carried: time to talk without explaining ourselves"));
  for (const name of ["Amara", "Bayo", "Dana"]) assert.ok(!feedback.includes(name), `feedback names ${name}`);
  await shot(dana, "feedback");

  // The facilitator makes Dana the secretary, who may then export the minutes too.
  await facilitator.getByRole("button", { name: "Facilitator console" }).click();
  await facilitator.locator("summary", { hasText: "Dana:" }).click();
  await facilitator.getByRole("button", { name: "Make secretary" }).click();
  await dana.getByRole("button", { name: "Download minutes (Markdown)" }).waitFor();

  // The end, and the minutes.
  await facilitator.getByRole("button", { name: "End the session" }).click();
  await facilitator.getByRole("button", { name: "Yes, end the session" }).click();
  for (const page of [amara, bayo, dana]) await page.locator("#phase", { hasText: "Ended" }).waitFor();
  const [download] = await Promise.all([
    facilitator.waitForEvent("download"),
    facilitator.getByRole("button", { name: "Download minutes (Markdown)" }).click(),
  ]);
  const minutes = readFileSync(await download.path(), "utf8");
  assert.match(minutes, /## Round 1: Microaggressions at work/);
  assert.match(minutes, /A-carried: we want managers to name it first/);
  assert.ok(!minutes.includes("A-private"), "the minutes hold caucus content");
  const [secretaryDownload] = await Promise.all([
    dana.waitForEvent("download"),
    dana.getByRole("button", { name: "Download minutes (JSON)" }).click(),
  ]);
  const json = JSON.parse(readFileSync(await secretaryDownload.path(), "utf8"));
  assert.deepEqual(json.rounds[0].feedback.map((carried) => carried.points.length), [2, 1]);

  // Privacy, at any point: the observers watched every DOM change since the invite.
  assert.equal(await everSaw(dana, "A-private"), false, "caucus B's page showed caucus A's words");
  assert.equal(await everSaw(facilitator, "A-private"), false, "the facilitator's page showed caucus A's words");
  for (const page of [facilitator, amara, bayo, dana]) assert.deepEqual(page.errors || [], []);
});
