/* Control room maps on Leaflet (vendored in static/vendor/leaflet): the base map from the configured tile
   server, or offline the country drawn from the postcode table; zoom, pan and a scale; the new-action
   form picks its centre by a click or by the place search, or draws a polygon; the live page shows recipients
   and tips, and its "widen" form draws a polygon too.
   Each map reads its settings from its element's data-map (bot/controlroom/maps.py). */
"use strict";

(function () {
  if (typeof L === "undefined") return;  // Leaflet did not load: the <noscript> picture stays the map

  const NL_BOUNDS = [[50.6, 3.0], [53.8, 7.6]];
  const AREA = {color: "#00468b", weight: 2, fillColor: "#00468b", fillOpacity: 0.12};
  const ZOOM_FOR = {adres: 16, postcode: 15, weg: 15, woonplaats: 12, gemeente: 11};

  /* ---- the offline base map: a disc per postcode area, names of the larger towns ---- */
  function labelSize(zoom) {
    if (zoom <= 7) return 40;
    if (zoom === 8) return 18;
    if (zoom === 9) return 10;
    return 0;
  }

  function drawBase(map, url) {
    // Below the area and the markers: the country is the background, not something to click.
    map.createPane("base").style.zIndex = 250;
    const canvas = L.canvas({padding: 0.5, pane: "base"});
    map.createPane("names").style.zIndex = 380;
    const land = L.layerGroup().addTo(map);
    const labels = L.layerGroup().addTo(map);
    let places = [];
    const showLabels = () => {
      labels.clearLayers();
      const least = labelSize(map.getZoom());
      const taken = [];
      for (const place of places) {  // largest first: a smaller town whose name would overlap yields
        if (place.size < least) continue;
        const at = map.latLngToContainerPoint([place.lat, place.lon]);
        const width = 8 * place.name.length;
        if (taken.some((p) => Math.abs(p.x - at.x) < (p.width + width) / 2 + 6 && Math.abs(p.y - at.y) < 18)) continue;
        taken.push({x: at.x, y: at.y, width});
        const icon = L.divIcon({className: "place-label", html: "", iconSize: null});
        const marker = L.marker([place.lat, place.lon], {icon, interactive: false, keyboard: false, pane: "names"});
        labels.addLayer(marker);
        const name = document.createElement("span");
        name.textContent = place.name;
        marker.getElement().append(name);
      }
    };
    fetch(url, {credentials: "same-origin"})
      .then((response) => (response.ok ? response.json() : {points: [], places: []}))
      .then((base) => {
        // Two passes: a darker rim under the land makes the coast and the borders read as lines.
        for (const [fill, extra] of [["#b9ad8c", 300], ["#f4efe1", 0]]) {
          for (const [lat, lon, radius] of base.points) {
            land.addLayer(L.circle([lat, lon], {
              radius: radius + extra, stroke: false, fillColor: fill, fillOpacity: 1, interactive: false,
              renderer: canvas, pane: "base",
            }));
          }
        }
        places = base.places;
        showLabels();
        map.getContainer().dataset.base = "ready";
      });
    map.on("zoomend", showLabels);
  }

  function makeMap(el, config) {
    el.replaceChildren();  // the server-drawn picture for browsers without script
    const map = L.map(el, {
      zoomControl: false,
      minZoom: 6,
      maxZoom: config.tiles ? 19 : 18,
      maxBounds: L.latLngBounds(NL_BOUNDS).pad(0.3),
    });
    L.control.zoom({zoomInTitle: config.texts.zoom_in, zoomOutTitle: config.texts.zoom_out}).addTo(map);
    L.control.scale({imperial: false, maxWidth: 140}).addTo(map);
    map.attributionControl.setPrefix("Leaflet");
    if (config.tiles) {
      L.tileLayer(config.tiles, {maxZoom: 19, attribution: escapeHtml(config.attribution)}).addTo(map);
    } else {
      el.classList.add("offline");
      map.attributionControl.addAttribution(escapeHtml(config.texts.offline));
      drawBase(map, config.base);
    }
    const remember = () => {
      const centre = map.getCenter();
      el.dataset.centre = `${centre.lat.toFixed(5)},${centre.lng.toFixed(5)}`;
      el.dataset.zoom = String(map.getZoom());
    };
    map.on("moveend zoomend", remember);
    map.setView(config.centre, config.zoom);
    remember();
    return map;
  }

  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = text || "";
    return div.innerHTML;
  }

  /* ---- drawing a polygon: the new-action form, and the live page's "widen" form ---- */
  // Each click on the map adds a corner; the first corner or Close closes the ring. The ring lives in the
  // form's polygon field as CAP writes it ("lat,lon lat,lon ...", last = first), so it can also be typed
  // or pasted, and the server checks it either way. `tools` holds the buttons and the state line.
  function ringDrawer(map, el, tools, ringText) {
    const state = tools.querySelector('[data-ring="state"]');
    const shape = L.layerGroup().addTo(map);
    let corners = [], closed = false;
    const readRing = () => {
      const pts = ringText.value.trim().split(/\s+/).filter(Boolean).map((p) => p.split(",").map(Number));
      if (pts.some((p) => p.length !== 2 || !p.every(Number.isFinite))) return;
      const last = pts[pts.length - 1];
      closed = pts.length >= 4 && pts[0][0] === last[0] && pts[0][1] === last[1];
      corners = closed ? pts.slice(0, -1) : pts;
    };
    const writeRing = () => {
      const ring = closed ? [...corners, corners[0]] : corners;
      ringText.value = ring.map(([a, b]) => `${a.toFixed(6)},${b.toFixed(6)}`).join(" ");
    };
    const drawRing = () => {
      shape.clearLayers();
      el.dataset.polygon = closed ? "closed" : String(corners.length);
      if (!corners.length) { state.textContent = ""; return; }
      if (closed) shape.addLayer(L.polygon(corners, {...AREA, interactive: false, className: "drawn-polygon"}));
      else if (corners.length > 1) shape.addLayer(L.polyline(corners, {...AREA, dashArray: "6 4", interactive: false}));
      corners.forEach((corner, i) => {
        const marker = L.circleMarker(corner, {radius: i === 0 && !closed ? 8 : 5, color: "#00468b", weight: 2,
          fillColor: "#fff", fillOpacity: 1, className: `polygon-corner corner-${i}`});
        if (i === 0) marker.on("click", (event) => { L.DomEvent.stopPropagation(event); closeRing(); });
        shape.addLayer(marker);
      });
      state.textContent = (closed ? state.dataset.closed : state.dataset.open).replace("{count}", String(corners.length));
    };
    const closeRing = () => {
      if (corners.length < 3) return;
      closed = true;
      writeRing();
      drawRing();
    };
    tools.querySelector('[data-ring="close"]').addEventListener("click", closeRing);
    tools.querySelector('[data-ring="undo"]').addEventListener("click", () => {
      if (closed) closed = false;
      else corners.pop();
      writeRing();
      drawRing();
    });
    tools.querySelector('[data-ring="clear"]').addEventListener("click", () => {
      corners = [];
      closed = false;
      writeRing();
      drawRing();
    });
    ringText.addEventListener("input", () => { readRing(); drawRing(); });
    readRing();
    drawRing();
    return {
      add(latlng) {
        if (closed) return;  // a closed polygon changes by Undo or Clear, not by a stray click
        corners.push([latlng.lat, latlng.lng]);
        writeRing();
        drawRing();
      },
      corners: () => corners,
    };
  }

  /* ---- the new-action form: pick the centre by clicking or searching ---- */
  function setupPicker(el, config) {
    const form = el.closest("form");
    const map = makeMap(el, config);
    const lat = form.elements.lat, lon = form.elements.lon, radius = form.elements.radius_m;
    const search = form.elements.postcode;
    const list = document.getElementById("place-list");
    const result = document.getElementById("lookup-result");
    const area = L.layerGroup().addTo(map);
    let circle = null;

    const point = () => {
      const la = parseFloat(lat.value), lo = parseFloat(lon.value);
      return Number.isFinite(la) && Number.isFinite(lo) ? [la, lo] : null;
    };
    const kind = () => (form.querySelector('input[name="area_kind"]:checked') || {}).value;
    const draw = () => {
      area.clearLayers();
      circle = null;
      const at = point();
      if (!at) return;
      if (kind() !== "polygon") {
        circle = L.circle(at, {...AREA, radius: Math.max(parseFloat(radius.value) || 0, 10), interactive: false});
        area.addLayer(circle);
      }
      area.addLayer(L.circleMarker(at, {radius: 5, color: "#fff", weight: 2, fillColor: "#a30000", fillOpacity: 1,
        className: "picked-point", interactive: false}));
    };
    const setPoint = (la, lo) => {
      lat.value = la.toFixed(6);
      lon.value = lo.toFixed(6);
      const circleKind = form.querySelector('input[name="area_kind"][value="circle"]');
      if (circleKind && kind() !== "polygon") circleKind.checked = true;
      draw();
    };

    const tools = document.getElementById("polygon-tools");
    const ring = ringDrawer(map, el, tools, form.elements.polygon);
    const ringTools = document.getElementById("ring-tools");
    const showTools = () => {
      tools.hidden = kind() !== "polygon";
      if (ringTools) ringTools.hidden = kind() !== "circle";  // rings widen a circle only
      draw();
    };
    map.on("click", (event) => {
      if (kind() !== "polygon") setPoint(event.latlng.lat, event.latlng.lng);
      else ring.add(event.latlng);
    });
    for (const input of form.querySelectorAll('input[name="area_kind"]')) input.addEventListener("change", showTools);
    for (const input of [lat, lon, radius]) input.addEventListener("input", draw);
    showTools();
    if (circle) map.fitBounds(circle.getBounds(), {maxZoom: 15});
    else if (ring.corners().length > 1) map.fitBounds(L.latLngBounds(ring.corners()), {maxZoom: 15});

    // The place search: suggestions while typing, a pick centres the map and sets the point.
    let found = [], active = -1, asked = 0;
    const close = () => { list.hidden = true; search.setAttribute("aria-expanded", "false"); active = -1; };
    const choose = (place) => {
      setPoint(place.lat, place.lon);
      search.value = place.label;
      result.textContent = place.label;
      close();
      if (circle) map.fitBounds(circle.getBounds(), {maxZoom: ZOOM_FOR[place.kind] || 14});
      else map.setView([place.lat, place.lon], ZOOM_FOR[place.kind] || 14);
    };
    const show = () => {
      list.replaceChildren();
      found.forEach((place, i) => {
        const li = document.createElement("li");
        li.id = `place-${i}`;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        li.textContent = place.label;
        li.addEventListener("mousedown", (event) => { event.preventDefault(); choose(place); });
        list.append(li);
      });
      if (!found.length && search.value.trim().length >= 2) {
        const li = document.createElement("li");
        li.className = "none";
        li.textContent = search.dataset.none;
        list.append(li);
      }
      list.hidden = list.children.length === 0;
      search.setAttribute("aria-expanded", list.hidden ? "false" : "true");
      if (active >= 0) search.setAttribute("aria-activedescendant", `place-${active}`);
      else search.removeAttribute("aria-activedescendant");
    };
    const ask = async () => {
      const text = search.value.trim();
      const mine = ++asked;
      if (text.length < 2) { found = []; close(); return found; }
      // In the body, not the URL: what is typed may be someone's address, and the server logs every URL.
      const body = new URLSearchParams({q: text, csrf_token: form.elements.csrf_token.value});
      const response = await fetch(search.dataset.placesUrl, {method: "POST", body, credentials: "same-origin"});
      const answer = response.ok ? await response.json() : {places: []};
      if (mine !== asked) return found;  // a later keystroke asked again: its answer counts
      found = answer.places;
      active = -1;
      show();
      return found;
    };
    let timer = 0;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(ask, 150); });
    search.addEventListener("keydown", async (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (!found.length) return;
        event.preventDefault();
        active = (active + (event.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
        show();
      } else if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(timer);
        const places = active >= 0 ? found : await ask();
        if (places.length) choose(places[Math.max(active, 0)]);
      } else if (event.key === "Escape") {
        close();
      }
    });
    search.addEventListener("blur", () => setTimeout(close, 150));
    document.getElementById("f-lookup").addEventListener("click", async () => {
      clearTimeout(timer);
      const places = await ask();
      if (places.length) choose(places[0]);
    });
  }

  /* ---- the live page's "widen" form: a larger radius, or a polygon drawn around the old area ---- */
  function setupWiden(map, el) {
    const form = document.getElementById("widen-form");
    const tools = document.getElementById("w-polygon-tools");
    if (!form || !tools) return;
    const ring = ringDrawer(map, el, tools, form.elements.polygon);
    const circleTools = document.getElementById("w-circle-tools");
    const kind = () => (form.querySelector('input[name="area_kind"]:checked') || {}).value;
    const show = () => {
      tools.hidden = kind() !== "polygon";
      circleTools.hidden = kind() === "polygon";
      el.classList.toggle("drawing", kind() === "polygon");
    };
    for (const input of form.querySelectorAll('input[name="area_kind"]')) input.addEventListener("change", show);
    map.on("click", (event) => { if (kind() === "polygon") ring.add(event.latlng); });
    show();
  }

  /* ---- preview and live page: the area, the recipients, the tips ---- */
  function setupView(el, config) {
    const map = makeMap(el, config);
    const bounds = L.latLngBounds([]);
    if (config.circle) {
      const c = L.circle([config.circle.lat, config.circle.lon], {...AREA, radius: config.circle.radius_m, interactive: false});
      c.addTo(map);
      bounds.extend(c.getBounds());
      // The rings still to come: dashed, so the operator sees how far the search will spread.
      for (const radius of config.rings || []) {
        const ring = L.circle([config.circle.lat, config.circle.lon], {...AREA, radius, fillOpacity: 0, weight: 1.5,
          dashArray: "6 6", interactive: false, className: "ring-circle"}).addTo(map);
        bounds.extend(ring.getBounds());
      }
    }
    for (const rings of config.polygons || []) {
      const p = L.polygon(rings, {...AREA, interactive: false, className: "area-polygon"});
      p.addTo(map);
      bounds.extend(p.getBounds());
    }
    for (const [lat, lon] of config.area_points) {
      const c = L.circle([lat, lon], {...AREA, radius: 1500, weight: 0, fillOpacity: 0.18, interactive: false});
      c.addTo(map);
      bounds.extend(c.getBounds());
    }
    for (const group of config.groups) {
      L.circleMarker([group.lat, group.lon], {radius: 4 + Math.sqrt(group.count), color: "#1d6b2a", weight: 1,
        fillColor: "#1d6b2a", fillOpacity: 0.35, className: "group-marker"})
        .bindTooltip(`${group.count} ${config.texts.recipients}`).addTo(map);
    }
    // At once, not animated: the first view is where the page starts, not a move the operator made.
    if (bounds.isValid()) map.fitBounds(bounds, {maxZoom: 16, padding: [12, 12], animate: false});
    setupWiden(map, el);

    const timeZone = el.dataset.timezone || "Europe/Amsterdam";
    const markers = new Map();
    const popup = (tip) => {
      const box = document.createElement("div");
      box.className = "tip-popup";
      const h = document.createElement("strong");
      const at = new Date(tip.received_at);
      h.textContent = `#${tip.id} · ${Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString("nl-NL", {timeZone, hour: "2-digit", minute: "2-digit"})}`;
      box.append(h);
      if (tip.location) {
        const p = document.createElement("p");
        p.className = "where";
        p.textContent = tip.location;
        box.append(p);
      }
      const text = document.createElement("p");
      text.textContent = tip.text;
      box.append(text);
      return box;
    };
    const place = (tip) => {
      if (tip.lat == null || tip.lon == null) return;
      const known = markers.get(tip.id);
      if (known) {
        known.setLatLng([tip.lat, tip.lon]);
        known.setPopupContent(popup(tip));
        return;
      }
      const marker = L.circleMarker([tip.lat, tip.lon], {radius: 8, color: "#fff", weight: 2, fillColor: "#a30000",
        fillOpacity: 1, className: `tip-marker tip-${tip.id}`})
        .bindPopup(popup(tip))
        .bindTooltip(`#${tip.id}`, {permanent: true, direction: "right", className: "tip-label", offset: [6, 0]})
        .addTo(map);
      markers.set(tip.id, marker);
      el.dataset.tips = String(markers.size);
    };
    config.tips.forEach(place);
    el.dataset.tips = String(markers.size);
    // The live page's stream hands every new or changed tip to the page (controlroom.js).
    document.addEventListener("controlroom:tip", (event) => place(event.detail));
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const el of document.querySelectorAll("[data-map]")) {
      const config = JSON.parse(el.dataset.map);
      if (config.pick) setupPicker(el, config);
      else setupView(el, config);
    }
  });
})();
