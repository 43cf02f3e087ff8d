// The feedback box under a finished run (traces on): thumbs and "the right answer was …", sent to
// POST /v1/refinements/{id}/feedback. Exercised by tests/api/test_playground_keys_feedback.py.

import { sendFeedback } from "./api.js";

/** Append a feedback box for refinement `id` to `view.root`. */
export function feedbackBox(view, id) {
  const box = document.getElementById("feedback-template").content.firstElementChild.cloneNode(true);
  const status = box.querySelector(".feedback-status");
  let rating = null;
  for (const thumb of box.querySelectorAll(".thumb")) {
    thumb.setAttribute("aria-pressed", "false");
    thumb.addEventListener("click", () => {
      rating = rating === Number(thumb.dataset.rating) ? null : Number(thumb.dataset.rating);
      for (const t of box.querySelectorAll(".thumb")) t.setAttribute("aria-pressed", String(Number(t.dataset.rating) === rating));
    });
  }
  box.querySelector(".send").addEventListener("click", async () => {
    const feedback = {};
    if (rating !== null) feedback.rating = rating;
    const reference = box.querySelector(".reference").value.trim();
    const comment = box.querySelector(".comment").value.trim();
    if (reference) feedback.reference = reference;
    if (comment) feedback.comment = comment;
    if (!Object.keys(feedback).length) { status.textContent = "choose a thumb or write the right answer first"; return; }
    status.textContent = "sending…";
    try {
      await sendFeedback(id, feedback);
      status.textContent = "thank you: stored with this refinement's trace";
      box.dataset.sent = "true";
    } catch (e) {
      status.textContent = e.describe();
      if (e.code === "references_not_kept") { // this server keeps no references: thumbs and comments only
        box.querySelector(".right-answer").hidden = true;
        box.querySelector(".reference").value = "";
        status.textContent += " The right-answer box is gone; send again for the rest.";
      } else if (e.status === 409) { // traces were turned off: nothing to attach feedback to
        for (const control of box.querySelectorAll("button, input")) control.disabled = true;
      }
    }
  });
  view.root.append(box);
  return box;
}
