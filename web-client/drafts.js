// Unsent text, kept per room and per box.
//
// A draft belongs to the room it was typed in. Every box that takes text for a room is
// bound to one (room, kind) key for its whole life, and nothing here ever moves text
// from one key to another: a room switch shows another key's text, never the same
// text under another room's name. Drafts live in memory only, never in local storage,
// so caucus words are not left on the device.

/** The boxes a room can have, and how a notice names them. */
export const KINDS = {
  message: "message",
  point: "point",
  proposal: "topic proposal",
};

export class Drafts {
  #texts = new Map(); // room -> Map(kind -> text)

  get(room, kind) {
    return this.#texts.get(room)?.get(kind) ?? "";
  }

  set(room, kind, text) {
    let kinds = this.#texts.get(room);
    if (!text) {
      kinds?.delete(kind);
      if (kinds && !kinds.size) this.#texts.delete(room);
      return;
    }
    if (!kinds) this.#texts.set(room, (kinds = new Map()));
    kinds.set(kind, text);
  }

  /** The rooms holding any unsent text. */
  rooms() {
    return [...this.#texts.keys()];
  }

  /** Whether `room` holds unsent text that is more than whitespace. */
  has(room) {
    return [...(this.#texts.get(room)?.values() ?? [])].some((text) => text.trim());
  }

  /**
   * Forgets everything typed for `room`, and empties any box on the page still bound
   * to it. Returns the kinds that held real text, for telling the person.
   */
  discard(room) {
    const kinds = [...(this.#texts.get(room)?.entries() ?? [])].filter(([, text]) => text.trim()).map(([kind]) => kind);
    this.#texts.delete(room);
    for (const box of document.querySelectorAll("[data-draft-room]")) {
      if (box.dataset.draftRoom === room) box.value = "";
    }
    return kinds;
  }

  /**
   * Binds a new box to (room, kind): it starts with that draft and keeps it up to date.
   * The box is marked, so that a discard empties it even if it is still on the page.
   */
  bind(box, room, kind) {
    box.dataset.draftRoom = room;
    box.dataset.draftKind = kind;
    box.value = this.get(room, kind);
    box.addEventListener("input", () => this.set(room, kind, box.value));
    return box;
  }

  /** Empties the draft and every box bound to it, after it was sent. */
  clear(room, kind) {
    this.set(room, kind, "");
    for (const box of document.querySelectorAll("[data-draft-room]")) {
      if (box.dataset.draftRoom === room && box.dataset.draftKind === kind) box.value = "";
    }
  }

  /**
   * Puts back text the server refused, in front of anything typed since, in the same
   * room's draft and in any box bound to it.
   */
  restore(room, kind, text) {
    const typed = this.get(room, kind);
    const merged = typed.trim() ? `${text}\n${typed}` : text;
    this.set(room, kind, merged);
    for (const box of document.querySelectorAll("[data-draft-room]")) {
      if (box.dataset.draftRoom === room && box.dataset.draftKind === kind) box.value = merged;
    }
  }
}

/** "message", "message and point", "message, point and topic proposal". */
export function describeKinds(kinds) {
  const order = Object.keys(KINDS);
  const names = [...kinds].sort((x, y) => order.indexOf(x) - order.indexOf(y)).map((kind) => KINDS[kind] ?? kind);
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}
