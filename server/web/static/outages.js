/* Gridwalk outage desk: a call-centre agent (95598) answers "is there an outage at my address,
   and when will power be back?" from what the crews logged. Ask by account, position or grid;
   see the open outages of a grid; open a job's history; show an account's consumption before
   ordering a meter check (申校); enter a fault from a call or a planned outage.
   Plain JS over the JSON API, no build step; the frame, the session and the API call are
   common.js's. Everything the API sends is put on the page as text, never as HTML. */

import { $, api, errorText, fact, fill, h, showError, startPage } from "./common.js";

const BOARD_EVERY_MS = 30_000;
const GRID_KEY = "gridwalk.outages.grid"; // the grid an agent watches, kept across sessions

/** How a job of each kind is said: as a thing in progress, and as a thing reported. */
const KINDS = {
  fault: { label: "Fault", doing: "fault repair", noun: "fault" },
  temporary_repair: { label: "Temporary repair", doing: "temporary repair", noun: "temporary repair" },
  planned: { label: "Planned", doing: "planned outage", noun: "planned outage" },
  meter_check: { label: "Meter check", doing: "meter check", noun: "meter check" },
};
const STATUS = {
  created: "entered",
  assigned: "crew dispatched",
  started: "in progress",
  finished: "finished",
  cancelled: "cancelled",
};
const EVENTS = {
  created: "Entered",
  assigned: "Crew assigned",
  started: "Started",
  eta_changed: "New expected finish",
  note: "Note",
  finished: "Finished",
  cancelled: "Cancelled",
};

const state = {
  by: "account", // what the question is by: account, position or grid
  asked: null, // the question answered: { by, params, where, account }
  asking: 0, // questions sent: only the last one's answer is shown
  rows: [],
  jobId: null, // the job whose detail is open
  board: [],
  boardTimer: null,
  newJob: null, // the new-job form that is open
};

// ---------------------------------------------------------------- formats

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");

/** A time as an agent reads it out, in the desk's local time: "Tue 24 Nov 14:30", with the
    year when it is not this year. Spelt out by hand, not by Intl, so that every desk's
    browser says it the same way. */
function at(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  const year = t.getFullYear() === new Date().getFullYear() ? "" : ` ${t.getFullYear()}`;
  return `${WEEKDAYS[t.getDay()]} ${t.getDate()} ${MONTHS[t.getMonth()]}${year} ${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** A span of time to the minute, as said on the phone: "45 min", "2 h 10 min", "1 d 3 h". */
function span(ms) {
  const m = Math.round(Math.abs(ms) / 60_000);
  if (m < 1) return "under a minute";
  if (m < 60) return `${m} min`;
  if (m < 1440) return `${Math.floor(m / 60)} h` + (m % 60 ? ` ${m % 60} min` : "");
  return `${Math.floor(m / 1440)} d` + (Math.floor((m % 1440) / 60) ? ` ${Math.floor((m % 1440) / 60)} h` : "");
}

/** "in 2 h 10 min" or "overdue by 25 min", from now. */
function fromNow(iso) {
  const ms = new Date(iso) - Date.now();
  return ms >= 0 ? `in ${span(ms)}` : `overdue by ${span(ms)}`;
}

/** The desk's time zone: the times on the page are in it. */
function timeZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

function clock(t) {
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

function shortId(id) {
  return String(id).slice(0, 8);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------- the answer

function crewText(row) {
  return row.crew.length ? `crew: ${row.crew.join(", ")}` : "no crew assigned yet";
}

/** One outage in words, as the agent says it to the caller. */
function describe(row) {
  const kind = KINDS[row.kind] || { doing: row.kind, noun: row.kind };
  let what;
  if (row.upcoming) what = `${kind.noun} from ${at(row.planned_start)}`;
  else if (row.status === "started") what = `${kind.doing} in progress since ${at(row.started_at)}, ${crewText(row)}`;
  else if (row.kind === "planned") what = `${kind.noun} since ${at(row.planned_start)}, ${crewText(row)}`;
  else if (row.status === "assigned") what = `${kind.noun} reported at ${at(row.reported_at)}, ${crewText(row)} (not started yet)`;
  else what = `${kind.noun} reported at ${at(row.reported_at)}, ${crewText(row)}`;
  const back = row.expected_finish ? `power expected back at ${at(row.expected_finish)}` : "no restoration time given yet";
  return `${what}; ${back} (last update ${at(row.last_update)})`;
}

/** The answer in one sentence; `where` is the place asked about ("at account R-1-A0003"). */
function sentence(rows, where) {
  const now = rows.filter((r) => !r.upcoming);
  const soon = rows.filter((r) => r.upcoming);
  if (now.length) {
    let text = `Yes: ${describe(now[0])}.`;
    if (now.length > 1) text += ` ${plural(now.length - 1, "more outage")} below.`;
    if (soon.length) text += ` Also ${plural(soon.length, "planned outage")} to come.`;
    return text;
  }
  if (soon.length) {
    const next = [...soon].sort((a, b) => new Date(a.planned_start) - new Date(b.planned_start))[0];
    return `No outage now ${where}. To come: ${describe(next)}.`;
  }
  return `No outage known ${where}.`;
}

function outageCard(row, { compact = false } = {}) {
  const kind = KINDS[row.kind] || { label: row.kind };
  const times = [];
  if (row.upcoming || (row.kind === "planned" && row.planned_start)) times.push(fact("Planned", at(row.planned_start)));
  if (row.started_at) times.push(fact("Started", at(row.started_at)));
  else if (!row.upcoming) times.push(fact("Reported", at(row.reported_at)));
  times.push(fact("Power back", row.expected_finish
    ? [h("strong", { class: "eta" }, at(row.expected_finish)), h("span", { class: "muted" }, ` (${fromNow(row.expected_finish)})`)]
    : h("span", { class: "muted" }, "no time given yet")));
  times.push(fact("Crew", row.crew.length ? row.crew.join(", ") : h("span", { class: "muted" }, "none yet")));
  if (!compact) times.push(fact("Last update", at(row.last_update)));
  return h("button", {
    type: "button",
    class: `outage kind-${row.kind}` + (row.upcoming ? " upcoming" : "") + (row.job_id === state.jobId ? " selected" : ""),
    "data-job-id": row.job_id,
    onclick: () => openJob(row.job_id),
  },
    h("div", { class: "outage-top" },
      h("span", { class: `chip kind-chip kind-${row.kind}` }, kind.label),
      row.upcoming
        ? h("span", { class: "badge badge-upcoming" }, "to come")
        : h("span", { class: `badge job-${row.status}` }, STATUS[row.status] || row.status),
      row.urgency === "urgent" ? h("span", { class: "badge badge-urgent" }, "urgent") : null,
      h("span", { class: "outage-id muted" }, `job ${shortId(row.job_id)}`)),
    h("div", { class: "outage-content" }, row.content),
    row.address ? h("div", { class: "outage-address muted" }, row.address) : null,
    h("dl", { class: "facts outage-facts" }, times));
}

/** The question as the API takes it: empty fields are left out, so the API says what is missing. */
function question() {
  const value = (id) => $(id).value.trim();
  const params = new URLSearchParams();
  if (state.by === "account") {
    const account = value("ask-account");
    if (account) params.set("account_no", account);
    return { by: "account", params, where: `at account ${account}`, account };
  }
  if (state.by === "position") {
    const [lat, lon] = [value("ask-lat"), value("ask-lon")];
    if (lat) params.set("lat", lat);
    if (lon) params.set("lon", lon);
    return { by: "position", params, where: `at ${lat}, ${lon}` };
  }
  const grid = value("ask-grid");
  if (grid) params.set("grid", grid);
  return { by: "grid", params, where: `in grid ${grid}` };
}

async function ask(event) {
  event.preventDefault();
  const q = question();
  const asking = ++state.asking;
  const button = $("ask-submit");
  button.disabled = true;
  // What was open belonged to the last caller's answer.
  $("consumption").hidden = true;
  closeJob();
  try {
    const rows = await api(`/outages?${q.params}`);
    if (asking !== state.asking) return; // asked again meanwhile: that answer counts
    Object.assign(state, { rows, asked: q });
    renderAnswer();
  } catch (err) {
    if (asking !== state.asking) return;
    Object.assign(state, { rows: [], asked: null });
    renderAnswerError(err);
  } finally {
    button.disabled = false;
  }
}

function renderAnswer() {
  const box = $("answer");
  const { rows, asked } = state;
  const yes = rows.some((r) => !r.upcoming);
  box.className = `card answer ${yes ? "answer-yes" : "answer-no"}`;
  fill(box,
    h("p", { class: "answer-sentence", id: "answer-sentence" }, sentence(rows, asked.where)),
    h("p", { class: "answer-meta muted" },
      `Asked ${clock(new Date())} · ${plural(rows.length, "open outage")} · times in ${timeZoneName()}`),
    rows.length ? h("div", { class: "outage-cards", id: "answer-rows" }, rows.map((r) => outageCard(r))) : null,
    asked.by === "account"
      ? h("div", { class: "account-tools" },
          h("button", { type: "button", class: "btn", id: "consumption-button", onclick: () => showConsumption(asked.account) },
            "Consumption history"),
          h("span", { class: "muted" }, "Before a meter check (申校): go through the customer's consumption first."))
      : null,
  );
  box.hidden = false;
}

function renderAnswerError(err) {
  const box = $("answer");
  box.className = "card answer answer-error";
  box.replaceChildren(h("p", { class: "answer-sentence", id: "answer-sentence", role: "alert" }, errorText(err)));
  box.hidden = false;
}

function chooseQuestion(by) {
  state.by = by;
  for (const tab of document.querySelectorAll("[data-ask]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.ask === by));
  }
  for (const fields of document.querySelectorAll("[data-ask-fields]")) {
    fields.hidden = fields.dataset.askFields !== by;
  }
  const first = document.querySelector(`[data-ask-fields="${by}"] input`);
  if (first) first.focus();
}

// ---------------------------------------------------------------- the grid's board

async function refreshBoard() {
  const grid = $("grid-code").value.trim();
  const list = $("grid-list");
  if (!grid) {
    list.replaceChildren(h("li", { class: "empty" }, "Enter a grid code to see its open outages."));
    $("grid-status").textContent = "";
    return;
  }
  localStorage.setItem(GRID_KEY, grid);
  try {
    state.board = await api(`/outages?${new URLSearchParams({ grid })}`);
  } catch (err) {
    list.replaceChildren(h("li", { class: "empty board-error", role: "alert" }, errorText(err)));
    $("grid-status").textContent = "";
    return;
  }
  // The API gives them newest first: the order an agent hears of them.
  fill(list,
    ...(state.board.length
      ? state.board.map((row) => h("li", {}, outageCard(row, { compact: true })))
      : [h("li", { class: "empty" }, `No open outage in grid ${grid}.`)]),
  );
  $("grid-status").textContent =
    `${plural(state.board.length, "outage")}, newest first · updated ${clock(new Date())} · refreshes every ${BOARD_EVERY_MS / 1000} s`;
}

function startBoard() {
  stopBoard();
  state.boardTimer = setInterval(() => {
    if (document.hidden) return;
    refreshBoard().catch(showError);
    // The open job moves on too (a crew's new estimate, its finish).
    if (state.jobId) openJob(state.jobId, { scroll: false });
  }, BOARD_EVERY_MS);
}

function stopBoard() {
  if (state.boardTimer) clearInterval(state.boardTimer);
  state.boardTimer = null;
}

// ---------------------------------------------------------------- a job's detail

async function openJob(jobId, { scroll = true } = {}) {
  state.jobId = jobId;
  markSelected();
  let job;
  try {
    job = await api(`/jobs/${jobId}`);
  } catch (err) {
    showError(err);
    return;
  }
  if (state.jobId !== jobId) return; // another was clicked meanwhile
  renderJob(job, scroll);
}

function markSelected() {
  for (const el of document.querySelectorAll(".outage[data-job-id]")) {
    el.classList.toggle("selected", el.dataset.jobId === state.jobId);
  }
}

function closeJob() {
  state.jobId = null;
  $("job-detail").hidden = true;
  markSelected();
}

function minutes(m) {
  return m === null || m === undefined ? "—" : span(m * 60_000);
}

function figure(label, took, target, met, due) {
  let verdict;
  if (met === true) verdict = h("span", { class: "good" }, "met");
  else if (met === false) verdict = h("span", { class: "bad" }, took === null ? `missed: was due ${at(due)}` : "missed");
  else verdict = h("span", { class: "muted" }, `due by ${at(due)}`);
  return fact(label, took === null ? "not yet" : minutes(took), h("span", { class: "muted" }, ` (target ${minutes(target)}) · `), verdict);
}

function eventDetail(e) {
  const parts = [];
  if (e.expected_finish) parts.push(`expected finish ${at(e.expected_finish)}`);
  if (e.crew && e.crew.length) parts.push(`crew ${e.crew.join(", ")}`);
  if (e.content) parts.push(e.content);
  if (e.note) parts.push(e.note);
  if (e.meter_check) parts.push(`meter check: ${e.meter_check.outcome || ""}`.trim());
  return parts.join(" · ");
}

function renderJob(job, scroll) {
  const kind = KINDS[job.kind] || { label: job.kind };
  const r = job.response || { applies: false };
  const facts = [
    fact("Status", h("span", { class: `badge job-${job.status}` }, STATUS[job.status] || job.status),
      job.urgency === "urgent" ? h("span", { class: "badge badge-urgent" }, "urgent") : null),
    fact("Crew", job.crew.length ? job.crew.join(", ") : h("span", { class: "muted" }, "none yet")),
    fact("Address", job.address || "—"),
    job.accounts.length ? fact("Accounts", job.accounts.join(", ")) : null,
    job.area && job.area.radius_m ? fact("Area", `${job.area.radius_m} m around ${job.lat}, ${job.lon}`) : null,
    fact("Grid", job.grid || "—"),
    fact("Reported", at(job.reported_at)),
    job.planned_start ? fact("Planned start", at(job.planned_start)) : null,
    job.dispatched_at ? fact("Dispatched", at(job.dispatched_at)) : null,
    fact("Started", at(job.started_at)),
    fact("Expected finish", job.expected_finish ? at(job.expected_finish) : "—"),
    job.finished_at ? fact("Finished", at(job.finished_at)) : null,
    job.cancelled_at ? fact("Cancelled", at(job.cancelled_at)) : null,
    fact("Last update", at(job.last_update)),
    job.result_note ? fact("Result", job.result_note) : null,
  ];
  const response = r.applies
    ? h("dl", { class: "facts" },
        figure("Arrival", r.response_min, r.response_target_min, r.response_met, r.respond_by),
        figure("Restoration", r.restoration_min, r.restore_target_min, r.restore_met, r.restore_by))
    : h("p", { class: "muted" }, "No response commitment: a planned outage keeps to its own plan.");
  const events = h("table", { class: "table events" },
    h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Event"), h("th", {}, "By"), h("th", {}, "Details"))),
    h("tbody", {}, job.events.map((e) =>
      h("tr", { "data-event": e.kind },
        h("td", { class: "nowrap" }, at(e.at)),
        h("td", {}, EVENTS[e.kind] || e.kind),
        h("td", {}, e.by || "—"),
        h("td", {}, eventDetail(e))))));
  const card = $("job-detail");
  card.setAttribute("data-job-id", job.id);
  fill(card,
    h("div", { class: "card-head" },
      h("h2", {}, `${kind.label} · job ${shortId(job.id)}`),
      h("button", { type: "button", class: "btn btn-small", id: "job-detail-close", onclick: closeJob }, "Close")),
    h("p", { class: "job-content" }, job.content),
    h("dl", { class: "facts" }, facts),
    h("h3", { class: "sub-head" }, "Response"),
    response,
    h("h3", { class: "sub-head" }, "History"),
    events,
  );
  card.hidden = false;
  if (scroll) card.scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- consumption and meter check

async function showConsumption(account) {
  const card = $("consumption");
  let body;
  try {
    body = await api(`/accounts/${encodeURIComponent(account)}/consumption`);
  } catch (err) {
    showError(err);
    return;
  }
  const meters = body.meters.map((m) => {
    const kwh = m.history.map((row) => Number(row.consumption_kwh) || 0);
    const top = Math.max(1, ...kwh);
    const usual = m.expected_low && m.expected_high ? ` · usual ${m.expected_low}–${m.expected_high} kWh a cycle` : "";
    return h("div", { class: "meter-history", "data-meter-no": m.meter_no },
      h("h3", { class: "meter-head" }, `Meter ${m.meter_no}`, h("span", { class: "muted" }, ` · multiplier ×${m.multiplier}${usual}`)),
      m.history.length
        ? h("table", { class: "table consumption-table" },
            h("thead", {}, h("tr", {},
              h("th", {}, "Cycle"), h("th", {}, "Read"), h("th", { class: "num" }, "Register"),
              h("th", { class: "num" }, "kWh"), h("th", { class: "num" }, "kWh/day"), h("th", { class: "bar-cell" }, ""))),
            h("tbody", {}, m.history.map((row) => {
              const bar = h("span", { class: "bar" });
              bar.style.width = `${(100 * (Number(row.consumption_kwh) || 0)) / top}%`;
              return h("tr", { "data-cycle": row.cycle },
                h("td", {}, row.cycle),
                h("td", { class: "nowrap" }, at(row.read_at)),
                h("td", { class: "num" }, row.value),
                h("td", { class: "num" }, row.consumption_kwh ?? "—"),
                h("td", { class: "num" }, row.kwh_per_day ?? "—"),
                h("td", { class: "bar-cell" }, bar));
            })))
        : h("p", { class: "muted" }, "No readings of this meter yet."));
  });
  fill(card,
    h("div", { class: "card-head" },
      h("h2", {}, `Consumption history · ${body.account_no}`),
      h("button", { type: "button", class: "btn btn-small", onclick: () => (card.hidden = true) }, "Close")),
    h("p", { class: "muted customer" }, `${body.customer_name} · ${body.address}`),
    meters.length ? meters : h("p", { class: "muted" }, "No meter on this account."),
    meterCheckForm(body.account_no),
  );
  card.hidden = false;
  card.scrollIntoView({ block: "nearest" });
}

function meterCheckForm(account) {
  const content = h("textarea", { id: "check-content", rows: 2, maxlength: 2000 },
    "Customer doubts the meter (申校): check it with the pulse lamp or a known load");
  const crew = h("input", { id: "check-crew", maxlength: 200, placeholder: "optional: crew1, crew2" });
  const out = h("p", { class: "form-error", role: "alert" });
  const done = h("p", { class: "notice", role: "status", hidden: true });
  const submit = async (event) => {
    event.preventDefault();
    out.textContent = "";
    done.hidden = true;
    try {
      const job = await api("/jobs", {
        method: "POST",
        body: { kind: "meter_check", urgency: "normal", content: content.value, accounts: [account], crew: names(crew.value) },
      });
      done.textContent = `Meter check ordered: job ${shortId(job.id)}` +
        (job.crew.length ? `, crew ${job.crew.join(", ")}.` : ", no crew yet.");
      done.hidden = false;
      await openJob(job.id);
    } catch (err) {
      out.textContent = errorText(err);
    }
  };
  return h("form", { class: "meter-check", id: "meter-check-form", onsubmit: submit },
    h("h3", { class: "sub-head" }, `Order a meter check for ${account}`),
    h("label", { for: "check-content" }, "What to check"),
    content,
    h("div", { class: "row" },
      h("div", { class: "field grow" }, h("label", { for: "check-crew" }, "Crew"), crew),
      h("button", { type: "submit", class: "btn btn-primary", id: "check-submit" }, "Order meter check")),
    out,
    done);
}

// ---------------------------------------------------------------- entering jobs

/** "crew1, crew2" or "R-1-A0000 R-1-A0001" -> a list. */
function names(text) {
  return text.split(/[\s,;]+/).filter(Boolean);
}

/** A number as typed, or the text itself, so that the API names the field that is wrong. */
function number(text) {
  const n = Number(text);
  return text.trim() && Number.isFinite(n) ? n : text;
}

/** What each form asks for; the fields of the area are common to both. */
const FORMS = {
  fault: {
    title: "Fault from a call",
    submit: "Enter fault",
    areas: { accounts: "Accounts", point: "Around a point" },
    placeholder: "What the caller says, e.g. no power in the whole building since 10:30",
  },
  planned: {
    title: "Planned outage",
    submit: "Enter planned outage",
    areas: { route: "A route", accounts: "Accounts", point: "Around a point" },
    placeholder: "e.g. transformer T-12 replaced: feeder 7 off",
  },
};

function field(id, label, input, extra = "") {
  return h("div", { class: `field ${extra}`.trim() }, h("label", { for: id }, label), input);
}

function jobForm(kind) {
  const spec = FORMS[kind];
  const p = `${kind}-`; // the ids of this form's fields
  const input = (name, attrs = {}) => h("input", { id: p + name, ...attrs });
  const area = h("select", { id: `${p}area` }, Object.entries(spec.areas).map(([k, v]) => h("option", { value: k }, v)));
  const areaFields = {
    route: h("div", { class: "row", "data-area": "route" }, field(`${p}route`, "Route code", input("route", { maxlength: 64, placeholder: "the whole route is cut off" }), "grow")),
    accounts: h("div", { class: "row", "data-area": "accounts" },
      field(`${p}accounts`, "Account numbers", input("accounts", { placeholder: "separated by commas or spaces" }), "grow")),
    point: h("div", { class: "row", "data-area": "point" },
      field(`${p}lat`, "Latitude", input("lat", { inputmode: "decimal", placeholder: "30.2741" })),
      field(`${p}lon`, "Longitude", input("lon", { inputmode: "decimal", placeholder: "120.1551" })),
      field(`${p}radius`, "Radius (m)", input("radius", { inputmode: "decimal", value: "300" }), "narrow")),
  };
  const showArea = () => {
    for (const [k, el] of Object.entries(areaFields)) el.hidden = k !== area.value;
  };
  area.addEventListener("change", showArea);
  const out = h("p", { class: "form-error", role: "alert" });
  const done = h("p", { class: "notice", role: "status", hidden: true });
  const form = h("form", { class: "job-form", id: `${p}form`, "data-kind": kind, novalidate: true },
    done,
    kind === "fault"
      ? h("div", { class: "row" },
          field(`${p}urgency`, "Urgency", h("select", { id: `${p}urgency` },
            h("option", { value: "urgent" }, "Urgent"), h("option", { value: "normal" }, "Normal"))),
          field(`${p}address`, "Address", input("address", { maxlength: 500, placeholder: "where the caller is" }), "grow"))
      : h("div", { class: "row" },
          field(`${p}start`, "Off from", input("start", { type: "datetime-local" }), "grow"),
          field(`${p}finish`, "Back by", input("finish", { type: "datetime-local" }), "grow")),
    field(`${p}content`, "What", h("textarea", { id: `${p}content`, rows: 2, maxlength: 2000, placeholder: spec.placeholder })),
    h("div", { class: "row" }, field(`${p}area`, "Area cut off", area, "grow"),
      kind === "planned" ? field(`${p}address`, "Address (optional)", input("address", { maxlength: 500 }), "grow") : null),
    Object.values(areaFields),
    field(`${p}crew`, "Crew (optional)", input("crew", { maxlength: 200, placeholder: "crew1, crew2" })),
    out,
    h("button", { type: "submit", class: "btn btn-primary btn-wide", id: `${p}submit` }, spec.submit));
  showArea();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.textContent = "";
    done.hidden = true;
    const value = (name) => $(p + name).value.trim();
    const body = { kind, content: value("content"), crew: names(value("crew")) };
    if (value("address")) body.address = value("address");
    if (kind === "fault") body.urgency = value("urgency");
    else {
      // datetime-local is the desk's local time: sent as an instant.
      const when = (name) => (value(name) ? new Date(value(name)).toISOString() : undefined);
      try {
        body.planned_start = when("start");
        body.expected_finish = when("finish");
      } catch {
        out.textContent = "Enter the times as a date and a time.";
        return;
      }
    }
    if (area.value === "route") body.route_code = value("route") || undefined;
    else if (area.value === "accounts") body.accounts = names(value("accounts"));
    else {
      body.lat = number(value("lat"));
      body.lon = number(value("lon"));
      body.radius_m = number(value("radius"));
    }
    const button = $(`${p}submit`);
    button.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", body });
      done.textContent = `${kind === "planned" ? "Planned outage" : "Fault"} entered: job ${shortId(job.id)}` +
        (job.grid ? ` in grid ${job.grid}.` : ", in no grid: no grid's board shows it (name its accounts or its crew).");
      done.hidden = false;
      form.reset();
      showArea();
      done.scrollIntoView({ block: "nearest" });
      // A desk with no grid on its board watches the grid of the job it just entered.
      if (!$("grid-code").value.trim() && job.grid) $("grid-code").value = job.grid;
      await Promise.all([refreshBoard(), openJob(job.id)]);
    } catch (err) {
      out.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** Open the form for a new job of `kind`, or fold them all away (null): folded, the board
    has the whole column. */
function chooseNewJob(kind) {
  state.newJob = kind;
  for (const tab of document.querySelectorAll("[data-new-job]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.newJob === kind));
  }
  for (const form of document.querySelectorAll(".job-form")) form.hidden = form.dataset.kind !== kind;
  $("new-job-hide").hidden = !kind;
  $("new-job").classList.toggle("open", Boolean(kind));
  // A fault from a call: most often the caller's account was just asked about.
  if (kind === "fault" && state.asked && state.asked.account && !$("fault-accounts").value) {
    $("fault-area").value = "accounts";
    $("fault-area").dispatchEvent(new Event("change"));
    $("fault-accounts").value = state.asked.account;
  }
  if (kind) $(`${kind}-content`).focus();
}

// ---------------------------------------------------------------- entering and leaving

async function enter() {
  $("tz-note").textContent = `Times in ${timeZoneName()}`;
  if (!$("grid-code").value) $("grid-code").value = localStorage.getItem(GRID_KEY) || "";
  startBoard();
  await refreshBoard();
  $(state.by === "position" ? "ask-lat" : `ask-${state.by}`).focus();
}

/** On sign-out: nothing of this caller's or this agent's stays on the page for the next. */
function reset() {
  stopBoard();
  Object.assign(state, { asked: null, rows: [], jobId: null, board: [] });
  for (const id of ["answer", "consumption", "job-detail"]) {
    $(id).replaceChildren();
    $(id).hidden = true;
  }
  for (const input of document.querySelectorAll("#ask-form input")) input.value = "";
  for (const form of document.querySelectorAll(".job-form")) form.reset();
  chooseNewJob(null);
  for (const note of document.querySelectorAll(".job-form .notice")) note.hidden = true;
  for (const out of document.querySelectorAll(".job-form .form-error")) out.textContent = "";
  $("grid-list").replaceChildren();
  $("grid-status").textContent = "";
}

function wire() {
  $("ask-form").addEventListener("submit", ask);
  for (const tab of document.querySelectorAll("[data-ask]")) {
    tab.addEventListener("click", () => chooseQuestion(tab.dataset.ask));
  }
  $("grid-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshBoard().catch(showError);
  });
  $("new-job-forms").append(jobForm("fault"), jobForm("planned"));
  for (const tab of document.querySelectorAll("[data-new-job]")) {
    tab.addEventListener("click", () => chooseNewJob(tab.dataset.newJob === state.newJob ? null : tab.dataset.newJob));
  }
  $("new-job-hide").addEventListener("click", () => chooseNewJob(null));
  chooseNewJob(null);
}

wire();
startPage({
  intro: "For call-centre agents: is there an outage at the caller's address, and when is power back?",
  roles: ["agent", "supervisor", "admin"],
  rolesText: "call-centre agents, supervisors and administrators",
  view: "outage-view",
  enter,
  reset,
});
