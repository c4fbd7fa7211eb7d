// Honest, lossless sending. What a person sends while the network is gone, the server
// is down or the connection has stalled is shown as waiting, never silently lost, and
// arrives exactly once when the page is back; the page says within seconds that the
// connection is lost; and text waiting for a caucus never goes anywhere else.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  cutConnection, everSaw, holdIncoming, joinAs, launchBrowser, makeConnectionControllable, person, recordSentFrames,
  releaseIncoming, say, startServer, watchFor,
} from "./support.js";

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function createSession(page, server, title) {
  await page.goto(server.signIn);
  await page.getByLabel("Title").fill(title);
  await page.getByRole("button", { name: "Create session" }).click();
  await page.getByRole("status").filter({ hasText: "Online" }).waitFor();
  await page.getByRole("button", { name: "Facilitator console" }).click();
  return page.locator("#invite-link").inputValue();
}

async function openRound(facilitator) {
  await facilitator.getByRole("button", { name: "Facilitator console" }).click();
  await facilitator.getByLabel("Length in minutes (empty for no timer)").fill("");
  await facilitator.getByRole("button", { name: "Open the caucuses" }).click();
  await facilitator.locator("#phase", { hasText: "caucusing" }).waitFor();
}

const entry = (page, text) => page.locator("#outbox li", { hasText: text });

/** The entry holding `text` is shown, and not (yet) as sent. */
async function assertWaiting(page, text) {
  await entry(page, text).first().waitFor({ timeout: 10000 });
  const state = await entry(page, text).first().getAttribute("data-state");
  assert.ok(["queued", "sending", "unconfirmed"].includes(state), `"${text}" shows as ${state}`);
}

async function assertSent(page, text) {
  await page.locator(`#outbox li[data-state="sent"]`, { hasText: text }).first().waitFor({ timeout: 30000 });
}

const notOnline = /lost|offline|reconnecting/i;

test("a minute without network: everything typed waits visibly, then arrives once, and shows as sent", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server, "Offline minute");
    const amara = await person(browser);
    const bayo = await person(browser);
    const pat = await person(browser);
    await joinAs(amara, invite, "Amara");
    await joinAs(bayo, invite, "Bayo");
    await joinAs(pat, invite, "Pat");
    for (const member of [amara, bayo]) {
      await member.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
      await member.getByText("Now: Racially minoritised caucus.").waitFor();
    }
    await openRound(facilitator);
    await amara.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();
    await say(amara, "flag me later");
    await bayo.locator("#messages li", { hasText: "flag me later" }).waitFor();

    const text = {
      caucus: "offline caucus message",
      point: "offline point: they go first",
      broadcast: "offline broadcast: five minutes",
      plenary: "offline plenary message",
      proposal: "offline proposal: who is a good fit",
    };
    await amara.context().setOffline(true);
    await facilitator.context().setOffline(true);
    const cut = Date.now();

    await amara.locator("#composer").fill(text.caucus);
    await amara.locator("#composer").press("Enter");
    await amara.getByLabel("Write a point").fill(text.point);
    await amara.getByRole("button", { name: "Add point" }).click();
    await amara.getByRole("button", { name: /Flag as a point: flag me later/ }).click();

    await facilitator.getByRole("button", { name: "Facilitator console" }).click();
    await facilitator.getByLabel("Broadcast to every room").fill(text.broadcast);
    await facilitator.getByRole("button", { name: "Broadcast", exact: true }).click();
    await assertWaiting(facilitator, text.broadcast);
    await facilitator.getByRole("button", { name: "Plenary" }).click();
    await facilitator.locator("#composer").fill(text.plenary);
    await facilitator.locator("#composer").press("Enter");
    await facilitator.getByLabel("Propose a topic").fill(text.proposal);
    await facilitator.getByRole("button", { name: "Propose" }).click();

    for (const [page, texts] of [[amara, [text.caucus, text.point, "Flag as a point: flag me later"]], [facilitator, [text.plenary, text.proposal]]]) {
      await page.locator("#status", { hasText: notOnline }).waitFor({ timeout: 20000 });
      for (const words of texts) await assertWaiting(page, words);
    }

    // About a minute offline: the server gives up on the silent connections meanwhile.
    await amara.waitForTimeout(Math.max(0, 60000 - (Date.now() - cut)));
    for (const words of [text.caucus, text.point, "Flag as a point: flag me later"]) await assertWaiting(amara, words);
    for (const words of [text.plenary, text.proposal]) await assertWaiting(facilitator, words);
    await facilitator.getByRole("button", { name: "Facilitator console" }).click();
    await assertWaiting(facilitator, text.broadcast);

    await amara.context().setOffline(false);
    await facilitator.context().setOffline(false);
    for (const page of [amara, facilitator]) await page.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
    await assertSent(facilitator, text.broadcast);
    await facilitator.getByRole("button", { name: "Plenary" }).click();
    for (const words of [text.plenary, text.proposal]) await assertSent(facilitator, words);
    for (const words of [text.caucus, text.point, "Flag as a point: flag me later"]) await assertSent(amara, words);

    await bayo.locator("#messages li", { hasText: text.caucus }).waitFor();
    await bayo.locator("#points li", { hasText: text.point }).waitFor();
    await bayo.locator("#points li", { hasText: "flag me later" }).waitFor();
    await bayo.locator("#messages li.announcement", { hasText: text.broadcast }).waitFor();
    await pat.locator("#messages li", { hasText: text.plenary }).waitFor();
    await pat.locator(".proposals li", { hasText: text.proposal }).waitFor();
    await bayo.waitForTimeout(3000); // any second copy would have come by now
    assert.equal(await bayo.locator("#messages li", { hasText: text.caucus }).count(), 1);
    assert.equal(await bayo.locator("#points li", { hasText: text.point }).count(), 1);
    assert.equal(await bayo.locator("#points li", { hasText: "flag me later" }).count(), 1);
    assert.equal(await bayo.locator("#messages li.announcement", { hasText: text.broadcast }).count(), 1);
    assert.equal(await pat.locator("#messages li", { hasText: text.plenary }).count(), 1);
    assert.equal(await pat.locator(".proposals li", { hasText: text.proposal }).count(), 1);
    assert.equal(await amara.locator("#flash").textContent(), "", "an error from before the reconnect lingers");
  } finally {
    await server.stop();
  }
});

test("a message on its way when the server dies, and one sent while it is down, arrive once after the restart", async () => {
  const first = await startServer();
  let second;
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, first, "Crash while sending");
    const amara = await person(browser);
    const bayo = await person(browser);
    await makeConnectionControllable(amara);
    await joinAs(amara, invite, "Amara");
    await joinAs(bayo, invite, "Bayo");

    // Stored by the server, but the answer never reaches Amara's page before the crash.
    await holdIncoming(amara);
    await amara.locator("#composer").fill("stored, answer lost in the crash");
    await amara.locator("#composer").press("Enter");
    await bayo.locator("#messages li", { hasText: "stored, answer lost in the crash" }).waitFor();
    await first.stop(); // kill -9
    await amara.evaluate(() => { window.__held = null; }); // what was held is lost with the connection
    await assertWaiting(amara, "stored, answer lost in the crash");
    await amara.locator("#status", { hasText: notOnline }).waitFor({ timeout: 20000 });

    await amara.locator("#composer").fill("typed while the server is down");
    await amara.locator("#composer").press("Enter");
    await assertWaiting(amara, "typed while the server is down");
    assert.equal(await amara.locator("#composer").inputValue(), "");

    second = await startServer({ data: first.data, listen: `127.0.0.1:${first.port}` });
    await amara.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
    await bayo.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
    for (const words of ["stored, answer lost in the crash", "typed while the server is down"]) await assertSent(amara, words);
    await bayo.locator("#messages li", { hasText: "typed while the server is down" }).waitFor();
    await bayo.waitForTimeout(2000);
    for (const words of ["stored, answer lost in the crash", "typed while the server is down"]) {
      assert.equal(await bayo.locator("#messages li", { hasText: words }).count(), 1, `"${words}" arrived once`);
      assert.equal(await amara.locator("#messages li", { hasText: words }).count(), 1, `"${words}" is shown once`);
    }
  } finally {
    await second?.stop();
    if (!second) await first.stop().catch(() => {});
  }
});

test("a lost network or a stalled connection shows within seconds, counts down and can be skipped", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server, "Stalled");
    const amara = await person(browser);
    await makeConnectionControllable(amara);
    await joinAs(amara, invite, "Amara");

    await amara.context().setOffline(true);
    await amara.locator("#status", { hasText: notOnline }).waitFor({ timeout: 15000 });
    // The countdown moves each second.
    const seen = new Set();
    for (let i = 0; i < 8 && seen.size < 2; i += 1) {
      const status = await amara.locator(".status-line").textContent();
      if (/reconnecting\s*in \d+ s/.test(status)) seen.add(status);
      await amara.waitForTimeout(700);
    }
    assert.ok(seen.size >= 2, `the reconnect countdown did not move: ${[...seen]}`);
    await amara.context().setOffline(false);
    const now = amara.getByRole("button", { name: "Reconnect now" });
    if (await now.isVisible()) await now.click();
    await amara.locator("#status", { hasText: "Online" }).waitFor({ timeout: 15000 });

    // A connection that stays open but carries nothing back: the page notices on its own.
    await holdIncoming(amara);
    await amara.locator("#status", { hasText: notOnline }).waitFor({ timeout: 25000 });
    await releaseIncoming(amara);
    await amara.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
  } finally {
    await server.stop();
  }
});

test("a caucus message waiting while offline is dropped with a notice after a reconvene, never sent to the plenary", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server, "Offline reconvene");
    const amara = await person(browser);
    const pat = await person(browser);
    recordSentFrames(amara);
    await joinAs(amara, invite, "Amara");
    await joinAs(pat, invite, "Pat");
    await amara.getByRole("button", { name: "Choose Racially minoritised caucus" }).click();
    await amara.getByText("Now: Racially minoritised caucus.").waitFor();
    const secret = "caucus only: what it costs me to name it";
    for (const page of [facilitator, pat]) await watchFor(page, secret);
    await openRound(facilitator);
    await amara.locator("#room-heading", { hasText: "Racially minoritised caucus" }).waitFor();

    await amara.context().setOffline(true);
    await amara.locator("#status", { hasText: notOnline }).waitFor({ timeout: 20000 });
    await amara.locator("#composer").fill(secret);
    await amara.locator("#composer").press("Enter");
    await assertWaiting(amara, secret);

    await facilitator.getByRole("button", { name: "Reconvene" }).click();
    await facilitator.locator("#phase", { hasText: "reconvened" }).waitFor();
    await amara.context().setOffline(false);
    await amara.locator("#status", { hasText: "Online" }).waitFor({ timeout: 30000 });
    await amara.locator("#room-heading", { hasText: "Plenary" }).waitFor();
    await amara.locator("#notices", { hasText: "Your message to Racially minoritised caucus was discarded and not sent" }).waitFor();
    await amara.waitForTimeout(1500);

    const carrying = amara.sentFrames.filter((frame) => frame.includes(secret));
    assert.ok(carrying.every((frame) => JSON.parse(frame).room === "caucus_a"), `sent elsewhere: ${carrying}`);
    assert.equal(await entry(amara, secret).count(), 0, "the dropped message is still shown");
    assert.equal(await amara.locator("#composer").inputValue(), "");
    const stored = await amara.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }));
    assert.ok(!stored.includes(secret), "the caucus text is left in the browser's storage");
    for (const page of [facilitator, pat]) assert.equal(await everSaw(page, secret), false);
  } finally {
    await server.stop();
  }
});

test("a message waiting when the page is reloaded is kept, and delivered once after the reload", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server, "Reload");
    const amara = await person(browser);
    const bayo = await person(browser);
    await makeConnectionControllable(amara);
    await joinAs(amara, invite, "Amara");
    await joinAs(bayo, invite, "Bayo");

    await cutConnection(amara);
    await amara.locator("#status", { hasText: notOnline }).waitFor();
    await amara.locator("#composer").fill("typed before the reload");
    await amara.locator("#composer").press("Enter");
    await assertWaiting(amara, "typed before the reload");
    assert.equal(await amara.locator("#composer").inputValue(), "", "the box still holds what the outbox keeps");

    // A reload brings the connection back (the cut lives in the old page only).
    await amara.reload();
    await amara.getByRole("status").filter({ hasText: "Online" }).waitFor();
    await assertSent(amara, "typed before the reload");
    await bayo.locator("#messages li", { hasText: "typed before the reload" }).waitFor();
    await amara.reload();
    await amara.getByRole("status").filter({ hasText: "Online" }).waitFor();
    await amara.locator("#messages li", { hasText: "typed before the reload" }).waitFor();
    for (const page of [amara, bayo]) {
      assert.equal(await page.locator("#messages li", { hasText: "typed before the reload" }).count(), 1, "delivered more than once");
    }
    assert.equal(await amara.locator("#outbox li").count(), 0, "a delivered entry came back after a reload");
  } finally {
    await server.stop();
  }
});

test("a refused entry offers Retry, which sends it again with the same client_id, and Discard, which forgets it", async () => {
  const server = await startServer();
  try {
    const facilitator = await person(browser);
    const invite = await createSession(facilitator, server, "Retry");
    const amara = await person(browser);
    recordSentFrames(amara);
    await joinAs(amara, invite, "Amara");

    // Longer than the server takes: the box's own limit does not stop a script.
    const long = `too long ${"x".repeat(4000)}`;
    await amara.locator("#composer").evaluate((box, text) => {
      box.value = text;
      box.dispatchEvent(new Event("input"));
    }, long);
    await amara.locator("#composer").press("Enter");
    const failed = amara.locator('#outbox li[data-state="failed"]', { hasText: "too long" });
    await failed.waitFor();
    await failed.filter({ hasText: "longer than" }).waitFor();
    const id = await failed.getAttribute("data-client-id");
    const sends = () => amara.sentFrames.filter((frame) => frame.includes(`"client_id":"${id}"`)).length;
    assert.equal(sends(), 1);

    await failed.getByRole("button", { name: "Retry" }).click();
    while (sends() < 2) await amara.waitForTimeout(100); // the test's own timeout ends a Retry that sends nothing
    await amara.locator('#outbox li[data-state="failed"]', { hasText: "too long" }).waitFor();
    assert.equal(sends(), 2, "Retry sent the entry more than once");

    await amara.locator("#outbox li").getByRole("button", { name: "Discard" }).click();
    await amara.locator("#outbox li").waitFor({ state: "detached" });
    assert.ok(!(await amara.evaluate(() => JSON.stringify(sessionStorage))).includes("too long"), "a discarded entry stays in storage");
  } finally {
    await server.stop();
  }
});
