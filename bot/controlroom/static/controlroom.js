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
      // In the body, not the URL: the texts name the person sought, and the server logs every URL.
      const body = new URLSearchParams(fields.map((field) => [field.name, field.value]));
      body.append("csrf_token", form.elements.csrf_token.value);
      try {
        const response = await fetch(counter.dataset.url, {
          method: "POST", body, credentials: "same-origin", headers: {Accept: "application/json"},
        });
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
function showVerdict(item, verdict, labels) {
  item.classList.remove("useful", "not_useful");
  if (verdict) item.classList.add(verdict);
  const line = item.querySelector(".verdict");
  if (line) {
    line.hidden = !verdict;
    line.textContent = verdict ? labels[`verdict_${verdict}`] : "";
  }
  for (const button of item.querySelectorAll(".verdicts button")) {
    const mine = (button.value === "yes" && verdict === "useful") || (button.value === "no" && verdict === "not_useful");
    button.setAttribute("aria-pressed", mine ? "true" : "false");
  }
}

function threadLine(direction, text, at, labels, timeZone) {
  const li = document.createElement("li");
  li.className = direction;
  const who = document.createElement("span");
  who.className = "who";
  const time = new Date(at).toLocaleTimeString("nl-NL", {timeZone, hour: "2-digit", minute: "2-digit"});
  who.textContent = `${direction === "out" ? labels.from_operator : labels.from_tipster} · ${time}`;
  li.append(who, text);
  return li;
}

// The operator's own question joins the tip's conversation at once; the server shows it after a reload too.
function addOwnReply(item, text, labels, timeZone) {
  let thread = item.querySelector(".thread");
  if (!thread) {
    thread = document.createElement("ol");
    thread.className = "thread";
    thread.setAttribute("aria-label", labels.thread);
    const raw = item.querySelector(".raw");
    const first = threadLine("in", raw ? raw.textContent : "", item.dataset.received || new Date().toISOString(), labels, timeZone);
    thread.append(first);
    if (raw) raw.replaceWith(thread); else item.querySelector("dl").after(thread);
  }
  thread.append(threadLine("out", text, new Date().toISOString(), labels, timeZone));
}

function tipLabels() {
  const list = document.getElementById("tips");
  return list ? JSON.parse(list.dataset.labels) : {};
}

function setupFetchForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form, event.submitter);
    const labels = tipLabels();
    const list = document.getElementById("tips");
    const tipId = form.closest(".tip") ? form.closest(".tip").id : null;
    const response = await fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
      headers: {"X-Requested-With": "fetch"}});
    // A pushed update may have rebuilt the tip meanwhile: answer on the tip as it is shown now.
    const item = tipId ? document.getElementById(tipId) : null;
    const status = item ? item.querySelector(".status") : null;
    if (!response.ok) {
      if (status) status.textContent = (labels.error || "{status}").replace("{status}", String(response.status));
      return;
    }
    const body = await response.json();
    if (status) status.textContent = "";
    if (body.verdict !== undefined && item) {
      showVerdict(item, body.verdict, labels);
      markSeen(item);
    } else if (body.phone !== undefined && item) {
      // The number gets its own place: the verdict line and the reply box stay as they were.
      const number = item.querySelector(".phone-number");
      if (number) number.textContent = body.phone;
    } else if (body.message && item) {
      addOwnReply(item, String(data.get("text") || ""), labels, list ? list.dataset.timezone : undefined);
      if (status) status.textContent = body.message;
      form.reset();
      const box = item.querySelector("form.reply");
      if (box) box.reset();
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
  li.className = "tip" + (tip.verdict ? " " + tip.verdict : "");
  li.id = `tip-${tip.id}`;
  li.dataset.id = tip.id;
  li.dataset.received = tip.received_at;
  li.tabIndex = -1;
  if (tip.late) {
    // Sent after the action ended: marked so it never reads as a live tip.
    li.classList.add("late");
    li.dataset.late = "yes";
    li.append(Object.assign(document.createElement("p"), {className: "late-mark", textContent: labels.late}));
  }
  const h = document.createElement("h3");
  const at = new Date(tip.received_at);
  const channel = (labels.channel || {})[tip.channel] || tip.channel;
  h.textContent = `#${tip.id} · ${at.toLocaleTimeString("nl-NL", {timeZone})} · ${channel} · ${labels.reporter} ${tip.reporter}`;
  li.append(h);
  const verdict = document.createElement("p");
  verdict.className = "verdict";
  li.append(verdict);
  const dl = document.createElement("dl");
  for (const field of ["seen_at", "location", "direction", "description", "vehicle_plate", "relay"]) {
    if (!tip[field] && !(field === "seen_at" && tip.seen_text)) continue;
    const dt = document.createElement("dt"); dt.textContent = labels[field];
    const dd = document.createElement("dd");
    dd.textContent = field === "seen_at" ? seenTime(tip, timeZone) : tip[field];
    dl.append(dt, dd);
  }
  li.append(dl);
  if (tip.thread && tip.thread.length > 1) {
    const thread = document.createElement("ol");
    thread.className = "thread"; thread.setAttribute("aria-label", labels.thread);
    for (const line of tip.thread) thread.append(threadLine(line.direction, line.text, line.at, labels, timeZone));
    li.append(thread);
  } else {
    const raw = document.createElement("p");
    raw.className = "raw"; raw.setAttribute("aria-label", labels.raw); raw.textContent = tip.text;
    li.append(raw);
  }
  if (tip.media && tip.media.length) {
    // Files come from our own origin (the CSP allows images from 'self' only), once fetched and checked.
    const list = Object.assign(document.createElement("ul"), {className: "media"});
    list.setAttribute("aria-label", labels.photos);
    for (const m of tip.media) {
      const url = `${prefix}/tips/${tip.id}/media/${m.position}`;
      const item = document.createElement("li");
      const text = (label) => (label || "").replace("{n}", m.position).replace("{kind}", m.content_type || "");
      if (m.state === "stored" && m.image) {
        const a = Object.assign(document.createElement("a"), {href: url, target: "_blank", rel: "noopener noreferrer"});
        a.append(Object.assign(document.createElement("img"), {src: url, alt: text(labels.photo)}));
        item.append(a);
      } else if (m.state === "stored") {
        const a = Object.assign(document.createElement("a"), {href: url, textContent: text(labels.media_download)});
        a.setAttribute("download", "");
        item.append(a);
      } else {
        const reason = m.state === "pending" ? labels.media_pending
          : (labels.media_refused || {})[m.reason] || (labels.media_refused || {}).unavailable;
        item.append(Object.assign(document.createElement("span"), {className: "hint", textContent: text(reason)}));
      }
      list.append(item);
    }
    li.append(list);
  }
  if (active) {
    const base = `${prefix}/actions/${actionId}/tips/${tip.id}`;
    const box = document.createElement("div"); box.className = "actions";
    const hidden = () => Object.assign(document.createElement("input"), {type: "hidden", name: "csrf_token", value: csrf});
    const mark = Object.assign(document.createElement("form"), {method: "post", action: `${base}/mark`, className: "inline js-fetch verdicts"});
    mark.append(hidden());
    for (const [value, label] of [["yes", labels.useful], ["no", labels.not_useful]]) {
      const b = Object.assign(document.createElement("button"), {type: "submit", name: "useful", value, textContent: label});
      mark.append(b);
    }
    box.append(mark);
    if (tip.has_phone) {
      const phone = Object.assign(document.createElement("form"), {method: "post", action: `${base}/phone`, className: "inline js-fetch phone"});
      const number = Object.assign(document.createElement("span"), {className: "phone-number"});
      phone.append(hidden(), Object.assign(document.createElement("button"), {type: "submit", textContent: labels.show_phone}), number);
      box.append(phone);
    }
    li.append(box);
    const reply = Object.assign(document.createElement("form"), {method: "post", action: `${base}/reply`, className: "js-fetch reply"});
    const label = Object.assign(document.createElement("label"), {htmlFor: `reply-${tip.id}`, textContent: labels.reply});
    const row = Object.assign(document.createElement("div"), {className: "reply-row"});
    const input = Object.assign(document.createElement("input"), {id: `reply-${tip.id}`, name: "text", required: true, maxLength: 600});
    const send = Object.assign(document.createElement("button"), {type: "submit", textContent: labels.send_reply});
    row.append(input, send);
    reply.append(hidden(), label, row);
    li.append(reply);
    const status = document.createElement("p"); status.className = "hint status"; status.setAttribute("aria-live", "polite");
    li.append(status);
    for (const f of li.querySelectorAll("form.js-fetch")) setupFetchForm(f);
  }
  showVerdict(li, tip.verdict, labels);
  return li;
}

/* ---- new-tip alerts: the count in the tab title, a beep, a desktop notification ---- */
const SOUND_KEY = "controlroom.sound";
const baseTitle = document.title;
let audio = null;

function unseenCount() {
  return document.querySelectorAll(".tip.new").length;
}

function updateTitle() {
  const n = unseenCount();
  document.title = n ? `(${n}) ${baseTitle}` : baseTitle;
}

function markSeen(item) {
  if (!item.classList.contains("new")) return;
  item.classList.remove("new");
  updateTitle();
}

function soundOn() {
  return localStorage.getItem(SOUND_KEY) !== "off";
}

// Browsers only let a page make sound after a click: the context is made (or woken) on the first one.
function wakeAudio() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  if (!audio) audio = new Context();
  if (audio.state === "suspended") audio.resume();
}

function beep() {
  if (!soundOn()) return;
  wakeAudio();
  if (!audio) return;
  const start = audio.currentTime;
  for (const [offset, pitch] of [[0, 880], [0.18, 1175]]) {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = pitch;
    gain.gain.setValueAtTime(0.2, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.001, start + offset + 0.15);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + offset);
    tone.stop(start + offset + 0.16);
  }
}

function setupSoundToggle(button) {
  const show = () => {
    const on = soundOn();
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? button.dataset.on : button.dataset.off;
  };
  button.addEventListener("click", () => {
    localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
    show();
  });
  show();
}

function setupNotifyToggle(button) {
  if (!("Notification" in window)) { button.hidden = true; return; }
  const show = () => {
    if (Notification.permission === "granted") { button.textContent = button.dataset.on; button.disabled = true; }
    if (Notification.permission === "denied") { button.textContent = button.dataset.denied; button.disabled = true; }
  };
  // The permission is asked only on the operator's own click, as browsers require.
  button.addEventListener("click", async () => { await Notification.requestPermission(); show(); });
  show();
}

function notify(tip, labels) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (!document.hidden && document.hasFocus()) return;
  const note = new Notification(labels.new_tip, {body: (tip.location ? `${tip.location}: ` : "") + tip.text.slice(0, 140), tag: `tip-${tip.id}`});
  note.addEventListener("click", () => {
    window.focus();
    const item = document.getElementById(`tip-${tip.id}`);
    if (item) { item.focus(); markSeen(item); }
  });
}

function setupFilters(box, lists) {
  box.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-filter]");
    if (!button) return;
    for (const other of box.querySelectorAll("button[data-filter]")) other.setAttribute("aria-pressed", other === button ? "true" : "false");
    for (const list of lists) list.dataset.filter = button.dataset.filter;
  });
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
  const late = document.getElementById("tips-late");
  const labels = JSON.parse(list.dataset.labels);
  const banner = document.getElementById("connection");
  const prefix = live.dataset.stream.split("/actions/")[0];
  const seen = new Set([...document.querySelectorAll("#live .tip")].map((li) => li.dataset.id));
  const build = (tip) => tipElement(tip, labels, list.dataset.csrf, list.dataset.action, list.dataset.active === "yes", prefix, list.dataset.timezone);
  const sound = document.getElementById("sound-toggle");
  if (sound) setupSoundToggle(sound);
  const bell = document.getElementById("notify-toggle");
  if (bell) setupNotifyToggle(bell);
  document.addEventListener("pointerdown", wakeAudio, {once: true});
  // A tip counts as seen once the operator clicks into it, tabs to it or judges it.
  const seenOn = (event) => { const item = event.target.closest(".tip.new"); if (item) markSeen(item); };
  for (const box of [list, late]) { box.addEventListener("pointerdown", seenOn); box.addEventListener("focusin", seenOn); }
  const source = new EventSource(live.dataset.stream);
  source.addEventListener("open", () => { banner.hidden = true; });
  source.addEventListener("error", () => { banner.hidden = false; });
  source.addEventListener("progress", (event) => updateProgress(JSON.parse(event.data)));
  source.addEventListener("status", () => { source.close(); window.location.reload(); });
  // A CAP Update or Cancel came in (or a colleague decided one): offer the reload, never lose what is typed.
  source.addEventListener("cap_changes", (event) => {
    const waiting = JSON.parse(event.data).waiting.join(",");
    if (waiting === (live.dataset.capWaiting || "")) return;
    document.getElementById("cap-arrived").hidden = false;
    beep();
  });
  source.addEventListener("logout", () => { source.close(); window.location.reload(); });
  source.addEventListener("tip", (event) => {
    const tip = JSON.parse(event.data);
    if (seen.has(String(tip.id))) return;
    seen.add(String(tip.id));
    const item = build(tip);
    item.classList.add("new");
    if (tip.late) { late.prepend(item); document.getElementById("late-tips").hidden = false; }
    else list.prepend(item);
    document.getElementById("no-tips").hidden = true;
    document.getElementById("tip-count").textContent = String(seen.size);
    document.dispatchEvent(new CustomEvent("controlroom:tip", {detail: tip}));  // map.js moves the map
    updateTitle();
    beep();
    notify(tip, labels);
  });
  source.addEventListener("tip_updated", (event) => {
    const tip = JSON.parse(event.data);
    const shown = document.getElementById(`tip-${tip.id}`);
    if (!shown) return;
    // Rebuild the tip in place, keeping what the operator is typing and a phone number already shown.
    const typing = shown.querySelector("input[name=text]");
    const number = shown.querySelector(".phone-number");
    // A verdict is never taken back: an update read just before the operator judged must not hide it.
    const judged = ["useful", "not_useful"].find((v) => shown.classList.contains(v));
    if (!tip.verdict && judged) tip.verdict = judged;
    const fresh = build(tip);
    const box = fresh.querySelector("input[name=text]");
    if (typing && box) box.value = typing.value;
    const place = fresh.querySelector(".phone-number");
    if (number && place) place.textContent = number.textContent;
    if (shown.classList.contains("new")) fresh.classList.add("new");
    shown.replaceWith(fresh);
    document.dispatchEvent(new CustomEvent("controlroom:tip", {detail: tip}));
  });
  window.addEventListener("beforeunload", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("action-form");
  if (form) setupForm(form);
  for (const f of document.querySelectorAll("form.js-fetch")) setupFetchForm(f);
  const filters = document.getElementById("tip-filters");
  if (filters) setupFilters(filters, document.querySelectorAll("#tips, #tips-late"));
  const live = document.getElementById("live");
  if (live && live.dataset.status === "active") setupLive(live);
});
