/* Gridwalk cycle overview: a whole reading cycle at a glance for a supervisor's grid (an
   administrator: the utility). A table of routes (a page of them, sorted and filtered by the
   server: a cycle is ~1,000 routes) and a table of readers, with what is still unread and the
   days left in each window; each route opens its assignment on the audit page. Plain JS over
   the JSON API (/audit/cycles...); the frame, the session and the API call are common.js's. */

import { $, LOCALE, api, day, h, label, showError, startPage, t } from "./common.js";

const PAGE_SIZE = 100;
// How many recent cycles "who fails often" looks back over (/audit/readers/flags).
const FLAG_CYCLES = 3;
// Days left at or under which a window with unread meters is urgent, and soon.
const DAYS_URGENT = 1;
const DAYS_SOON = 2;

// A route's status (server/audit/cycles.py): complete when nothing is unread; missed when the
// window closed with meters unread.
const STATUSES = ["not_started", "in_progress", "complete", "missed"];
const STATUS_LABELS = {
  not_started: t("Not started"),
  in_progress: t("In progress"),
  complete: t("Complete"),
  missed: t("Missed"),
};

// The routes' columns: the API's sort key, the header, and whether it is a number (numbers
// sort largest first on the first click: the most unread, the most fails).
const ROUTE_COLUMNS = [
  { key: "route", label: t("Route") },
  { key: "grid", label: t("Grid") },
  { key: "reader", label: t("Reader") },
  { key: "status", label: t("Status") },
  { key: "meters", label: t("Meters"), number: true },
  { key: "read", label: t("Read"), number: true },
  { key: "skipped", label: t("Skipped"), number: true },
  { key: "unread", label: t("Unread"), number: true },
  { key: "fail", label: t("Open fails"), number: true },
  { key: "warn", label: t("Open warnings"), number: true },
  { key: "days_left", label: t("Days left"), number: true, ascending: true },
];
const READER_COLUMNS = [
  { key: "reader", label: t("Reader") },
  { key: "routes", label: t("Routes"), number: true },
  { key: "meters", label: t("Meters"), number: true },
  { key: "read", label: t("Read"), number: true },
  { key: "skipped", label: t("Skipped"), number: true },
  { key: "unread", label: t("Unread"), number: true },
  { key: "fail", label: t("Open fails"), number: true },
  { key: "warn", label: t("Open warnings"), number: true },
];

const number = new Intl.NumberFormat(LOCALE);
const percent = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });
const list = new Intl.ListFormat(LOCALE, { type: "conjunction" });

const state = {
  cycles: [],
  cycle: null,
  grid: "",
  status: "",
  reader: "",
  sort: "route",
  order: "asc",
  offset: 0,
  readersSort: "unread",
  readersOrder: "desc",
  overview: null,
  flags: null,
};

// ---------------------------------------------------------------- entering and leaving

async function enter() {
  state.cycles = await api("/audit/cycles");
  const select = $("cycle-select");
  select.replaceChildren(...state.cycles.map((c) => h("option", { value: c.cycle }, c.cycle)));
  if (!state.cycles.length) {
    fill($("totals"), h("p", { class: "empty" }, t("No cycles in your grid yet.")));
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("cycle");
  state.cycle = state.cycles.some((c) => c.cycle === wanted) ? wanted : state.cycles[0].cycle;
  select.value = state.cycle;
  await load();
}

/** On sign-out: nothing of this user's cycle stays on the page for the next one to see. */
function reset() {
  Object.assign(state, { cycles: [], cycle: null, overview: null, flags: null, offset: 0 });
  for (const id of ["cycle-select", "route-head", "route-rows", "reader-head", "reader-rows", "totals"]) {
    $(id).replaceChildren();
  }
  for (const id of ["cycle-window", "route-range", "flag-cycles"]) $(id).textContent = "";
}

function fill(el, ...children) {
  el.replaceChildren(...children);
  return el;
}

// ---------------------------------------------------------------- loading

function query() {
  const params = new URLSearchParams({
    sort: state.sort,
    order: state.order,
    limit: PAGE_SIZE,
    offset: state.offset,
    readers_sort: state.readersSort,
    readers_order: state.readersOrder,
  });
  if (state.grid) params.set("grid", state.grid);
  if (state.status) params.set("status", state.status);
  if (state.reader) params.set("reader", state.reader);
  return params;
}

let loading = 0; // the latest load's number: an older answer arriving late is dropped

async function load() {
  if (!state.cycle) return;
  const mine = ++loading;
  history.replaceState(null, "", `#cycle=${encodeURIComponent(state.cycle)}`);
  const flagParams = new URLSearchParams({ cycles: FLAG_CYCLES });
  if (state.grid) flagParams.set("grid", state.grid);
  try {
    const [overview, flags] = await Promise.all([
      api(`/audit/cycles/${encodeURIComponent(state.cycle)}?${query()}`),
      api(`/audit/readers/flags?${flagParams}`),
    ]);
    if (mine !== loading) return;
    Object.assign(state, { overview, flags });
  } catch (err) {
    showError(err);
    return;
  }
  render();
}

// ---------------------------------------------------------------- drawing

function render() {
  const o = state.overview;
  $("cycle-window").textContent = o.window_start
    ? t("window {start} – {end}", { start: day(o.window_start), end: day(o.window_end) })
    : "";
  renderFilters(o);
  renderTotals(o);
  renderHead($("route-head"), ROUTE_COLUMNS, state.sort, state.order, (key, order) => {
    Object.assign(state, { sort: key, order, offset: 0 });
    load();
  });
  fill($("route-rows"), ...(o.routes.length ? o.routes.map(routeRow) : [emptyRow(ROUTE_COLUMNS.length, t("No routes match."))]));
  const last = Math.min(o.total, state.offset + o.routes.length);
  $("route-range").textContent = o.total
    ? t("{first}–{last} of {total}", { first: number.format(state.offset + 1), last: number.format(last), total: number.format(o.total) })
    : "";
  $("prev-page").disabled = state.offset === 0;
  $("next-page").disabled = last >= o.total;
  const readerColumns = [...READER_COLUMNS, { key: null, label: t("Fails, last {n} cycles", { n: state.flags.cycles.length }) }];
  renderHead($("reader-head"), readerColumns, state.readersSort, state.readersOrder, (key, order) => {
    Object.assign(state, { readersSort: key, readersOrder: order });
    load();
  });
  const past = new Map(state.flags.readers.map((r) => [r.reader, r]));
  fill($("reader-rows"), ...(o.readers.length ? o.readers.map((r) => readerRow(r, past.get(r.reader))) : [emptyRow(readerColumns.length, t("No readers match."))]));
  $("flag-cycles").textContent = state.flags.cycles.length
    ? t("fails over cycles {cycles}", { cycles: list.format(state.flags.cycles) })
    : "";
}

function renderFilters(o) {
  const grid = $("grid-filter");
  const grids = [h("option", { value: "" }, t("All grids")), ...o.grids.map((g) => h("option", { value: g }, g))];
  grid.replaceChildren(...grids);
  grid.value = state.grid;
  // A supervisor's cycle has one grid: nothing to pick.
  grid.closest("label").hidden = o.grids.length < 2 && !state.grid;
  const status = $("status-filter");
  const all = STATUSES.reduce((n, s) => n + o.by_status[s], 0);
  status.replaceChildren(
    h("option", { value: "" }, t("All ({n})", { n: number.format(all) })),
    ...STATUSES.map((s) => h("option", { value: s }, `${STATUS_LABELS[s]} (${number.format(o.by_status[s])})`)),
  );
  status.value = state.status;
}

function renderTotals(o) {
  const done = o.totals.read + o.totals.skipped;
  const names = {
    routes: t("routes"), meters: t("meters"), done: t("done"), read: t("read"), skipped: t("skipped"),
    unread: t("unread"), fail: t("open fails"), warn: t("open warnings"),
  };
  const figure = (name, value, kind) => h("div", { class: "total" + (kind ? ` total-${kind}` : ""), "data-total": name },
    h("dd", {}, value), h("dt", {}, names[name]));
  fill($("totals"),
    h("dl", { class: "totals-list" },
      figure("routes", number.format(o.total)),
      figure("meters", number.format(o.totals.meters)),
      figure("done", o.totals.meters ? percent.format(done / o.totals.meters) : "—"),
      figure("read", number.format(o.totals.read), "read"),
      figure("skipped", number.format(o.totals.skipped), "skipped"),
      figure("unread", number.format(o.totals.unread), o.totals.unread ? "unread" : null),
      figure("fail", number.format(o.totals.fail), o.totals.fail ? "fail" : null),
      figure("warn", number.format(o.totals.warn), o.totals.warn ? "warn" : null)));
}

/** A table's header: each sortable column is a button; clicking it again reverses it. */
function renderHead(row, columns, sort, order, onSort) {
  fill(row, ...columns.map((c) => {
    if (!c.key) return h("th", { scope: "col", class: "num" }, c.label);
    const active = c.key === sort;
    const ariaSort = active ? (order === "asc" ? "ascending" : "descending") : "none";
    const next = active ? (order === "asc" ? "desc" : "asc") : (c.number && !c.ascending ? "desc" : "asc");
    return h("th", { scope: "col", class: c.number ? "num" : null, "aria-sort": ariaSort, "data-sort": c.key },
      h("button", { type: "button", class: "sort" + (active ? " active" : ""), onclick: () => onSort(c.key, next) },
        c.label, h("span", { class: "arrow", "aria-hidden": "true" }, active ? (order === "asc" ? "▲" : "▼") : "")));
  }));
}

function emptyRow(span, text) {
  return h("tr", {}, h("td", { colspan: span, class: "empty" }, text));
}

function chip(n, severity) {
  return h("span", { class: `chip sev-${severity}` + (n ? "" : " zero") }, number.format(n));
}

function routeRow(r) {
  const unreadClass = r.unread ? (r.window_closed ? "unread late" : "unread") : "none";
  let daysClass = "";
  if (r.unread && !r.window_closed) {
    daysClass = r.days_left <= DAYS_URGENT ? "days urgent" : r.days_left <= DAYS_SOON ? "days soon" : "days";
  }
  return h("tr", { "data-route": r.route_code, "data-status": r.status },
    h("td", {},
      h("a", { href: `/audit#assignment=${r.assignment_id}`, class: "route-link" }, r.route_code),
      r.route_name && r.route_name !== r.route_code ? h("div", { class: "sub" }, r.route_name) : null),
    h("td", {}, r.grid || "—"),
    h("td", { title: r.reader_name || null }, r.reader, r.reader_name ? h("div", { class: "sub" }, r.reader_name) : null),
    h("td", {}, h("span", { class: `badge st-${r.status}` }, label(STATUS_LABELS, r.status))),
    h("td", { class: "num" }, number.format(r.meters)),
    h("td", { class: "num" }, number.format(r.read)),
    h("td", { class: "num" }, number.format(r.skipped)),
    h("td", { class: `num ${unreadClass}`, "data-cell": "unread" }, number.format(r.unread)),
    h("td", { class: "num" }, chip(r.fail, "fail")),
    h("td", { class: "num" }, chip(r.warn, "warn")),
    h("td", { class: `num ${daysClass}`, "data-cell": "days_left", title: t("window {start} – {end}", { start: day(r.window_start), end: day(r.window_end) }) },
      r.window_closed ? t("closed") : number.format(r.days_left)));
}

function readerRow(r, past) {
  const rate = past && past.fail_per_100 !== null ? t("{n} per 100 readings", { n: number.format(past.fail_per_100) }) : "";
  return h("tr", { "data-reader": r.reader },
    h("td", {}, r.reader, r.reader_name ? h("div", { class: "sub" }, r.reader_name) : null),
    h("td", { class: "num" }, number.format(r.routes)),
    h("td", { class: "num" }, number.format(r.meters)),
    h("td", { class: "num" }, number.format(r.read)),
    h("td", { class: "num" }, number.format(r.skipped)),
    h("td", { class: `num ${r.unread ? "unread" : "none"}` }, number.format(r.unread)),
    h("td", { class: "num" }, chip(r.fail, "fail")),
    h("td", { class: "num" }, chip(r.warn, "warn")),
    h("td", { class: "num", "data-cell": "past-fails", title: past ? list.format(past.cycles.map((c) => t("{cycle}: {fails} fails", { cycle: c.cycle, fails: c.fail }))) : null },
      past ? number.format(past.fail) : "—", rate ? h("div", { class: "sub" }, rate) : null));
}

// ---------------------------------------------------------------- start

let typing = null;

function wire() {
  $("cycle-select").addEventListener("change", (e) => {
    Object.assign(state, { cycle: e.target.value, offset: 0 });
    load();
  });
  $("grid-filter").addEventListener("change", (e) => {
    Object.assign(state, { grid: e.target.value, offset: 0 });
    load();
  });
  $("status-filter").addEventListener("change", (e) => {
    Object.assign(state, { status: e.target.value, offset: 0 });
    load();
  });
  $("reader-filter").addEventListener("input", (e) => {
    // Asked once the typing pauses, not at every key.
    clearTimeout(typing);
    typing = setTimeout(() => {
      Object.assign(state, { reader: e.target.value.trim(), offset: 0 });
      load();
    }, 250);
  });
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    load();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    load();
  });
}

wire();
startPage({
  intro: t("For supervisors and administrators: the progress of a whole reading cycle."),
  roles: ["supervisor", "admin"],
  rolesText: t("supervisors and administrators"),
  view: "cycle-view",
  enter,
  reset,
});
