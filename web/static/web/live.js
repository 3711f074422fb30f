// Job cards listen to their job's event stream (htmx's SSE extension); while a stream is
// down (htmx:sseError, until it reconnects) the card polls instead: see web/live.py.
document.addEventListener("htmx:sseOpen", (event) => { event.target.dataset.stream = "live"; });
document.addEventListener("htmx:sseError", (event) => { event.target.dataset.stream = "down"; });
document.addEventListener("htmx:sseClose", (event) => { event.target.dataset.stream = "closed"; });

function jobStreamDown(card) {
  const stream = card.closest(".job-stream");
  return !stream || stream.dataset.stream === "down";
}
