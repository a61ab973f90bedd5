/* Control room: live counters, the live action page (server-sent events); the maps are in map.js.
   No build step, no library; everything works without this script except the live updates. */
"use strict";

/* ---- new-action form ---- */
function setupForm(form) {
  const counter = document.getElementById("counter");
  const fields = ["type", "headline", "description", "instruction"].map((name) => form.elements[name]);
  // The server builds the texts each channel will send (SMS squeezed, instruction kept) and counts them.
  let pending = null, asked = 0;
  const updateCounter = () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const ask = ++asked;
      const query = new URLSearchParams(fields.map((field) => [field.name, field.value]));
      try {
        const response = await fetch(`${counter.dataset.url}?${query}`, {headers: {Accept: "application/json"}});
        if (!response.ok || ask !== asked) return;
        const data = await response.json();
        counter.textContent = data.counter;
        const segments = Math.max(...Object.values(data.texts).map((lang) => lang.sms.segments));
        counter.classList.toggle("over", segments > 2 || data.problems.length > 0);
        counter.title = data.texts.nl.sms.text;
      } catch (_) { /* offline for a moment: the preview still shows the real texts */ }
    }, 200);
  };
  for (const field of fields) field.addEventListener("input", updateCounter);
  updateCounter();
}

/* ---- forms posted in place (tip verdicts, replies, phone) ---- */
function setupFetchForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form, event.submitter);
    const item = form.closest(".tip");
    const status = item ? item.querySelector(".status") : null;
    const response = await fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
      headers: {"X-Requested-With": "fetch"}});
    if (!response.ok) { if (status) status.textContent = `${response.status}`; return; }
    const body = await response.json();
    if (body.verdict !== undefined && item) {
      item.classList.remove("useful", "not_useful");
      if (body.verdict) item.classList.add(body.verdict);
      if (status) status.textContent = event.submitter ? event.submitter.textContent + " ✓" : "✓";
    } else if (body.phone !== undefined && status) {
      status.textContent = body.phone;
    } else if (body.message && status) {
      status.textContent = body.message;
      form.reset();
    }
  });
}

/* ---- the live action page ---- */
// Storage gives when a tipster saw something as an ISO time in UTC: show the wall clock, as the server does,
// with the tipster's own phrase next to it, or the phrase alone when it gave no time.
function seenTime(tip, timeZone) {
  const phrase = tip.seen_text ? `‘${tip.seen_text}’` : "";
  const value = tip.seen_at;
  if (!value) return phrase;
  const at = new Date(value);
  const shown = !/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at.getTime())
    ? value : at.toLocaleTimeString("nl-NL", {timeZone, hour: "2-digit", minute: "2-digit"});
  return phrase ? `${shown} (${phrase})` : shown;
}

function tipElement(tip, labels, csrf, actionId, active, prefix, timeZone) {
  const li = document.createElement("li");
  li.className = "tip new" + (tip.verdict ? " " + tip.verdict : "");
  li.id = `tip-${tip.id}`;
  li.dataset.id = tip.id;
  li.tabIndex = -1;
  const h = document.createElement("h3");
  const at = new Date(tip.received_at);
  h.textContent = `#${tip.id} · ${at.toLocaleTimeString("nl-NL", {timeZone})} · ${tip.channel} · ${labels.reporter} ${tip.reporter}`;
  li.append(h);
  const dl = document.createElement("dl");
  for (const field of ["seen_at", "location", "direction", "description", "vehicle_plate", "relay"]) {
    if (!tip[field] && !(field === "seen_at" && tip.seen_text)) continue;
    const dt = document.createElement("dt"); dt.textContent = labels[field];
    const dd = document.createElement("dd");
    dd.textContent = field === "seen_at" ? seenTime(tip, timeZone) : tip[field];
    dl.append(dt, dd);
  }
  li.append(dl);
  const raw = document.createElement("p");
  raw.className = "raw"; raw.setAttribute("aria-label", labels.raw); raw.textContent = tip.text;
  li.append(raw);
  if (tip.media && tip.media.length) {
    const p = document.createElement("p");
    tip.media.forEach((url, i) => {
      const a = document.createElement("a"); a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer";
      const img = document.createElement("img"); img.src = url; img.alt = `${labels.photos} ${i + 1}`;
      a.append(img); p.append(a);
    });
    li.append(p);
  }
  if (active) {
    const base = `${prefix}/actions/${actionId}/tips/${tip.id}`;
    const box = document.createElement("div"); box.className = "actions";
    const hidden = () => Object.assign(document.createElement("input"), {type: "hidden", name: "csrf_token", value: csrf});
    const mark = Object.assign(document.createElement("form"), {method: "post", action: `${base}/mark`, className: "inline js-fetch"});
    mark.append(hidden());
    for (const [value, label] of [["yes", labels.useful], ["no", labels.not_useful]]) {
      const b = Object.assign(document.createElement("button"), {type: "submit", name: "useful", value, textContent: label});
      mark.append(b);
    }
    const reply = Object.assign(document.createElement("form"), {method: "post", action: `${base}/reply`, className: "js-fetch reply"});
    const label = Object.assign(document.createElement("label"), {htmlFor: `reply-${tip.id}`, textContent: labels.reply});
    const input = Object.assign(document.createElement("input"), {id: `reply-${tip.id}`, name: "text", required: true, maxLength: 600});
    const send = Object.assign(document.createElement("button"), {type: "submit", textContent: labels.send_reply});
    reply.append(hidden(), label, input, send);
    box.append(mark, reply);
    if (tip.has_phone) {
      const phone = Object.assign(document.createElement("form"), {method: "post", action: `${base}/phone`, className: "inline js-fetch phone"});
      phone.append(hidden(), Object.assign(document.createElement("button"), {type: "submit", textContent: labels.show_phone}));
      box.append(phone);
    }
    li.append(box);
    const status = document.createElement("p"); status.className = "hint status"; status.setAttribute("aria-live", "polite");
    li.append(status);
    for (const f of li.querySelectorAll("form.js-fetch")) setupFetchForm(f);
  }
  return li;
}

function updateProgress(data) {
  const stages = ["queued", "sent", "delivered", "failed"];
  for (const [channel, counts] of Object.entries(data)) {
    const dd = document.querySelector(`#progress dd[data-channel="${CSS.escape(channel)}"]`);
    if (!dd) { window.location.reload(); return; }  // a channel appeared (fallback): redraw the page
    let offset = 0;
    for (const stage of stages) {
      const width = counts.total ? 100 * counts[stage] / counts.total : 0;
      const rect = dd.querySelector(`rect[data-stage="${stage}"]`);
      rect.setAttribute("x", offset.toFixed(2)); rect.setAttribute("width", width.toFixed(2));
      offset += width;
      dd.querySelector(`[data-count="${stage}"]`).textContent = String(counts[stage]);
    }
    dd.previousElementSibling.querySelector("[data-total]").textContent = String(counts.total);
  }
}

function setupLive(live) {
  const list = document.getElementById("tips");
  const labels = JSON.parse(list.dataset.labels);
  const banner = document.getElementById("connection");
  const prefix = live.dataset.stream.split("/actions/")[0];
  const seen = new Set([...list.querySelectorAll(".tip")].map((li) => li.dataset.id));
  const source = new EventSource(live.dataset.stream);
  source.addEventListener("open", () => { banner.hidden = true; });
  source.addEventListener("error", () => { banner.hidden = false; });
  source.addEventListener("progress", (event) => updateProgress(JSON.parse(event.data)));
  source.addEventListener("status", () => { source.close(); window.location.reload(); });
  source.addEventListener("logout", () => { source.close(); window.location.reload(); });
  source.addEventListener("tip", (event) => {
    const tip = JSON.parse(event.data);
    if (seen.has(String(tip.id))) return;
    seen.add(String(tip.id));
    list.prepend(tipElement(tip, labels, list.dataset.csrf, list.dataset.action, list.dataset.active === "yes", prefix, list.dataset.timezone));
    document.getElementById("no-tips").hidden = true;
    document.getElementById("tip-count").textContent = String(seen.size);
    document.dispatchEvent(new CustomEvent("controlroom:tip", {detail: tip}));  // map.js moves the map
  });
  source.addEventListener("tip_updated", (event) => {
    const tip = JSON.parse(event.data);
    const shown = document.getElementById(`tip-${tip.id}`);
    if (!shown) return;
    // Rebuild the tip in place, keeping what the operator is typing in its reply box.
    const typing = shown.querySelector("input[name=text]");
    const fresh = tipElement(tip, labels, list.dataset.csrf, list.dataset.action, list.dataset.active === "yes", prefix, list.dataset.timezone);
    const box = fresh.querySelector("input[name=text]");
    if (typing && box) box.value = typing.value;
    shown.replaceWith(fresh);
    document.dispatchEvent(new CustomEvent("controlroom:tip", {detail: tip}));
  });
  window.addEventListener("beforeunload", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("action-form");
  if (form) setupForm(form);
  for (const f of document.querySelectorAll("form.js-fetch")) setupFetchForm(f);
  const live = document.getElementById("live");
  if (live && live.dataset.status === "active") setupLive(live);
});
