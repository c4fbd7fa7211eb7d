// Asking before an action that cannot be taken back, on the page itself. A browser
// dialog (`confirm()`) blocks the page, so events stop while it is open, and it can
// be neither styled nor kept next to what it is about.

import { h } from "./app.js";

function focusKey(key) {
  document.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/**
 * A button that, once pressed, shows `question` in its place with a confirm and a
 * cancel. `state.asking` names the one question open at a time; `redraw()` renders the
 * page again at once, so that focus can move to the new buttons.
 */
export function confirmable(state, { key, label, ariaLabel, question, yes, no = "Cancel", danger = false, onConfirm, redraw }) {
  if (state.asking === key) {
    const questionId = `question-${key}`;
    return h("div", { class: "confirm", role: "group", "aria-labelledby": questionId, "data-confirm": key },
      h("p", { id: questionId }, question),
      h("button", { type: "button", class: danger ? "danger filled" : "primary", "data-key": `yes-${key}`, onclick: () => {
        state.asking = null;
        onConfirm();
        redraw();
      } }, yes),
      h("button", { type: "button", "data-key": `no-${key}`, onclick: () => {
        state.asking = null;
        redraw();
        focusKey(`ask-${key}`);
      } }, no));
  }
  return h("button", { type: "button", class: danger ? "danger" : null, "data-key": `ask-${key}`, "aria-label": ariaLabel, onclick: () => {
    state.asking = key;
    redraw();
    focusKey(`yes-${key}`);
  } }, label);
}

/**
 * For a page that is not re-rendered: swaps `button` for `question` with a confirm and
 * a cancel, and puts the button back (with focus) once answered.
 */
export function askInPlace(button, { question, yes, no = "Cancel", onConfirm }) {
  const ask = h("div", { class: "confirm", role: "group" });
  const back = () => { ask.replaceWith(button); button.focus(); };
  const text = h("p", {}, question);
  const confirmButton = h("button", { type: "button", class: "primary", onclick: () => { back(); onConfirm(); } }, yes);
  ask.append(text, confirmButton, h("button", { type: "button", onclick: back }, no));
  ask.setAttribute("aria-label", question);
  button.replaceWith(ask);
  confirmButton.focus();
}
