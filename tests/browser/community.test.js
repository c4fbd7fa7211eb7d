// The practice in the browser, end to end: a co-chair starts a community with terms of
// reference, a member joins by its link and accepts the terms before entering, the
// series runs three sessions that build on each other ("From last time", a carried
// point proposed again as a topic, an action recorded then closed), a new version of
// the terms is accepted again after seeing what changed, and the archive holds exactly
// the carried point under its caucus's label. Nobody's page ever shows which caucus the
// member sat in, and the co-chair's never shows what the caucus said.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { everSaw, freePort, launchBrowser, person, say, shot, startServer, watchFor, axeViolations } from "./support.js";


const TERMS_V1 = "We meet monthly.\nWe listen before we answer.\n";
const TERMS_V2 = "We meet monthly.\nWe listen before we answer.\nWhat is said in a caucus stays in it.\n";
const LABEL_A = "Racially minoritised caucus";
const POINT = "We are tired of explaining, every time";
const PRIVATE = "K-private: the last meeting hurt";
const TOPIC = "Naming racism in our meetings";
const ACTION = "Draft a recruitment checklist";

let browser;
let server;
let origin;


before(async () => {
  browser = await launchBrowser();
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  server = await startServer({
    listen: `127.0.0.1:${port}`,
    env: { CAUCUS_PUBLIC_URL: origin, CAUCUS_ADMINS: "ada@example.org" },
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Signs in by a link the operator prints (`caucus signin-link`), going on to `returnTo`. */
async function signIn(page, email, returnTo = "/") {
  const link = server.cli(["signin-link", email, "--return-to", returnTo]);
  assert.ok(link.startsWith(`${origin}/#signin=`), link);
  await page.goto(link);
  await page.getByRole("link", { name: "Account" }).waitFor();
}

async function online(page) {
  await page.getByRole("status").filter({ hasText: "Online" }).waitFor();
}

async function openCommunity(page, id) {
  await page.goto(`${origin}/#c=${id}`);
  await page.locator("#community-heading").waitFor();
}


/** `YYYY-MM-DDTHH:MM`, `days` from now, for a datetime-local box. */
function daysFromNow(days) {
  const date = new Date(Date.now() + days * 24 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T18:00`;
}

/** Everything on screen in the community page's sections that must never name a seat. */
async function caucusFreeSections(page) {
  return page.evaluate(() => ["people-heading", "archive-heading", "actions-heading", "series-heading", "terms-heading"]
    .map((id) => document.getElementById(id)?.closest("section")?.innerText ?? "").join("\n"));
}

test("a community runs a series: terms, From last time, actions and the archive", { timeout: 300000 }, async () => {
  // Ada, a co-chair (an admin here), starts the community with its first terms.
  // bypassCSP lets the test inject axe; the app itself never loosens its policy.
  const ada = await person(browser, { bypassCSP: true });
  await signIn(ada, "ada@example.org");
  await ada.getByRole("heading", { name: "Your communities" }).waitFor();
  await ada.getByLabel("Community name").fill("Anti-racism community of practice");
  await ada.getByLabel("Terms of reference (people accept these before entering a session)").fill(TERMS_V1);
  await ada.getByRole("button", { name: "Start the community" }).click();
  await ada.locator("#community-heading", { hasText: "Anti-racism community of practice" }).waitFor();
  const id = new URLSearchParams(new URL(ada.url()).hash.slice(1)).get("c");
  assert.ok(id, ada.url());
  const invite = await ada.getByLabel("Community invite link").inputValue();
  assert.ok(invite.startsWith(`${origin}/#community=`), invite);

  // She adds Sam as the secretary by email.
  await ada.getByLabel("Email address").fill("sam@example.org");
  await ada.getByLabel("Their name, until they sign in (optional)").fill("Sam");
  await ada.getByLabel("Part", { exact: true }).selectOption("secretary");
  await ada.getByRole("button", { name: "Add to the community" }).click();
  await ada.getByRole("status").filter({ hasText: "Sam is now a secretary of the community." }).waitFor();

  // She schedules three sessions of the series.
  for (const [title, days] of [["March circle", 1], ["April circle", 2], ["May circle", 3]]) {
    await ada.getByLabel("Title", { exact: true }).fill(title);
    await ada.getByLabel("Date and time (your time zone)").fill(daysFromNow(days));
    await ada.getByLabel("Agenda").fill("Check-in; caucuses; plenary");
    await ada.getByRole("button", { name: "Schedule", exact: true }).click();
    await ada.getByRole("status").filter({ hasText: `“${title}” is scheduled.` }).waitFor();
  }
  const titles = await ada.locator(".series h4").allInnerTexts();
  assert.deepEqual(titles, ["March circle", "April circle", "May circle"], "upcoming sessions, soonest first");

  // Kofi opens the community's link, signs in, and is in.
  const kofi = await person(browser);
  await kofi.goto(invite);
  await kofi.getByText("You were invited to a community. Sign in to join it.").waitFor();
  await signIn(kofi, "kofi@example.org", new URL(invite).pathname + new URL(invite).hash);
  await kofi.getByRole("status").filter({ hasText: "You joined Anti-racism community of practice." }).waitFor();
  await kofi.goto(`${origin}/`);
  await kofi.getByRole("link", { name: "Anti-racism community of practice" }).click();
  await kofi.locator("#community-heading").waitFor();
  assert.equal(await kofi.getByLabel("Community invite link").count(), 0, "only co-chairs see the invite link");

  // He must accept the terms before entering March.
  await kofi.getByRole("button", { name: "Enter March circle" }).click();
  await kofi.getByRole("alert").filter({ hasText: "accept the community's terms of reference (version 1)" }).waitFor();
  await kofi.getByRole("button", { name: "Accept version 1 of the terms" }).click();
  await kofi.getByRole("status").filter({ hasText: "You accepted version 1 of the terms of reference." }).waitFor();
  await kofi.getByRole("button", { name: "Enter March circle" }).click();
  await online(kofi);

  // Ada accepts the terms too, and enters March as its facilitator.
  await openCommunity(ada, id);
  await ada.getByRole("button", { name: "Accept version 1" }).click();
  await ada.getByText("You accepted version 1.").waitFor();
  await ada.getByRole("button", { name: "Enter March circle" }).click();
  await online(ada);
  await watchFor(ada, PRIVATE);
  await ada.locator("#from-last-time", { hasText: "This is the first session of the series." }).waitFor();

  // Session 1: a topic, Kofi's caucus, a private word and a carried point.
  await ada.getByRole("button", { name: "Facilitator console" }).click();
  await ada.getByLabel("Set the topic").fill(TOPIC);
  await ada.getByRole("button", { name: "Set topic" }).click();
  await kofi.locator("#topic", { hasText: TOPIC }).waitFor();
  await kofi.getByLabel("Remember my caucus on this device").waitFor();
  assert.equal(await kofi.getByLabel("Remember my caucus on this device").isChecked(), false, "remembering is off by default");
  await kofi.getByRole("button", { name: `Choose ${LABEL_A}` }).click();
  await kofi.getByText(`Now: ${LABEL_A}.`).waitFor();
  assert.deepEqual(await kofi.evaluate(() => Object.entries(localStorage).filter(([key, value]) => /caucus-choice/.test(key) || value === "a")), [],
    "a caucus was stored on the device without being asked to");
  await ada.getByLabel("Length in minutes (empty for no timer)").fill("");
  await ada.getByRole("button", { name: "Open the caucuses" }).click();
  await kofi.locator("#room-heading", { hasText: LABEL_A }).waitFor();
  await say(kofi, PRIVATE);
  await kofi.getByLabel("Write a point").fill(POINT);
  await kofi.getByRole("button", { name: "Add point" }).click();
  await kofi.locator("#points li", { hasText: POINT }).waitFor();
  await ada.getByRole("button", { name: "Reconvene" }).click();
  await kofi.locator("#feedback", { hasText: POINT }).waitFor();

  // Sam, the secretary, accepts the terms, enters March and records an action there.
  const sam = await person(browser);
  await signIn(sam, "sam@example.org");
  await sam.getByRole("link", { name: "Anti-racism community of practice" }).click();
  await sam.getByRole("button", { name: "Accept version 1" }).click();
  await sam.getByText("You accepted version 1.").waitFor();
  await sam.getByText("Accepted: ").filter({ hasText: "kofi" }).waitFor();
  await sam.getByRole("button", { name: "Enter March circle" }).click();
  await online(sam);
  await sam.getByLabel("What is to be done").fill(ACTION);
  await sam.getByLabel("Who will do it (optional)").fill("Sam");
  await sam.getByLabel("By when (optional)").fill("2096-12-01");
  await sam.getByRole("button", { name: "Record the action" }).click();
  await sam.locator("#from-last-time li", { hasText: ACTION }).waitFor();

  // Ada publishes version 2 of the terms.
  await openCommunity(ada, id);
  await ada.getByLabel("Text of the new version").fill(TERMS_V2);
  await ada.getByRole("button", { name: "Publish the new version" }).click();
  await ada.getByRole("status").filter({ hasText: "Version 2 of the terms of reference is published." }).waitFor();
  await ada.getByText("Who has accepted version 2").waitFor();

  // Kofi sees what changed and accepts again before April.
  await openCommunity(kofi, id);
  await kofi.getByText("What changed since version 1, which you accepted").waitFor();
  const added = await kofi.locator(".diff li.added").allInnerTexts();
  assert.deepEqual(added.map((line) => line.replace(/^[+\s]*(Added:)?\s*/, "").trim()), ["What is said in a caucus stays in it."]);
  assert.equal(await kofi.locator(".diff li.removed").count(), 0, "nothing was taken out");
  await kofi.getByRole("button", { name: "Enter April circle" }).click();
  await kofi.getByRole("alert").filter({ hasText: "version 2" }).waitFor();
  await kofi.getByRole("button", { name: "Accept version 2 of the terms" }).click();
  await kofi.getByText("You accepted version 2.").waitFor();
  assert.equal(await kofi.locator(".diff").count(), 0, "what changed is still shown after accepting");
  await kofi.getByRole("button", { name: "Enter April circle" }).click();
  await online(kofi);

  // April opens with "From last time": the point under its caucus's label, and the action.
  await kofi.locator("#from-last-time", { hasText: POINT }).waitFor();

  // Kofi asks this device to remember his caucus, then chooses it.
  await kofi.getByLabel("Remember my caucus on this device").check();
  assert.equal(await kofi.evaluate((key) => localStorage.getItem(key), `caucus.caucus-choice.${id}`), null, "nothing chosen yet, nothing kept");
  await kofi.getByRole("button", { name: `Choose ${LABEL_A}` }).click();
  await kofi.getByText(`Now: ${LABEL_A}.`).waitFor();
  assert.equal(await kofi.evaluate((key) => localStorage.getItem(key), `caucus.caucus-choice.${id}`), "a");
  await openCommunity(ada, id);
  await ada.getByRole("button", { name: "Accept version 2" }).click();
  await ada.getByText("You accepted version 2.").waitFor();
  await ada.getByRole("button", { name: "Enter April circle" }).click();
  await online(ada);
  const panel = ada.locator("#from-last-time");
  await panel.getByText(POINT).waitFor();
  await panel.getByText(`Round 1: ${TOPIC}`).waitFor();
  await panel.locator(".carried", { hasText: POINT }).locator(".caucus-label", { hasText: LABEL_A }).waitFor();
  await panel.locator("li", { hasText: ACTION }).waitFor();
  const panelText = await panel.innerText();
  for (const name of ["kofi", "Kofi"]) assert.ok(!panelText.includes(name), `"From last time" names ${name}`);
  assert.equal(await kofi.getByRole("button", { name: `Propose as a topic: ${POINT}` }).count(), 0, "only co-chairs carry points forward");
  await shot(ada, "community-from-last-time");

  // Ada proposes the carried point as April's topic.
  await ada.getByRole("button", { name: `Propose as a topic: ${POINT}` }).click();
  await ada.getByRole("button", { name: `Set the topic to ${POINT}` }).waitFor();
  await kofi.getByRole("button", { name: `Vote for ${POINT}` }).waitFor();

  // May: Sam reviews the action and marks it done.
  await openCommunity(sam, id);
  await sam.getByRole("button", { name: "Accept version 2" }).click();
  await sam.getByText("You accepted version 2.").waitFor();
  await sam.getByRole("button", { name: "Enter May circle" }).click();
  await online(sam);
  await sam.getByRole("button", { name: `Mark done: ${ACTION}` }).click();
  await sam.locator("#from-last-time", { hasText: "No open actions." }).waitFor();

  // Kofi enters May: this device chose his caucus for him, as he asked; then he lets it forget.
  await openCommunity(kofi, id);
  await kofi.getByRole("button", { name: "Enter May circle" }).click();
  await online(kofi);
  await kofi.getByText(`Now: ${LABEL_A}.`).waitFor();
  assert.equal(await kofi.getByLabel("Remember my caucus on this device").isChecked(), true);
  await kofi.getByLabel("Remember my caucus on this device").uncheck();
  assert.equal(await kofi.evaluate((key) => localStorage.getItem(key), `caucus.caucus-choice.${id}`), null, "forgotten");

  // The archive holds exactly the carried point, under its caucus's label.
  await openCommunity(kofi, id);
  const results = kofi.locator(".archive-results");
  await results.getByText(POINT).waitFor();
  assert.deepEqual(await results.locator("ol li").allInnerTexts(), [POINT]);
  await results.locator(".caucus-label", { hasText: LABEL_A }).waitFor();
  await kofi.locator("section", { has: kofi.locator("#actions-heading") }).getByText(ACTION).waitFor();
  await kofi.getByLabel("Search the archive").fill("tired");
  await kofi.getByRole("button", { name: "Search", exact: true }).click();
  await results.getByText("1 carried point and 0 actions match “tired”.").waitFor();
  const [download] = await Promise.all([
    kofi.waitForEvent("download"),
    kofi.getByRole("button", { name: "Download as Markdown" }).click(),
  ]);
  const markdown = readFileSync(await download.path(), "utf8");
  assert.ok(markdown.includes(`${LABEL_A}:\n\n1. ${POINT}`), markdown);
  assert.ok(!markdown.includes("kofi") && !markdown.includes(PRIVATE), markdown);
  const [calendar] = await Promise.all([
    kofi.waitForEvent("download"),
    kofi.getByRole("button", { name: /^Add to calendar/ }).click(),
  ]);
  assert.equal(readFileSync(await calendar.path(), "utf8").match(/BEGIN:VEVENT/g)?.length, 3);
  await kofi.getByRole("button", { name: "Subscribe in a calendar program" }).click();
  const feed = await kofi.getByLabel("Your private calendar feed address").inputValue();
  assert.match(feed, new RegExp(`^${origin}/api/communities/${id}/calendar\\.ics\\?key=`));
  const feedText = await (await fetch(feed)).text();
  assert.equal(feedText.match(/BEGIN:VEVENT/g)?.length, 3, "the feed opens without signing in");

  // Privacy: Ada never saw the caucus's own words, and no community page says where
  // Kofi sat: the people, archive, actions, series and terms hold no caucus beside a name.
  assert.equal(await everSaw(ada, PRIVATE), false, "the co-chair's page showed the caucus's words");
  await openCommunity(ada, id);
  for (const page of [ada, kofi]) {
    const text = await caucusFreeSections(page);
    assert.ok(!text.includes(PRIVATE));
    const people = await page.locator("section", { has: page.locator("#people-heading") }).innerText();
    assert.ok(!people.includes(LABEL_A) && !/caucus/i.test(people), `the people list mentions a caucus: ${people}`);
    const archive = await page.locator("section", { has: page.locator("#archive-heading") }).innerText();
    assert.ok(!/kofi/i.test(archive), `the archive names Kofi: ${archive}`);
  }

  // The community page on a phone, 390 px wide, with axe finding nothing serious.
  const phone = await person(browser, { viewport: { width: 390, height: 844 }, isMobile: true, bypassCSP: true });
  await signIn(phone, "kofi@example.org", `/#c=${id}`);
  await phone.locator("#community-heading").waitFor();
  await phone.locator(".archive-results ol li").first().waitFor();
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 390), "the community page scrolls sideways at 390 px");
  await shot(phone, "community-phone");
  assert.deepEqual(await axeViolations(phone), [], "community page (member, phone)");
  await openCommunity(ada, id);
  await ada.setViewportSize({ width: 390, height: 844 });
  assert.ok(await ada.evaluate(() => document.documentElement.scrollWidth <= 390), "the co-chair's community page scrolls sideways at 390 px");
  assert.deepEqual(await axeViolations(ada), [], "community page (co-chair, phone)");

  for (const page of [ada, kofi, sam, phone]) assert.deepEqual(page.errors || [], []);
});
