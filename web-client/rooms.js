// Where a person is and who can read it: each room's colour and banner, the unread
// count on each room's tab, and names that tell same-named people apart.
//
// A room's colour is its class `tone-<room>` (style.css): the same calm colour marks
// its tab, its banner and its place on the facilitators' board.

import { h } from "./app.js";

/** The class that gives an element its room's colour. */
export function tone(room) {
  return `tone-${room}`;
}

/** "Amara", "Amara and Ben", "Amara, Ben and Chen". */
export function listNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/**
 * The banner over a room: who can read what is said there, in the room's colour. A
 * caucus names its current members, as its members already see them in its roster.
 */
export function roomBanner(live, room) {
  let text;
  if (room === "plenary") {
    text = "Plenary — everyone in the session can read this.";
    if (live.phase.name === "caucusing") text += " Only facilitators post here until the caucuses reconvene.";
  } else if (room.startsWith("caucus_")) {
    const names = (live.caucus?.members ?? []).map((id) => live.name(id));
    text = `${live.roomLabel(room)} — only its current members can read this: ${listNames(names) || "nobody yet"}.`;
  } else if (room === "console") {
    text = "Facilitator console — only facilitators see this. It shows the people in each room and how many points each caucus has, never what a caucus says.";
  } else {
    text = `${live.roomLabel(room)} — only facilitators can read this.`;
  }
  return h("p", { id: "room-banner", class: `room-banner ${tone(room)}`, "data-room": room }, text);
}

/** Messages that arrived in a room while the person looked at another. */
export class Unread {
  #counts = new Map();

  add(room) {
    this.#counts.set(room, this.count(room) + 1);
  }

  count(room) {
    return this.#counts.get(room) ?? 0;
  }

  clear(room) {
    this.#counts.delete(room);
  }
}

/** A short, stable tag from a member id: its last four characters ("m-7f3a9c2e1b0d" gives "1b0d"). */
export function shortTag(id) {
  return String(id).replace(/^[a-z]+-/, "").slice(-4);
}

/**
 * Each member's name as shown: the name alone when it is unique in the session, the
 * name and a tag from the member's id when someone else has the same name, so that two
 * people called Sam read "Sam · 4f1c" and "Sam · 9a0e" in rosters, messages and board alike.
 */
export function displayNames(members) {
  members = [...members];
  const counts = new Map();
  for (const member of members) counts.set(member.name, (counts.get(member.name) ?? 0) + 1);
  const names = new Map();
  for (const member of members) {
    names.set(member.id, counts.get(member.name) > 1 ? `${member.name} · ${shortTag(member.id)}` : member.name);
  }
  return names;
}
