/* Control room: live counters, the click-to-pick map, the live action page (server-sent events).
   No build step, no library; everything works without this script except the live updates. */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const GSM7 = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXT = "\f^{}\\[~]|€";

function smsSegments(text) {
  let gsm = true, units = 0;
  for (const ch of text) {
    if (GSM7.includes(ch)) units += 1;
    else if (GSM7_EXT.includes(ch)) units += 2;
    else { gsm = false; break; }
  }
  if (!gsm) {
    units = 0;
    for (const ch of text) units += ch.length;  // UTF-16 code units
    return units <= 70 ? 1 : Math.ceil(units / 67);
  }
  return units <= 160 ? 1 : Math.ceil(units / 153);
}

function project(lat, lon, zoom) {
  const size = 256 * 2 ** zoom;
  const s = Math.sin(Math.max(-85, Math.min(85, lat)) * Math.PI / 180);
  return [(lon + 180) / 360 * size, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * size];
}

function unproject(x, y, zoom) {
  const size = 256 * 2 ** zoom;
  const lon = x / size * 360 - 180;
  const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * y / size))) * 180 / Math.PI;
  return [lat, lon];
}

function metresPerPixel(lat, zoom) {
  return 40075016.686 * Math.cos(lat * Math.PI / 180) / (256 * 2 ** zoom);
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/* ---- new-action form ---- */
function setupForm(form) {
  const counter = document.getElementById("counter");
  const headline = form.elements.headline, description = form.elements.description;
  const updateCounter = () => {
    const sms = `Burgernet BN-XXXX: ${headline.value}. ${description.value} Tip? Antwoord op deze sms. Spoed: 112`;
    const segments = smsSegments(sms);
    counter.textContent = counter.dataset.template
      .replace("{chars}", String([...sms].length)).replace("{segments}", String(segments));
    counter.classList.toggle("over", segments > 2);
  };
  headline.addEventListener("input", updateCounter);
  description.addEventListener("input", updateCounter);
  updateCounter();

  const map = document.getElementById("pick-map");
  const zoom = Number(map.dataset.zoom);
  const area = map.querySelector("g.area");
  const lat = form.elements.lat, lon = form.elements.lon, radius = form.elements.radius_m;
  const draw = () => {
    area.replaceChildren();
    const la = parseFloat(lat.value), lo = parseFloat(lon.value);
    if (Number.isNaN(la) || Number.isNaN(lo)) return;
    const [x, y] = project(la, lo, zoom);
    const r = Math.max(2, (parseFloat(radius.value) || 0) / metresPerPixel(la, zoom));
    area.append(svgEl("circle", {cx: x, cy: y, r, fill: "#00468b", "fill-opacity": "0.15", stroke: "#00468b", "stroke-width": 2}));
    area.append(svgEl("circle", {cx: x, cy: y, r: 3, fill: "#a30000"}));
  };
  map.addEventListener("click", (event) => {
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(map.getScreenCTM().inverse());
    const [la, lo] = unproject(point.x, point.y, zoom);
    lat.value = la.toFixed(5); lon.value = lo.toFixed(5);
    form.querySelector('input[name="area_kind"][value="circle"]').checked = true;
    draw();
  });
  for (const input of [lat, lon, radius]) input.addEventListener("input", draw);
  const result = document.getElementById("lookup-result");
  const lookup = async () => {
    const pc = form.elements.postcode.value.trim();
    if (!pc) return;
    const response = await fetch(`${form.dataset.postcodeUrl}?pc=${encodeURIComponent(pc)}`, {credentials: "same-origin"});
    const body = await response.json();
    if (!response.ok) { result.textContent = body.error; return; }
    lat.value = body.lat.toFixed(5); lon.value = body.lon.toFixed(5);
    result.textContent = `${body.place}, ${body.municipality}`;
    draw();
  };
  document.getElementById("f-lookup").addEventListener("click", lookup);
  form.elements.postcode.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); lookup(); }
  });
  draw();
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
// Storage gives when a tipster saw something as an ISO time in UTC: show the wall clock, as the server does.
function seenTime(value, timeZone) {
  const at = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at.getTime())) return value;
  return at.toLocaleTimeString("nl-NL", {timeZone, hour: "2-digit", minute: "2-digit"});
}

function tipElement(tip, labels, csrf, actionId, active, prefix, timeZone) {
  const li = document.createElement("li");
  li.className = "tip new" + (tip.verdict ? " " + tip.verdict : "");
  li.id = `tip-${tip.id}`;
  li.dataset.id = tip.id;
  li.tabIndex = -1;
  if (tip.late) {
    // Sent after the action ended: marked so it never reads as a live tip.
    li.classList.add("late");
    li.dataset.late = "yes";
    li.append(Object.assign(document.createElement("p"), {className: "late-mark", textContent: labels.late}));
  }
  const h = document.createElement("h3");
  const at = new Date(tip.received_at);
  h.textContent = `#${tip.id} · ${at.toLocaleTimeString("nl-NL", {timeZone})} · ${tip.channel} · ${labels.reporter} ${tip.reporter}`;
  li.append(h);
  const dl = document.createElement("dl");
  for (const field of ["seen_at", "location", "direction", "description", "vehicle_plate", "relay"]) {
    if (!tip[field]) continue;
    const dt = document.createElement("dt"); dt.textContent = labels[field];
    const dd = document.createElement("dd");
    dd.textContent = field === "seen_at" ? seenTime(tip.seen_at, timeZone) : tip[field];
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

function addTipDot(map, tip) {
  if (tip.lat == null || tip.lon == null || !map) return;
  const zoom = Number(map.dataset.zoom);
  const [x, y] = project(tip.lat, tip.lon, zoom);
  const g = svgEl("g", {class: "tip-dot", "data-tip": `#${tip.id}`});
  g.append(svgEl("circle", {cx: x, cy: y, r: 7, fill: "#a30000", stroke: "#fff", "stroke-width": 2}));
  const text = svgEl("text", {x: x + 9, y: y + 4, "font-size": 12, "font-weight": 700, fill: "#111"});
  text.textContent = `#${tip.id}`;
  g.append(text);
  map.querySelector("g.dots").append(g);
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
  const map = document.getElementById("action-map");
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
    addTipDot(map, tip);
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
