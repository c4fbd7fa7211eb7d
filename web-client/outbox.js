// What a person sends, until the server has answered it.
//
// Every command a person gives goes in the outbox with a `client_id` of its own, chosen
// once. It stays there, shown with its state, until the server acknowledges it or
// refuses it: a dropped connection, a stalled network or a server restart only delay
// it, and it is sent again with the same `client_id` once the page is back.
//
// The server recognises a retried `say` by its `client_id` and stores it once. Other
// commands it does not recognise, so a command whose fate is unknown (sent, and then
// the connection dropped before the answer) is sent again only if it is harmless to
// repeat, or if the events the page caught up on show it did not take effect.
//
// Unsettled commands are kept in session storage, one key per session and room, so that
// they survive a reload of the tab; what is answered leaves storage at once, and the
// page drops a room's commands as soon as the person can no longer post there.

import { h } from "./app.js";

/** Commands that change nothing when repeated: a resend of one whose fate is unknown is safe. */
const REPEATABLE = new Set([
  "say", "flag", "vote_topic", "choose_caucus", "move", "agree_point", "set_secretary", "set_role",
  "reconvene", "end_session", "withdraw_point", "reorder_points",
]);

/** The states an entry goes through, and what the person reads for each. */
export const STATES = {
  queued: "Waiting for the connection",
  sending: "Sending…",
  unconfirmed: "Not confirmed yet: it is sent again once reconnected",
  sent: "Sent",
  failed: "Not sent",
};

const PREFIX = "caucus.outbox.";

export function newClientId() {
  return `o-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

export class Outbox {
  #session;
  #storage;
  /** Entries in the order they were made: {id, command, room, round, label, text, state, error, wire, mark, at}. */
  items = [];

  constructor(session, storage = window.sessionStorage) {
    this.#session = session;
    this.#storage = storage;
    for (const key of this.#keys()) {
      try {
        for (const item of JSON.parse(this.#storage.getItem(key)) ?? []) {
          // After a reload nobody knows whether what was on its way arrived.
          if (item.state === "sending") item.state = "unconfirmed";
          this.items.push(item);
        }
      } catch {
        this.#storage.removeItem(key);
      }
    }
    this.items.sort((x, y) => x.at - y.at);
  }

  #keys() {
    const keys = [];
    for (let index = 0; index < this.#storage.length; index += 1) {
      const key = this.#storage.key(index);
      if (key?.startsWith(`${PREFIX}${this.#session}.`)) keys.push(key);
    }
    return keys;
  }

  /** Adds a command to send; `room` is where its entry is shown and kept. */
  add(command, { room, round = null, label, text = "" }) {
    const item = { id: newClientId(), command, room, round, label, text, state: "queued", error: null, wire: false, mark: null, at: Date.now() };
    this.items.push(item);
    this.save();
    return item;
  }

  get(id) {
    return this.items.find((item) => item.id === id);
  }

  /** Entries still waiting for an answer, or for the person to retry or discard them. */
  unsettled() {
    return this.items.filter((item) => item.state !== "sent");
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    this.save();
  }

  /** Forgets every entry, kept or shown: the session is over for this page. */
  forgetAll() {
    this.items = [];
    for (const key of this.#keys()) this.#storage.removeItem(key);
  }

  /** Sent entries are shown for a while, then go. Returns whether any went. */
  prune(now = Date.now(), keepMs = 20000) {
    const before = this.items.length;
    this.items = this.items.filter((item) => item.state !== "sent" || now - item.sentAt < keepMs);
    return this.items.length !== before;
  }

  /** Writes what is not yet answered, per room; nothing answered stays in storage. */
  save() {
    const rooms = new Map();
    for (const item of this.unsettled()) {
      if (!rooms.has(item.room)) rooms.set(item.room, []);
      rooms.get(item.room).push(item);
    }
    for (const key of this.#keys()) {
      if (!rooms.has(key.slice(`${PREFIX}${this.#session}.`.length))) this.#storage.removeItem(key);
    }
    for (const [room, items] of rooms) {
      try {
        this.#storage.setItem(`${PREFIX}${this.#session}.${room}`, JSON.stringify(items));
      } catch {
        // Storage full or refused: the entries still live on this page.
      }
    }
  }
}

/** Whether `command` may be sent again although it may already have taken effect. */
export function repeatable(command) {
  return REPEATABLE.has(command.type);
}

/** The room whose events show what `command` did, or null when nothing shows it. */
export function effectRoom(command, myRoom) {
  switch (command.type) {
    case "write_point": case "edit_point": return command.room;
    case "broadcast": case "propose_topic": case "set_topic": case "open_caucuses": case "extend_round":
    case "remove": case "erase_member": return "plenary";
    case "ask_for_help": return myRoom;
    default: return null;
  }
}

/** Whether `event` (with a `seq` after the entry's mark) is what `command`, sent by `me`, did. */
export function isEffectOf(command, event, me) {
  switch (command.type) {
    case "write_point":
      return event.kind === "point_added" && event.point.by === me && event.point.text === command.text && !event.point.message;
    case "edit_point":
      return event.kind === "point_edited" && event.point === command.point && event.by === me && event.text === command.text;
    case "broadcast": return event.kind === "announcement" && event.from === me && event.text === command.text;
    case "propose_topic": return event.kind === "topic_proposed" && event.proposal.by === me && event.proposal.text === command.text;
    case "set_topic": return event.kind === "topic_set" && event.text === command.text;
    case "open_caucuses": return event.kind === "caucuses_opened";
    case "extend_round": return event.kind === "round_extended";
    case "remove": return event.kind === "removed" && event.member === command.member;
    case "erase_member": return event.kind === "erased" && event.member === command.member;
    case "ask_for_help": return event.kind === "help_requested" && event.by === me;
    default: return false;
  }
}

/**
 * The entries of one room, each with its text, its state and what the person can do:
 * retry or discard what was refused, discard what waits.
 */
export function renderOutbox(items, { retry, discard }) {
  if (!items.length) return [];
  return items.map((item) => {
    const state = item.state === "failed" && item.error ? `${STATES.failed}: ${item.error}` : STATES[item.state];
    return h("li", { class: `outbox-item ${item.state}`, "data-state": item.state, "data-client-id": item.id },
      h("span", { class: "outbox-what" }, `${item.label}${item.text ? ": " : ""}`),
      item.text ? h("span", { class: "outbox-text" }, item.text) : null,
      h("span", { class: "outbox-state" }, ` — ${state}`),
      item.state === "failed" ? h("button", { type: "button", class: "secondary", "data-key": `retry-${item.id}`, onclick: () => retry(item) }, "Retry") : null,
      item.state !== "sent" && item.state !== "sending" ? h("button", {
        type: "button", class: "secondary", "data-key": `discard-${item.id}`, onclick: () => discard(item),
      }, "Discard") : null);
  });
}
