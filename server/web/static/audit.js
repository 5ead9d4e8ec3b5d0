/* Gridwalk route audit: a supervisor picks an assignment and checks where and when each meter
   was read, reviews the flags, orders re-reads and closes the assignment. Plain JS over the
   JSON API, no build step; the frame, the session and the API call are common.js's.
   Leaflet is optional: without it the lists and the evidence still work, and the map area
   says what is missing. Everything the API sends is put on the page as text, never as HTML. */

import { $, LOCALE, TIME_ZONE, api, at, errorText, fact, h, label, showError, startPage, t, zoneName } from "./common.js";

// A meter's state (server/audit/service.py MeterState): disputed is a reading a supervisor
// upheld a flag on; an unread meter is "not read yet" until the window closes, then missed.
const STATES = ["read", "skipped", "disputed", "not_read_yet", "missed", "flagged"];
const STATE_COLOURS = {
  read: "#2f9e44",
  skipped: "#f08c00",
  disputed: "#9c36b5",
  not_read_yet: "#adb5bd",
  missed: "#343a40",
  flagged: "#e03131",
};
const STATE_LABELS = {
  read: t("Read"),
  skipped: t("Skipped"),
  disputed: t("Disputed"),
  not_read_yet: t("Not read yet"),
  missed: t("Missed"),
  flagged: t("Flagged"),
};
const SEVERITIES = ["fail", "warn", "info"];
const SEVERITY_LABELS = { fail: t("fail"), warn: t("warn"), info: t("info") };
// What each flag's code is called (common/rules/facts.py CODES); the sentence comes from the API.
const FLAG_LABELS = {
  no_fix: t("No position fix"),
  mock_location: t("Mock location"),
  far_from_meter: t("Far from the meter"),
  not_on_track: t("Not on the track"),
  no_dwell: t("No stop at the meter"),
  impossible_speed: t("Impossible speed"),
  too_fast: t("Too quick between meters"),
  outside_window: t("Outside the reading window"),
  clock_skew: t("Device clock off"),
  negative_consumption: t("Negative consumption"),
  high_consumption: t("High consumption"),
  low_consumption: t("Low consumption"),
  unchanged: t("Register unchanged"),
  missed: t("Missed meter"),
  wrong_meter_order: t("Out of route order"),
  replayed_track: t("Replayed track"),
  fix_on_meter: t("Fix exactly on the meter"),
};
// The reader's skip reasons (common/wire.py): the handheld's own words for them.
const SKIP_LABELS = {
  no_access: t("No access"),
  locked: t("Door locked"),
  dog: t("Dog"),
  meter_missing: t("Meter missing"),
  meter_damaged: t("Meter damaged"),
  other: t("Other reason"),
};
const ASSIGNMENT_LABELS = { open: t("Open"), closed: t("Closed") };
// The API's review values are accepted/rejected; what the supervisor did is dismiss or uphold.
const REVIEW_LABELS = { accepted: t("dismissed"), rejected: t("upheld") };
const ORDER_LABELS = { open: t("ordered"), done: t("done"), cancelled: t("cancelled") };
const TRACK_COLOUR = "#1c7ed6";
const LABEL_MIN_ZOOM = 15; // farther out, the order numbers would bury the pins
const PENDING_REFRESH_MS = 3000; // flags appear within seconds of a push

const state = {
  config: {},
  assignments: [],
  assignmentId: null,
  detail: null,
  timeline: null,
  selection: { meterId: null, flagId: null, readingId: null },
  notice: null,
};

// Times in the page's zone (named), in its language; a window's dates are days, not instants.
const dateTime = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "medium", hourCycle: "h23", timeZone: TIME_ZONE });
const dateTimeShort = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short", hourCycle: "h23", timeZone: TIME_ZONE });
const dateOnly = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeZone: "UTC" });

// A time that stands alone (the evidence, the header: what a supervisor quotes in a note or a
// complaint) carries its zone beside it; a pane of many times (the assignments, the flags, the
// timeline) names the zone once at its head, as the outage page does.
function when(iso) {
  return iso ? t("{time} ({zone})", { time: dateTime.format(new Date(iso)), zone: zoneName() }) : "—";
}

function timesIn() {
  return t("times in {zone}", { zone: zoneName() });
}

function timeSpan(start, end, { zone = true } = {}) {
  const [a, b] = [new Date(start), new Date(end)];
  const text = dateTimeShort.formatRange ? dateTimeShort.formatRange(a, b) : `${dateTimeShort.format(a)} – ${dateTimeShort.format(b)}`;
  return zone ? t("{time} ({zone})", { time: text, zone: zoneName() }) : text;
}

function windowText(start, end) {
  const a = new Date(start);
  const b = new Date(end);
  return dateOnly.formatRange ? dateOnly.formatRange(a, b) : `${dateOnly.format(a)} – ${dateOnly.format(b)}`;
}

function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return t("{s} s", { s });
  if (s < 3600) return t("{m} min {s} s", { m: Math.floor(s / 60), s: s % 60 });
  if (s < 86400) return t("{h} h {m} min", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  return t("{d} d {h} h", { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
}

function metres(m) {
  if (m === null || m === undefined) return "—";
  return m < 1000 ? t("{n} m", { n: Math.round(m) }) : t("{n} km", { n: (m / 1000).toFixed(m < 10000 ? 2 : 1) });
}

// ---------------------------------------------------------------- entering and leaving

async function enter() {
  ensureMap(); // once the view is shown, so that Leaflet can measure its box
  await loadAssignments();
  const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("assignment"));
  if (wanted) await openAssignment(wanted);
}

/** On sign-out: nothing of this user's audit stays on the page for the next one to see. */
function reset() {
  Object.assign(state, { assignments: [], assignmentId: null, detail: null, timeline: null, notice: null });
  state.selection = { meterId: null, flagId: null, readingId: null };
  if (map) {
    layers.clearLayers();
    evidenceLayer.clearLayers();
    pins.clear();
  }
  $("assignment-list").replaceChildren();
  $("assignment-title").textContent = t("Pick an assignment");
  $("assignment-sub").textContent = t("Its route, track and flags appear here.");
  $("assignment-verdict").hidden = true;
  $("exports").hidden = true;
  $("close-assignment").hidden = true;
  $("flag-count").textContent = "";
  $("flag-pending").replaceChildren();
  $("list-zone").textContent = "";
  $("flag-list").replaceChildren(h("li", { class: "empty" }, t("Pick an assignment to see its flags.")));
  $("evidence").replaceChildren();
  $("timeline").hidden = true;
  const legend = $("legend");
  if (legend) legend.remove();
}

// ---------------------------------------------------------------- assignments

async function loadAssignments() {
  const status = $("status-filter").value;
  try {
    state.assignments = await api("/audit/assignments" + (status ? `?status=${status}` : ""));
  } catch (err) {
    showError(err);
    return;
  }
  renderAssignments();
}

function renderAssignments() {
  const list = $("assignment-list");
  list.replaceChildren();
  $("list-zone").textContent = timesIn();
  if (!state.assignments.length) {
    list.append(h("li", { class: "empty" }, t("No assignments in your grid.")));
    return;
  }
  for (const a of state.assignments) {
    const share = (n) => `${a.meters ? (100 * n) / a.meters : 0}%`;
    // Unread meters are late only once the window has closed.
    const unread = a.window_closed ? t("missed meters") : t("not read yet");
    const title = a.window_closed
      ? t("{read} read, {skipped} skipped, {missing} missed", a)
      : t("{read} read, {skipped} skipped, {missing} not read yet", a);
    const bar = h("div", { class: "progress", title });
    for (const [kind, n] of [["read", a.read], ["skipped", a.skipped], ["missing", a.missing]]) {
      const seg = h("span", { class: `seg seg-${kind}` });
      seg.style.width = share(n);
      bar.append(seg);
    }
    const figure = (label, value, kind) =>
      h("div", { class: "figure" + (kind ? ` figure-${kind}` : "") }, h("dt", {}, label), h("dd", {}, value));
    list.append(
      h("li", {},
        h("button", {
          type: "button",
          class: "assignment" + (a.id === state.assignmentId ? " selected" : ""),
          "data-assignment-id": a.id,
          onclick: () => openAssignment(a.id),
        },
          h("div", { class: "a-top" },
            h("span", { class: "a-route" }, a.route_code),
            pendingBadge(a),
            h("span", { class: `badge status-${a.status}` }, label(ASSIGNMENT_LABELS, a.status))),
          a.route_name && a.route_name !== a.route_code ? h("div", { class: "a-name" }, a.route_name) : null,
          h("div", { class: "a-meta" }, `${a.cycle} · ${a.reader} · ${windowText(a.window_start, a.window_end)}`),
          h("div", { class: "a-meta a-read" },
            a.first_read_at ? t("read {span}", { span: timeSpan(a.first_read_at, a.last_read_at, { zone: false }) }) : t("nothing read yet")),
          // Not validated yet: the pending badge says so; the verdict comes with the flags.
          a.verdict ? h("div", { class: `a-verdict verdict-${a.verdict.code}` }, a.verdict.message) : null,
          bar,
          h("dl", { class: "figures" },
            figure(t("meters"), a.meters),
            figure(t("read"), a.read, "read"),
            figure(t("skipped"), a.skipped, "skipped"),
            figure(unread, a.missing, "missing"),
            figure(t("walked"), metres(a.distance_walked_m))),
          h("div", { class: "a-flags" },
            h("span", { class: "muted" }, t("Open flags")),
            SEVERITIES.map((s) => h("span", { class: `chip sev-${s}` + (a.flagged[s] ? "" : " zero"), "data-severity": s },
              `${a.flagged[s]} ${SEVERITY_LABELS[s]}`))))),
    );
  }
}

// New data not yet validated: its flags are on their way (the server validates right after a
// push, off the push's path), so the flags shown may still change.
function pendingBadge(a) {
  if (!a.validation_pending) return null;
  return h("span", {
    class: "badge validation-pending",
    title: t("New data since {time} is being validated; the flags may still change.", { time: when(a.validation_pending_since) }),
  }, t("validation pending"));
}

let pendingRefresh = 0;

/** While the open assignment's validation is pending, look again in a few seconds. */
function refreshWhilePending(a) {
  clearTimeout(pendingRefresh);
  if (!a.validation_pending) return;
  const id = a.id;
  pendingRefresh = setTimeout(() => {
    if (state.assignmentId === id) refreshAfterChange().catch(showError);
  }, PENDING_REFRESH_MS);
}

function routeTitle(a) {
  return a.route_name && a.route_name !== a.route_code ? `${a.route_code} · ${a.route_name}` : a.route_code;
}

async function openAssignment(id) {
  state.assignmentId = id;
  state.selection = { meterId: null, flagId: null, readingId: null };
  state.notice = null;
  history.replaceState(null, "", `#assignment=${id}`);
  renderAssignments();
  try {
    [state.detail, state.timeline] = await Promise.all([
      api(`/audit/assignments/${id}`),
      api(`/audit/assignments/${id}/timeline`),
    ]);
  } catch (err) {
    showError(err);
    return;
  }
  renderDetail(true);
}

/** Fetch the open assignment and the list again after a change, keeping the selection. */
async function refreshAfterChange() {
  const id = state.assignmentId;
  const [detail, timeline] = await Promise.all([api(`/audit/assignments/${id}`), api(`/audit/assignments/${id}/timeline`), loadAssignments()]);
  state.detail = detail;
  state.timeline = timeline;
  renderDetail(false);
}

function renderDetail(fit) {
  const d = state.detail;
  const a = d.assignment;
  $("assignment-title").textContent = routeTitle(a);
  const read = a.first_read_at ? t("read {span}", { span: timeSpan(a.first_read_at, a.last_read_at) }) : t("nothing read yet");
  $("assignment-sub").replaceChildren(
    ...[
      t("cycle {cycle}", { cycle: a.cycle }),
      t("reader {reader}", { reader: a.reader }),
      t("window {window}", { window: windowText(a.window_start, a.window_end) }),
      read,
      a.distance_walked_m === null ? null : t("walked {distance}", { distance: metres(a.distance_walked_m) }),
    ]
      .filter((text) => text !== null)
      .map((text) => h("span", { class: "sub-item" }, text)),
  );
  // The day in one line, as the server judged it from the cleaned track and the fixes.
  $("assignment-verdict").textContent = a.verdict ? a.verdict.message : "";
  $("assignment-verdict").className = a.verdict ? `verdict verdict-${a.verdict.code}` : "verdict";
  $("assignment-verdict").hidden = !a.verdict;
  $("exports").hidden = false;
  $("close-assignment").hidden = a.status !== "open";
  // The timeline and the verdict take their height first: the map is fitted to what is left.
  renderTimeline();
  drawMap(fit);
  renderLegend();
  renderFlags();
  renderEvidence();
  refreshWhilePending(a);
}

// ---------------------------------------------------------------- map

let map = null;
let layers = null;
let evidenceLayer = null;
const pins = new Map(); // meter id -> circle marker

function ensureMap() {
  if (map) return;
  if (!window.L) {
    $("map").hidden = true;
    $("map-missing").hidden = false;
    return;
  }
  map = L.map("map", { zoomSnap: 0.5, attributionControl: false });
  if (state.config.map_tile_url) {
    // Past the deepest zoom the base map holds (an MBTiles file's maxzoom), its tiles are enlarged.
    L.tileLayer(state.config.map_tile_url, {
      maxZoom: 19,
      maxNativeZoom: state.config.map_tile_max_zoom || undefined,
      attribution: state.config.map_tile_attribution || "",
    }).addTo(map);
    L.control.attribution({ prefix: false }).addTo(map);
  } else {
    $("map").classList.add("no-tiles");
  }
  L.control.scale({ imperial: false }).addTo(map);
  map.setView([0, 0], 2);
  layers = L.layerGroup().addTo(map);
  evidenceLayer = L.layerGroup().addTo(map);
  map.on("zoomend", () => $("map").classList.toggle("labels-hidden", map.getZoom() < LABEL_MIN_ZOOM));
}

function pinStyle(meter, selected) {
  return {
    radius: selected ? 11 : 7,
    color: selected ? "#0b1f33" : "#ffffff",
    weight: selected ? 3 : 1.5,
    fillColor: STATE_COLOURS[meter.state],
    fillOpacity: 0.95,
  };
}

/** Each meter's reading numbers, in the order the readings were taken (1 = first). */
function readingNumbers(readings) {
  const numbers = new Map();
  readings.forEach((r, i) => numbers.set(r.meter_id, [...(numbers.get(r.meter_id) || []), i + 1]));
  return numbers;
}

function drawMap(fit) {
  if (!map) return;
  layers.clearLayers();
  evidenceLayer.clearLayers();
  pins.clear();
  const d = state.detail;
  const bounds = L.latLngBounds([]);
  const track = d.track.map((p) => [p.lat, p.lon]);
  if (track.length) {
    L.polyline(track, { className: "track", color: TRACK_COLOUR, weight: 3, opacity: 0.8, interactive: false }).addTo(layers);
    track.forEach((p) => bounds.extend(p));
  }
  const numbers = readingNumbers(d.readings);
  for (const meter of d.meters) {
    const at = [meter.lat, meter.lon];
    bounds.extend(at);
    const pin = L.circleMarker(at, { ...pinStyle(meter, false), className: `pin pin-${meter.state} meter-${meter.id}` });
    pin.bindTooltip(
      h("div", { class: "pin-tip" },
        h("strong", {}, meter.meter_no), ` · ${STATE_LABELS[meter.state]}`, h("br"),
        meter.customer_name, h("br"),
        h("span", { class: "muted" }, meter.address)),
      { direction: "top", offset: [0, -8] },
    );
    pin.on("click", () => select(meter.id, bestFlagOf(meter.id)));
    pin.addTo(layers);
    pins.set(meter.id, pin);
    if (numbers.has(meter.id)) {
      const label = numbers.get(meter.id).join(", ");
      const icon = L.divIcon({ className: "order-label", html: label, iconSize: null, iconAnchor: [-10, 9] });
      L.marker(at, { icon, interactive: false, keyboard: false }).addTo(layers);
    }
  }
  restylePins();
  drawEvidenceLayer();
  if (fit) {
    map.invalidateSize(); // the header and the timeline above and below it may have changed size
    // The legend sits bottom right: keep the pins clear of it.
    if (bounds.isValid()) map.fitBounds(bounds, { paddingTopLeft: [48, 48], paddingBottomRight: [190, 48], maxZoom: 18 });
    else map.setView([0, 0], 2);
  }
}

function restylePins() {
  for (const [id, pin] of pins) {
    const meter = meterById(id);
    const selected = id === state.selection.meterId;
    pin.setStyle(pinStyle(meter, selected));
    pin.getElement().classList.toggle("selected", selected);
    if (selected) pin.bringToFront();
  }
}

/** On the map, the selected reading's fix: where it was, how sure, how far from the meter. */
function drawEvidenceLayer() {
  if (!map) return;
  evidenceLayer.clearLayers();
  const meter = meterById(state.selection.meterId);
  const reading = selectedReading();
  if (!meter || !reading || !reading.fix) return;
  const fix = [reading.fix.lat, reading.fix.lon];
  if (reading.fix.accuracy_m) {
    L.circle(fix, { radius: reading.fix.accuracy_m, className: "fix-accuracy", color: "#0b1f33", weight: 1, fillOpacity: 0.08, interactive: false }).addTo(evidenceLayer);
  }
  L.polyline([fix, [meter.lat, meter.lon]], { className: "fix-line", color: "#0b1f33", weight: 1.5, dashArray: "4 5", interactive: false }).addTo(evidenceLayer);
  L.circleMarker(fix, { className: "fix", radius: 4, color: "#0b1f33", weight: 2, fillColor: "#ffffff", fillOpacity: 1, interactive: false }).addTo(evidenceLayer);
}

function renderLegend() {
  if (!map) return;
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const m of state.detail.meters) counts[m.state] += 1;
  const legend = h("div", { class: "legend", id: "legend" },
    STATES.map((s) => {
      const dot = h("span", { class: "dot" });
      dot.style.background = STATE_COLOURS[s];
      return h("div", { class: "legend-row", "data-state": s }, dot, STATE_LABELS[s], h("span", { class: "count" }, counts[s]));
    }),
    h("div", { class: "legend-row" }, h("span", { class: "line" }), t("Track")),
    h("div", { class: "legend-row" }, h("span", { class: "order-sample" }, "3"), t("Order read")),
  );
  const old = $("legend");
  if (old) old.replaceWith(legend);
  else document.querySelector(".map-wrap").append(legend);
}

// ---------------------------------------------------------------- flags and selection

function meterById(id) {
  return state.detail ? state.detail.meters.find((m) => m.id === id) : undefined;
}

function flagRank(f) {
  return [f.review ? 1 : 0, SEVERITIES.indexOf(f.severity), f.id];
}

function byRank(a, b) {
  const [x, y] = [flagRank(a), flagRank(b)];
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** The flag to show when a meter is clicked: its open flag of the highest severity. */
function bestFlagOf(meterId) {
  const flags = state.detail.flags.filter((f) => f.meter_id === meterId).sort(byRank);
  return flags.length ? flags[0].id : null;
}

function select(meterId, flagId, readingId = null) {
  state.selection = { meterId, flagId, readingId };
  state.notice = null;
  restylePins();
  drawEvidenceLayer();
  renderFlags();
  renderEvidence();
  renderTimeline();
  const pin = pins.get(meterId);
  if (pin) map.panInside(pin.getLatLng(), { padding: [60, 60] });
}

function renderFlags() {
  const list = $("flag-list");
  list.replaceChildren();
  const flags = [...state.detail.flags].sort(byRank);
  const open = flags.filter((f) => !f.review).length;
  $("flag-count").textContent = flags.length ? [t("{open} open · {all} in all", { open, all: flags.length }), timesIn()].join(" · ") : "";
  $("flag-pending").replaceChildren(...[pendingBadge(state.detail.assignment)].filter(Boolean));
  const readAt = new Map(state.detail.readings.map((r) => [r.id, r.read_at]));
  if (!flags.length) list.append(h("li", { class: "empty" }, t("No flags on this assignment.")));
  const { meterId, flagId } = state.selection;
  for (const flag of flags) {
    const meter = meterById(flag.meter_id);
    let cls = "flag";
    if (flag.id === flagId) cls += " selected";
    else if (meterId !== null && flag.meter_id === meterId) cls += " related";
    if (flag.review) cls += " reviewed";
    list.append(
      h("li", {},
        h("button", { type: "button", class: cls, "data-flag-id": flag.id, onclick: () => select(flag.meter_id, flag.id) },
          h("div", { class: "flag-top" },
            h("span", { class: `chip sev-${flag.severity}` }, label(SEVERITY_LABELS, flag.severity)),
            h("span", { class: "flag-code", "data-code": flag.code }, label(FLAG_LABELS, flag.code)),
            reviewBadge(flag)),
          h("div", { class: "flag-meter" },
            [meter ? `${meter.meter_no} · ${meter.address}` : t("whole assignment"),
              flag.reading_id && readAt.has(flag.reading_id) ? at(readAt.get(flag.reading_id)) : null].filter(Boolean).join(" · ")),
          h("div", { class: "flag-message" }, flag.message))),
    );
  }
  const chosen = list.querySelector(".flag.selected");
  if (chosen) chosen.scrollIntoView({ block: "nearest" });
}

function reviewBadge(flag) {
  if (!flag.review) return h("span", { class: "badge review-open" }, t("to review"));
  return h("span", { class: `badge review-${flag.review}` }, label(REVIEW_LABELS, flag.review));
}

/** The reading the evidence is about: the flag's, else the meter's current one. */
function selectedReading() {
  const d = state.detail;
  if (!d) return null;
  if (state.selection.readingId) return d.readings.find((r) => r.id === state.selection.readingId) || null;
  const flag = d.flags.find((f) => f.id === state.selection.flagId);
  if (flag && flag.reading_id) return d.readings.find((r) => r.id === flag.reading_id) || null;
  const ofMeter = d.readings.filter((r) => r.meter_id === state.selection.meterId && !r.superseded_by);
  return ofMeter.length ? ofMeter[ofMeter.length - 1] : null;
}

// ---------------------------------------------------------------- evidence, review, re-read

function renderEvidence() {
  const box = $("evidence");
  box.replaceChildren();
  box.scrollTop = 0; // the notice and the flag come first
  const d = state.detail;
  const meter = meterById(state.selection.meterId);
  const flag = d && d.flags.find((f) => f.id === state.selection.flagId);
  if (state.notice) box.append(h("p", { class: "notice", role: "status" }, state.notice));
  if (!meter && !flag) {
    box.append(h("p", { class: "muted" }, t("Click a flag or a meter to see the reading and its evidence.")));
    return;
  }
  if (flag) box.append(flagCard(flag));
  if (meter) {
    const numbers = new Map(d.readings.map((r, i) => [r.id, i + 1]));
    const readings = d.readings.filter((r) => r.meter_id === meter.id);
    const focus = selectedReading();
    if (!readings.length) {
      box.append(h("div", { class: "card" }, h("h3", {}, t("Reading")),
        h("p", { class: "muted" }, t("No reading and no skip reason has been received for this meter."))));
    }
    for (const r of readings) box.append(readingCard(r, meter, numbers.get(r.id), d.readings.length, r === focus));
    box.append(meterCard(meter));
    box.append(rereadCard(meter));
  }
}

function flagCard(flag) {
  const out = h("p", { class: "form-error", role: "alert" });
  const note = h("textarea", { id: "review-note", rows: 2, maxlength: 1000, placeholder: t("Why: what you checked, what you found") });
  // Open flags of the same code on this assignment (54 typed-at-home fixes are one finding
  // to a supervisor): reviewed together with one note when asked, all or none.
  const like = flag.review ? [] : state.detail.flags.filter((f) => f.code === flag.code && !f.review);
  const all = like.length > 1
    ? h("input", { type: "checkbox", id: "review-all", "data-count": like.length })
    : null;
  const decide = (decision) => async (event) => {
    event.preventDefault();
    if (!note.value.trim()) {
      out.textContent = t("Write a note saying why.");
      return;
    }
    out.textContent = "";
    const together = all && all.checked;
    try {
      if (together) {
        await api("/audit/flags/review", { method: "POST", body: { flag_ids: like.map((f) => f.id), decision, note: note.value } });
      } else {
        await api(`/audit/flags/${flag.id}/review`, { method: "POST", body: { decision, note: note.value } });
      }
    } catch (err) {
      out.textContent = errorText(err);
      return;
    }
    if (together) {
      state.notice = decision === "accepted"
        ? t("{n} flags dismissed: the readings stand.", { n: like.length })
        : t("{n} flags upheld: the readings are disputed.", { n: like.length });
    } else {
      state.notice = decision === "accepted" ? t("Flag dismissed: the reading stands.") : t("Flag upheld: the reading is disputed.");
    }
    await refreshAfterChange().catch(showError);
  };
  const reviewed = flag.review
    ? h("p", { class: `review-state review-${flag.review}` },
        h("strong", {}, flag.review === "accepted" ? t("Dismissed: the reading stands") : t("Upheld: the reading is disputed")), ` ${when(flag.reviewed_at)}: `, flag.review_note)
    : h("p", { class: "review-state muted" }, t("Not reviewed yet."));
  return h("div", { class: `card flag-card sev-border-${flag.severity}`, id: "flag-evidence", "data-flag-id": flag.id },
    h("div", { class: "card-head" },
      h("h3", {}, h("span", { class: `chip sev-${flag.severity}` }, label(SEVERITY_LABELS, flag.severity)), " ", label(FLAG_LABELS, flag.code)),
      reviewBadge(flag)),
    h("p", { class: "flag-text" }, flag.message),
    reviewed,
    h("form", { class: "review-form", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "review-note" }, flag.review ? t("Change the review") : t("Review")),
      note,
      all ? h("label", { class: "review-all", for: "review-all" }, all,
        " ", t("Review all {n} like this: the open “{label}” flags of this assignment", { n: like.length, label: label(FLAG_LABELS, flag.code) })) : null,
      out,
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "btn btn-accept", id: "review-accept", onclick: decide("accepted") }, t("Dismiss: the reading stands")),
        h("button", { type: "button", class: "btn btn-reject", id: "review-reject", onclick: decide("rejected") }, t("Uphold: the reading is disputed"))),
      h("p", { class: "hint muted" }, t("A disputed reading stays on record."))));
}

function meterCard(meter) {
  const badge = h("span", { class: `badge state-badge` }, STATE_LABELS[meter.state]);
  badge.style.background = STATE_COLOURS[meter.state];
  return h("div", { class: "card", id: "meter-evidence", "data-meter-id": meter.id },
    h("div", { class: "card-head" }, h("h3", {}, t("Meter {meter}", { meter: meter.meter_no })), badge),
    h("dl", { class: "facts" },
      fact(t("Customer"), meter.customer_name),
      fact(t("Account"), meter.account_no),
      fact(t("Address"), meter.address),
      fact(t("Route seq."), meter.sequence),
      fact(t("Last cycle"), meter.last_reading ?? "—"),
      meter.position_uncertainty_m ? fact(t("Mapped position"), t("± {distance}", { distance: metres(meter.position_uncertainty_m) })) : null,
      learnedFact(meter)));
}

/** Where past cycles' honest fixes put the meter, if enough of them agree. */
function learnedFact(meter) {
  const p = meter.learned_position;
  if (!p) return null;
  const away = distanceMetres(meter.lat, meter.lon, p.lat, p.lon);
  return fact(t("Learned position"),
    h("span", { id: "learned-position" }, t("meter probably at {position} (from {n} readings, ±{spread})", {
      position: `${p.lat.toFixed(6)}, ${p.lon.toFixed(6)}`, n: p.readings, spread: metres(p.spread_m),
    })),
    h("span", { class: "muted" }, " ", t("— {distance} from the mapped position", { distance: metres(away) })));
}

/** Metres between two points close together (the flat-earth approximation is plenty here). */
function distanceMetres(lat1, lon1, lat2, lon2) {
  const north = (lat2 - lat1) * 111_320;
  const east = (lon2 - lon1) * 111_320 * Math.cos(((lat1 + lat2) / 2) * Math.PI / 180);
  return Math.hypot(north, east);
}

function readingCard(r, meter, number, total, focus) {
  const facts = [];
  if (r.value !== null) facts.push(fact(t("Value"), h("strong", { class: "value" }, r.value)));
  else facts.push(fact(t("Skipped"), h("strong", { "data-skip-code": r.skip_code }, r.skip_code ? label(SKIP_LABELS, r.skip_code) : "—")));
  if (r.note) facts.push(fact(t("Note"), r.note));
  facts.push(fact(t("Read at"), when(r.read_at)));
  facts.push(fact(t("Confirmed"), when(r.confirmed_at)));
  const late = new Date(r.received_at) - new Date(r.read_at);
  facts.push(fact(t("Received"), when(r.received_at), h("span", { class: "muted" }, " ", t("({duration} after)", { duration: duration(late) }))));
  if (r.fix) {
    const gap = r.fix.distance_to_meter_m;
    const acc = r.fix.accuracy_m;
    const far = acc !== null && acc !== undefined && gap > acc;
    const verdict = r.fix.exactly_on_meter
      ? t("— exactly on the meter's coordinates: suspicious, a real fix is never exactly on the meter")
      : far ? t("— farther than the fix's accuracy") : t("— within the fix's accuracy");
    facts.push(fact(t("Fix"), `${r.fix.lat.toFixed(6)}, ${r.fix.lon.toFixed(6)}`,
      h("span", { class: "muted" }, " ", acc !== null && acc !== undefined ? `± ${metres(acc)}` : t("(no accuracy)"))));
    facts.push(fact(t("To meter"), h("span", { class: far || r.fix.exactly_on_meter ? "bad" : "good", id: number ? `distance-${number}` : null },
      metres(gap), " ", verdict)));
    const learned = meter.learned_position;
    if (learned) facts.push(fact(t("To learned position"), h("span", { id: number ? `learned-distance-${number}` : null }, metres(distanceMetres(r.fix.lat, r.fix.lon, learned.lat, learned.lon)))));
    if (r.fix.fix_time) facts.push(fact(t("Fix age"), t("{duration} before the reading", { duration: duration(new Date(r.read_at) - new Date(r.fix.fix_time)) })));
    facts.push(fact(t("Provider"), r.fix.provider || "—", r.fix.mock ? h("span", { class: "bad" }, " ", t("— mock location")) : ""));
  } else {
    facts.push(fact(t("Fix"), h("span", { class: "bad" }, t("none: no position recorded with this reading"))));
  }
  const tags = [];
  if (r.superseded_by) tags.push(h("span", { class: "badge tag-superseded" }, t("superseded by a re-read")));
  if (r.reread_of || r.supersedes) tags.push(h("span", { class: "badge tag-reread" }, t("re-read")));
  if (r.state === "disputed") tags.push(h("span", { class: "badge review-rejected" }, t("disputed")));
  return h("div", { class: "card reading-card" + (focus ? " focus" : ""), "data-reading-id": r.id },
    h("div", { class: "card-head" }, h("h3", {}, t("Reading #{n}", { n: number }), h("span", { class: "muted" }, " ", t("of {total}", { total }))), h("span", {}, tags)),
    h("dl", { class: "facts" }, facts));
}

function rereadCard(meter) {
  const d = state.detail;
  const orders = d.reread_orders.filter((o) => o.meter_id === meter.id);
  const card = h("div", { class: "card", id: "reread" }, h("h3", {}, t("Re-read")));
  for (const o of orders) {
    card.append(h("p", { class: "reread-order", "data-order-id": o.id },
      h("span", { class: `badge order-${o.status}` }, label(ORDER_LABELS, o.status)), " ", o.reason));
  }
  if (orders.some((o) => o.status === "open")) {
    card.append(h("p", { class: "muted" }, t("The reader's handheld gets the order on its next sync.")));
    return card;
  }
  if (d.assignment.status !== "open") {
    card.append(h("p", { class: "muted" }, t("The assignment is closed: re-reads go to an open assignment.")));
    return card;
  }
  const reason = h("input", { id: "reread-reason", maxlength: 500, placeholder: t("Reason, e.g. register unchanged since last cycle") });
  const out = h("p", { class: "form-error", role: "alert" });
  const submit = async (event) => {
    event.preventDefault();
    if (!reason.value.trim()) {
      out.textContent = t("Give a reason for the re-read.");
      return;
    }
    try {
      await api(`/audit/assignments/${state.assignmentId}/rereads`, {
        method: "POST",
        body: { meter_id: meter.id, reason: reason.value },
      });
    } catch (err) {
      out.textContent = errorText(err);
      return;
    }
    state.notice = t("Re-read of {meter} ordered: the reader's handheld gets it on its next sync.", { meter: meter.meter_no });
    await refreshAfterChange().catch(showError);
  };
  card.append(h("form", { class: "reread-form", onsubmit: submit },
    reason,
    h("button", { type: "submit", class: "btn", id: "reread-submit" }, t("Order re-read"))),
    out);
  return card;
}

// ---------------------------------------------------------------- timeline and speed

const SVG_NS = "http://www.w3.org/2000/svg";
const clockOnly = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: TIME_ZONE });
// A window of several days: the ticks say the day too, or 08:00 would stand for three mornings.
const dayAndClock = new Intl.DateTimeFormat(LOCALE, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: TIME_ZONE });

/** An SVG element with attributes (on* are listeners) and children. */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

/** A path through the values that are there; a gap (null), a break in the track (the server's
    break_before: the handheld off, a night) or a new meter lifts the pen. */
function pathOf(points, x, y, value, breakOn) {
  let d = "";
  let pen = false;
  let last = undefined;
  for (const p of points) {
    const v = value(p);
    if (v === null || v === undefined) {
      pen = false;
      continue;
    }
    const key = breakOn ? breakOn(p) : null;
    d += `${pen && key === last && !p.break_before ? "L" : "M"}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
    last = key;
  }
  return d;
}

/** Ticks on the time axis every 5 min to a day, about one per 110 px. */
function timeTicks(t0, t1, width) {
  const steps = [5, 10, 15, 30, 60, 120, 240, 360, 720, 1440].map((m) => m * 60000);
  const wanted = Math.max(1, Math.floor(width / 110));
  const step = steps.find((s) => (t1 - t0) / s <= wanted) || steps[steps.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return ticks;
}

/** One chart: a line over time, the readings marked on it, a scale on the left. */
function chart({ id, title, points, value, breakOn, marks, markValue, height, top, unit, t0, t1, width, axis }) {
  const left = 64;
  const right = 12;
  const bottom = axis ? 18 : 4;
  const inner = height - top - bottom;
  const values = [...points.map(value), ...marks.map(markValue)].filter((v) => v !== null && v !== undefined);
  const max = Math.max(unit.min, ...values);
  const x = (iso) => left + ((new Date(iso).getTime() - t0) / Math.max(1, t1 - t0)) * (width - left - right);
  const y = (v) => top + inner - (v / max) * inner;
  const chosen = state.selection;
  const children = [
    svg("text", { x: 0, y: 11, class: "tl-title" }, title),
    svg("text", { x: left - 6, y: top + 9, class: "tl-scale", "text-anchor": "end" }, unit.say(max)),
    svg("text", { x: left - 6, y: top + inner, class: "tl-scale", "text-anchor": "end" }, unit.say(0)),
    svg("line", { x1: left, x2: width - right, y1: top + inner, y2: top + inner, class: "tl-axis" }),
    svg("path", { d: pathOf(points, x, y, value, breakOn), class: "tl-line" }),
  ];
  if (axis) {
    const tickLabel = t1 - t0 > 20 * 3600000 ? dayAndClock : clockOnly;
    for (const tick of timeTicks(t0, t1, width - left - right)) {
      const at = x(new Date(tick).toISOString());
      children.push(svg("line", { x1: at, x2: at, y1: top + inner, y2: top + inner + 3, class: "tl-axis" }));
      children.push(svg("text", { x: at, y: height - 3, class: "tl-scale", "text-anchor": "middle" }, tickLabel.format(new Date(tick))));
    }
  }
  for (const m of marks) {
    const meter = meterById(m.meter_id);
    const selected = chosen.readingId ? chosen.readingId === m.reading_id : chosen.meterId === m.meter_id;
    const v = markValue(m);
    const cx = x(m.t);
    const mark = svg("g", {
      class: "tl-mark" + (selected ? " selected" : ""),
      "data-reading-id": m.reading_id,
      onclick: () => selectReading(m),
    },
    svg("title", {}, t("Reading of {meter} at {time}", { meter: meter ? meter.meter_no : "—", time: when(m.t) })),
    // A band wider than the line, so that a mark is easy to hit.
    svg("rect", { x: cx - 6, y: top, width: 12, height: inner, class: "tl-hit" }),
    svg("line", { x1: cx, x2: cx, y1: top, y2: top + inner, class: "tl-mark-line" }),
    svg("circle", { cx, cy: v === null || v === undefined ? top + inner : y(v), r: selected ? 6 : 4.5, class: "tl-dot" }));
    children.push(mark);
  }
  return svg("svg", { id, class: "tl-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title }, children);
}

/** Clicking a reading's mark: its meter, its most severe flag, and that very reading. */
function selectReading(mark) {
  const flags = state.detail.flags.filter((f) => f.reading_id === mark.reading_id).sort(byRank);
  select(mark.meter_id, flags.length ? flags[0].id : null, mark.reading_id);
}

/** Time → distance from the cleaned track to the meter being read (the next one read), with
    the readings marked; under it the speed between cleaned points. Drawn as SVG to the box. */
function renderTimeline() {
  const box = $("timeline");
  const data = state.timeline;
  if (!data) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const body = $("timeline-charts");
  const times = [...data.points.map((p) => p.t), ...data.readings.map((r) => r.t)].map((iso) => new Date(iso).getTime());
  $("timeline-zone").textContent = timesIn();
  if (!times.length) {
    body.replaceChildren(h("p", { class: "muted empty" }, t("No track and no readings yet.")));
    return;
  }
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 60000);
  const width = Math.max(320, body.clientWidth || 600);
  body.replaceChildren(
    chart({
      id: "timeline-distance", title: t("Distance from the track to the meter being read"),
      points: data.points, value: (p) => p.distance_m, breakOn: (p) => p.meter_id,
      marks: data.readings, markValue: (m) => m.distance_m,
      height: 92, top: 16, unit: { min: 50, say: metres }, t0, t1, width, axis: false,
    }),
    chart({
      id: "timeline-speed", title: t("Speed"),
      points: data.points, value: (p) => p.speed_kmh, breakOn: null,
      marks: data.readings, markValue: () => null,
      height: 78, top: 16, unit: { min: 6, say: (v) => t("{n} km/h", { n: Math.round(v) }) }, t0, t1, width, axis: true,
    }),
  );
}

let redraw = 0;
window.addEventListener("resize", () => {
  cancelAnimationFrame(redraw);
  redraw = requestAnimationFrame(renderTimeline);
});

// ---------------------------------------------------------------- closing

/** Close the assignment before its window ends: what is still unread becomes `missed` (漏抄). */
async function closeAssignment() {
  const a = state.detail && state.detail.assignment;
  if (!a || a.status !== "open") return;
  const unread = a.missing === 1
    ? t("1 meter has neither a reading nor a skip: it will be flagged as missed.")
    : t("{n} meters have neither a reading nor a skip: each will be flagged as missed.", { n: a.missing });
  const question = [
    t("Close {route} (cycle {cycle}, reader {reader}) now?", { route: routeTitle(a), cycle: a.cycle, reader: a.reader }),
    [unread, t("The reader's handheld is told the assignment is withdrawn; this cannot be undone.")].join(" "),
  ].join("\n\n");
  if (!confirm(question)) return;
  const button = $("close-assignment");
  button.disabled = true;
  try {
    await api(`/audit/assignments/${a.id}/close`, { method: "POST" });
    state.selection = { meterId: null, flagId: null, readingId: null };
    await refreshAfterChange();
    const missed = state.detail.flags.filter((f) => f.code === "missed").length;
    state.notice = missed === 1
      ? t("Assignment closed: 1 meter flagged as missed.")
      : t("Assignment closed: {n} meters flagged as missed.", { n: missed });
    renderEvidence();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- exports

/** The exports need the bearer token, so they are fetched here and saved from a blob. */
async function download(name) {
  const id = state.assignmentId;
  try {
    const response = await api(`/audit/assignments/${id}/${name}`, { raw: true });
    const blob = await response.blob();
    const given = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: given ? given[1] : `assignment-${id}-${name}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    showError(err);
  }
}

// ---------------------------------------------------------------- start

function wire() {
  $("status-filter").addEventListener("change", loadAssignments);
  $("close-assignment").addEventListener("click", closeAssignment);
  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", () => download(button.dataset.export));
  }
}

async function fetchConfig() {
  try {
    const response = await fetch("/audit/config.json");
    if (response.ok) state.config = await response.json();
  } catch {
    // the defaults (no tiles) will do
  }
}

wire();
startPage({
  intro: t("For supervisors and administrators: audit the reading routes of your grid."),
  roles: ["supervisor", "admin"],
  rolesText: t("supervisors and administrators"),
  view: "audit-view",
  prepare: fetchConfig,
  enter,
  reset,
});
