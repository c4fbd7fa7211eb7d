// Caucus in the browser: members and facilitators, over one WebSocket.
//
// Everything people type is put on the page as text nodes, never as markup. The app
// keeps, per room, the events it has seen, and resumes from them after any drop.

import { Drafts, describeKinds, KINDS } from "./drafts.js";
import { Outbox, effectRoom, isEffectOf, newClientId, renderOutbox, repeatable } from "./outbox.js";
import { displayNames, roomBanner, tone, Unread } from "./rooms.js";
import { renderBoard, timeLeft } from "./board.js";
import { confirmable } from "./confirm.js";
import {
  api, copyText, currentAccount, describePhase, forgetSignIn, hasGuestSeat, keepSeat, loadMe, loadSignInMethods,
  showAccount, showHome, showStart, signedIn, signInPanel, signInWithLink,
} from "./account.js";
import {
  attachCommunity, chooseRemembered, fromLastTimePanel, joinCommunity, rememberCaucusControl, rememberChoice, showCommunity,
} from "./community.js";

const $ = (selector) => document.querySelector(selector);

/** Builds an element. Children that are strings become text nodes, never HTML. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Commands only facilitators give: their entries show on the console. */
const FACILITATOR_COMMANDS = new Set([
  "open_caucuses", "extend_round", "reconvene", "end_session", "broadcast", "set_topic", "move", "remove",
  "set_role", "set_secretary", "erase_member", "answer_help",
]);

const ROOM_NAMES = { plenary: "Plenary", caucus_a: "Caucus A", caucus_b: "Caucus B", facilitators: "Facilitators' desk" };
export const store = {
  get: (key) => localStorage.getItem(`caucus.${key}`),
  set: (key, value) => localStorage.setItem(`caucus.${key}`, value),
  remove: (key) => localStorage.removeItem(`caucus.${key}`),
};

let announcing = null;
export function announce(text) {
  const announcer = $("#announcer");
  announcer.textContent = "";
  clearTimeout(announcing);
  announcing = setTimeout(() => { announcer.textContent = text; }, 50);
}

/** Empties the screen-reader region, which may still hold a message from a room just left. */
function silenceAnnouncer() {
  clearTimeout(announcing);
  $("#announcer").textContent = "";
}

function setStatus(text, kind) {
  const status = $("#status");
  status.textContent = text;
  status.className = `status ${kind || ""}`;
  setCountdownStatus("");
}

/** The seconds until the next reconnect, beside the status and outside its live region. */
function setCountdownStatus(text) {
  const element = $("#status-countdown");
  if (element) element.textContent = text;
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// ---------------------------------------------------------------------------------
// Landing, sign-in, creating a session and joining one.

/** The session open on this page, if any: only one at a time may hold a connection. */
let live = null;

export function route() {
  // Leaving a session: its connection closes, and the top bar no longer says "Online".
  if (live) setStatus("", "");
  live?.stop();
  live = null;
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has("signin")) return signInWithLink(hash.get("signin"));
  if (hash.has("token")) {
    const token = hash.get("token");
    history.replaceState(null, "", location.pathname);
    const current = store.get("facilitator");
    // A link can carry someone else's identity: never switch silently.
    if (current && current !== token && tokenName(current) !== tokenName(token)
        && !confirm(`This link signs you in as "${tokenName(token)}" instead of "${tokenName(current)}". Continue?`)) {
      return showCreate();
    }
    store.set("facilitator", token);
    return showCreate();
  }
  if (hash.has("invite")) return showJoin(hash.get("invite"));
  if (hash.has("account")) return signedIn() ? showAccount() : showStart({ returnTo: "/#account" });
  if (hash.has("community")) return joinCommunity(hash.get("community"), signedIn());
  if (hash.has("session")) {
    const session = hash.get("session");
    // A member's token is the session's own; a facilitator's opens every session they
    // run; with neither, a signed-in person's cookie finds their seat.
    const token = store.get(`session.${session}`) ?? (signedIn() ? null : store.get("facilitator"));
    if (token || signedIn()) {
      live = new Live(session, token);
      // A community's session: "From last time" and the caucus this device remembers.
      if (!token) attachCommunity(live, hash.get("c"));
      return live.start();
    }
  }
  if (hash.has("c")) {
    const community = hash.get("c");
    return signedIn() ? showCommunity(community) : showStart({ returnTo: `/#c=${encodeURIComponent(community)}` });
  }
  if (signedIn()) return showHome();
  // "#start" is where the top bar's "Sign in" leads, even for someone holding a token.
  if (store.get("facilitator") && !hash.has("start")) return showCreate();
  return showStart({ returnTo: location.hash ? `/${location.hash}` : "/" });
}

/** The claims inside a token, unchecked: only for showing and sorting what this device holds. */
export function tokenClaims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return null;
  }
}

/** The display name inside a token, for showing who a sign-in link is for. */
function tokenName(token) {
  const claims = tokenClaims(token);
  return claims?.name || claims?.sub || "unknown";
}

export function page(...children) {
  const main = $("#main");
  main.replaceChildren(...children.flat().filter(Boolean));
  $("#session-bar").hidden = true;
}

/**
 * Re-renders `container` with `render()`, keeping what a person was typing and where
 * their focus was: events arrive while people type, and must not wipe their words.
 */
function rerender(container, render) {
  const active = container.contains(document.activeElement) ? document.activeElement : null;
  const focusKey = active?.id ? `#${CSS.escape(active.id)}` : active?.dataset.key ? `[data-key="${CSS.escape(active.dataset.key)}"]` : null;
  // Boxes bound to a room's draft refill themselves from it; copying them by id could
  // carry one room's text into another's.
  const typed = [...container.querySelectorAll("input[id], textarea[id]")]
    .filter((input) => !input.readOnly && input.type !== "checkbox" && !input.dataset.draftRoom)
    .map((input) => [input.id, input.value]);
  keepUnchanged(container, render());
  for (const [id, value] of typed) {
    const input = document.getElementById(id);
    if (input && !input.readOnly) input.value = value;
  }
  if (focusKey) container.querySelector(focusKey)?.focus();
}

/**
 * Puts `next` in `container`, keeping each child that renders exactly as before: a
 * button someone is pressing stays the same element, so a click that lands while events
 * arrive (just after joining, say) is not lost to a re-render. A child that changed is
 * replaced whole, so its controls and their handlers always belong together.
 */
function keepUnchanged(container, next) {
  const old = [...container.childNodes];
  next.forEach((child, index) => {
    const node = child instanceof Node ? child : document.createTextNode(String(child));
    const before = old[index];
    if (!before) container.append(node);
    else if (before.nodeType === Node.ELEMENT_NODE && node.nodeType === Node.ELEMENT_NODE && before.outerHTML === node.outerHTML) return;
    else before.replaceWith(node);
  });
  for (const extra of old.slice(next.length)) extra.remove();
}

/**
 * After a re-render removed the control that had focus, focus goes where the person's
 * next step is: the Undo of a point they withdrew, the Withdraw of one they brought
 * back, the other arrow of a point that reached an end, the field of a point they edit.
 */
const SUCCESSORS = {
  "withdraw-": ["undo-"], "undo-": ["withdraw-"], "up-": ["down-", "withdraw-"], "down-": ["up-", "withdraw-"],
  "edit-field-": ["edit-"], "save-": ["edit-"], "cancel-": ["edit-"], "edit-": ["edit-field-"],
};
function focusSuccessor(container, key) {
  const prefix = Object.keys(SUCCESSORS).sort((x, y) => y.length - x.length).find((start) => key.startsWith(start));
  if (!prefix) return;
  const rest = key.slice(prefix.length);
  for (const next of SUCCESSORS[prefix]) {
    const target = container.querySelector(`[data-key="${CSS.escape(next + rest)}"]`);
    if (target) { target.focus(); return; }
  }
}

export function field(label, input) {
  const id = `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return [h("label", { for: id }, label), input];
}

/** The start page of a facilitator with a token: the sessions they run, and a new one. */
function showCreate() {
  document.title = "Create a session · Caucus";
  const form = createSessionForm(store.get("facilitator"));
  form.querySelector("h2").after(h("p", { class: "note" }, `Signed in as ${tokenName(store.get("facilitator"))}.`));
  const yours = h("section", { class: "card narrow", "aria-labelledby": "yours-heading" },
    h("h2", { id: "yours-heading" }, "Your sessions"), h("p", { class: "note" }, "Loading…"));
  page(yours, form);
  form.querySelector("input").focus();
  listSessions(yours);
}

/**
 * The form that creates a session, as the holder of `token`, or with the cookie when
 * `token` is null. A token is kept for the new session, so that it opens it later.
 */
export function createSessionForm(token) {
  const title = h("input", { type: "text", required: true, maxlength: 80, autocomplete: "off" });
  const labelA = h("input", { type: "text", required: true, value: "Racially minoritised caucus" });
  const labelB = h("input", { type: "text", required: true, value: "White caucus" });
  const rules = h("textarea", {}, "What is said in a caucus stays in the caucus. Speak from your own experience.");
  const selfChoice = h("input", { type: "checkbox", checked: true });
  const autoReconvene = h("input", { type: "checkbox" });
  const agreement = h("input", { type: "checkbox" });
  // Only people who can sign in may be asked to: a token facilitator's server may have no sign-in.
  const guests = token ? null : h("input", { type: "checkbox", checked: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card narrow", "aria-labelledby": "create-heading" },
    h("h2", { id: "create-heading" }, "Create a session"),
    ...field("Title", title),
    ...field("Label of caucus A", labelA),
    ...field("Label of caucus B", labelB),
    ...field("Ground rules (members accept these before joining)", rules),
    h("fieldset", {}, h("legend", {}, "Settings"),
      h("label", { class: "inline" }, selfChoice, "Members choose their own caucus"),
      h("label", { class: "inline" }, autoReconvene, "Reconvene on its own when the timer ends"),
      h("label", { class: "inline" }, agreement, "A point carries only when another member agrees"),
      guests ? h("label", { class: "inline" }, guests, "Guests may join by name, without signing in") : null),
    error,
    h("button", { type: "submit", class: "primary" }, "Create session"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const created = await api("POST", "/api/sessions", {
        title: title.value,
        caucuses: { a: labelA.value, b: labelB.value },
        settings: { self_choice: selfChoice.checked, auto_reconvene: autoReconvene.checked, carry_needs_agreement: agreement.checked },
        ground_rules: rules.value.trim() ? rules.value : null,
        ...(guests && !guests.checked ? { allow_guests: false } : {}), // left out, it means yes
      }, token);
      if (token) store.set(`session.${created.session}`, token);
      location.hash = `session=${created.session}`;
    } catch (err) {
      error.textContent = `Could not create the session: ${err.message}`;
    }
  });
  return form;
}

/** The sessions this facilitator runs or co-runs, from the server, live ones first. */
async function listSessions(section) {
  const heading = section.firstChild;
  try {
    const { sessions } = await api("GET", "/api/sessions", null, store.get("facilitator"));
    section.replaceChildren(heading, sessions.length === 0
      ? h("p", { class: "note" }, "None yet. Create one below.")
      : h("ul", { class: "sessions" }, ...sessions.map((entry) => h("li", {},
        h("a", { href: `#session=${entry.session}` }, entry.title),
        h("span", { class: "note" }, ` · ${describePhase(entry.phase)}`)))));
  } catch (err) {
    section.replaceChildren(heading, h("p", { class: "error", role: "alert" }, `Could not list your sessions: ${err.message}`));
  }
}

async function showJoin(code) {
  document.title = "Join · Caucus";
  let invite;
  try {
    invite = await api("GET", `/api/invites/${encodeURIComponent(code)}`);
  } catch (err) {
    page(h("section", { class: "card narrow" }, h("h2", {}, "This invite does not work"), h("p", { class: "error", role: "alert" }, err.message)));
    return;
  }
  const account = currentAccount();
  const name = h("input", { type: "text", required: true, maxlength: 80, autocomplete: "name", value: account?.name || null });
  const accept = h("input", { type: "checkbox", required: true });
  const error = h("p", { class: "error", role: "alert" });
  // Someone not signed in may sign in first, and come back to this very invite.
  const signIn = account ? null : signInPanel(`/#invite=${code}`, {
    heading: "Or sign in first",
    intro: "Signed in, your seat is kept in your account: you can come back to it from any device.",
  });
  const form = h("form", { class: "card narrow", "aria-labelledby": "join-heading" },
    h("h2", { id: "join-heading" }, `Join “${invite.title}”`),
    account ? h("p", { class: "note" }, `You join signed in as ${account.email}; your seat is kept in your account.`)
      : signIn ? h("p", { class: "note" }, "You join as a guest: your seat is kept on this device only.") : null,
    ...field("Your name, as others will see it", name),
    invite.ground_rules ? [h("h3", {}, "Ground rules"), h("p", { class: "rules" }, invite.ground_rules)] : null,
    h("label", { class: "inline" }, accept, "I have read and accept the ground rules"),
    error,
    h("button", { type: "submit", class: "primary" }, "Join"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!accept.checked) { error.textContent = "Please accept the ground rules to join."; return; }
    try {
      // The server records which ground rules were accepted, so they go back verbatim.
      const joined = await api("POST", "/api/join", {
        invite_code: code, name: name.value, accept_ground_rules: invite.ground_rules ?? null,
      });
      // A guest's seat lives in its token; a signed-in person's in their account.
      if (joined.token) {
        store.set(`session.${joined.session}`, joined.token);
        store.set(`title.${joined.session}`, invite.title);
      }
      location.hash = `session=${joined.session}`;
    } catch (err) {
      error.textContent = `Could not join: ${err.message}`;
      if (err.code === "sign_in_required") signIn?.querySelector("a, input")?.focus();
    }
  });
  page(form, signIn);
  name.focus();
}

// ---------------------------------------------------------------------------------
// A live session.

class Live {
  /** `token` is null for a signed-in person: the cookie then says who they are. */
  constructor(session, token) {
    this.session = session;
    this.token = token;
    this.rooms = new Map(); // room -> Map(seq -> event)
    this.view = "plenary";
    this.retry = 0;
    this.outbox = new Outbox(session); // what was sent and not yet answered, kept over a reload
    this.consoleNotes = new Map(); // console action -> {text, error}: what became of it, shown next to it
    this.consoleActions = new Map(); // client_id -> the console action it was sent from
    this.editing = null; // the point being edited in place: {room, id}
    this.withdrawnPlaces = new Map(); // point id -> its place when withdrawn, for an undo
    this.built = false;
    this.drafts = new Drafts();
    this.closedRooms = new Set(); // rooms whose round closed while offline
    this.reasons = []; // why the person's rooms changed, gathered while a frame is handled
    this.ownSeatCommands = new Set(); // client_ids of this person's own seat changes
    this.unread = new Unread(); // messages in rooms the person is not looking at
    this.confirm = { asking: null }; // the in-page question open, if any ("remove-<id>")
  }

  start() {
    document.title = "Caucus";
    this.connect();
    this.timer = setInterval(() => this.tick(), 1000);
    this.onNetworkOffline = () => { if (this.socket) this.connectionLost(); };
    this.onNetworkOnline = () => { if (!this.socket) this.reconnectNow(); };
    window.addEventListener("offline", this.onNetworkOffline);
    window.addEventListener("online", this.onNetworkOnline);
    this.reconnectButton = $("#reconnect-now");
    this.onReconnectClick = () => this.reconnectNow();
    this.reconnectButton?.addEventListener("click", this.onReconnectClick);
  }

  /** Leaves the session for another page: the connection closes and stays closed. */
  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.reconnecting);
    window.removeEventListener("offline", this.onNetworkOffline);
    window.removeEventListener("online", this.onNetworkOnline);
    this.reconnectButton?.removeEventListener("click", this.onReconnectClick);
    if (this.reconnectButton) this.reconnectButton.hidden = true;
    this.socket?.close(1000);
  }

  /** Every second: the round's clock, the reconnect countdown, and whether the connection still answers. */
  tick() {
    this.renderCountdown();
    if (this.stopped) return;
    const now = Date.now();
    if (this.socket && !this.ready && now - this.connectStarted > 15000) {
      this.connectionLost(); // no welcome: the network is not carrying anything
    } else if (this.socket && this.ready) {
      // The server's pings are invisible here: a cheap question shows whether answers still come.
      if (this.probe && now - this.probe > 5000) {
        this.connectionLost();
      } else if (!this.probe) {
        const waiting = this.outbox.items.some((item) => item.state === "sending" && now - item.sentAt > 3000);
        if (now - this.lastInbound > 10000 || (waiting && now - this.lastInbound > 3000)) {
          this.probe = now;
          this.socket.send(JSON.stringify({ type: "history", room: "plenary", before: null, limit: 1, client_id: `hb-${newClientId()}` }));
        }
      }
    }
    if (this.reconnectAt) this.showReconnecting();
    if (this.outbox.prune(now)) this.renderOutbox();
  }

  /** The status while waiting to reconnect: counts down each second, with a way to skip the wait. */
  showReconnecting() {
    const left = Math.max(1, Math.ceil((this.reconnectAt - Date.now()) / 1000));
    const why = navigator.onLine === false ? "Offline: no network" : this.welcome ? "Connection lost" : "Cannot reach the server";
    // The live region changes once, when the connection is lost; the seconds beside it
    // count down unannounced, or a screen reader would read them every second.
    const text = `${why} — reconnecting`;
    if ($("#status").textContent !== text) setStatus(text, "offline");
    setCountdownStatus(`in ${left} s`);
    if (this.reconnectButton) this.reconnectButton.hidden = false;
  }

  reconnectNow() {
    if (this.stopped || this.socket) return;
    clearTimeout(this.reconnecting);
    this.reconnectAt = null;
    this.connect();
  }

  cursors() {
    const resume = {};
    for (const [room, events] of this.rooms) {
      if (events.size) resume[room] = Math.max(...events.keys());
    }
    return resume;
  }

  connect() {
    setStatus(this.welcome ? "Reconnecting…" : "Connecting…", "offline");
    this.reconnectAt = null;
    if (this.reconnectButton) this.reconnectButton.hidden = true;
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    this.socket = socket;
    this.ready = false; // welcomed on this socket
    this.probe = null;
    this.connectStarted = Date.now();
    // Only the current socket speaks: one given up on may still deliver or close late.
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      const hello = { type: "hello", session: this.session, resume: this.cursors() };
      if (this.token) hello.token = this.token;
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener("message", (message) => {
      if (socket !== this.socket) return;
      this.lastInbound = Date.now();
      this.probe = null;
      this.receive(JSON.parse(message.data));
    });
    socket.addEventListener("close", (event) => { if (socket === this.socket) this.closed(event); });
  }

  /** The connection stopped answering: give it up now, and reconnect. */
  connectionLost() {
    const socket = this.socket;
    this.socket = null;
    try { socket?.close(1000); } catch { /* already closing */ }
    this.closed({ code: 1006 });
  }

  closed(event) {
    if (this.stopped) return;
    this.socket = null;
    this.ready = false;
    this.probe = null;
    // What was on its way may or may not have arrived: it is settled after reconnecting.
    for (const item of this.outbox.items) if (item.state === "sending") item.state = "unconfirmed";
    this.outbox.save();
    this.renderOutbox();
    if (event.code === 4011) return this.signedOut();
    if (event.code === 4010) return this.roleChanged();
    if (event.code === 4012) return this.seatKept();
    const final = { 4001: true, 4002: true, 4003: true, 4004: true };
    if (final[event.code]) {
      setStatus("Disconnected", "offline");
      const reasons = {
        4001: "Your sign-in is not valid.",
        4002: "Your sign-in has expired. Ask a facilitator for a new invite.",
        4003: "This session is not available.",
        4004: "A facilitator removed you from this session.",
      };
      page(h("section", { class: "card narrow" }, h("h2", {}, "You are no longer connected"),
        h("p", { role: "alert" }, reasons[event.code] || event.reason)));
      clearInterval(this.timer);
      this.drafts = new Drafts();
      this.outbox.forgetAll();
      return;
    }
    // Jittered, so that after a server restart everyone does not come back at once.
    const delay = Math.min(10000, 500 * 2 ** this.retry++) * (0.5 + Math.random());
    this.reconnectAt = Date.now() + delay;
    this.showReconnecting();
    clearTimeout(this.reconnecting);
    this.reconnecting = setTimeout(() => this.reconnectNow(), delay);
  }

  /** The sign-in ended (here, in another tab, or on another device): so did the session. */
  signedOut() {
    this.stop();
    this.outbox.forgetAll();
    setStatus("", "");
    forgetSignIn();
    history.replaceState(null, "", "/");
    showStart({
      notice: "You were signed out, so this session closed. Sign in again to come back to it.",
      returnTo: `/#session=${this.session}`,
    });
  }

  /**
   * This guest seat is now kept in an account, which retired its token (here, in
   * another tab, or on another device). Signed in, the cookie opens the seat: come
   * straight back. Otherwise, sign in first; what waits in the outbox stays in this tab
   * and is sent once back.
   */
  async seatKept() {
    store.remove(`session.${this.session}`);
    store.remove(`title.${this.session}`);
    this.token = null;
    // Asked afresh: the sign-in may have happened in another tab since this one loaded.
    if (await loadMe()) {
      if (this.stopped) return;
      this.notify("Your seat is now kept in your account. Reconnecting…");
      this.retry = 0;
      return this.connect();
    }
    this.stop();
    setStatus("", "");
    history.replaceState(null, "", "/");
    showStart({
      notice: "This seat is now kept in an account. Sign in with it to come back to the session.",
      returnTo: `/#session=${this.session}`,
    });
  }

  /** An admin changed what this person may do: reconnect at once to learn what it is now. */
  roleChanged() {
    this.notify("Your role was changed by an admin. Reconnecting…");
    loadMe();
    this.retry = 0;
    this.connect();
  }

  /**
   * Sends a command through the outbox: it gets its `client_id` once, is shown with its
   * state, and is sent (again) until the server answers it. `meta.room` is where its
   * entry is shown, `meta.label` and `meta.text` what it says there.
   */
  send(command, meta = {}) {
    const room = meta.room ?? command.room ?? (FACILITATOR_COMMANDS.has(command.type) ? "console" : "plenary");
    const round = room.startsWith("caucus_") && this.phase?.name === "caucusing" ? this.phase.round : null;
    const item = this.outbox.add(command, { room, round, label: meta.label ?? this.describe(command, room), text: meta.text ?? command.text ?? "" });
    this.transmit(item);
    this.renderOutbox();
    return item;
  }

  /** Puts an entry on the wire if the connection is up; otherwise it waits for the next welcome. */
  transmit(item) {
    if (!this.socket || !this.ready || this.socket.readyState !== WebSocket.OPEN) {
      if (item.state !== "unconfirmed") item.state = "queued";
      this.outbox.save();
      return;
    }
    const command = item.command;
    const ownSeat = command.type === "choose_caucus" || (command.type === "move" && command.member === this.me?.id);
    if (ownSeat) this.ownSeatCommands.add(item.id);
    const where = effectRoom(command, this.myRoom());
    const log = where ? this.rooms.get(where) : null;
    item.mark = log ? { room: where, seq: log.size ? Math.max(...log.keys()) : 0 } : null;
    item.state = "sending";
    item.wire = true;
    item.error = null;
    item.sentAt = Date.now();
    this.outbox.save();
    this.socket.send(JSON.stringify({ ...command, client_id: item.id }));
  }

  /** How an entry names itself: "Message to Plenary", "Flag", "Vote". */
  describe(command, room) {
    const where = room === "console" ? "" : ` to ${this.roomLabel(room)}`;
    switch (command.type) {
      case "say": return `Message${where}`;
      case "write_point": return `Point${where}`;
      case "edit_point": return "Edited point";
      case "flag": return "Flag as a point";
      case "propose_topic": return "Topic proposal";
      case "broadcast": return "Broadcast";
      case "set_topic": return "Topic";
      default: return (command.type.charAt(0).toUpperCase() + command.type.slice(1)).replace(/_/g, " ");
    }
  }

  /** Whether an entry for `item.room` may still go there: a caucus's only in its own round and seat. */
  outboxMayGo(item) {
    if (this.phase?.name === "ended" && item.command.type !== "erase_member") return false;
    if (item.room.startsWith("caucus_")) {
      return this.phase?.name === "caucusing" && this.phase.round === item.round && this.myRoom() === item.room;
    }
    return true;
  }

  /** Drops an entry the person can no longer send, and says what became of it. */
  dropUnsendable(item, lines, reason) {
    this.outbox.remove(item);
    const label = item.label.charAt(0).toLowerCase() + item.label.slice(1);
    lines.push(reason
      ? `Your ${label} was not sent (${reason}). It was discarded.`
      : `Your ${label} was discarded and not sent: you can no longer post there.`);
  }

  /**
   * After a welcome, once the missed events are in: sends what waits, and settles what
   * was on its way when the connection dropped.
   */
  resumeOutbox() {
    const lines = [];
    for (const item of [...this.outbox.unsettled()]) {
      if (item.state === "failed" || item.state === "sending") continue;
      if (!this.outboxMayGo(item)) {
        // A message that may have arrived goes again to its own room only: the server
        // recognises it, or refuses it as the room has closed.
        if (item.state === "unconfirmed" && item.command.type === "say") this.transmit(item);
        else this.dropUnsendable(item, lines);
        continue;
      }
      if (item.state === "unconfirmed" && !repeatable(item.command)) {
        const log = item.mark ? this.rooms.get(item.mark.room) : null;
        const done = log && [...log.values()].some((event) => event.seq > item.mark.seq && isEffectOf(item.command, event, this.me.id));
        if (done) {
          item.state = "sent";
          item.sentAt = Date.now();
          this.outbox.save();
          continue;
        }
        if (!item.mark || !effectRoom(item.command, this.myRoom())) {
          item.state = "failed";
          item.error = "the connection dropped before the server answered; check whether it took effect";
          this.outbox.save();
          continue;
        }
      }
      this.transmit(item);
    }
    if (lines.length) this.notify(lines.join(" "));
    this.renderOutbox();
  }

  /** An answer to an entry: an ack, or a refusal shown next to it. */
  answered(message) {
    const item = this.outbox.get(message.client_id);
    if (!item) return false;
    if (message.type === "ack") {
      item.state = "sent";
      item.sentAt = Date.now();
      item.error = null;
      this.outbox.save();
    } else if (message.code === "rate_limited") {
      item.state = "queued";
      this.outbox.save();
      setTimeout(() => { if (item.state === "queued" && this.outbox.get(item.id)) this.transmit(item); this.renderOutbox(); }, 1500);
    } else if (!this.outboxMayGo(item) && item.room !== "plenary") {
      const lines = [];
      this.dropUnsendable(item, lines, message.message);
      this.notify(lines.join(" "));
    } else {
      item.state = "failed";
      item.error = message.message;
      this.outbox.save();
    }
    this.renderOutbox();
    return true;
  }

  receive(message) {
    const before = this.welcome ? { view: this.view, postable: this.drafts.rooms().filter((room) => this.canPost(room)) } : null;
    this.handle(message);
    if (before) this.settleDrafts(before);
    else this.reasons = [];
    if (this.awaitingReplay && this.replayDone()) {
      this.awaitingReplay = false;
      this.resumeOutbox();
    }
  }

  /** Whether every event the welcome announced has arrived. */
  replayDone() {
    return Object.entries(this.replayUntil).every(([room, head]) => {
      const log = this.rooms.get(room);
      return !log || head === 0 || (log.size && Math.max(...log.keys()) >= head);
    });
  }

  handle(message) {
    switch (message.type) {
      case "welcome": return this.welcomed(message);
      case "event": return this.event(message);
      case "ack":
        this.ownSeatCommands.delete(message.client_id);
        this.consoleAnswered(message);
        this.answered(message);
        return;
      case "error": {
        this.ownSeatCommands.delete(message.client_id);
        if (message.client_id?.startsWith("hb-")) return;
        this.consoleAnswered(message);
        if (!this.answered(message)) this.flash(message.message);
        return;
      }
      case "presence":
        for (const member of message.online) this.online.add(member);
        for (const member of message.offline) this.online.delete(member);
        return this.renderSide();
      case "seat": {
        const previous = this.seat;
        this.seat = message.caucus?.caucus ?? null;
        this.caucus = message.caucus;
        if (previous && previous !== this.seat) {
          this.rooms.delete(`caucus_${previous}`);
          silenceAnnouncer();
        }
        // A new caucus is read from the moment of joining: everything in it is live.
        if (this.seat && !this.rooms.has(this.myRoom())) {
          this.rooms.set(this.myRoom(), new Map());
          this.replayUntil[this.myRoom()] = 0;
        }
        if (this.view.startsWith("caucus_") && this.view !== this.myRoom()) this.view = this.myRoom() || "plenary";
        if (this.phase.name === "caucusing" && this.seat) this.view = this.myRoom();
        // The seat message comes before the ack of the command that caused it.
        const own = this.ownSeatCommands.size > 0;
        if (this.seat) this.reasons.push(own ? `You are now in ${this.labels[this.seat]}.` : `You were moved to ${this.labels[this.seat]}.`);
        else if (own) this.reasons.push("You are now in the plenary only.");
        else this.reasons.push(`You were moved out of ${previous ? this.labels[previous] : "your caucus"}: you are in the plenary only.`);
        return this.render();
      }
      case "typing": return;
      case "history": return;
      default: return;
    }
  }

  welcomed(welcome) {
    this.retry = 0;
    this.ready = true;
    this.awaitingReplay = true;
    this.ownSeatCommands.clear(); // their acks were lost with the old connection
    setStatus("Online", "online");
    if (this.reconnectButton) this.reconnectButton.hidden = true;
    $("#flash")?.replaceChildren(); // an error from before the reconnect is over
    const first = !this.welcome;
    const was = first ? null : { phase: this.phase, seat: this.seat, role: this.me.role };
    this.welcome = welcome;
    this.me = welcome.you;
    // A guest seat is offered to an account later by the session's title.
    if (hasGuestSeat(this.token)) store.set(`title.${this.session}`, welcome.session.title);
    this.seat = welcome.seat;
    this.caucus = welcome.caucus ?? null;
    this.info = welcome.session;
    this.labels = welcome.session.caucuses;
    this.phase = welcome.session.phase;
    this.topic = welcome.session.topic;
    this.deadline = welcome.session.deadline;
    this.proposals = new Map(welcome.session.proposals.map((proposal) => [proposal.id, { ...proposal, mine: false }]));
    this.members = new Map(welcome.members.map((member) => [member.id, member]));
    this.online = new Set(welcome.online);
    this.seats = new Map((welcome.seats || []).map((seat) => [seat.member, seat.caucus]));
    this.replayUntil = {};
    const readable = new Set(welcome.rooms.map((cursor) => cursor.room));
    for (const room of [...this.rooms.keys()]) {
      if (readable.has(room)) continue;
      this.rooms.delete(room);
      silenceAnnouncer();
    }
    this.namesFor = null;
    const ended = this.phase.name === "ended";
    if (ended) this.forgetCaucusText();
    for (const cursor of welcome.rooms) {
      // After the end a page keeps no caucus text, even while the server still has it.
      if (ended && cursor.room.startsWith("caucus_")) continue;
      if (cursor.reset || !this.rooms.has(cursor.room)) this.rooms.set(cursor.room, new Map());
      this.replayUntil[cursor.room] = cursor.head;
    }
    if (first && this.phase.name === "caucusing" && this.seat) this.view = this.myRoom();
    if (was) this.caughtUp(was);
    if (!this.readable(this.view)) this.view = "plenary";
    this.render();
    if (first) chooseRemembered(this);
  }

  /** After a reconnect: what changed while the person was away, and where they are now. */
  caughtUp(was) {
    const roundClosed = was.phase.name === "caucusing"
      && (this.phase.name !== "caucusing" || this.phase.round !== was.phase.round);
    if (roundClosed) {
      // Even if a new round is open, the one the drafts were written in has closed.
      for (const room of ["caucus_a", "caucus_b"]) this.closedRooms.add(room);
      if (this.view.startsWith("caucus_")) this.view = "plenary";
    }
    if (this.phase.name === "ended" && was.phase.name !== "ended") {
      this.reasons.push("The session ended while you were offline. It is now read-only.");
    } else if (roundClosed) {
      this.reasons.push("The caucuses reconvened while you were offline: everyone is back in the plenary.");
    }
    if (was.seat !== this.seat) {
      this.reasons.push(this.seat
        ? `While you were offline your caucus changed: you are now in ${this.labels[this.seat]}.`
        : "While you were offline you left your caucus: you are in the plenary only.");
    }
    if (this.phase.name === "caucusing" && this.seat && (roundClosed || was.seat !== this.seat)) this.view = this.myRoom();
    if (was.role !== this.me.role) this.reasons.push(`Your role changed: you are now a ${this.me.role}.`);
  }

  /** Whether the person may post in `room` now. */
  canPost(room) {
    if (this.phase.name === "ended") return false;
    if (room === "plenary") return this.phase.name !== "caucusing" || this.isFacilitator();
    if (room.startsWith("caucus_")) return this.phase.name === "caucusing" && room === this.myRoom();
    if (room === "facilitators") return this.isFacilitator() && this.rooms.has(room);
    return false;
  }

  /**
   * Whether a draft for `room` may be kept: the person can post there now, or will again
   * without changing rooms (the plenary after a round). A caucus draft lives only as
   * long as the round and the seat it was written in.
   */
  mayKeepDraft(room) {
    if (this.closedRooms.has(room)) return false;
    if (room === "plenary") return this.phase.name !== "ended";
    return this.canPost(room);
  }

  /**
   * Runs after every frame: drops the drafts of rooms the person can no longer post in,
   * and tells them, once, why their room changed and what became of their unsent text.
   */
  settleDrafts(before) {
    const lines = this.reasons.splice(0);
    // What waits to be sent to a room the person has left goes nowhere else.
    for (const item of [...this.outbox.unsettled()]) {
      if (item.state === "sending" || this.outboxMayGo(item)) continue;
      if (item.state === "unconfirmed" && item.command.type === "say") continue; // settled once reconnected
      this.dropUnsendable(item, lines);
    }
    if (lines.length) this.renderOutbox();
    for (const room of this.drafts.rooms()) {
      if (this.mayKeepDraft(room)) continue;
      const kinds = this.drafts.discard(room);
      if (kinds.length) {
        lines.push(`Your unsent text in ${this.roomLabel(room)} was discarded and not sent (the ${describeKinds(kinds)} you were writing).`);
      }
    }
    this.closedRooms.clear();
    const moved = this.view !== before.view;
    for (const room of this.drafts.rooms()) {
      if (!this.drafts.has(room)) continue;
      const closed = before.postable.includes(room) && !this.canPost(room);
      if (closed || (moved && room === before.view && lines.length)) {
        lines.push(`Your unsent text in ${this.roomLabel(room)} is kept there for when you can post again.`);
      }
    }
    if (!lines.length) return;
    this.notify(lines.join(" "));
    if (moved) {
      // Keys typed after a forced switch must not land in the new room's box.
      const typing = document.activeElement;
      this.render();
      if (!typing || typing === document.body || typing.matches("input, textarea") || !typing.isConnected) $("#room-heading")?.focus();
    }
  }

  /** A visible notice, read out by screen readers, kept until dismissed. */
  notify(text) {
    const list = $("#notices");
    if (!list) { announce(text); return; }
    const item = h("p", { class: "notice-item" }, h("span", {}, text),
      h("button", { type: "button", class: "secondary", "aria-label": "Dismiss this notice", onclick: () => item.remove() }, "Dismiss"));
    list.append(item);
    while (list.children.length > 3) list.firstElementChild.remove();
  }

  myRoom() { return this.seat ? `caucus_${this.seat}` : null; }
  readable(room) { return room === "console" ? this.isFacilitator() : this.rooms.has(room); }
  isFacilitator() { return this.me?.role === "facilitator"; }
  /** A member's name as shown everywhere: with a short tag when another member has the same name. */
  name(id) {
    if (this.namesFor !== this.members || this.namesSize !== this.members.size) {
      this.shownNames = displayNames(this.members.values());
      this.namesFor = this.members;
      this.namesSize = this.members.size;
    }
    return this.shownNames.get(id) ?? "someone";
  }
  roomLabel(room) {
    if (room === "caucus_a") return this.labels.a;
    if (room === "caucus_b") return this.labels.b;
    return ROOM_NAMES[room] || room;
  }

  event(event) {
    const log = this.rooms.get(event.room);
    if (!log || log.has(event.seq)) return; // a room we no longer read, or a duplicate
    log.set(event.seq, event);
    // The welcome's snapshot already holds the effect of replayed events.
    const fresh = event.seq > (this.replayUntil[event.room] ?? 0);
    if (fresh) this.applyLive(event);
    const said = (event.kind === "message" || event.kind === "announcement") && event.from !== this.me.id;
    if (fresh && said && event.room !== this.view && (event.room === "plenary" || event.room === this.myRoom())) {
      this.unread.add(event.room);
    }
    if (fresh && event.kind === "message" && event.from !== this.me.id) {
      const unread = this.unread.count(event.room);
      announce(`${this.name(event.from)} in ${this.roomLabel(event.room)}: ${event.text}${unread ? ` (${unread} unread in ${this.roomLabel(event.room)})` : ""}`);
    }
    this.scheduleRender();
  }

  applyLive(event) {
    switch (event.kind) {
      case "joined": this.members.set(event.member.id, event.member); this.namesFor = null; break;
      case "removed": this.members.delete(event.member); this.seats.delete(event.member); break;
      case "erased": {
        const member = this.members.get(event.member);
        if (member) member.name = "(erased)";
        this.namesFor = null;
        for (const log of this.rooms.values()) for (const item of log.values()) {
          if ((item.kind === "message" || item.kind === "announcement") && item.from === event.member) item.text = "(erased)";
        }
        break;
      }
      case "role_changed": {
        const member = this.members.get(event.member);
        if (member) { member.role = event.role; member.secretary = event.secretary; }
        if (event.member === this.me.id) { this.me.secretary = event.secretary; this.me.role = event.role; }
        break;
      }
      case "topic_proposed": this.proposals.set(event.proposal.id, { ...event.proposal }); break;
      case "topic_voted": {
        const proposal = this.proposals.get(event.proposal);
        if (proposal) { proposal.votes = event.votes; if (event.by === this.me.id) proposal.mine = event.vote; }
        break;
      }
      case "topic_set": this.topic = event.text; announce(`The topic is now: ${event.text}`); break;
      case "caucuses_opened":
        this.phase = { name: "caucusing", round: event.round };
        this.deadline = event.deadline;
        if (this.seat && this.view !== "console") this.view = this.myRoom(); // a facilitator at the console stays there
        this.reasons.push(this.seat
          ? `Round ${event.round} has started: you are now in ${this.labels[this.seat]}.`
          : `Round ${event.round} has started.${this.isFacilitator() ? "" : " Only facilitators post in the plenary until the caucuses reconvene."}`);
        break;
      case "timer_warning": this.deadline = event.deadline; if (event.room === "plenary") announce("The round ends soon."); break;
      case "time_up": if (event.room !== "facilitators" || !this.seat) announce("Time is up."); break;
      case "round_extended": this.deadline = event.deadline; announce("The round was extended."); break;
      case "reconvened": {
        const timeUp = event.time_up === true;
        this.phase = { name: "reconvened", round: event.round };
        this.deadline = null;
        if (this.view !== "console") this.view = "plenary"; // a facilitator at the console stays there
        if (this.caucus) this.caucus.points = [];
        this.editing = null;
        this.reasons.push(timeUp
          ? "Time is up: the caucuses have closed and everyone is back in the plenary."
          : "The caucuses have reconvened: everyone is back in the plenary.");
        this.showFeedback = this.view === "plenary";
        break;
      }
      case "session_ended":
        this.phase = { name: "ended" };
        this.deadline = null;
        if (this.view !== "console") this.view = "plenary";
        this.forgetCaucusText();
        this.reasons.push("The session has ended. It is now read-only.");
        break;
      case "seated": this.seats.set(event.member, event.caucus); break;
      case "feedback": if (this.view === "plenary") this.showFeedback = true; break;
      case "help_requested":
        if (event.room === "facilitators") announce(`${this.labels[event.caucus]} asks for a facilitator.`);
        break;
      case "help_answered":
        if (event.room === "facilitators") announce(`${this.name(event.by)} answered ${this.labels[event.caucus]}'s request for help.`);
        else announce(`${this.name(event.by)} is on the way.`);
        break;
      case "caucus_joined": if (this.caucus && !this.caucus.members.includes(event.member)) this.caucus.members.push(event.member); break;
      case "caucus_left": if (this.caucus) this.caucus.members = this.caucus.members.filter((id) => id !== event.member); break;
      // A copy: the log keeps the point as it was added, whatever happens to it later.
      case "point_added": this.caucus?.points.push({ ...event.point, agreed_by: [...event.point.agreed_by] }); break;
      case "point_edited": {
        const point = this.caucus?.points.find((p) => p.id === event.point);
        if (point) { point.text = event.text; point.by = event.by; point.agreed_by = []; }
        break;
      }
      case "point_withdrawn":
        if (this.caucus) {
          this.withdrawnPlaces.set(event.point, this.caucus.points.findIndex((p) => p.id === event.point));
          this.caucus.points = this.caucus.points.filter((p) => p.id !== event.point);
        }
        if (this.editing?.id === event.point) this.editing = null;
        break;
      case "point_restored":
        if (this.caucus && !this.caucus.points.some((p) => p.id === event.point.id)) {
          const place = this.withdrawnPlaces.get(event.point.id) ?? -1;
          const point = { ...event.point, agreed_by: [...event.point.agreed_by] };
          if (place >= 0 && place <= this.caucus.points.length) this.caucus.points.splice(place, 0, point);
          else this.caucus.points.push(point);
        }
        break;
      case "points_reordered":
        if (this.caucus) this.caucus.points.sort((x, y) => event.order.indexOf(x.id) - event.order.indexOf(y.id));
        break;
      case "point_agreed": {
        const point = this.caucus?.points.find((p) => p.id === event.point);
        if (point) {
          point.agreed_by = point.agreed_by.filter((id) => id !== event.by);
          if (event.agree) point.agreed_by.push(event.by);
        }
        break;
      }
      default: break;
    }
  }

  /**
   * At the end of a session: what caucuses said leaves this page. Their messages and
   * points go from memory and the screen, their unsent entries from session storage;
   * their unsent drafts are discarded (with a notice) once this frame is handled. The
   * plenary, with the points each caucus carried, stays.
   */
  forgetCaucusText() {
    for (const room of ["caucus_a", "caucus_b"]) {
      this.rooms.delete(room);
      this.unread.clear(room);
      delete this.replayUntil?.[room];
    }
    if (this.caucus) this.caucus = { ...this.caucus, points: [] };
    this.editing = null;
    this.withdrawnPlaces.clear();
    for (const item of [...this.outbox.items]) if (item.room.startsWith("caucus_")) this.outbox.remove(item);
    silenceAnnouncer();
  }

  scheduleRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => { this.renderQueued = false; this.render(); });
  }

  flash(text) {
    const box = $("#flash");
    if (box) box.textContent = text;
    // On the console the message box is hidden, and its error with it: say it where it shows.
    if (!box || box.closest("[hidden]")) this.notify(text);
  }

  // -------------------------------------------------------------------------------
  // Rendering.

  render() {
    if (!this.welcome) return;
    if (!this.built) this.build();
    $("#session-bar").hidden = false;
    $("#session-title").textContent = this.info.title;
    document.title = `${this.info.title} · Caucus`;
    const phase = this.phase.name === "caucusing" ? `Round ${this.phase.round}: caucusing`
      : this.phase.name === "reconvened" ? `Round ${this.phase.round}: reconvened`
      : this.phase.name === "ended" ? "Ended" : "Gathering";
    $("#phase").textContent = phase;
    $("#topic").textContent = this.topic ? `Topic: ${this.topic}` : "No topic yet";
    this.unread.clear(this.view); // what is on screen is read
    this.renderGroundRules();
    this.renderCountdown();
    this.renderNav();
    this.renderHelpAlerts();
    this.renderEnded();
    this.renderRoom();
    this.renderOutbox();
    this.renderSide();
    if (this.showFeedback && $("#feedback")) {
      // After a reconvene the caucuses' feedback is what everyone turns to: on a phone
      // it would start below the fold. After the frame, so that moving focus to the
      // room's heading does not scroll it away again.
      this.showFeedback = false;
      requestAnimationFrame(() => $("#feedback")?.scrollIntoView({ block: "start" }));
    }
  }

  /** The session's ground rules, one click away in the top bar for as long as the page is open. */
  renderGroundRules() {
    const rules = this.info.ground_rules;
    const disclosure = $("#ground-rules");
    if (!disclosure) return;
    disclosure.hidden = !rules;
    if ($("#ground-rules-text").textContent !== (rules ?? "")) $("#ground-rules-text").textContent = rules ?? "";
  }

  /** Once the session has ended: a clear view saying so, and what remains. */
  renderEnded() {
    const box = $("#ended");
    if (!box) return;
    const ended = this.phase.name === "ended";
    box.hidden = !ended;
    if (!ended || box.childElementCount) return;
    const minutes = this.isFacilitator() || this.me.secretary;
    box.append(
      h("h2", {}, "This session has ended"),
      h("p", {}, "It is read-only now. What was said in the caucuses has been removed from this page. "
        + "The plenary and the points each caucus fed back remain."),
      minutes ? h("button", { type: "button", class: "primary", onclick: () => this.downloadMinutes("markdown") }, "Download the minutes") : null,
      h("p", {}, h("a", { href: "#start" }, "Leave the session")));
  }

  /** The outbox entries of the room on screen, each with its state. */
  renderOutbox() {
    const list = $("#outbox");
    if (!list) return;
    const items = this.outbox.items.filter((item) => item.room === this.view);
    list.replaceChildren(...renderOutbox(items, {
      retry: (item) => {
        item.state = "queued";
        item.error = null;
        this.transmit(item);
        this.renderOutbox();
      },
      discard: (item) => {
        this.outbox.remove(item);
        this.renderOutbox();
        $("#room-heading")?.focus();
      },
    }));
    list.hidden = !items.length;
  }

  build() {
    this.built = true;
    const form = h("form", { id: "composer-form", "aria-label": "Send a message" },
      h("label", { for: "composer", id: "composer-label" }, "Message"),
      this.composer("plenary"),
      h("p", { id: "composer-note", class: "note" }, "Enter sends; Shift+Enter starts a new line."),
      h("button", { type: "submit", class: "primary" }, "Send"),
      h("p", { id: "flash", class: "error", role: "alert" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const composer = $("#composer");
      const room = composer.dataset.draftRoom;
      // Only ever to the box's own room, and only while that room is the one on screen.
      if (room !== this.view || !this.canPost(room)) return;
      const text = composer.value;
      if (!text.trim()) return;
      $("#flash").textContent = "";
      this.drafts.clear(room, "message");
      this.send({ type: "say", room, text });
    });
    $("#main").replaceChildren(
      // On a phone the round's time stays in view while the page scrolls. The top bar
      // has the same countdown for screen readers: this one is for the eye only.
      h("div", { id: "round-timer", class: "round-timer", "aria-hidden": "true", hidden: true }),
      h("section", { id: "ended", class: "card ended", role: "region", "aria-label": "The session has ended", hidden: true }),
      h("div", { class: "layout" },
      h("nav", { class: "rooms", "aria-label": "Rooms" }, h("ul", { id: "room-list" })),
      h("section", { id: "room", "aria-labelledby": "room-heading" },
        h("div", { id: "help-alerts", class: "help-alerts", role: "region", "aria-label": "Requests for a facilitator", hidden: true }),
        h("div", { id: "notices", class: "notices", "aria-live": "polite" }),
        h("h2", { id: "room-heading", tabindex: -1 }),
        h("p", { id: "room-banner", class: "room-banner" }),
        h("ol", { id: "messages", class: "messages", tabindex: 0, "aria-label": "Messages" }),
        h("div", { id: "console", hidden: true }),
        h("ul", { id: "outbox", class: "outbox", "aria-label": "What you sent", "aria-live": "polite", hidden: true }),
        form),
      h("aside", { id: "side", "aria-label": "Session" })));
  }

  /** The message box of one room: a new element per room, bound to that room's draft. */
  composer(room) {
    const box = h("textarea", { id: "composer", rows: 2, maxlength: 4000, "aria-describedby": "composer-note" });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); box.form?.requestSubmit(); }
    });
    return this.drafts.bind(box, room, "message");
  }

  renderCountdown() {
    const element = $("#countdown");
    if (!element) return;
    const phone = $("#round-timer");
    const running = this.deadline && this.phase?.name === "caucusing";
    if (phone) phone.hidden = !running;
    if (!running) { element.textContent = ""; return; }
    const left = Math.max(0, Math.round((this.deadline - Date.now()) / 1000));
    const text = timeLeft(this.deadline);
    // Not a live region: the warning and the end are announced once each, by their events.
    element.textContent = text;
    element.classList.toggle("warning", left <= 60);
    if (phone) {
      phone.textContent = `Round ${this.phase.round}: ${text}`;
      phone.classList.toggle("warning", left <= 60);
    }
    const board = $("#board-time");
    if (board) board.textContent = text;
  }

  renderNav() {
    const rooms = ["plenary"];
    if (this.myRoom() && this.rooms.has(this.myRoom())) rooms.push(this.myRoom());
    if (this.isFacilitator()) rooms.push("console");
    keepUnchanged($("#room-list"), rooms.map((room) => {
      const unread = this.unread.count(room);
      return h("li", {},
        h("button", {
          type: "button",
          class: `room-tab ${tone(room)}`,
          "data-room": room,
          "aria-current": room === this.view ? "page" : false,
          // The count is the button's description, not its name: "Plenary" stays "Plenary".
          "aria-describedby": unread ? `unread-${room}` : false,
          onclick: () => { this.view = room; this.render(); $("#room-heading").focus?.(); },
        }, room === "console" ? "Facilitator console" : this.roomLabel(room),
        unread ? h("span", { class: "unread", "aria-hidden": "true" }, String(unread)) : null),
        unread ? h("span", { id: `unread-${room}`, class: "visually-hidden" }, `${unread} unread`) : null);
    }));
  }

  renderRoom() {
    const room = this.view;
    const heading = $("#room-heading");
    const form = $("#composer-form");
    const consoleView = $("#console");
    const banner = roomBanner(this, room);
    if ($("#room-banner").outerHTML !== banner.outerHTML) $("#room-banner").replaceWith(banner);
    if (room === "console") {
      heading.textContent = "Facilitator console";
      rerender(consoleView, () => this.renderConsole());
      consoleView.hidden = false;
      $("#messages").hidden = true;
      form.hidden = true;
      return;
    }
    consoleView.hidden = true;
    $("#messages").hidden = false;
    heading.textContent = this.roomLabel(room);
    form.hidden = !this.canPost(room);
    const composer = $("#composer");
    if (composer.dataset.draftRoom !== room) composer.replaceWith(this.composer(room));
    $("#composer-label").textContent = `Message to ${this.roomLabel(room)}`;
    const events = [...(this.rooms.get(room)?.values() ?? [])].sort((x, y) => x.seq - y.seq);
    const texts = new Map(); // each point's wording so far, as the log is read in order
    const items = events.map((event) => this.renderEvent(event, texts)).filter(Boolean);
    const list = $("#messages");
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
    rerender(list, () => (items.length ? items : [h("li", { class: "empty" }, "Nothing here yet.")]));
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  renderEvent(event, texts = new Map()) {
    const when = h("span", { class: "when" }, time(event.at));
    switch (event.kind) {
      case "message": {
        const flaggable = event.room.startsWith("caucus_") && this.phase.name === "caucusing";
        const mine = event.from === this.me.id;
        return h("li", { "data-seq": event.seq, class: mine ? "mine" : null },
          h("span", { class: "who" }, this.name(event.from), mine ? h("span", { class: "you" }, " (you)") : null), event.text, when,
          flaggable ? h("button", {
            type: "button", class: "secondary flag", "data-key": `flag-${event.room}-${event.seq}`,
            "aria-label": `Flag as a point: ${event.text.slice(0, 40)}`,
            onclick: () => this.send({ type: "flag", room: event.room, seq: event.seq }, { text: event.text }),
          }, "Flag") : null);
      }
      case "announcement":
        return h("li", { class: "announcement" }, h("span", { class: "who" }, `Announcement from ${this.name(event.from)}:`), event.text, when);
      case "joined": return h("li", { class: "notice" }, `${this.members.has(event.member.id) ? this.name(event.member.id) : event.member.name} joined.`);
      case "topic_set": return h("li", { class: "notice" }, `Topic set: ${event.text}`);
      case "topic_proposed": return h("li", { class: "notice" }, `${this.name(event.proposal.by)} proposed a topic: ${event.proposal.text}`);
      case "caucuses_opened": return h("li", { class: "notice" }, `Round ${event.round} opened.`);
      case "reconvened": return h("li", { class: "notice" }, `Round ${event.round} reconvened.`);
      case "feedback":
        return h("li", { class: "notice" }, `${event.label} carried ${event.points.length} point${event.points.length === 1 ? "" : "s"} from round ${event.round}.`);
      case "session_ended": return h("li", { class: "notice" }, "The session ended.");
      case "caucus_joined": return h("li", { class: "notice" }, `${this.name(event.member)} joined this caucus.`);
      case "caucus_left": return h("li", { class: "notice" }, `${this.name(event.member)} left this caucus.`);
      case "help_requested": return event.by ? h("li", { class: "notice" }, `${this.name(event.by)} asked for a facilitator.`) : null;
      case "point_added":
        texts.set(event.point.id, event.point.text);
        return h("li", { class: "notice" }, `${this.name(event.point.by)} added a point: ${event.point.text}`, when);
      case "point_edited": {
        const before = texts.get(event.point);
        texts.set(event.point, event.text);
        return h("li", { class: "notice" }, `${this.name(event.by)} edited a point: ${event.text}`,
          before !== undefined ? h("span", { class: "was" }, ` (was: ${before})`) : null, when);
      }
      case "point_withdrawn": {
        const text = texts.get(event.point);
        return h("li", { class: "notice" }, `${this.name(event.by)} withdrew a point${text !== undefined ? `: ${text}` : "."}`, when);
      }
      case "point_restored":
        texts.set(event.point.id, event.point.text);
        return h("li", { class: "notice" }, `${this.name(event.by)} brought back a point: ${event.point.text}`, when);
      case "help_answered": return h("li", { class: "notice" }, `${this.name(event.by)} is on the way.`, when);
      default: return null;
    }
  }

  renderSide() {
    const side = $("#side");
    if (!side) return;
    const parts = [];
    if (this.view.startsWith("caucus_")) parts.push(this.renderPoints());
    if (this.view === "plenary") {
      parts.push(fromLastTimePanel(this), this.renderFeedback(), this.renderProposals(), this.renderChoice(), this.renderSecretary());
    }
    parts.push(this.renderPeople(), this.renderKeepSeat());
    const key = side.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    rerender(side, () => parts.filter(Boolean));
    if (key && !side.contains(document.activeElement)) focusSuccessor(side, key);
  }

  /** A guest who has since signed in may keep this seat in their account. */
  renderKeepSeat() {
    if (!signedIn() || !hasGuestSeat(this.token)) return null;
    return h("section", { class: "card", "aria-labelledby": "keep-heading" },
      h("h3", { id: "keep-heading" }, "Your seat"),
      h("p", {}, "You joined as a guest on this device. Keep this seat in your account to come back to it from any device, as the same person."),
      h("button", { type: "button", onclick: async () => {
        try {
          await keepSeat(this.session, this.token);
          this.token = null; // from the next connection on, the cookie says who this is
          this.notify("Your seat is now kept in your account.");
        } catch (err) {
          this.flash(`Could not keep your seat: ${err.message}`);
        }
        this.renderSide();
      } }, "Keep this seat in your account"));
  }

  renderSecretary() {
    if (!this.me.secretary || this.isFacilitator()) return null;
    return h("section", { class: "card", "aria-labelledby": "secretary-heading" },
      h("h3", { id: "secretary-heading" }, "Minutes"),
      h("p", { class: "note" }, "As secretary you can download the minutes."),
      h("button", { type: "button", onclick: () => this.downloadMinutes("markdown") }, "Download minutes (Markdown)"),
      h("button", { type: "button", class: "secondary", onclick: () => this.downloadMinutes("json") }, "Download minutes (JSON)"));
  }

  renderChoice() {
    if (this.isFacilitator() || this.phase.name === "ended") return null;
    const current = this.seat ? this.labels[this.seat] : "none yet";
    const body = [h("h3", {}, "Your caucus"), h("p", {}, `Chosen privately. Now: ${current}.`)];
    if (this.info.settings.self_choice) {
      for (const caucus of ["a", "b"]) {
        body.push(h("button", {
          type: "button", class: this.seat === caucus ? "" : "secondary", "data-key": `choose-${caucus}`,
          "aria-pressed": this.seat === caucus ? "true" : "false",
          onclick: () => {
            rememberChoice(this, caucus);
            this.send({ type: "choose_caucus", caucus });
          },
        }, `Choose ${this.labels[caucus]}`));
      }
      body.push(rememberCaucusControl(this));
    } else {
      body.push(h("p", { class: "note" }, "A facilitator assigns caucuses in this session."));
    }
    return h("section", { class: "card", "aria-label": "Your caucus" }, ...body);
  }

  renderProposals() {
    if (this.phase.name === "ended") return null;
    const input = this.drafts.bind(h("input", { type: "text", id: "propose", maxlength: 300 }), "plenary", "proposal");
    const form = h("form", { class: "row" },
      h("div", {}, h("label", { for: "propose" }, "Propose a topic"), input),
      h("button", { type: "submit" }, "Propose"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      if (!text.trim()) return;
      this.drafts.clear("plenary", "proposal");
      this.send({ type: "propose_topic", text });
    });
    const proposals = [...this.proposals.values()];
    return h("section", { class: "card", "aria-labelledby": "topics-heading" },
      h("h3", { id: "topics-heading" }, "Topics"),
      proposals.length ? h("ul", { class: "proposals" }, ...proposals.map((proposal) => h("li", {},
        h("span", {}, proposal.text), ` — ${proposal.votes} vote${proposal.votes === 1 ? "" : "s"} `,
        h("button", {
          type: "button", class: "secondary", "aria-pressed": proposal.mine ? "true" : "false", "data-key": `vote-${proposal.id}`,
          "aria-label": `${proposal.mine ? "Withdraw vote for" : "Vote for"} ${proposal.text}`,
          onclick: () => this.send({ type: "vote_topic", proposal: proposal.id, vote: !proposal.mine },
            { label: proposal.mine ? "Withdraw vote" : "Vote", text: proposal.text }),
        }, proposal.mine ? "Unvote" : "Vote"),
        this.isFacilitator() ? h("button", {
          type: "button", "aria-label": `Set the topic to ${proposal.text}`, "data-key": `set-${proposal.id}`,
          onclick: () => this.send({ type: "set_topic", text: proposal.text }, { room: "plenary" }),
        }, "Set as topic") : null))) : h("p", { class: "empty" }, "No proposals yet."),
      this.phase.name === "caucusing" && !this.isFacilitator() ? null : form);
  }

  renderFeedback() {
    const feedback = [...(this.rooms.get("plenary")?.values() ?? [])].filter((event) => event.kind === "feedback");
    if (!feedback.length) return null;
    return h("section", { class: "card feedback", id: "feedback", "aria-labelledby": "feedback-heading" },
      h("h3", { id: "feedback-heading" }, "Feedback from the caucuses"),
      ...feedback.map((event) => h("div", {},
        h("h4", {}, `${event.label}, round ${event.round}`),
        event.points.length ? h("ol", {}, ...event.points.map((point) => h("li", {}, point))) : h("p", { class: "empty" }, "No points carried."))));
  }

  renderPoints() {
    const room = this.view;
    const points = this.caucus?.points ?? [];
    const open = this.phase.name === "caucusing";
    const input = this.drafts.bind(h("input", { type: "text", id: `new-point-${room}`, maxlength: 4000 }), room, "point");
    const form = h("form", { class: "row" },
      h("div", {}, h("label", { for: input.id }, "Write a point"), input),
      h("button", { type: "submit" }, "Add point"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      if (room !== this.view || !this.canPost(room) || !text.trim()) return;
      this.drafts.clear(room, "point");
      this.send({ type: "write_point", room, text });
    });
    const move = (index, by) => {
      const order = points.map((p) => p.id);
      const [id] = order.splice(index, 1);
      order.splice(index + by, 0, id);
      this.send({ type: "reorder_points", room, order });
    };
    const needsAgreement = this.info.settings.carry_needs_agreement;
    const history = this.pointHistory(room);
    const withdrawn = open ? [...history.withdrawn].filter(([id]) => !points.some((p) => p.id === id)) : [];
    const help = open ? this.helpStatus(room) : null;
    return h("section", { class: "card", id: "points", "aria-labelledby": "points-heading" },
      h("h3", { id: "points-heading" }, "Points to feed back"),
      h("p", { class: "note" }, "Only these leave the caucus at reconvene, attributed to the caucus, never to a person."),
      points.length ? h("ol", { class: "points" }, ...points.map((point, index) => h("li", { "data-point": point.id },
        open && this.editing?.room === room && this.editing.id === point.id
          ? this.renderPointEditor(room, point, index)
          : h("span", { class: "point-text" }, point.text),
        h("span", { class: "note byline" }, this.pointByline(point, history)),
        needsAgreement ? h("span", { class: "note" }, ` (${point.agreed_by.length ? "agreed" : "needs another member's agreement"})`) : null,
        open && !(this.editing?.room === room && this.editing.id === point.id) ? h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", "aria-label": `Edit point ${index + 1}`, "data-key": `edit-${point.id}`, onclick: () => {
            this.editing = { room, id: point.id };
            this.renderSide();
          } }, "Edit"),
          h("button", { type: "button", class: "secondary", "aria-label": `Withdraw point ${index + 1}`, "data-key": `withdraw-${point.id}`,
            onclick: () => this.send({ type: "withdraw_point", room, point: point.id }) }, "Withdraw"),
          index > 0 ? h("button", { type: "button", class: "secondary", "aria-label": `Move point ${index + 1} up`, "data-key": `up-${point.id}`, onclick: () => move(index, -1) }, "Up") : null,
          index < points.length - 1 ? h("button", { type: "button", class: "secondary", "aria-label": `Move point ${index + 1} down`, "data-key": `down-${point.id}`, onclick: () => move(index, 1) }, "Down") : null,
          needsAgreement && point.by !== this.me.id ? h("button", {
            type: "button", class: "secondary", "aria-pressed": point.agreed_by.includes(this.me.id) ? "true" : "false", "data-key": `agree-${point.id}`,
            onclick: () => this.send({ type: "agree_point", room, point: point.id, agree: !point.agreed_by.includes(this.me.id) }),
          }, point.agreed_by.includes(this.me.id) ? "Withdraw agreement" : "Agree") : null) : null))) : h("p", { class: "empty" }, "No points yet."),
      withdrawn.length ? h("ul", { class: "points withdrawn", "aria-label": "Withdrawn this round" }, ...withdrawn.map(([id, record]) => h("li", { "data-point": id },
        h("s", { class: "point-text" }, record.text ?? "A point"),
        h("span", { class: "note withdrawn-by" }, ` — Withdrawn by ${this.name(record.by)} · `),
        h("button", {
          type: "button", class: "secondary", "data-key": `undo-${id}`, "aria-label": `Undo the withdrawal of ${(record.text ?? "a point").slice(0, 40)}`,
          onclick: () => this.send({ type: "restore_point", room, point: id }, { label: "Undo withdrawal", text: record.text ?? "" }),
        }, "Undo")))) : null,
      open ? form : null,
      open ? h("button", { type: "button", class: "secondary", onclick: () => {
        this.send({ type: "ask_for_help" });
        announce("A facilitator has been asked to come.");
      } }, "Ask for a facilitator") : null,
      help ? h("p", { class: "note help-status", id: "help-status" }, help) : null);
  }

  /** Editing a point in place: Enter or Save sends the new wording, Escape or Cancel keeps the old. */
  renderPointEditor(room, point, index) {
    const box = h("input", { type: "text", id: `edit-point-${point.id}`, "data-key": `edit-field-${point.id}`, maxlength: 4000, value: point.text });
    const stop = () => {
      this.editing = null;
      this.renderSide();
    };
    const form = h("form", { class: "row point-editor" },
      h("div", {}, h("label", { for: box.id }, `Edit point ${index + 1}`), box),
      h("button", { type: "submit", "data-key": `save-${point.id}` }, "Save"),
      h("button", { type: "button", class: "secondary", "data-key": `cancel-${point.id}`, onclick: stop }, "Cancel"));
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); stop(); }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = box.value;
      if (text.trim() && text !== point.text && room === this.view) this.send({ type: "edit_point", room, point: point.id, text });
      stop();
    });
    return form;
  }

  /**
   * What the caucus's own log says of its points: who wrote each, its last edit, and
   * the points withdrawn this round (with their wording then), in the order it happened.
   */
  pointHistory(room) {
    const events = [...(this.rooms.get(room)?.values() ?? [])].sort((x, y) => x.seq - y.seq);
    const since = this.roundOpenedAt();
    const authors = new Map();
    const edits = new Map();
    const texts = new Map();
    const withdrawn = new Map();
    for (const event of events) {
      if (event.kind === "point_added") {
        authors.set(event.point.id, event.point.by);
        texts.set(event.point.id, event.point.text);
      } else if (event.kind === "point_edited") {
        edits.set(event.point, { by: event.by, at: event.at });
        texts.set(event.point, event.text);
      } else if (event.kind === "point_withdrawn") {
        if (event.at >= since) withdrawn.set(event.point, { by: event.by, at: event.at, text: texts.get(event.point) });
      } else if (event.kind === "point_restored") {
        withdrawn.delete(event.point.id);
      }
    }
    return { authors, edits, withdrawn };
  }

  pointByline(point, history) {
    const edit = history.edits.get(point.id);
    // After an edit the point's own `by` is its editor: the author is known only from the log.
    const author = history.authors.get(point.id) ?? (edit ? null : point.by);
    const parts = [];
    if (author) parts.push(`Written by ${this.name(author)}`);
    if (edit) parts.push(`edited by ${this.name(edit.by)} at ${time(edit.at)}`);
    return parts.length ? ` — ${parts.join(", ")}` : "";
  }

  /** When the running round opened, from the plenary's log: what came before belongs to an earlier round. */
  roundOpenedAt() {
    let at = 0;
    for (const event of this.rooms.get("plenary")?.values() ?? []) if (event.kind === "caucuses_opened") at = Math.max(at, event.at);
    return at;
  }

  /** What became of this caucus's request for help in this round, as its members see it. */
  helpStatus(room) {
    const since = this.roundOpenedAt();
    let last = null;
    for (const event of [...(this.rooms.get(room)?.values() ?? [])].sort((x, y) => x.seq - y.seq)) {
      if (event.at >= since && (event.kind === "help_requested" || event.kind === "help_answered")) last = event;
    }
    if (!last) return null;
    if (last.kind === "help_answered") return `${this.name(last.by)} is on the way.`;
    return last.by === this.me.id ? "Your request was sent. A facilitator will answer." : `${this.name(last.by)} asked for a facilitator.`;
  }

  /** The caucuses waiting for a facilitator in this round: one per caucus, gone once a facilitator answers. */
  openHelpRequests() {
    const open = new Map();
    if (!this.isFacilitator() || this.phase.name !== "caucusing") return open;
    const since = this.roundOpenedAt();
    for (const event of [...(this.rooms.get("facilitators")?.values() ?? [])].sort((x, y) => x.seq - y.seq)) {
      if (event.at < since) continue;
      if (event.kind === "help_requested") open.set(event.caucus, event);
      else if (event.kind === "help_answered") open.delete(event.caucus);
    }
    return open;
  }

  /** Facilitators see each caucus's request for help on every view, with ways to answer it. */
  renderHelpAlerts() {
    const box = $("#help-alerts");
    if (!box) return;
    const open = this.openHelpRequests();
    const alerts = [...open.values()].map((request) => {
      const label = this.labels[request.caucus];
      const seated = this.seat === request.caucus;
      return h("div", { class: "help-alert", "data-caucus": request.caucus },
        h("p", {}, h("strong", {}, `${label} asks for a facilitator`), ` (since ${time(request.at)}).`),
        h("button", { type: "button", "data-key": `answer-${request.caucus}`,
          onclick: () => this.sendConsole(`help-${request.caucus}`, { type: "answer_help", caucus: request.caucus }) }, "On my way"),
        seated ? null : h("button", { type: "button", class: "secondary", "data-key": `join-${request.caucus}`, onclick: () => {
          this.sendConsole(`help-${request.caucus}`, { type: "answer_help", caucus: request.caucus });
          this.sendConsole(`help-${request.caucus}`, { type: "move", member: this.me.id, caucus: request.caucus });
        } }, "Join this caucus"),
        this.consoleNote(`help-${request.caucus}`));
    });
    rerender(box, () => alerts);
    box.hidden = !alerts.length;
  }

  renderPeople() {
    const inRoom = this.view.startsWith("caucus_") ? (this.caucus?.members ?? []) : [...this.members.keys()];
    return h("section", { class: "card", "aria-labelledby": "people-heading" },
      h("h3", { id: "people-heading" }, `Here (${inRoom.filter((id) => this.online.has(id)).length} online)`),
      h("ul", { class: "people" }, ...inRoom.map((id) => h("li", {},
        h("span", { class: `dot ${this.online.has(id) ? "on" : ""}`, "aria-hidden": "true" }),
        this.name(id), this.online.has(id) ? "" : h("span", { class: "visually-hidden" }, " (offline)"),
        this.members.get(id)?.role === "facilitator" ? h("span", { class: "note" }, " · facilitator") : null))));
  }

  /** The session's invite, from the server: every facilitator sees it, not only its creator. */
  async loadInvite(replace = false) {
    if (this.inviteLoading) return;
    this.inviteLoading = true;
    try {
      this.invite = await api(replace ? "POST" : "GET", `/api/sessions/${this.session}/invite`, null, this.token);
      if (replace) announce("A new invite link is ready. The old one no longer works.");
    } catch (err) {
      this.invite = { error: err.message };
    } finally {
      this.inviteLoading = false;
      this.scheduleRender();
    }
  }

  /** Sends a console command, and shows next to `action` what becomes of it. */
  sendConsole(action, command) {
    const item = this.send(command);
    this.consoleActions.set(item.id, action);
    this.consoleNotes.delete(action);
    this.scheduleRender();
    return item;
  }

  /** The server's answer to a console command: a refusal is shown next to its action, and read out. */
  consoleAnswered(message) {
    const action = this.consoleActions.get(message.client_id);
    if (!action || message.code === "rate_limited") return;
    this.consoleActions.delete(message.client_id);
    const command = this.outbox.get(message.client_id)?.command;
    let note = null;
    if (message.type === "error") note = { text: `Could not do that: ${message.message}`, error: true };
    else if (command?.type === "broadcast") note = { text: "Sent to everyone.", error: false };
    else if (command?.type === "answer_help") note = { text: "The caucus knows you are on the way.", error: false };
    if (!note) return;
    this.consoleNotes.set(action, note);
    announce(note.text);
    this.scheduleRender();
  }

  /** What became of a console action, next to it: an error in red, a confirmation in green. */
  consoleNote(action) {
    const note = this.consoleNotes.get(action);
    return h("p", { class: note?.error ? "error console-note" : "confirmation console-note", "data-action": action }, note?.text ?? "");
  }

  renderConsole() {
    const parts = [renderBoard(this, time)];
    if (this.invite === undefined) this.loadInvite();
    const invite = this.invite;
    if (invite?.invite_url) {
      const box = h("input", { type: "text", id: "invite-link", readonly: true, value: invite.invite_url });
      parts.push(h("section", { class: "card" }, h("h3", {}, "Invite link"),
        h("div", { class: "invite" }, h("label", { for: "invite-link", class: "visually-hidden" }, "Invite link"), box,
          h("button", { type: "button", onclick: () => copyText(box, "Invite link copied.") }, "Copy")),
        confirmable(this.confirm, {
          key: "new-invite", label: "New invite link", yes: "Yes, make a new link", no: "Keep this link",
          question: "Make a new invite link? The old one stops working at once; people already in the session stay.",
          onConfirm: () => this.loadInvite(true), redraw: () => this.render(),
        })));
    } else if (invite?.error) {
      parts.push(h("section", { class: "card" }, h("h3", {}, "Invite link"), h("p", { class: "error", role: "alert" }, invite.error)));
    }
    parts.push(this.renderCoFacilitators());
    const ended = this.phase.name === "ended";
    if (!ended) {
      const minutes = h("input", { type: "number", id: "duration", min: 1, max: 1440, value: 20 });
      const round = this.phase.name === "caucusing" ? this.phase.round : null;
      const extend = h("input", { type: "number", id: "extend", min: 1, max: 120, value: 5 });
      parts.push(h("section", { class: "card", "aria-labelledby": "round-heading" }, h("h3", { id: "round-heading" }, "Round"),
        round === null
          ? h("div", { class: "row" }, h("div", {}, h("label", { for: "duration" }, "Length in minutes (empty for no timer)"), minutes),
            h("button", { type: "button", class: "primary", onclick: () => {
              const value = parseInt(minutes.value, 10);
              this.sendConsole("round", { type: "open_caucuses", duration_secs: Number.isFinite(value) && value > 0 ? value * 60 : null });
            } }, this.phase.name === "reconvened" ? "Open the next round" : "Open the caucuses"))
          : [h("div", { class: "row" }, h("div", {}, h("label", { for: "extend" }, "Add minutes"), extend),
              this.deadline ? h("button", { type: "button", class: "secondary",
                onclick: () => this.sendConsole("round", { type: "extend_round", secs: Math.max(1, parseInt(extend.value, 10) || 5) * 60 }) }, "Extend") : null),
            // During a round, Reconvene is the console's one primary action. Its round is in
            // the markup, so a kept button never reconvenes an earlier round.
            h("button", { type: "button", class: "primary", "data-round": round, onclick: () => this.sendConsole("round", { type: "reconvene", round }) }, "Reconvene")],
        this.consoleNote("round")));
      const broadcast = h("input", { type: "text", id: "broadcast", maxlength: 4000 });
      const broadcastForm = h("form", { class: "row" },
        h("div", {}, h("label", { for: "broadcast" }, "Broadcast to every room"), broadcast),
        h("button", { type: "submit" }, "Broadcast"));
      broadcastForm.addEventListener("submit", (event) => {
        event.preventDefault();
        if (broadcast.value.trim()) this.sendConsole("broadcast", { type: "broadcast", text: broadcast.value });
        broadcast.value = "";
      });
      const topic = h("input", { type: "text", id: "set-topic", maxlength: 300 });
      const topicForm = h("form", { class: "row" },
        h("div", {}, h("label", { for: "set-topic" }, "Set the topic"), topic), h("button", { type: "submit" }, "Set topic"));
      topicForm.addEventListener("submit", (event) => {
        event.preventDefault();
        if (topic.value.trim()) this.sendConsole("topic", { type: "set_topic", text: topic.value });
        topic.value = "";
      });
      parts.push(h("section", { class: "card" }, topicForm, this.consoleNote("topic"), broadcastForm, this.consoleNote("broadcast")));
    }
    parts.push(this.renderRosters());
    parts.push(h("section", { class: "card" }, h("h3", {}, "Minutes"),
      h("p", { class: "note" }, "The plenary, each round's topic and the points each caucus carried. Never anything else from a caucus."),
      h("button", { type: "button", onclick: () => this.downloadMinutes("markdown") }, "Download minutes (Markdown)"),
      h("button", { type: "button", class: "secondary", onclick: () => this.downloadMinutes("json") }, "Download minutes (JSON)")));
    if (!ended) parts.push(this.renderEndSession());
    // After the end, what the console can no longer show still says what became of it.
    const orphaned = ended ? [...this.consoleNotes].filter(([, note]) => note.error) : [];
    if (orphaned.length) parts.unshift(...orphaned.map(([action]) => this.consoleNote(action)));
    return parts;
  }

  /** Ending the session, apart from the round's buttons, asks first, on the page. */
  renderEndSession() {
    const asking = this.confirmingEnd;
    return h("section", { class: "card danger-zone", "aria-labelledby": "end-heading" },
      h("h3", { id: "end-heading" }, "End the session"),
      asking
        ? [h("p", { id: "end-question" }, "End the session for everyone? It becomes read-only, and no round can be opened again."),
          h("button", { type: "button", class: "danger filled", id: "end-confirm", "aria-describedby": "end-question", onclick: () => {
            this.confirmingEnd = false;
            this.sendConsole("end", { type: "end_session" });
          } }, "Yes, end the session"),
          h("button", { type: "button", class: "secondary", id: "end-cancel", onclick: () => {
            this.confirmingEnd = false;
            this.render();
            $("#end-ask")?.focus();
          } }, "Keep it going")]
        : h("button", { type: "button", class: "danger", id: "end-ask", onclick: () => {
          this.confirmingEnd = true;
          this.render();
          $("#end-confirm")?.focus();
        } }, "End the session"),
      this.consoleNote("end"));
  }

  /**
   * Adding a co-facilitator: a token facilitator names the name on the other's token; a
   * signed-in one gives the address the other signs in with.
   */
  renderCoFacilitators() {
    const byEmail = !this.token;
    const input = h("input", { type: byEmail ? "email" : "text", id: "co-facilitator", maxlength: byEmail ? 254 : 80, autocomplete: "off" });
    // Someone added by address before they ever signed in is shown by this name, if given.
    const nameInput = byEmail ? h("input", { type: "text", id: "co-facilitator-name", maxlength: 80, autocomplete: "off" }) : null;
    // Kept on the page object: the console is rebuilt whenever an event arrives.
    const result = h("p", { class: "note", role: "status" }, this.coResult ?? "");
    const add = async () => {
      const who = input.value.trim();
      if (!who) return;
      const name = nameInput?.value.trim();
      try {
        await api("POST", `/api/sessions/${this.session}/facilitators`,
          byEmail ? { email: who, ...(name ? { name } : {}) } : { name: who }, this.token);
        this.coResult = byEmail
          ? `${who} can now run this session: it is on their start page as soon as they sign in with that address.`
          : `${who} can now run this session: it is on their start page.`;
        input.value = "";
        if (nameInput) nameInput.value = "";
      } catch (err) {
        this.coResult = `Could not add ${who}: ${err.message}`;
      }
      this.scheduleRender();
    };
    return h("section", { class: "card", "aria-labelledby": "co-heading" }, h("h3", { id: "co-heading" }, "Co-facilitators"),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "co-facilitator" }, byEmail ? "Email address of a co-facilitator" : "Name on their facilitator sign-in link"), input),
        nameInput ? h("div", {}, h("label", { for: "co-facilitator-name" }, "Their name, if they have not signed in yet (optional)"), nameInput) : null,
        h("button", { type: "button", onclick: add }, "Add")),
      result);
  }

  renderRosters() {
    const groups = { none: [], a: [], b: [] };
    for (const member of this.members.values()) groups[this.seats.get(member.id) ?? "none"].push(member);
    const titles = { none: "Plenary only", a: this.labels.a, b: this.labels.b };
    const roster = (key) => h("div", {},
      h("h4", {}, `${titles[key]} (${groups[key].length})`),
      groups[key].length ? h("ul", { class: "people" }, ...groups[key].map((member) => {
        const select = h("select", { "aria-label": `Move ${this.name(member.id)} to` },
          ...["none", "a", "b"].map((target) => h("option", { value: target, selected: target === key }, titles[target])));
        const name = this.name(member.id);
        const asking = this.confirm.asking?.endsWith(`-${member.id}`);
        return h("li", {},
          h("span", { class: `dot ${this.online.has(member.id) ? "on" : ""}`, "aria-hidden": "true" }), name,
          member.id === this.me.id ? h("span", { class: "note" }, key === "none" ? " (you)" : " (you: its members see you there)") : null, " ",
          select,
          h("button", { type: "button", class: "secondary", "aria-label": `Move ${name}`, "data-key": `move-${member.id}`, onclick: () =>
            this.sendConsole("rosters", { type: "move", member: member.id, caucus: select.value === "none" ? null : select.value }) }, "Move"),
          // Open while one of its questions is asked: a re-render must not fold it away.
          member.id === this.me.id ? null : h("details", { class: "more", open: asking },
            h("summary", {}, h("span", { class: "visually-hidden" }, `${name}: `), "More"),
            member.role === "member" ? h("button", {
              type: "button", class: "secondary", "data-key": `secretary-${member.id}`,
              onclick: () => this.send({ type: "set_secretary", member: member.id, secretary: !member.secretary }),
            }, member.secretary ? "Stop being secretary" : "Make secretary") : null,
            h("div", { class: "danger-actions" },
              confirmable(this.confirm, {
                key: `remove-${member.id}`, label: "Remove from session", ariaLabel: `Remove ${name} from the session`, danger: true,
                question: `Remove ${name} from the session? They can no longer join it with their link.`,
                yes: `Yes, remove ${name}`, no: "Keep them",
                onConfirm: () => this.sendConsole("rosters", { type: "remove", member: member.id }), redraw: () => this.render(),
              }),
              confirmable(this.confirm, {
                key: `erase-${member.id}`, label: "Erase their data", ariaLabel: `Erase ${name}'s data`, danger: true,
                question: `Erase ${name}'s name and words from this session? This cannot be undone.`,
                yes: `Yes, erase ${name}'s data`, no: "Keep their data",
                onConfirm: () => this.sendConsole("rosters", { type: "erase_member", member: member.id }), redraw: () => this.render(),
              }))),
          member.secretary ? h("span", { class: "note" }, " · secretary") : null);
      })) : h("p", { class: "empty" }, "Nobody."));
    return h("section", { class: "card", "aria-labelledby": "rosters-heading" },
      h("h3", { id: "rosters-heading" }, "Who is where"),
      h("p", { class: "note" }, "You see who sits where, never what a caucus says."),
      this.consoleNote("rosters"),
      roster("none"), roster("a"), roster("b"));
  }

  async downloadMinutes(format) {
    try {
      const headers = this.token ? { authorization: `Bearer ${this.token}` } : {};
      const response = await fetch(`/api/sessions/${this.session}/minutes?format=${format}`, { headers });
      if (!response.ok) throw new Error((await response.json()).error.message);
      const blob = await response.blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: `minutes-${this.session}.${format === "json" ? "json" : "md"}` });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      this.flash(`Could not download the minutes: ${err.message}`);
    }
  }
}

window.addEventListener("hashchange", route);
// Who is signed in decides the first page, so the server is asked before anything shows.
Promise.all([loadMe(), loadSignInMethods()]).then(route);
