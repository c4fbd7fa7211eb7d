// The facilitators' live board: every room at a glance. It shows who is in each room
// (names only), how many live points each caucus holds (the number only, from the
// desk's `points_counted` events), the time left and open requests for help. It never
// shows what anyone says in a caucus: a facilitator outside one never receives that.

import { h } from "./app.js";
import { listNames, tone } from "./rooms.js";

/** Each caucus's live point count this round, from the latest `points_counted` on the desk. */
export function pointCounts(live) {
  const counts = { a: 0, b: 0 };
  if (live.phase.name !== "caucusing") return counts;
  const desk = [...(live.rooms.get("facilitators")?.values() ?? [])].sort((x, y) => x.seq - y.seq);
  const since = live.roundOpenedAt();
  for (const event of desk) {
    if (event.kind === "points_counted" && event.at >= since) counts[event.caucus] = event.count;
  }
  return counts;
}

/** "12:04 left", "Time is up", or null for an untimed round. */
export function timeLeft(deadline, now = Date.now()) {
  if (!deadline) return null;
  const left = Math.max(0, Math.round((deadline - now) / 1000));
  return left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left` : "Time is up";
}

export function renderBoard(live, time) {
  const round = live.phase.name === "caucusing" ? live.phase.round : null;
  const help = live.openHelpRequests();
  const counts = pointCounts(live);
  const seated = { none: [], a: [], b: [] };
  for (const member of live.members.values()) seated[live.seats.get(member.id) ?? "none"].push(member.id);
  const people = (ids) => (ids.length
    ? h("p", { class: "board-people" }, `${ids.length} ${ids.length === 1 ? "person" : "people"}: ${listNames(ids.map((id) => live.name(id)))}`)
    : h("p", { class: "board-people empty" }, "Nobody."));
  const rooms = [h("li", { class: `board-room ${tone("plenary")}`, "data-room": "plenary" },
    h("h4", {}, round === null ? "Plenary" : "Plenary (not in a caucus)"), people(seated.none))];
  for (const caucus of ["a", "b"]) {
    const request = help.get(caucus);
    rooms.push(h("li", { class: `board-room ${tone(`caucus_${caucus}`)}`, "data-room": `caucus_${caucus}` },
      h("h4", {}, live.labels[caucus]),
      people(seated[caucus]),
      round === null ? null : h("p", { class: "board-points", "data-count": counts[caucus] },
        `${counts[caucus]} live point${counts[caucus] === 1 ? "" : "s"}`),
      request ? h("p", { class: "board-help" }, `Asks for a facilitator (since ${time(request.at)})`) : null));
  }
  const clock = round === null
    ? (live.phase.name === "ended" ? "The session has ended." : "No round is running.")
    : live.deadline ? [`Round ${round}: `, h("span", { id: "board-time" }, timeLeft(live.deadline))] : `Round ${round}: no timer.`;
  return h("section", { class: "card board", id: "board", "aria-labelledby": "board-heading" },
    h("h3", { id: "board-heading" }, "Rooms now"),
    h("p", { class: "board-clock" }, clock),
    h("ul", { class: "board-rooms" }, ...rooms),
    h("p", { class: "note" }, "Names and numbers only: what a caucus says and writes stays in it."));
}
