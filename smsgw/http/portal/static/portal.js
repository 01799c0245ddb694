// The live parts of the portal; every page works without this file.
"use strict";

// The counter asks the gateway (the accept path's own rules), never counts in the browser. A textarea's value has
// bare LF line breaks but the form sends CR LF, so the text is sent as the form will send it.
function startCounter() {
  const text = document.getElementById("text");
  const counter = document.getElementById("counter");
  if (!text || !counter) return;
  const numbers = document.getElementById("numbers");
  const asSent = document.getElementById("as-sent");
  let timer = null;
  let asked = 0;
  async function update() {
    const lines = numbers ? numbers.value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean) : [];
    const query = new URLSearchParams({
      text: text.value.replace(/\r?\n/g, "\r\n"),
      to: lines[0] || "",
      recipients: String(Math.max(1, lines.length)),
    });
    const mine = ++asked;
    const response = await fetch(counter.dataset.countUrl + "?" + query, { credentials: "same-origin" });
    if (mine !== asked || !response.ok) return;
    const c = await response.json();
    if (c.characters === undefined) {
      counter.textContent = c.refused;
      counter.classList.add("over");
      return;
    }
    const parts = c.segments === 1 ? "1 segment" : c.segments + " segments";
    counter.textContent = c.characters + " characters · " + c.encoding + " · " + parts + " · charge " + c.charge +
      (c.refused ? " · " + c.refused : "");
    counter.classList.toggle("over", Boolean(c.refused));
    const added = c.text !== text.value.replace(/\r?\n/g, "\r\n");
    asSent.hidden = !added;
    asSent.textContent = added ? "Sent as: " + c.text : "";
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 150); }
  text.addEventListener("input", later);
  if (numbers) numbers.addEventListener("input", later);
  update();
}

// A batch's progress, polled until it is done (without JavaScript the page refreshes itself).
function startProgress() {
  const section = document.getElementById("progress");
  if (!section || section.dataset.state !== "sending") return;
  const bar = document.getElementById("progress-bar");
  async function poll() {
    const response = await fetch(section.dataset.progressUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const p = await response.json();
    bar.value = p.done;
    for (const key of ["state", "done", "accepted", "rejected"]) document.getElementById(key).textContent = p[key];
    document.getElementById("paced").hidden = !p.paced;
    if (p.state === "sending") setTimeout(poll, 500);
    else location.reload();  // the final page lists what was refused
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => { startCounter(); startProgress(); });
