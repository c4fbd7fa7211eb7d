// The practice in the browser: a standing community with its co-chairs, secretary and
// members, its terms of reference, its series of sessions, its actions and its archive.
//
// Nothing here ever says who sat in which caucus. Carried points are shown under their
// caucus's label, never with a name. The only thing about caucuses this device keeps is
// the person's own choice, and only when they ask for it ("Remember my caucus on this
// device"), under the community's id.
//
// Like account.js, this module and app.js import each other; only functions cross, and
// nothing here runs before app.js has finished loading.

import { announce, field, h, page, store } from "./app.js";
import { api, copyText, mayFacilitate, showHome, showStart } from "./account.js";

const PART = { co_chair: "co-chair", secretary: "secretary", member: "member" };
const mayRecord = (role) => role === "co_chair" || role === "secretary";

/** Which community each session seen on a community page belongs to, for this page's life. */
const sessionCommunity = new Map();

/** Replaces what `element` holds, leaving out the parts that are not there. */
function fill(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter(Boolean));
}

/** A moment in the person's own time zone, in words: "Thursday 5 March 2031 at 18:00". */
function when(seconds) {
  const date = new Date(seconds * 1000);
  return h("time", { datetime: date.toISOString() }, date.toLocaleString([], { dateStyle: "full", timeStyle: "short" }));
}

const phaseName = (phase) => (typeof phase === "string" ? phase : phase?.name);
const isPast = (session, now = Date.now() / 1000) =>
  phaseName(session.phase) === "ended" || session.starts_at + session.duration_minutes * 60 < now;

/** Downloads what the server answers at `path` (with the cookie) as a file named `filename`. */
async function download(path, filename) {
  const response = await fetch(path);
  if (!response.ok) {
    let message = `the server answered ${response.status}`;
    try { message = (await response.json()).error.message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---------------------------------------------------------------------------------
// The start page: "Your communities" and "Start a community".

/** The signed-in start page's community cards. */
export function communityCards() {
  const yours = h("section", { class: "card narrow", "aria-labelledby": "communities-heading" },
    h("h2", { id: "communities-heading" }, "Your communities"), h("p", { class: "note" }, "Loading…"));
  api("GET", "/api/communities").then(({ communities }) => fill(yours, yours.firstChild,
    communities.length
      ? h("ul", { class: "sessions" }, ...communities.map((entry) => h("li", {},
        h("a", { href: `#c=${encodeURIComponent(entry.community)}` }, entry.name),
        h("span", { class: "note" }, ` · you are ${entry.role === "member" ? "a member" : `a ${PART[entry.role]}`}`))))
      : h("p", { class: "note" }, "None yet. A community's invite link brings you into it.")),
  (err) => fill(yours, yours.firstChild, h("p", { class: "error", role: "alert" }, `Could not list your communities: ${err.message}`)));
  return [yours, mayFacilitate() ? startCommunityForm() : null];
}

function startCommunityForm() {
  const name = h("input", { type: "text", required: true, maxlength: 120, autocomplete: "off" });
  const labelA = h("input", { type: "text", required: true, maxlength: 80, value: "Racially minoritised caucus" });
  const labelB = h("input", { type: "text", required: true, maxlength: 80, value: "White caucus" });
  const terms = h("textarea", { rows: 5 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card narrow", "aria-labelledby": "start-community-heading", novalidate: true },
    h("h2", { id: "start-community-heading" }, "Start a community"),
    h("p", { class: "note" }, "A standing group that meets in a series of sessions. You are its first co-chair; its sessions all use these two caucuses."),
    ...field("Community name", name),
    ...field("Label of the first caucus", labelA),
    ...field("Label of the second caucus", labelB),
    ...field("Terms of reference (people accept these before entering a session)", terms),
    error,
    h("button", { type: "submit" }, "Start the community"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!name.value.trim()) { error.textContent = "Give the community a name."; name.focus(); return; }
    try {
      const created = await api("POST", "/api/communities", {
        name: name.value,
        caucuses: { a: labelA.value, b: labelB.value },
        ...(terms.value.trim() ? { terms: terms.value } : {}),
      });
      location.hash = `c=${encodeURIComponent(created.community)}`;
    } catch (err) {
      error.textContent = `Could not start the community: ${err.message}`;
    }
  });
  return form;
}

// ---------------------------------------------------------------------------------
// Joining by the community's link.

/** `#community=CODE`: joins, then shows the community. */
export async function joinCommunity(code, signedIn) {
  if (!signedIn) {
    return showStart({
      notice: "You were invited to a community. Sign in to join it.",
      returnTo: `/#community=${encodeURIComponent(code)}`,
    });
  }
  document.title = "Joining · Caucus";
  page(h("section", { class: "card narrow" }, h("h2", {}, "Joining the community"), h("p", { role: "status" }, "Joining…")));
  try {
    const joined = await api("POST", "/api/communities/join", { invite_code: code });
    history.replaceState(null, "", `/#c=${encodeURIComponent(joined.community)}`);
    return showCommunity(joined.community, { notice: `You joined ${joined.name}.` });
  } catch (err) {
    page(h("section", { class: "card narrow", "aria-labelledby": "join-failed" },
      h("h2", { id: "join-failed" }, "This community link does not work"),
      h("p", { class: "error", role: "alert" }, err.message),
      h("p", {}, h("a", { href: "#start" }, "Go to your start page"), ".")));
  }
}

// ---------------------------------------------------------------------------------
// The community page.

/** `#c=ID`: the community page. `notice` confirms what just happened; `focus` is a section's heading id. */
export async function showCommunity(id, { notice = null, focus = null } = {}) {
  const path = `/api/communities/${encodeURIComponent(id)}`;
  let community;
  let archive;
  try {
    [community, archive] = await Promise.all([api("GET", path), api("GET", `${path}/archive`)]);
  } catch (err) {
    document.title = "Community · Caucus";
    page(h("section", { class: "card narrow", "aria-labelledby": "community-missing" },
      h("h2", { id: "community-missing" }, "This community is not available"),
      h("p", { class: "error", role: "alert" }, err.message),
      h("p", {}, h("a", { href: "#start" }, "Go to your start page"), ".")));
    return;
  }
  for (const session of community.sessions) sessionCommunity.set(session.session, { id, role: community.role });
  let invite = null;
  if (community.role === "co_chair") {
    try { invite = await api("GET", `${path}/invite`); } catch { invite = null; }
  }
  const reload = (options) => showCommunity(id, options);
  const ctx = { id, path, community, archive, invite, reload };
  document.title = `${community.name} · Caucus`;
  const heading = h("h2", { id: "community-heading", tabindex: -1 }, community.name);
  page(h("div", { class: "community" },
    h("section", { class: "card", "aria-labelledby": "community-heading" },
      heading,
      h("p", { class: "confirmation", role: "status" }, notice ?? ""),
      h("p", {}, `You are ${community.role === "member" ? "a member" : `a ${PART[community.role]}`} of this community.`),
      h("p", { class: "note" }, `Its caucuses: ${community.caucuses.a} and ${community.caucuses.b}.`)),
    termsSection(ctx),
    sessionsSection(ctx),
    actionsSection(ctx),
    archiveSection(ctx),
    peopleSection(ctx)));
  const target = focus ? document.getElementById(focus) : null;
  (target ?? heading).focus();
  if (notice) announce(notice);
}

function peopleSection({ community, invite, path, reload }) {
  const coChair = community.role === "co_chair";
  return h("section", { class: "card", "aria-labelledby": "people-heading" },
    h("h2", { id: "people-heading", tabindex: -1 }, "People"),
    h("ul", { class: "people" }, ...community.people.map((person) => h("li", {},
      h("span", {}, person.name), h("span", { class: "note" }, ` · ${PART[person.role] ?? person.role}`)))),
    coChair && invite ? inviteLink(invite) : null,
    coChair ? addPersonForm(path, reload) : null,
    leaveButton(community, path));
}

function inviteLink(invite) {
  const box = h("input", { type: "text", id: "community-invite", readonly: true, value: invite.invite_url });
  return h("div", {},
    h("h3", {}, "Invite link"),
    h("p", { class: "note" }, "Anyone who signs in with this link joins as a member."),
    h("div", { class: "invite" },
      h("label", { for: "community-invite", class: "visually-hidden" }, "Community invite link"), box,
      h("button", { type: "button", onclick: () => copyText(box, "Invite link copied.") }, "Copy",
        h("span", { class: "visually-hidden" }, " the invite link"))));
}

function addPersonForm(path, reload) {
  const email = h("input", { type: "email", required: true, maxlength: 254, autocomplete: "off", spellcheck: "false" });
  const name = h("input", { type: "text", maxlength: 80, autocomplete: "off" });
  const part = h("select", {},
    h("option", { value: "member", selected: true }, "Member"),
    h("option", { value: "secretary" }, "Secretary"),
    h("option", { value: "co_chair" }, "Co-chair"));
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { novalidate: true, "aria-labelledby": "add-person-heading" },
    h("h3", { id: "add-person-heading" }, "Add someone by email"),
    ...field("Email address", email),
    ...field("Their name, until they sign in (optional)", name),
    ...field("Part", part),
    error,
    h("button", { type: "submit" }, "Add to the community"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!email.value.trim()) { error.textContent = "Enter their email address."; email.focus(); return; }
    try {
      const added = await api("POST", `${path}/people`, {
        email: email.value.trim(), ...(name.value.trim() ? { name: name.value.trim() } : {}), role: part.value,
      });
      reload({ notice: `${added.name} is now a ${PART[added.role]} of the community.`, focus: "people-heading" });
    } catch (err) {
      error.textContent = `Could not add them: ${err.message}`;
    }
  });
  return form;
}

function leaveButton(community, path) {
  const error = h("p", { class: "error", role: "alert" });
  return h("div", {},
    h("button", { type: "button", class: "danger", onclick: async () => {
      if (!confirm(`Leave ${community.name}? You can come back only by its invite link.`)) return;
      error.textContent = "";
      try {
        await api("DELETE", `${path}/people/me`);
      } catch (err) {
        error.textContent = `Could not leave: ${err.message}`;
        return;
      }
      history.replaceState(null, "", "/");
      showHome({ notice: `You left ${community.name}.` });
    } }, "Leave the community"),
    error);
}

// ---------------------------------------------------------------------------------
// Terms of reference.

/** What changed, from the server's unified diff: plain text lines, added and removed ones marked. */
export function diffLines(diff) {
  const items = [];
  for (const line of diff.split("\n")) {
    if (line.startsWith("+++") || line.startsWith("---")) continue;
    if (line.startsWith("@@")) { items.push(h("li", { class: "hunk" }, "…")); continue; }
    if (line.startsWith("+")) {
      items.push(h("li", { class: "added" }, h("span", { class: "mark", "aria-hidden": "true" }, "+ "),
        h("span", { class: "visually-hidden" }, "Added: "), line.slice(1)));
    } else if (line.startsWith("-")) {
      items.push(h("li", { class: "removed" }, h("span", { class: "mark", "aria-hidden": "true" }, "− "),
        h("span", { class: "visually-hidden" }, "Removed: "), line.slice(1)));
    } else if (line.length) {
      items.push(h("li", { class: "same" }, h("span", { class: "mark", "aria-hidden": "true" }, "  "), line.slice(1)));
    }
  }
  return h("ul", { class: "diff", "aria-label": "What changed" }, ...items);
}

async function acceptTerms(path, version, reload) {
  try {
    await api("POST", `${path}/terms/accept`, { version });
    reload({ notice: `You accepted version ${version} of the terms of reference.`, focus: "terms-heading" });
  } catch (err) {
    announce(`Could not accept the terms: ${err.message}`);
    throw err;
  }
}

function termsSection({ community, path, reload }) {
  const terms = community.terms;
  const coChair = community.role === "co_chair";
  const parts = [h("h2", { id: "terms-heading", tabindex: -1 }, "Terms of reference")];
  if (!terms) {
    parts.push(h("p", { class: "note" }, "No terms of reference yet."));
  } else {
    const needed = terms.accepted !== terms.version;
    const error = h("p", { class: "error", role: "alert" });
    parts.push(
      h("p", {}, `Version ${terms.version}, published `, when(terms.published_at), "."),
      needed && terms.changes ? [
        h("h3", {}, `What changed since version ${terms.accepted}, which you accepted`),
        diffLines(terms.changes)] : null,
      h("div", { class: "rules", id: "terms-text" }, terms.text),
      needed
        ? [h("p", {}, terms.accepted
          ? `You accepted version ${terms.accepted}. Accept version ${terms.version} to enter the next session.`
          : "Accept the terms to enter this community's sessions."),
        h("button", { type: "button", onclick: () => acceptTerms(path, terms.version, reload).catch((err) => {
          error.textContent = `Could not accept the terms: ${err.message}`;
        }) }, `Accept version ${terms.version}`), error]
        : h("p", { class: "note" }, `You accepted version ${terms.version}.`));
  }
  const acceptance = community.acceptance;
  if (acceptance) {
    parts.push(h("h3", {}, `Who has accepted version ${acceptance.version}`),
      h("p", {}, acceptance.accepted.length ? `Accepted: ${acceptance.accepted.join(", ")}.` : "Nobody yet."),
      acceptance.pending.length ? h("p", { class: "note" }, `Not yet: ${acceptance.pending.join(", ")}.`) : null);
  }
  if (coChair) parts.push(publishTermsForm(terms, path, reload));
  return h("section", { class: "card", "aria-labelledby": "terms-heading" }, ...parts);
}

function publishTermsForm(terms, path, reload) {
  const text = h("textarea", { rows: 6 }, terms?.text ?? "");
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { "aria-labelledby": "publish-heading" },
    h("h3", { id: "publish-heading" }, "Publish a new version"),
    h("p", { class: "note" }, "Everyone, you too, accepts the new version before their next session; they see what changed."),
    ...field("Text of the new version", text),
    error,
    h("button", { type: "submit" }, "Publish the new version"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!text.value.trim()) { error.textContent = "Write the terms first."; text.focus(); return; }
    try {
      const published = await api("POST", `${path}/terms`, { text: text.value });
      reload({ notice: `Version ${published?.version ?? ""} of the terms of reference is published.`, focus: "terms-heading" });
    } catch (err) {
      error.textContent = `Could not publish: ${err.message}`;
    }
  });
  return form;
}

// ---------------------------------------------------------------------------------
// The series.

function sessionsSection(ctx) {
  const { community, path, id } = ctx;
  const upcoming = community.sessions.filter((session) => !isPast(session));
  const past = community.sessions.filter((session) => isPast(session));
  const error = h("p", { class: "error", role: "alert" });
  return h("section", { class: "card", "aria-labelledby": "series-heading" },
    h("h2", { id: "series-heading", tabindex: -1 }, "Sessions"),
    h("button", { type: "button", class: "secondary", onclick: async () => {
      error.textContent = "";
      try {
        await download(`${path}/calendar.ics`, `${id}.ics`);
        announce("The calendar file is downloading.");
      } catch (err) {
        error.textContent = `Could not download the calendar: ${err.message}`;
      }
    } }, "Add to calendar", h("span", { class: "visually-hidden" }, " (an .ics file of every session)")),
    error,
    calendarFeed(path),
    h("h3", {}, "Upcoming"),
    upcoming.length ? h("ul", { class: "series" }, ...upcoming.map((session) => sessionItem(ctx, session)))
      : h("p", { class: "empty" }, "No sessions scheduled."),
    past.length ? [h("h3", {}, "Past"), h("ul", { class: "series" }, ...past.map((session) => sessionItem(ctx, session)))] : null,
    community.role === "co_chair" ? scheduleForm(ctx) : null);
}

/** A private feed address for a calendar program; a new one stops the old one. */
function calendarFeed(path) {
  const holder = h("div", { class: "feed" });
  const error = h("p", { class: "error", role: "alert" });
  const ask = h("button", { type: "button", class: "secondary", onclick: async () => {
    error.textContent = "";
    if (holder.childElementCount && !confirm("Make a new calendar feed address? The old one stops working at once.")) return;
    try {
      const { feed_url: url } = await api("POST", `${path}/calendar-feed`);
      const box = h("input", { type: "text", id: "calendar-feed", readonly: true, value: url });
      fill(holder,
        h("p", { class: "note" }, "Subscribe to this address in your calendar program. It is yours alone: anyone who has it sees the series."),
        h("div", { class: "invite" },
          h("label", { for: "calendar-feed", class: "visually-hidden" }, "Your private calendar feed address"), box,
          h("button", { type: "button", onclick: () => copyText(box, "Calendar feed address copied.") }, "Copy",
            h("span", { class: "visually-hidden" }, " the calendar feed address"))));
      ask.textContent = "New calendar feed address";
      box.focus();
      announce("Your private calendar feed address is ready.");
    } catch (err) {
      error.textContent = `Could not make a calendar feed: ${err.message}`;
    }
  } }, "Subscribe in a calendar program");
  return h("div", {}, ask, holder, error);
}

function sessionItem({ id, path, community, reload }, session) {
  const status = h("div", { class: "enter-status" });
  const enter = async () => {
    fill(status);
    try {
      await api("POST", `${path}/sessions/${encodeURIComponent(session.session)}/enter`);
    } catch (err) {
      const version = community.terms?.version;
      fill(status, h("p", { class: "error", role: "alert" }, err.message),
        err.code === "terms_required" && version ? [
          h("button", { type: "button", onclick: () => acceptTerms(path, version, reload).catch(() => {}) },
            `Accept version ${version} of the terms`),
          h("button", { type: "button", class: "secondary", onclick: () => document.getElementById("terms-heading")?.focus() },
            "Read the terms first")] : null);
      return;
    }
    location.hash = `session=${encodeURIComponent(session.session)}&c=${encodeURIComponent(id)}`;
  };
  const ended = phaseName(session.phase) === "ended";
  return h("li", {},
    h("h4", {}, session.title),
    h("p", {}, when(session.starts_at), ` · ${session.duration_minutes} minutes`, ended ? " · ended" : ""),
    session.agenda ? h("p", { class: "agenda" }, h("span", { class: "visually-hidden" }, "Agenda: "), session.agenda) : null,
    h("button", { type: "button", onclick: enter }, ended ? "Open" : "Enter", h("span", { class: "visually-hidden" }, ` ${session.title}`)),
    status);
}

/** `YYYY-MM-DDTHH:MM` in the person's own time, for a datetime-local box. */
function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function scheduleForm({ path, reload }) {
  const title = h("input", { type: "text", required: true, maxlength: 80, autocomplete: "off" });
  const nextWeek = new Date(Date.now() + 7 * 24 * 3600 * 1000);
  nextWeek.setMinutes(0, 0, 0);
  const start = h("input", { type: "datetime-local", required: true, value: localInputValue(nextWeek) });
  const length = h("input", { type: "number", min: 1, max: 1440, value: 120 });
  const agenda = h("textarea", { rows: 3 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { "aria-labelledby": "schedule-heading", novalidate: true },
    h("h3", { id: "schedule-heading" }, "Schedule a session"),
    ...field("Title", title),
    ...field("Date and time (your time zone)", start),
    ...field("Length in minutes", length),
    ...field("Agenda", agenda),
    error,
    h("button", { type: "submit" }, "Schedule"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const at = new Date(start.value).getTime();
    if (!title.value.trim()) { error.textContent = "Give the session a title."; title.focus(); return; }
    if (!Number.isFinite(at)) { error.textContent = "Choose a date and time."; start.focus(); return; }
    const minutes = parseInt(length.value, 10);
    try {
      const scheduled = await api("POST", `${path}/sessions`, {
        title: title.value,
        starts_at: Math.floor(at / 1000),
        ...(Number.isFinite(minutes) ? { duration_minutes: minutes } : {}),
        ...(agenda.value.trim() ? { agenda: agenda.value } : {}),
      });
      reload({ notice: `“${scheduled.title}” is scheduled.`, focus: "series-heading" });
    } catch (err) {
      error.textContent = `Could not schedule the session: ${err.message}`;
    }
  });
  return form;
}

// ---------------------------------------------------------------------------------
// Actions.

function actionDetails(action) {
  return [action.owner ? ` · owner: ${action.owner}` : "", action.due ? ` · due ${action.due}` : ""].join("");
}

/** Records an action; `session` is the session it comes from, if any. */
function recordActionForm(path, session, done, ids = "action") {
  const text = h("input", { type: "text", id: `${ids}-text`, maxlength: 1000, autocomplete: "off" });
  const owner = h("input", { type: "text", id: `${ids}-owner`, maxlength: 80, autocomplete: "off" });
  const due = h("input", { type: "date", id: `${ids}-due` });
  const error = h("p", { class: "error", role: "alert" });
  const label = (input, words) => h("label", { for: input.id }, words);
  const form = h("form", { novalidate: true, "aria-labelledby": `${ids}-heading` },
    h("h3", { id: `${ids}-heading` }, "Record an action"),
    label(text, "What is to be done"), text,
    label(owner, "Who will do it (optional)"), owner,
    label(due, "By when (optional)"), due,
    error,
    h("button", { type: "submit" }, "Record the action"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!text.value.trim()) { error.textContent = "Say what is to be done."; text.focus(); return; }
    try {
      const action = await api("POST", `${path}/actions`, {
        text: text.value,
        ...(owner.value.trim() ? { owner: owner.value.trim() } : {}),
        ...(due.value ? { due: due.value } : {}),
        ...(session ? { session } : {}),
      });
      text.value = "";
      owner.value = "";
      due.value = "";
      done(`Action recorded: ${action.text}`);
    } catch (err) {
      error.textContent = `Could not record the action: ${err.message}`;
    }
  });
  return form;
}

async function closeAction(path, action, session) {
  await api("POST", `${path}/actions/${action.id}/close`, session ? { session } : {});
}

function actionsSection({ archive, community, path, reload }) {
  const open = archive.actions.filter((action) => action.closed_at === null || action.closed_at === undefined);
  const closed = archive.actions.filter((action) => action.closed_at !== null && action.closed_at !== undefined);
  const recorder = mayRecord(community.role);
  const error = h("p", { class: "error", role: "alert" });
  const item = (action, isOpen) => h("li", {},
    h("span", {}, action.text), h("span", { class: "note" }, actionDetails(action)),
    !isOpen && action.closed_at ? h("span", { class: "note" }, " · done ", when(action.closed_at)) : null,
    isOpen && recorder ? [" ", h("button", { type: "button", class: "secondary", onclick: async () => {
      error.textContent = "";
      try {
        await closeAction(path, action, null);
        reload({ notice: `Action closed: ${action.text}`, focus: "actions-heading" });
      } catch (err) {
        error.textContent = `Could not close the action: ${err.message}`;
      }
    } }, "Close", h("span", { class: "visually-hidden" }, ` the action: ${action.text}`))] : null);
  return h("section", { class: "card", "aria-labelledby": "actions-heading" },
    h("h2", { id: "actions-heading", tabindex: -1 }, "Actions"),
    h("h3", {}, "Open"),
    open.length ? h("ul", { class: "actions-list" }, ...open.map((action) => item(action, true))) : h("p", { class: "empty" }, "No open actions."),
    closed.length ? [h("h3", {}, "Closed"), h("ul", { class: "actions-list" }, ...closed.map((action) => item(action, false)))] : null,
    error,
    recorder ? recordActionForm(path, null, (notice) => reload({ notice, focus: "actions-heading" })) : null);
}

// ---------------------------------------------------------------------------------
// The archive.

/** Past sessions' rounds: topics and each caucus's carried points, by caucus label only. */
function pastSessionBody(session, proposeButton = null) {
  return session.rounds.map((round) => h("div", { class: "round" },
    h("p", { class: "round-topic" }, round.topic ? `Round ${round.round}: ${round.topic}` : `Round ${round.round} (no topic)`),
    ...round.feedback.filter((carried) => carried.points.length).map((carried) => h("div", { class: "carried" },
      h("p", { class: "caucus-label" }, carried.label),
      h("ol", {}, ...carried.points.map((point) => h("li", {}, h("span", {}, point),
        proposeButton ? proposeButton(point) : null)))))));
}

function archiveResults(archive) {
  const withPoints = archive.sessions.filter((session) => session.rounds.some((round) => round.topic || round.feedback.some((c) => c.points.length)));
  const points = archive.sessions.flatMap((s) => s.rounds).flatMap((r) => r.feedback).reduce((n, c) => n + c.points.length, 0);
  return [
    h("p", { role: "status" }, archive.query
      ? `${points} carried point${points === 1 ? "" : "s"} and ${archive.actions.length} action${archive.actions.length === 1 ? "" : "s"} match “${archive.query}”.`
      : `${points} carried point${points === 1 ? "" : "s"} in ${withPoints.length} session${withPoints.length === 1 ? "" : "s"}.`),
    ...withPoints.map((session) => h("div", { class: "archived" },
      h("h3", {}, session.title, " · ", when(session.starts_at)),
      ...pastSessionBody(session))),
    archive.query && archive.actions.length ? [h("h3", {}, "Actions"),
      h("ul", {}, ...archive.actions.map((action) => h("li", {}, action.text, h("span", { class: "note" }, actionDetails(action)))))] : null,
  ];
}

function archiveSection({ archive, path, id }) {
  const results = h("div", { class: "archive-results" }, ...archiveResults(archive).flat().filter(Boolean));
  const query = h("input", { type: "search", maxlength: 200, autocomplete: "off" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "row", role: "search", "aria-label": "Archive" },
    h("div", {}, ...field("Search the archive", query)),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const words = query.value.trim();
    try {
      const found = await api("GET", `${path}/archive${words ? `?q=${encodeURIComponent(words)}` : ""}`);
      fill(results, ...archiveResults(found));
    } catch (err) {
      error.textContent = `Could not search: ${err.message}`;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "archive-heading" },
    h("h2", { id: "archive-heading", tabindex: -1 }, "Archive"),
    h("p", { class: "note" }, "Every point a caucus carried to the plenary, under its caucus's label, never its author's name."),
    form, error, results,
    h("button", { type: "button", class: "secondary", onclick: async () => {
      error.textContent = "";
      const words = query.value.trim();
      try {
        await download(`${path}/archive?format=markdown${words ? `&q=${encodeURIComponent(words)}` : ""}`, `archive-${id}.md`);
        announce("The archive is downloading as Markdown.");
      } catch (err) {
        error.textContent = `Could not download the archive: ${err.message}`;
      }
    } }, "Download as Markdown"));
}

// ---------------------------------------------------------------------------------
// Inside a community's session: "From last time", and remembering one's caucus.

/**
 * Finds the community a live session belongs to (from the address, a community page
 * seen before, or the person's communities), then loads "From last time".
 */
export async function attachCommunity(live, hint) {
  let found = sessionCommunity.get(live.session) ?? null;
  try {
    if (!found) {
      const candidates = hint ? [hint] : (await api("GET", "/api/communities")).communities.map((entry) => entry.community);
      for (const id of candidates) {
        const community = await api("GET", `/api/communities/${encodeURIComponent(id)}`).catch(() => null);
        if (!community) continue;
        for (const session of community.sessions) sessionCommunity.set(session.session, { id, role: community.role });
        if (sessionCommunity.has(live.session)) { found = sessionCommunity.get(live.session); break; }
      }
    }
    if (!found || live.stopped) return;
    live.community = { ...found, path: `/api/communities/${encodeURIComponent(found.id)}`, fromLastTime: null };
    live.rememberCaucus = store.get(rememberKey(found.id)) !== null;
    await refreshFromLastTime(live);
    chooseRemembered(live);
  } catch {
    // Not a community's session, or not reachable now: the session works as any other.
  }
}

async function refreshFromLastTime(live) {
  const { path } = live.community;
  try {
    live.community.fromLastTime = await api("GET", `${path}/sessions/${encodeURIComponent(live.session)}/from-last-time`);
  } catch {
    live.community.fromLastTime = null;
  }
  live.scheduleRender();
}

/** The plenary's "From last time" panel, in a community's session. */
export function fromLastTimePanel(live) {
  const community = live.community;
  const last = community?.fromLastTime;
  if (!last) return null;
  const coChair = community.role === "co_chair" || live.isFacilitator();
  const recorder = mayRecord(community.role);
  const ended = live.phase?.name === "ended";
  const propose = coChair && !ended ? (point) => [" ", h("button", {
    type: "button", class: "secondary", "data-key": `carry-${point}`,
    "aria-label": `Propose as a topic: ${point}`,
    onclick: () => {
      live.send({ type: "propose_topic", text: point }, (error) => live.flash(`Could not propose it: ${error.message}`));
      announce(`Proposed as a topic: ${point}`);
    },
  }, "Propose as a topic")] : null;
  const previous = last.previous;
  const hasRounds = previous?.rounds.some((round) => round.topic || round.feedback.some((carried) => carried.points.length));
  return h("section", { class: "card from-last-time", id: "from-last-time", "aria-labelledby": "from-last-time-heading" },
    h("h3", { id: "from-last-time-heading" }, "From last time"),
    previous
      ? [h("p", { class: "note" }, `${previous.title}, `, when(previous.starts_at), "."),
        ...(hasRounds ? pastSessionBody(previous, propose) : [h("p", { class: "empty" }, "No topics or carried points.")])]
      : h("p", { class: "empty" }, "This is the first session of the series."),
    h("h4", {}, "Open actions"),
    last.open_actions.length ? h("ul", { class: "actions-list" }, ...last.open_actions.map((action) => h("li", {},
      h("span", {}, action.text), h("span", { class: "note" }, actionDetails(action)),
      recorder && !ended ? [" ", h("button", { type: "button", class: "secondary", "data-key": `close-action-${action.id}`, "aria-label": `Mark done: ${action.text}`, onclick: async () => {
        try {
          await closeAction(community.path, action, live.session);
          announce(`Action closed: ${action.text}`);
          await refreshFromLastTime(live);
        } catch (err) {
          live.flash(`Could not close the action: ${err.message}`);
        }
      } }, "Mark done")] : null)))
      : h("p", { class: "empty" }, "No open actions."),
    recorder && !ended ? recordActionForm(community.path, live.session, async (notice) => {
      announce(notice);
      await refreshFromLastTime(live);
    }, "session-action") : null);
}

const rememberKey = (community) => `caucus-choice.${community}`;

/** The caucus this device remembers for the community, if the person asked it to. */
function rememberedCaucus(community) {
  const value = store.get(rememberKey(community));
  return value === "a" || value === "b" ? value : null;
}

/** Called when the person chooses a caucus: kept only if they asked for it. */
export function rememberChoice(live, caucus) {
  if (!live.community || !live.rememberCaucus) return;
  store.set(rememberKey(live.community.id), caucus);
}

/** "Remember my caucus on this device", off unless the person turns it on. */
export function rememberCaucusControl(live) {
  if (!live.community) return null;
  const box = h("input", { type: "checkbox", id: "remember-caucus", checked: Boolean(live.rememberCaucus) });
  box.addEventListener("change", () => {
    live.rememberCaucus = box.checked;
    if (box.checked) {
      if (live.seat) store.set(rememberKey(live.community.id), live.seat);
      announce(live.seat ? `This device will remember ${live.labels[live.seat]} for this community.`
        : "This device will remember the caucus you choose for this community.");
    } else {
      store.remove(rememberKey(live.community.id));
      announce("This device no longer remembers your caucus.");
    }
  });
  return h("div", { class: "remember" },
    h("label", { class: "inline", for: "remember-caucus" }, box, "Remember my caucus on this device"),
    h("p", { class: "note" }, "Off, nothing about your caucus is kept here. On, it is chosen for you in this community's next sessions on this device; anyone using this device could see it."));
}

/** In a new session of the community, the remembered caucus is chosen for the person, once. */
export function chooseRemembered(live) {
  if (live.rememberTried || !live.community || !live.welcome) return;
  live.rememberTried = true;
  const caucus = rememberedCaucus(live.community.id);
  if (!caucus || live.seat || live.isFacilitator() || live.phase?.name === "ended" || !live.info?.settings?.self_choice) return;
  live.send({ type: "choose_caucus", caucus });
}
