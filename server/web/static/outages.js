/* Gridwalk outage desk: a call-centre agent (95598) answers "is there an outage at my address,
   and when will power be back?" from what the crews logged. Ask by account, position or grid;
   see the open outages of a grid; open a job's history; show an account's consumption before
   ordering a meter check (申校); enter a fault from a call or a planned outage.
   Plain JS over the JSON API, no build step; the frame, the session and the API call are
   common.js's. Everything the API sends is put on the page as text, never as HTML. */

import { $, TIME_ZONE, api, at, clockTime, errorText, fact, fill, h, label, session, showError, startPage, t, zoneName } from "./common.js";

const BOARD_EVERY_MS = 30_000;
const SEARCH_AFTER_MS = 250; // a pause in typing before the customers are searched
const GRID_KEY = "gridwalk.outages.grid"; // the grid an agent watches, kept across sessions

/** How a job of each kind is said: as a thing in progress, and as a thing reported. */
const KINDS = {
  fault: { label: t("Fault"), doing: t("fault repair"), noun: t("fault") },
  temporary_repair: { label: t("Temporary repair"), doing: t("temporary repair"), noun: t("temporary repair") },
  planned: { label: t("Planned"), doing: t("planned outage"), noun: t("planned outage") },
  meter_check: { label: t("Meter check"), doing: t("meter check"), noun: t("meter check") },
};
const STATUS = {
  created: t("entered"),
  assigned: t("crew dispatched"),
  started: t("in progress"),
  finished: t("finished"),
  cancelled: t("cancelled"),
  restored: t("restored"),
};
const EVENTS = {
  created: t("Entered"),
  assigned: t("Crew assigned"),
  started: t("Started"),
  eta_changed: t("New expected finish"),
  note: t("Note"),
  finished: t("Finished"),
  cancelled: t("Cancelled"),
};
// A meter check's outcome: the handheld's own words for it.
const CHECK_OUTCOMES = {
  meter_ok: t("Meter accurate"),
  meter_fast: t("Meter runs fast"),
  meter_slow: t("Meter runs slow"),
  meter_faulty: t("Meter faulty"),
  inconclusive: t("Inconclusive"),
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
  picks: [], // the customers the typed fragment finds
  picked: null, // the customer the agent picked among them
  searching: 0, // searches sent: only the last one's answer is shown
  searchTimer: null,
  customer: null, // the customer the answer is about, echoed to confirm who calls
};

// ---------------------------------------------------------------- formats

/** A span of time to the minute, as said on the phone: "45 min", "2 h 10 min", "1 d 3 h". */
function span(ms) {
  const m = Math.round(Math.abs(ms) / 60_000);
  if (m < 1) return t("under a minute");
  if (m < 60) return t("{m} min", { m });
  const [d, h] = [Math.floor(m / 1440), Math.floor((m % 1440) / 60)];
  if (m < 1440) return m % 60 ? t("{h} h {m} min", { h: Math.floor(m / 60), m: m % 60 }) : t("{h} h", { h: Math.floor(m / 60) });
  return h ? t("{d} d {h} h", { d, h }) : t("{d} d", { d });
}

/** "in 2 h 10 min" or "overdue by 25 min", from now. */
function fromNow(iso) {
  const ms = new Date(iso) - Date.now();
  return ms >= 0 ? t("in {span}", { span: span(ms) }) : t("overdue by {span}", { span: span(ms) });
}

/** An instant from a datetime-local field, read in the page's zone (not the computer's). */
function instantOf(local) {
  const [date, time] = local.split("T");
  const [y, mo, d] = date.split("-").map(Number);
  const [h, mi] = time.split(":").map(Number);
  const asUtc = Date.UTC(y, mo - 1, d, h, mi);
  if (!Number.isFinite(asUtc)) throw new RangeError(local);
  // The zone's offset at (about) that instant, from what Intl says the wall clock shows there.
  const offsetAt = (ms) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
      timeZone: TIME_ZONE, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
    }).formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]));
    return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute) - Math.floor(ms / 60_000) * 60_000;
  };
  const guess = asUtc - offsetAt(asUtc);
  return new Date(asUtc - offsetAt(guess));
}

function shortId(id) {
  return String(id).slice(0, 8);
}

// ---------------------------------------------------------------- the answer

/** A crew member as the agent says them: full name, and the phone to reach them. */
function member(m) {
  return m.phone ? t("{name} ({phone})", { name: m.full_name, phone: m.phone }) : m.full_name;
}

function crewNames(row) {
  return (row.crew_members || []).map(member).join(", ");
}

function crewText(row) {
  return row.crew.length ? t("crew: {names}", { names: crewNames(row) }) : t("no crew assigned yet");
}

/** When power is back, and on whose word: the crew's, the plan's, or similar past repairs'. */
function backText(row) {
  const time = at(row.expected_restore_at);
  if (row.etr_source === "crew") return t("the crew expects power back at {time}", { time });
  if (row.etr_source === "plan") return t("power expected back at {time}, as planned", { time });
  if (row.etr_source === "history") {
    const e = row.etr_history;
    return t("power probably back around {time}, going by {n} similar repairs ({pct}% took {low} to {high})", {
      time, n: e.jobs, pct: Math.round(e.share * 100), low: span(e.low_min * 60_000), high: span(e.high_min * 60_000),
    });
  }
  if (row.etr_history && !row.etr_history.enough) {
    return t("no restoration time given yet, and too few similar repairs ({n}) to estimate one", { n: row.etr_history.jobs });
  }
  return t("no restoration time given yet");
}

/** One outage in words, as the agent says it to the caller. */
function describe(row) {
  const kind = KINDS[row.kind] || { doing: row.kind, noun: row.kind };
  const crew = crewText(row);
  let what;
  if (row.upcoming) what = t("{outage} from {time}", { outage: kind.noun, time: at(row.planned_start) });
  else if (row.status === "started") what = t("{outage} in progress since {time}, {crew}", { outage: kind.doing, time: at(row.started_at), crew });
  else if (row.kind === "planned") what = t("{outage} since {time}, {crew}", { outage: kind.noun, time: at(row.planned_start), crew });
  else if (row.status === "assigned") what = t("{outage} reported at {time}, {crew} (not started yet)", { outage: kind.noun, time: at(row.reported_at), crew });
  else what = t("{outage} reported at {time}, {crew}", { outage: kind.noun, time: at(row.reported_at), crew });
  return t("{what}; {back} (last update {time})", { what, back: backText(row), time: at(row.last_update) });
}

/** The answer in one sentence; `where` is the place asked about ("at account R-1-A0003"). */
function sentence(rows, where) {
  const now = rows.filter((r) => !r.upcoming && r.status !== "restored");
  const soon = rows.filter((r) => r.upcoming);
  const restored = rows.filter((r) => r.status === "restored");
  if (now.length) {
    const parts = [t("Yes: {outage}.", { outage: describe(now[0]) })];
    const more = now.length - 1;
    if (more) parts.push(more === 1 ? t("1 more outage below.") : t("{n} more outages below.", { n: more }));
    if (soon.length) parts.push(soon.length === 1 ? t("Also 1 planned outage to come.") : t("Also {n} planned outages to come.", { n: soon.length }));
    return parts.reduce((first, second) => t("{sentence} {next}", { sentence: first, next: second }));
  }
  if (restored.length) {
    const last = [...restored].sort((a, b) => new Date(b.restored_at) - new Date(a.restored_at))[0];
    const kind = KINDS[last.kind] || { noun: last.kind };
    return t("No outage now {where}: the {outage} was restored at {time}. If the power is still off, it is the customer's own installation: check the main switch and the leakage breaker at the meter box, then call an electrician.", {
      where, outage: kind.noun, time: at(last.restored_at),
    });
  }
  if (soon.length) {
    const next = [...soon].sort((a, b) => new Date(a.planned_start) - new Date(b.planned_start))[0];
    return t("No outage now {where}. To come: {outage}.", { where, outage: describe(next) });
  }
  return t("No outage known {where}.", { where });
}

function outageCard(row, { compact = false } = {}) {
  const kind = KINDS[row.kind] || { label: row.kind };
  const times = [];
  if (row.upcoming || (row.kind === "planned" && row.planned_start)) times.push(fact(t("Planned"), at(row.planned_start)));
  if (row.started_at) times.push(fact(t("Started"), at(row.started_at)));
  else if (!row.upcoming) times.push(fact(t("Reported"), at(row.reported_at)));
  if (row.status === "restored") times.push(fact(t("Restored"), h("strong", { class: "restored-at" }, at(row.restored_at))));
  else times.push(fact(t("Power back"), powerBack(row)));
  times.push(fact(t("Customers affected"), h("span", { class: "affected" }, String(row.customers_affected))));
  times.push(fact(t("Crew"), row.crew.length ? crewNames(row) : h("span", { class: "muted" }, t("none yet"))));
  if (!compact) times.push(fact(t("Last update"), at(row.last_update)));
  return h("button", {
    type: "button",
    class: `outage kind-${row.kind}` + (row.upcoming ? " upcoming" : "") + (row.job_id === state.jobId ? " selected" : ""),
    "data-job-id": row.job_id,
    onclick: () => openJob(row.job_id),
  },
    h("div", { class: "outage-top" },
      h("span", { class: `chip kind-chip kind-${row.kind}` }, kind.label),
      row.upcoming
        ? h("span", { class: "badge badge-upcoming" }, t("to come"))
        : h("span", { class: `badge job-${row.status}` }, label(STATUS, row.status)),
      row.urgency === "urgent" ? h("span", { class: "badge badge-urgent" }, t("urgent")) : null,
      h("span", { class: "outage-id muted" }, t("job {id}", { id: shortId(row.job_id) }))),
    h("div", { class: "outage-content" }, row.content),
    row.address ? h("div", { class: "outage-address muted" }, row.address) : null,
    row.follows_job_id ? h("div", { class: "outage-follows" }, t("Reported again after job {id} restored power here", { id: shortId(row.follows_job_id) })) : null,
    h("dl", { class: "facts outage-facts" }, times));
}

/** The expected restoration on a card: the time, how far off, and whose word it is. */
function powerBack(row) {
  if (!row.expected_restore_at) {
    const few = row.etr_history && !row.etr_history.enough;
    return h("span", { class: "muted" }, few ? t("no time given yet; too few similar repairs to estimate") : t("no time given yet"));
  }
  const source = {
    crew: t("the crew's estimate"),
    plan: t("as planned"),
    history: t("estimate from similar repairs"),
  }[row.etr_source];
  const parts = [h("strong", { class: "eta" }, at(row.expected_restore_at)), h("span", { class: "muted" }, " ", t("({when})", { when: fromNow(row.expected_restore_at) }))];
  if (row.etr_source === "history") {
    const e = row.etr_history;
    parts.push(h("span", { class: "muted" }, " ", t("between {low} and {high}", { low: at(e.earliest_at), high: at(e.latest_at) })));
  }
  parts.push(h("span", { class: `etr-source etr-${row.etr_source}` }, source));
  return parts;
}

/** The question as the API takes it: empty fields are left out, so the API says what is missing. */
function question() {
  const value = (id) => $(id).value.trim();
  const params = new URLSearchParams();
  if (state.by === "account") {
    const typed = value("ask-account");
    // A customer picked, or what looks like an account number, is asked by account; anything
    // else (a street, a house number, a name) by address.
    const picked = state.picked && state.picked.account_no === typed ? state.picked : null;
    if (picked || !typed || /^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(typed)) {
      if (typed) params.set("account_no", typed);
      return { by: "account", params, where: t("at account {account}", { account: typed }), account: typed, customer: picked };
    }
    params.set("address", typed);
    return { by: "address", params, where: t("at {address}", { address: typed }) };
  }
  if (state.by === "position") {
    const [lat, lon] = [value("ask-lat"), value("ask-lon")];
    if (lat) params.set("lat", lat);
    if (lon) params.set("lon", lon);
    return { by: "position", params, where: t("at {lat}, {lon}", { lat, lon }) };
  }
  const grid = value("ask-grid");
  if (grid) params.set("grid", grid);
  return { by: "grid", params, where: t("in grid {grid}", { grid }) };
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
  hidePicks();
  try {
    const [rows, customer] = await Promise.all([api(`/outages?${q.params}`), customerOf(q)]);
    if (asking !== state.asking) return; // asked again meanwhile: that answer counts
    const echoed = customer || (rows.find((r) => r.customer) || {}).customer || null;
    Object.assign(state, { rows, asked: q, customer: echoed });
    renderAnswer();
  } catch (err) {
    if (asking !== state.asking) return;
    Object.assign(state, { rows: [], asked: null });
    renderAnswerError(err);
  } finally {
    button.disabled = false;
  }
}

/** The customer an account question is about, to echo to the caller (none for other questions). */
async function customerOf(q) {
  if (q.by !== "account" || !q.account) return null;
  if (q.customer) return q.customer;
  try {
    const found = await api(`/customers?${new URLSearchParams({ address: q.account })}`);
    return found.find((c) => c.account_no === q.account) || null;
  } catch {
    return null; // the outage question says what is wrong with the account
  }
}

function renderAnswer() {
  const box = $("answer");
  const { rows, asked, customer } = state;
  const yes = rows.some((r) => !r.upcoming && r.status !== "restored");
  const restored = !yes && rows.some((r) => r.status === "restored");
  box.className = `card answer ${yes ? "answer-yes" : restored ? "answer-restored" : "answer-no"}`;
  fill(box,
    customer
      ? h("p", { class: "answer-customer", id: "answer-customer" },
          t("Caller: {name}, {address} (account {account})", { name: customer.customer_name, address: customer.address, account: customer.account_no }))
      : null,
    h("p", { class: "answer-sentence", id: "answer-sentence" }, sentence(rows, asked.where)),
    h("p", { class: "answer-meta muted" },
      [
        t("Asked {time}", { time: clockTime(new Date()) }),
        rows.length === 1 ? t("1 outage") : t("{n} outages", { n: rows.length }),
        t("times in {zone}", { zone: zoneName() }),
      ].join(" · ")),
    rows.length ? h("div", { class: "outage-cards", id: "answer-rows" }, rows.map((r) => outageCard(r))) : null,
    customer
      ? h("div", { class: "account-tools" },
          h("button", { type: "button", class: "btn", id: "consumption-button", onclick: () => showConsumption(customer.account_no) },
            t("Consumption history")),
          h("span", { class: "muted" }, t("Before a meter check: go through the customer's consumption first.")))
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

// ---------------------------------------------------------------- finding the caller

/** Search the customers as the agent types a street, a house number or a name. */
function searchAsTyped() {
  clearTimeout(state.searchTimer);
  const typed = $("ask-account").value.trim();
  state.picked = null;
  if (typed.length < 2) {
    hidePicks();
    return;
  }
  state.searchTimer = setTimeout(async () => {
    const searching = ++state.searching;
    let found;
    try {
      found = await api(`/customers?${new URLSearchParams({ address: typed })}`);
    } catch {
      found = []; // the question, once asked, says what is wrong
    }
    if (searching !== state.searching || $("ask-account").value.trim() !== typed) return;
    state.picks = found;
    renderPicks(typed);
  }, SEARCH_AFTER_MS);
}

function renderPicks(typed) {
  const list = $("customer-picks");
  fill(list, state.picks.length
    ? state.picks.map((c) => h("li", {},
        h("button", { type: "button", class: "pick", "data-account": c.account_no, onclick: () => pick(c) },
          h("span", { class: "pick-address" }, c.address),
          h("span", { class: "pick-name" }, c.customer_name),
          h("span", { class: "pick-account muted" }, c.account_no))))
    : [h("li", { class: "empty muted" }, t("No customer found for “{typed}”.", { typed }))]);
  list.hidden = false;
}

function hidePicks() {
  clearTimeout(state.searchTimer);
  state.searching++;
  $("customer-picks").hidden = true;
}

/** The agent picks the caller: the question is then about that customer's account. */
function pick(customer) {
  state.picked = customer;
  $("ask-account").value = customer.account_no;
  hidePicks();
  $("ask-form").requestSubmit();
}

// ---------------------------------------------------------------- the grid's board

async function refreshBoard() {
  const grid = $("grid-code").value.trim();
  const list = $("grid-list");
  if (!grid) {
    list.replaceChildren(h("li", { class: "empty" }, t("Enter a grid code to see its open outages.")));
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
      : [h("li", { class: "empty" }, t("No open outage in grid {grid}.", { grid }))]),
  );
  const n = state.board.length;
  $("grid-status").textContent = [
    n === 1 ? t("1 outage, newest first") : t("{n} outages, newest first", { n }),
    t("updated {time}", { time: clockTime(new Date()) }),
    t("refreshes every {s} s", { s: BOARD_EVERY_MS / 1000 }),
  ].join(" · ");
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

function figure(name, took, target, met, due) {
  let verdict;
  if (met === true) verdict = h("span", { class: "good" }, t("met"));
  else if (met === false) verdict = h("span", { class: "bad" }, took === null ? t("missed: was due {time}", { time: at(due) }) : t("missed"));
  else verdict = h("span", { class: "muted" }, t("due by {time}", { time: at(due) }));
  return fact(name, took === null ? t("not yet") : minutes(took),
    h("span", { class: "muted" }, " ", t("(target {target})", { target: minutes(target) }), " · "), verdict);
}

function eventDetail(e) {
  const parts = [];
  if (e.expected_finish) parts.push(t("expected finish {time}", { time: at(e.expected_finish) }));
  if (e.crew && e.crew.length) parts.push(t("crew {names}", { names: e.crew.join(", ") }));
  if (e.content) parts.push(e.content);
  if (e.note) parts.push(e.note);
  if (e.meter_check) parts.push(t("meter check: {outcome}", { outcome: e.meter_check.outcome ? label(CHECK_OUTCOMES, e.meter_check.outcome) : "" }).trim());
  return parts.join(" · ");
}

function renderJob(job, scroll) {
  const kind = KINDS[job.kind] || { label: job.kind };
  const r = job.response || { applies: false };
  const facts = [
    fact(t("Status"), h("span", { class: `badge job-${job.status}` }, label(STATUS, job.status)),
      job.urgency === "urgent" ? h("span", { class: "badge badge-urgent" }, t("urgent")) : null),
    fact(t("Crew"), job.crew_members.length
      ? h("ul", { class: "crew-list" }, job.crew_members.map((m) => h("li", { "data-crew": m.username },
          h("strong", {}, m.full_name),
          m.phone ? h("span", { class: "crew-phone" }, " ", m.phone) : h("span", { class: "muted" }, " ", t("no phone on record")),
          h("span", { class: "muted" }, " · ", m.last_position
            ? t("last seen at {lat}, {lon}, {time}", { lat: m.last_position.lat.toFixed(5), lon: m.last_position.lon.toFixed(5), time: at(m.last_position.at) })
            : t("no position from their handheld yet")))))
      : h("span", { class: "muted" }, t("none yet"))),
    job.follows_job_id ? fact(t("Follows"), t("job {id}, which restored power here earlier", { id: shortId(job.follows_job_id) })) : null,
    fact(t("Address"), job.address || "—"),
    job.accounts.length ? fact(t("Accounts"), job.accounts.join(", ")) : null,
    job.area && job.area.radius_m ? fact(t("Area"), t("{radius} m around {lat}, {lon}", { radius: job.area.radius_m, lat: job.lat, lon: job.lon })) : null,
    fact(t("Grid"), job.grid || "—"),
    fact(t("Reported"), at(job.reported_at)),
    job.planned_start ? fact(t("Planned start"), at(job.planned_start)) : null,
    job.dispatched_at ? fact(t("Dispatched"), at(job.dispatched_at)) : null,
    fact(t("Started"), at(job.started_at)),
    fact(t("Expected finish"), job.expected_finish ? at(job.expected_finish, { zone: true }) : "—"),
    job.finished_at ? fact(t("Finished"), at(job.finished_at)) : null,
    job.cancelled_at ? fact(t("Cancelled"), at(job.cancelled_at)) : null,
    fact(t("Last update"), at(job.last_update)),
    job.result_note ? fact(t("Result"), job.result_note) : null,
  ];
  const response = r.applies
    ? h("dl", { class: "facts" },
        figure(t("Arrival"), r.response_min, r.response_target_min, r.response_met, r.respond_by),
        figure(t("Restoration"), r.restoration_min, r.restore_target_min, r.restore_met, r.restore_by))
    : h("p", { class: "muted" }, t("No response commitment: a planned outage keeps to its own plan."));
  const events = h("table", { class: "table events" },
    h("thead", {}, h("tr", {}, h("th", {}, t("When")), h("th", {}, t("Event")), h("th", {}, t("By")), h("th", {}, t("Details")))),
    h("tbody", {}, job.events.map((e) =>
      h("tr", { "data-event": e.kind },
        h("td", { class: "nowrap" }, at(e.at)),
        h("td", {}, label(EVENTS, e.kind)),
        h("td", {}, e.by || "—"),
        h("td", {}, eventDetail(e))))));
  const card = $("job-detail");
  card.setAttribute("data-job-id", job.id);
  fill(card,
    h("div", { class: "card-head" },
      h("h2", {}, t("{kind} · job {id}", { kind: kind.label, id: shortId(job.id) })),
      h("button", { type: "button", class: "btn btn-small", id: "job-detail-close", onclick: closeJob }, t("Close"))),
    h("p", { class: "job-content" }, job.content),
    h("dl", { class: "facts" }, facts),
    job.kind === "planned"
      ? h("div", { class: "affected-tools" },
          h("button", { type: "button", class: "btn", id: "affected-button", onclick: () => showAffected(job.id) }, t("Customers to notify")),
          h("div", { id: "affected-list" }))
      : null,
    h("h3", { class: "sub-head" }, t("Response")),
    response,
    h("h3", { class: "sub-head" }, t("History")),
    events,
  );
  card.hidden = false;
  if (scroll) card.scrollIntoView({ block: "nearest" });
}

/** A planned outage's customers with their phones, for the notices sent ahead; as CSV too. */
async function showAffected(jobId) {
  let body;
  try {
    body = await api(`/jobs/${jobId}/customers`);
  } catch (err) {
    showError(err);
    return;
  }
  const download = async () => {
    try {
      const response = await api(`/jobs/${jobId}/customers.csv`, { raw: true });
      const link = h("a", { href: URL.createObjectURL(await response.blob()), download: `outage-${shortId(jobId)}-customers.csv` });
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (err) {
      showError(err);
    }
  };
  fill($("affected-list"),
    h("div", { class: "row affected-head" },
      h("span", {}, body.customers.length === 1 ? t("1 customer to notify") : t("{n} customers to notify", { n: body.customers.length })),
      h("button", { type: "button", class: "btn btn-small", id: "affected-csv", onclick: download }, t("Download CSV"))),
    h("table", { class: "table affected-table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("Account")), h("th", {}, t("Customer")), h("th", {}, t("Address")), h("th", {}, t("Phone")))),
      h("tbody", {}, body.customers.map((c) => h("tr", { "data-account": c.account_no },
        h("td", {}, c.account_no), h("td", {}, c.customer_name), h("td", {}, c.address), h("td", { class: "nowrap" }, c.phone || "—"))))));
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
    const notes = [t("multiplier ×{n}", { n: m.multiplier })];
    if (m.expected_low && m.expected_high) notes.push(t("usual {low}–{high} kWh a cycle", { low: m.expected_low, high: m.expected_high }));
    return h("div", { class: "meter-history", "data-meter-no": m.meter_no },
      h("h3", { class: "meter-head" }, t("Meter {meter}", { meter: m.meter_no }), h("span", { class: "muted" }, ` · ${notes.join(" · ")}`)),
      m.history.length
        ? h("table", { class: "table consumption-table" },
            h("thead", {}, h("tr", {},
              h("th", {}, t("Cycle")), h("th", {}, t("Read")), h("th", { class: "num" }, t("Register")),
              h("th", { class: "num" }, t("kWh")), h("th", { class: "num" }, t("kWh/day")), h("th", { class: "bar-cell" }, ""))),
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
        : h("p", { class: "muted" }, t("No readings of this meter yet.")));
  });
  fill(card,
    h("div", { class: "card-head" },
      h("h2", {}, t("Consumption history · {account}", { account: body.account_no })),
      h("button", { type: "button", class: "btn btn-small", onclick: () => (card.hidden = true) }, t("Close"))),
    h("p", { class: "muted customer" }, `${body.customer_name} · ${body.address}`),
    meters.length ? meters : h("p", { class: "muted" }, t("No meter on this account.")),
    meterCheckForm(body.account_no),
  );
  card.hidden = false;
  card.scrollIntoView({ block: "nearest" });
}

function meterCheckForm(account) {
  const content = h("textarea", { id: "check-content", rows: 2, maxlength: 2000 },
    t("Customer doubts the meter: check it with the pulse lamp or a known load"));
  const crew = h("input", { id: "check-crew", maxlength: 200, placeholder: t("optional: crew1, crew2") });
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
      done.textContent = job.crew.length
        ? t("Meter check ordered: job {id}, crew {names}.", { id: shortId(job.id), names: job.crew.join(", ") })
        : t("Meter check ordered: job {id}, no crew yet.", { id: shortId(job.id) });
      done.hidden = false;
      await openJob(job.id);
    } catch (err) {
      out.textContent = errorText(err);
    }
  };
  return h("form", { class: "meter-check", id: "meter-check-form", onsubmit: submit },
    h("h3", { class: "sub-head" }, t("Order a meter check for {account}", { account })),
    h("label", { for: "check-content" }, t("What to check")),
    content,
    h("div", { class: "row" },
      h("div", { class: "field grow" }, h("label", { for: "check-crew" }, t("Crew")), crew),
      h("button", { type: "submit", class: "btn btn-primary", id: "check-submit" }, t("Order meter check"))),
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
    title: t("Fault from a call"),
    submit: t("Enter fault"),
    areas: { accounts: t("Accounts"), point: t("Around a point") },
    placeholder: t("What the caller says, e.g. no power in the whole building since 10:30"),
  },
  planned: {
    title: t("Planned outage"),
    submit: t("Enter planned outage"),
    areas: { route: t("A route"), accounts: t("Accounts"), point: t("Around a point") },
    placeholder: t("e.g. transformer T-12 replaced: feeder 7 off"),
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
    route: h("div", { class: "row", "data-area": "route" }, field(`${p}route`, t("Route code"), input("route", { maxlength: 64, placeholder: t("the whole route is cut off") }), "grow")),
    accounts: h("div", { class: "row", "data-area": "accounts" },
      field(`${p}accounts`, t("Account numbers"), input("accounts", { placeholder: t("separated by commas or spaces") }), "grow")),
    point: h("div", { class: "row", "data-area": "point" },
      field(`${p}lat`, t("Latitude"), input("lat", { inputmode: "decimal", placeholder: "30.2741" })),
      field(`${p}lon`, t("Longitude"), input("lon", { inputmode: "decimal", placeholder: "120.1551" })),
      field(`${p}radius`, t("Radius (m)"), input("radius", { inputmode: "decimal", value: "300" }), "narrow")),
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
          field(`${p}urgency`, t("Urgency"), h("select", { id: `${p}urgency` },
            h("option", { value: "urgent" }, t("Urgent")), h("option", { value: "normal" }, t("Normal")))),
          field(`${p}address`, t("Address"), input("address", { maxlength: 500, placeholder: t("where the caller is") }), "grow"))
      : h("div", { class: "row" },
          field(`${p}start`, t("Off from ({zone})", { zone: zoneName() }), input("start", { type: "datetime-local" }), "grow"),
          field(`${p}finish`, t("Back by ({zone})", { zone: zoneName() }), input("finish", { type: "datetime-local" }), "grow")),
    field(`${p}content`, t("What"), h("textarea", { id: `${p}content`, rows: 2, maxlength: 2000, placeholder: spec.placeholder })),
    h("div", { class: "row" }, field(`${p}area`, t("Area cut off"), area, "grow"),
      kind === "planned" ? field(`${p}address`, t("Address (optional)"), input("address", { maxlength: 500 }), "grow") : null),
    Object.values(areaFields),
    field(`${p}crew`, t("Crew (optional)"), input("crew", { maxlength: 200, placeholder: t("crew1, crew2") })),
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
      // datetime-local is a wall-clock time in the page's zone (named by the field): sent as an instant.
      const when = (name) => (value(name) ? instantOf(value(name)).toISOString() : undefined);
      try {
        body.planned_start = when("start");
        body.expected_finish = when("finish");
      } catch {
        out.textContent = t("Enter the times as a date and a time.");
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
      const id = shortId(job.id);
      if (kind === "planned") {
        done.textContent = job.grid
          ? t("Planned outage entered: job {id} in grid {grid}.", { id, grid: job.grid })
          : t("Planned outage entered: job {id}, in no grid: no grid's board shows it (name its accounts or its crew).", { id });
      } else {
        done.textContent = job.grid
          ? t("Fault entered: job {id} in grid {grid}.", { id, grid: job.grid })
          : t("Fault entered: job {id}, in no grid: no grid's board shows it (name its accounts or its crew).", { id });
      }
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
  $("tz-note").textContent = t("Times in {zone}", { zone: zoneName() });
  // The board opens on the grid last watched here, else on the agent's own grid.
  if (!$("grid-code").value) $("grid-code").value = localStorage.getItem(GRID_KEY) || session.tokens.user.grid || "";
  startBoard();
  await refreshBoard();
  $(state.by === "position" ? "ask-lat" : `ask-${state.by}`).focus();
}

/** On sign-out: nothing of this caller's or this agent's stays on the page for the next. */
function reset() {
  stopBoard();
  Object.assign(state, { asked: null, rows: [], jobId: null, board: [], picks: [], picked: null, customer: null });
  hidePicks();
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
  $("ask-account").addEventListener("input", searchAsTyped);
  $("ask-account").addEventListener("keydown", (event) => {
    if (event.key === "Escape") hidePicks();
  });
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
  intro: t("For call-centre agents: is there an outage at the caller's address, and when is power back?"),
  roles: ["agent", "supervisor", "admin"],
  rolesText: t("call-centre agents, supervisors and administrators"),
  view: "outage-view",
  enter,
  reset,
});
