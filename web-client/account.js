// Accounts in the browser: who is signed in, signing in and out, and the pages that
// belong to a person rather than to one session (their sessions, their account, the
// admins' list of who may facilitate).
//
// A signed-in browser is known by its cookie, which no script can read. Every POST and
// DELETE it makes carries the CSRF value from GET /api/me, so that another site cannot
// act in its name. People with a token (a facilitator's link, a guest's seat) go on
// exactly as before: a token, when there is one, is what the request is made with.
//
// This module and app.js import each other. Only functions cross between them, and
// nothing here runs before app.js has finished loading, so the cycle is safe.

import { createSessionForm, field, h, page, announce, route, store, tokenClaims } from "./app.js";
import { communityCards } from "./community.js";
import { askInPlace } from "./confirm.js";

/** The person signed in (the server's `Me`: account, roles, csrf, expires_at), or null. */
let me = null;
/** How people may sign in here: `{providers: [{id, name}], email}`. */
let methods = { providers: [], email: false };

export const signedIn = () => me !== null;
export const currentAccount = () => me?.account ?? null;
const hasRole = (...roles) => roles.some((role) => me?.roles?.includes(role));
export const mayFacilitate = () => hasRole("facilitator", "admin");

/** An error from the API, with the server's code beside its sentence. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the HTTP API. With `token` the request is made as that token's holder; without
 * one it goes with the cookie, if any, and never with an empty Authorization header.
 */
export async function api(method, path, body, token, retried = false) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (me && method !== "GET") headers["x-csrf-token"] = me.csrf;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch { data = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error?.code, data?.error?.message || `the server answered ${response.status}`);
    // A sign-in made in another tab comes with a new CSRF value: fetch it, try once more.
    if (error.code === "csrf" && !retried && me && await loadMe()) return api(method, path, body, token, true);
    throw error;
  }
  return data;
}

/** Asks the server who is signed in. Anything but a `Me` means nobody. */
export async function loadMe() {
  try {
    me = await api("GET", "/api/me");
  } catch {
    me = null;
  }
  renderAccountBar();
  return me;
}

export async function loadSignInMethods() {
  try {
    methods = await api("GET", "/api/auth/providers");
  } catch {
    methods = { providers: [], email: false };
  }
  renderAccountBar();
}

/** Forgets the sign-in on this page, after the server ended it. */
export function forgetSignIn() {
  me = null;
  renderAccountBar();
}

/** Only a path on this server may be gone to after signing in; anything else means "/". */
function localPath(path) {
  return typeof path === "string" && path.startsWith("/") && !path.startsWith("//") && !path.startsWith("/\\") ? path : "/";
}

function renderAccountBar() {
  const bar = document.getElementById("account-bar");
  if (!bar) return;
  if (me) {
    bar.replaceChildren(
      h("span", { class: "account-name" }, me.account.name || me.account.email),
      h("a", { href: "#start" }, "Your sessions"),
      h("a", { href: "#account" }, "Account"));
  } else if (methods.providers.length || methods.email) {
    bar.replaceChildren(h("a", { href: "#start" }, "Sign in"));
  } else {
    bar.replaceChildren();
  }
}

// ---------------------------------------------------------------------------------
// Signing in.

/**
 * The ways to sign in, each coming back to `returnTo`: a button per identity provider
 * and, where the server can send mail, a sign-in link by email. Null if there are none.
 */
export function signInPanel(returnTo, { heading = "Sign in", intro = null } = {}) {
  if (!methods.providers.length && !methods.email) return null;
  return h("section", { class: "card narrow", "aria-labelledby": "signin-heading" },
    h("h2", { id: "signin-heading" }, heading),
    intro ? h("p", {}, intro) : null,
    methods.providers.length ? h("div", { class: "providers" }, ...methods.providers.map((provider) => h("a", {
      class: "button",
      href: `/auth/oidc/${encodeURIComponent(provider.id)}?return_to=${encodeURIComponent(returnTo)}`,
    }, `Sign in with ${provider.name}`))) : null,
    methods.email && methods.providers.length ? h("p", {}, "Or have a sign-in link sent to your email address:") : null,
    methods.email ? emailSignInForm(returnTo) : null);
}

function emailSignInForm(returnTo, submitLabel = "Email me a sign-in link") {
  const address = h("input", { type: "email", autocomplete: "email", maxlength: 254, spellcheck: "false" });
  const button = h("button", { type: "submit" }, submitLabel);
  const sent = h("p", { class: "confirmation", role: "status" });
  const error = h("p", { class: "error", role: "alert" });
  // The server judges the address, so that its own words explain a refusal.
  const form = h("form", { class: "email-signin", novalidate: true, "aria-label": "Sign in by email" },
    ...field("Email address", address), button, sent, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sent.textContent = "";
    error.textContent = "";
    const email = address.value.trim();
    if (!email) { error.textContent = "Enter your email address first."; address.focus(); return; }
    button.disabled = true;
    try {
      await api("POST", "/api/auth/email", { email, return_to: returnTo });
      sent.textContent = `Check your inbox at ${email}: we sent you a sign-in link. The link works once, for 15 minutes.`;
    } catch (err) {
      error.textContent = `Could not send a sign-in link: ${err.message}`;
      address.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/**
 * Opens an emailed sign-in link (`#signin=<token>`), then goes where the sign-in was
 * started. The token leaves the address bar first: it is spent once used.
 */
export async function signInWithLink(token) {
  history.replaceState(null, "", location.pathname);
  document.title = "Signing in · Caucus";
  page(h("section", { class: "card narrow", "aria-labelledby": "signing-heading" },
    h("h2", { id: "signing-heading" }, "Signing in"),
    h("p", { role: "status" }, "Signing you in…")));
  let returnTo;
  try {
    const verified = await api("POST", "/api/auth/email/verify", { token });
    returnTo = verified.return_to;
    me = verified.csrf ? verified : await loadMe();
    renderAccountBar();
  } catch (err) {
    showLinkFailed(err.message);
    return;
  }
  history.replaceState(null, "", localPath(returnTo));
  route();
}

function showLinkFailed(message) {
  document.title = "Sign-in link did not work · Caucus";
  const heading = h("h2", { id: "failed-heading", tabindex: -1 }, "This sign-in link did not work");
  page(h("section", { class: "card narrow", "aria-labelledby": "failed-heading" },
    heading,
    h("p", { class: "error", role: "alert" }, message),
    me ? h("p", {}, "You are signed in already. ", h("a", { href: "#start" }, "Go to your sessions"), ".") : null,
    methods.email ? [h("p", {}, "Ask for a new link: it comes by email, and works once, for 15 minutes."),
      emailSignInForm("/", "Email me a new link")] : null));
  heading.focus();
}

// ---------------------------------------------------------------------------------
// The start page.

/**
 * The start page of someone not signed in: the ways to sign in, and how invitees and
 * token facilitators get in. `notice` says why they are here, if it is news to them.
 */
export function showStart({ notice = null, returnTo = "/" } = {}) {
  document.title = "Caucus";
  const panel = signInPanel(returnTo, { intro: "Sign in to see your sessions and keep your seat in them, on any device." });
  page(
    notice ? noticeCard(notice) : null,
    h("section", { class: "card narrow" },
      h("h2", {}, "Welcome to Caucus"),
      h("p", {}, "Open the invite link your facilitator sent you to join a session. If the session allows guests, you can join with just a name."),
      panel ? null : h("p", { class: "note" }, "Facilitators: open the sign-in link the server printed when it started, or one made with `caucus token facilitator`.")),
    panel);
}

function noticeCard(text) {
  const heading = h("p", { class: "notice-item", role: "alert", tabindex: -1 }, h("span", {}, text));
  queueMicrotask(() => heading.focus());
  return h("div", { class: "narrow" }, heading);
}

/** The start page of someone signed in: their sessions, and what they may do next. */
export function showHome({ notice = null } = {}) {
  document.title = "Your sessions · Caucus";
  const yours = h("section", { class: "card narrow", "aria-labelledby": "yours-heading" },
    h("h2", { id: "yours-heading" }, "Your sessions"), h("p", { class: "note" }, "Loading…"));
  const seats = guestSeats();
  page(
    notice ? noticeCard(notice) : null,
    seats.length ? keepSeatsCard(seats) : null,
    yours,
    communityCards(),
    mayFacilitate() ? createSessionForm(null) : h("section", { class: "card narrow", "aria-labelledby": "create-heading" },
      h("h2", { id: "create-heading" }, "Create a session"),
      h("p", {}, "An admin must let you facilitate before you can create sessions. Ask one of your community's admins to add "
        + `${me.account.email ? `your address, ${me.account.email},` : "you"} to “Who may facilitate”.`)),
    hasRole("admin") ? facilitatorsAdmin() : null);
  listMySessions(yours);
}

/** Replaces what `element` holds, leaving out the parts that are not there (null, false). */
function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter(Boolean));
}

/** "Gathering", "round 2: caucusing": a phase as the server sends it, for people. */
export function describePhase(phase) {
  const name = typeof phase === "string" ? phase : phase?.name;
  if (name === "caucusing" || name === "reconvened") return phase.round ? `round ${phase.round}: ${name}` : name;
  return name ?? "";
}

const ROLE_TEXT = { facilitator: "you facilitate", member: "you are a member", secretary: "you are the secretary" };
const phaseName = (phase) => (typeof phase === "string" ? phase : phase?.name);

async function listMySessions(section) {
  const heading = section.firstChild;
  try {
    const { sessions } = await api("GET", "/api/me/sessions");
    const open = sessions.filter((entry) => phaseName(entry.phase) !== "ended");
    const ended = sessions.filter((entry) => phaseName(entry.phase) === "ended");
    fill(section, heading,
      sessions.length === 0 ? h("p", { class: "note" }, "None yet. An invite link, or a session you create, brings one here.") : null,
      open.length ? [h("h3", {}, "Live and upcoming"), sessionList(open)] : null,
      ended.length ? [h("h3", {}, "Ended"), sessionList(ended)] : null);
  } catch (err) {
    section.replaceChildren(heading, h("p", { class: "error", role: "alert" }, `Could not list your sessions: ${err.message}`));
  }
}

function sessionList(entries) {
  return h("ul", { class: "sessions" }, ...entries.map((entry) => h("li", {},
    h("a", { href: `#session=${encodeURIComponent(entry.session)}` }, entry.title),
    h("span", { class: "note" }, ` · ${describePhase(entry.phase)} · ${ROLE_TEXT[entry.role] ?? entry.role}`),
    entry.invite_url ? inviteBox(entry) : null)));
}

/** A facilitated session's invite link, to copy or replace. */
function inviteBox(entry) {
  const id = `invite-${entry.session}`;
  const box = h("input", { type: "text", id, readonly: true, value: entry.invite_url });
  const copy = h("button", { type: "button", class: "secondary", onclick: () => copyText(box, "Invite link copied.") },
    "Copy", h("span", { class: "visually-hidden" }, ` the invite link for ${entry.title}`));
  const replace = async () => {
    try {
      box.value = (await api("POST", `/api/sessions/${encodeURIComponent(entry.session)}/invite`)).invite_url;
      announce(`A new invite link for ${entry.title} is ready. The old one no longer works.`);
    } catch (err) {
      announce(`Could not make a new invite link: ${err.message}`);
    }
  };
  const renew = h("button", { type: "button", class: "secondary", onclick: () => askInPlace(renew, {
    question: `Make a new invite link for “${entry.title}”? The old one stops working at once; people already in the session stay.`,
    yes: "Yes, make a new link", no: "Keep this link", onConfirm: replace,
  }) }, "New invite link", h("span", { class: "visually-hidden" }, ` for ${entry.title}`));
  return h("div", { class: "invite" }, h("label", { for: id, class: "visually-hidden" }, `Invite link for ${entry.title}`), box, copy, renew);
}

export async function copyText(box, done = "Copied.") {
  box.select();
  try {
    await navigator.clipboard.writeText(box.value);
    announce(done);
  } catch {
    // Without clipboard permission the text stays selected, ready to copy by hand.
    document.execCommand?.("copy");
  }
}

// ---------------------------------------------------------------------------------
// Guest seats on this device, kept in the account.

/** The guest seats this device holds: member tokens from joining without an account. */
function guestSeats() {
  const seats = [];
  for (let index = 0; index < localStorage.length; index += 1) {
    const key = localStorage.key(index);
    if (!key?.startsWith("caucus.session.")) continue;
    const session = key.slice("caucus.session.".length);
    const token = localStorage.getItem(key);
    if (tokenClaims(token)?.kind !== "member") continue;
    seats.push({ session, token, title: store.get(`title.${session}`) ?? "a session" });
  }
  return seats;
}

export function hasGuestSeat(token) {
  return tokenClaims(token)?.kind === "member";
}

/**
 * Makes a guest seat the account's. From then on the cookie opens it, so the token on
 * this device is dropped: it would run out, and the account does not.
 */
export async function keepSeat(session, token) {
  await api("POST", "/api/me/seats", { token });
  store.remove(`session.${session}`);
  store.remove(`title.${session}`);
}

function keepSeatsCard(seats) {
  const error = h("p", { class: "error", role: "alert" });
  return h("section", { class: "card narrow", "aria-labelledby": "seats-heading" },
    h("h2", { id: "seats-heading" }, "Seats on this device"),
    h("p", {}, "You joined these sessions as a guest on this device. Keep a seat in your account to come back to it from any device, as the same person."),
    h("ul", { class: "sessions" }, ...seats.map((seat) => h("li", {},
      h("span", {}, seat.title), " ",
      h("button", { type: "button", onclick: async () => {
        error.textContent = "";
        try {
          await keepSeat(seat.session, seat.token);
          showHome({ notice: `Your seat in “${seat.title}” is now kept in your account.` });
        } catch (err) {
          error.textContent = `Could not keep your seat in “${seat.title}”: ${err.message}`;
        }
      } }, "Keep this seat in your account", h("span", { class: "visually-hidden" }, ` (${seat.title})`))))),
    error);
}

// ---------------------------------------------------------------------------------
// Admins: who may facilitate.

function facilitatorsAdmin() {
  const list = h("div", {}, h("p", { class: "note" }, "Loading…"));
  const result = h("p", { class: "confirmation", role: "status" });
  const error = h("p", { class: "error", role: "alert" });
  const address = h("input", { type: "email", autocomplete: "off", maxlength: 254, spellcheck: "false" });
  const form = h("form", { class: "row", novalidate: true },
    h("div", {}, ...field("Email address of a new facilitator", address)),
    h("button", { type: "submit" }, "Let them facilitate"));
  const show = ({ facilitators, admins }) => fill(list,
    facilitators.length ? h("ul", { class: "people" }, ...facilitators.map((entry) => h("li", {},
      h("span", {}, entry.email),
      entry.granted_at ? h("span", { class: "note" }, ` · since ${new Date(entry.granted_at * 1000).toLocaleDateString()}`) : null, " ",
      h("button", { type: "button", class: "secondary", "aria-label": `Remove ${entry.email}`, onclick: () => change("DELETE", entry.email) }, "Remove"))))
      : h("p", { class: "empty" }, "Nobody yet, besides the admins."),
    admins?.length ? h("p", { class: "note" }, `Admins, set by the server's operator, always may: ${admins.join(", ")}.`) : null);
  const change = async (method, email) => {
    result.textContent = "";
    error.textContent = "";
    try {
      show(method === "POST"
        ? await api("POST", "/api/admin/facilitators", { email })
        : await api("DELETE", `/api/admin/facilitators/${encodeURIComponent(email)}`));
      result.textContent = method === "POST" ? `${email} may now create and run sessions.` : `${email} may no longer create sessions.`;
      if (method === "POST") address.value = "";
    } catch (err) {
      error.textContent = `Could not change who may facilitate: ${err.message}`;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const email = address.value.trim();
    if (email) change("POST", email);
  });
  api("GET", "/api/admin/facilitators").then(show, (err) => list.replaceChildren(
    h("p", { class: "error", role: "alert" }, `Could not load who may facilitate: ${err.message}`)));
  return h("section", { class: "card narrow", "aria-labelledby": "admin-heading" },
    h("h2", { id: "admin-heading" }, "Who may facilitate"),
    h("p", { class: "note" }, "People signed in with these addresses may create sessions and run them."),
    list, form, result, error);
}

// ---------------------------------------------------------------------------------
// The account page.

export function showAccount() {
  document.title = "Your account · Caucus";
  const { name, email } = me.account;
  const heading = h("h2", { id: "account-heading", tabindex: -1 }, "Your account");
  page(
    h("section", { class: "card narrow", "aria-labelledby": "account-heading" },
      heading,
      h("p", {}, `Signed in as ${name || email}${email && name ? ` (${email})` : ""}.`),
      me.expires_at ? h("p", { class: "note" }, `This sign-in lasts until ${new Date(me.expires_at * 1000).toLocaleDateString()}.`) : null,
      nameForm()),
    h("section", { class: "card narrow", "aria-labelledby": "data-heading" },
      h("h2", { id: "data-heading" }, "Your data"),
      h("p", {}, "A copy of what Caucus keeps about your account: your name and address, how you sign in, your sign-ins, and the sessions you have a seat in. Nothing about caucuses is in it."),
      downloadButton()),
    h("section", { class: "card narrow", "aria-labelledby": "signout-heading" },
      h("h2", { id: "signout-heading" }, "Sign out"),
      h("p", {}, "Sessions open in this browser close when you sign out. Sign out everywhere signs you out on every device, this one too."),
      h("button", { type: "button", onclick: () => signOut("/api/auth/signout", "You are signed out.") }, "Sign out"),
      h("button", { type: "button", class: "secondary", onclick: () => signOut("/api/auth/signout-everywhere", "You are signed out on every device.") }, "Sign out everywhere")),
    deleteAccountSection());
  heading.focus();
}

function nameForm() {
  const input = h("input", { type: "text", required: true, maxlength: 80, autocomplete: "name", value: me.account.name ?? "" });
  const result = h("p", { class: "confirmation", role: "status" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "row" },
    h("div", {}, ...field("Display name", input)),
    h("button", { type: "submit" }, "Save name"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.textContent = "";
    error.textContent = "";
    try {
      me = await api("POST", "/api/me", { name: input.value });
      renderAccountBar();
      result.textContent = `Saved. Your name is now ${me.account.name}.`;
    } catch (err) {
      error.textContent = `Could not change your name: ${err.message}`;
    }
  });
  return h("div", {}, form, result, error);
}

function downloadButton() {
  const error = h("p", { class: "error", role: "alert" });
  return h("div", {}, h("button", { type: "button", class: "secondary", onclick: async () => {
    error.textContent = "";
    try {
      const response = await fetch("/api/me/export");
      if (!response.ok) throw new Error((await response.json()).error.message);
      const link = h("a", { href: URL.createObjectURL(await response.blob()), download: "caucus-my-data.json" });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      error.textContent = `Could not download your data: ${err.message}`;
    }
  } }, "Download my data"), error);
}

async function signOut(path, notice) {
  try {
    await api("POST", path);
  } catch (err) {
    announce(`Could not sign out: ${err.message}`);
    return;
  }
  forgetSignIn();
  history.replaceState(null, "", "/");
  showStart({ notice });
}

function deleteAccountSection() {
  const confirmation = h("div", { class: "danger-zone", hidden: true, role: "group", "aria-labelledby": "delete-confirm-heading" },
    h("h3", { id: "delete-confirm-heading", tabindex: -1 }, "Delete your account for good?"),
    h("p", {}, "This deletes, and it cannot be undone:"),
    h("ul", {},
      h("li", {}, "your account: your name and email address;"),
      h("li", {}, "the ways you sign in to it;"),
      h("li", {}, "your sign-ins on every device, which are all signed out;"),
      h("li", {}, "your seats in sessions: you can no longer go back to them as yourself;"),
      h("li", {}, "any permission to facilitate that an admin gave your address.")),
    h("p", {}, "What you said in a session, under the name you joined with, belongs to that session's record; its facilitators can erase it. "
      + "If you sign in again later with the same address, you start afresh, with no seats."),
    h("button", { type: "button", class: "danger", onclick: deleteAccount }, "Delete my account for good"),
    h("button", { type: "button", class: "secondary", onclick: () => { confirmation.hidden = true; ask.focus(); } }, "Cancel"));
  const ask = h("button", { type: "button", class: "danger", "aria-expanded": "false", onclick: () => {
    confirmation.hidden = false;
    ask.setAttribute("aria-expanded", "true");
    confirmation.querySelector("h3").focus();
  } }, "Delete my account");
  return h("section", { class: "card narrow", "aria-labelledby": "delete-heading" },
    h("h2", { id: "delete-heading" }, "Delete your account"), ask, confirmation);
}

async function deleteAccount() {
  try {
    await api("DELETE", "/api/me");
  } catch (err) {
    announce(`Could not delete your account: ${err.message}`);
    return;
  }
  forgetSignIn();
  history.replaceState(null, "", "/");
  showStart({ notice: "Your account is deleted. You are signed out everywhere." });
}
