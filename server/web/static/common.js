/* Gridwalk desk pages: what every page shares. The header, the error banner and the sign-in
   form; the session (tokens in sessionStorage, one device id per browser) and the API call
   that refreshes an expired access token once and retries; the DOM builder; a few formats.
   A page imports what it needs and calls startPage(). Plain ES modules, no build step.
   Everything the API sends is put on the page as text, never as HTML.
   Words: every sentence goes through t("English message id"), which the server's catalogs
   (common/locale) translate; the page is served with its language's messages in
   #gridwalk-i18n. The language menu in the header sets a cookie and reloads the page. */

export const API = "/api/v1";

// ---------------------------------------------------------------- language

const I18N = JSON.parse(document.getElementById("gridwalk-i18n").textContent);
/** The page's language (a catalog's name: zh_CN, en) and its BCP 47 tag for Intl. */
export const LANGUAGE = I18N.language;
export const LOCALE = I18N.locale;
/** The zone every time on the page is shown in (the server's desk_time_zone). */
export const TIME_ZONE = I18N.time_zone;
const LANGUAGE_COOKIE = "gridwalk_lang";

/** `message` (its English text is its id) in the page's language, with {name} filled from
    `params`. */
export function t(message, params) {
  const text = I18N.messages[message] || message;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** `code`'s label in `labels` (made with t), or the code itself when it has none: a new code
    of the server's shows as it is rather than not at all. */
export function label(labels, code) {
  return code in labels ? labels[code] : code;
}

function chooseLanguage(language) {
  // A cookie, so that the server renders the page in it; a year, like any preference.
  document.cookie = `${LANGUAGE_COOKIE}=${language}; path=/; max-age=31536000; SameSite=Lax`;
  location.reload();
}

// ---------------------------------------------------------------- times and numbers

const sameYear = (d) =>
  new Intl.DateTimeFormat("en", { timeZone: TIME_ZONE, year: "numeric" }).format(d) ===
  new Intl.DateTimeFormat("en", { timeZone: TIME_ZONE, year: "numeric" }).format(new Date());
const dayFormat = (withYear) =>
  new Intl.DateTimeFormat(LOCALE, {
    timeZone: TIME_ZONE, weekday: "short", day: "numeric", month: "short", ...(withYear ? { year: "numeric" } : {}),
  });
const clockFormat = new Intl.DateTimeFormat(LOCALE, { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const secondsFormat = new Intl.DateTimeFormat(LOCALE, {
  timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const dateOnlyFormat = new Intl.DateTimeFormat(LOCALE, { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" });

/** The zone the page's times are in, as people say it: 北京时间 / China Standard Time. */
export function zoneName() {
  if (TIME_ZONE === "Asia/Shanghai") return t("China Standard Time");
  const part = new Intl.DateTimeFormat(LOCALE, { timeZone: TIME_ZONE, timeZoneName: "short" })
    .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
  return part ? part.value : TIME_ZONE;
}

/** A day and time in the page's zone and language ("Tue 24 Nov 14:30", "11月24日周二 14:30"),
    with the year when it is not this year; with `zone`, the zone is named after it. */
export function at(iso, { zone = false } = {}) {
  if (!iso) return "—";
  const d = new Date(iso);
  const text = `${dayFormat(!sameYear(d)).format(d)} ${clockFormat.format(d)}`;
  return zone ? t("{time} ({zone})", { time: text, zone: zoneName() }) : text;
}

/** A time of day to the second in the page's zone: when the page last asked. */
export function clockTime(d) {
  return secondsFormat.format(d);
}

/** A calendar day (a cycle window's dates are days, not instants). */
export function day(iso) {
  return dateOnlyFormat.format(new Date(iso));
}

/** The desk pages, and who may use each: the header links to the others the user may use. */
const PAGES = [
  { path: "/outages", label: t("Outages"), roles: ["agent", "supervisor", "admin"] },
  { path: "/audit", label: t("Route audit"), roles: ["supervisor", "admin"] },
  { path: "/cycle", label: t("Cycle overview"), roles: ["supervisor", "admin"] },
];

/** What each role is called on the page. */
export const ROLES = {
  reader: t("meter reader"),
  crew: t("repair crew"),
  agent: t("call-centre agent"),
  supervisor: t("supervisor"),
  admin: t("administrator"),
  billing: t("billing system"),
};

// ---------------------------------------------------------------- DOM

export const $ = (id) => document.getElementById(id);

/** An element with attributes (on* are listeners) and children (strings become text). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...nodes(children));
  return el;
}

/** Replace an element's children, taken as h() takes them (null and false are nothing). */
export function fill(el, ...children) {
  el.replaceChildren(...nodes(children));
  return el;
}

function nodes(children) {
  return children
    .flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : String(child)));
}

/** A label and its value, for a <dl class="facts">. */
export function fact(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

// ---------------------------------------------------------------- session and API

export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.code = code;
  }
}

/** What to show for a failed call or a broken page: the API's `detail`, else the message. */
export function errorText(err) {
  return err instanceof ApiError ? err.detail : String((err && err.message) || err);
}

export const session = {
  /** One device id per browser: the server keeps a refresh-token chain per device. */
  deviceId() {
    let id = localStorage.getItem("gridwalk.device_id");
    if (!id) {
      const bytes = crypto.getRandomValues(new Uint8Array(8));
      id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem("gridwalk.device_id", id);
    }
    return id;
  },
  get tokens() {
    try {
      return JSON.parse(sessionStorage.getItem("gridwalk.tokens"));
    } catch {
      return null;
    }
  },
  save(body) {
    const tokens = { access_token: body.access_token, refresh_token: body.refresh_token, user: body.user };
    sessionStorage.setItem("gridwalk.tokens", JSON.stringify(tokens));
  },
  clear() {
    sessionStorage.removeItem("gridwalk.tokens");
  },
};

async function problemOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's error page, say
  }
  let detail = body && body.detail;
  if (typeof detail !== "string") {
    detail = detail ? JSON.stringify(detail) : `${response.status} ${response.statusText}`.trim();
  }
  return new ApiError(response.status, detail, body && body.code);
}

async function send(path, { method = "GET", body, auth = true } = {}) {
  // The API says its sentences (flags, refusals, errors it words) in the page's language.
  const headers = { Accept: "application/json", "Accept-Language": LOCALE };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const tokens = session.tokens;
  if (auth && tokens) headers.Authorization = `Bearer ${tokens.access_token}`;
  try {
    return await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, t("cannot reach the server: check the network and try again"), "network");
  }
}

/** Call the API as the signed-in user; an expired access token is refreshed once and retried. */
export async function api(path, options = {}) {
  const sentWith = session.tokens && session.tokens.access_token;
  let response = await send(path, options);
  if (response.status === 401 && session.tokens) {
    const problem = await problemOf(response);
    if (problem.code !== "token_expired") endSession(problem);
    // Another call may have refreshed meanwhile: then just retry with the new token.
    if (session.tokens.access_token === sentWith) await refreshTokens();
    response = await send(path, options);
    if (response.status === 401) endSession(await problemOf(response));
  }
  if (!response.ok) throw await problemOf(response);
  return options.raw ? response : response.json();
}

let refreshing = null;

function refreshTokens() {
  // One refresh at a time: a refresh token is spent on use, and a spent one presented again
  // makes the server revoke this device's tokens, so parallel calls share one refresh.
  if (!refreshing) {
    refreshing = (async () => {
      const tokens = session.tokens;
      if (!tokens) throw new ApiError(401, t("not signed in"), "not_authenticated");
      const response = await send("/auth/refresh", {
        method: "POST",
        body: { refresh_token: tokens.refresh_token },
        auth: false,
      });
      if (!response.ok) endSession(await problemOf(response));
      session.save(await response.json());
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function endSession(problem) {
  signOut(t("You have been signed out: {reason}", { reason: problem.detail }));
  throw problem;
}

// ---------------------------------------------------------------- the page's frame

let page = null; // what startPage() was given

/** Show a failed call in the banner under the header. */
export function showError(err) {
  if (!session.tokens) return; // signed out: the sign-in form already says why
  const banner = $("banner");
  banner.replaceChildren(
    h("span", {}, errorText(err)),
    h("button", { type: "button", class: "banner-close", "aria-label": t("Dismiss"), onclick: () => (banner.hidden = true) }, "×"),
  );
  banner.hidden = false;
}

function languageMenu() {
  const menu = h("select", { id: "language", class: "language-menu", "aria-label": t("Language") },
    Object.entries(I18N.languages).map(([code, name]) =>
      h("option", { value: code, selected: code === LANGUAGE, lang: code.replace("_", "-") }, name)));
  menu.addEventListener("change", () => chooseLanguage(menu.value));
  return menu;
}

function frame(current) {
  const header = h("header", { class: "topbar" },
    h("div", { class: "brand" },
      h("span", { class: "brand-mark", "aria-hidden": "true" }),
      h("span", { class: "brand-name" }, "Gridwalk"),
      h("span", { class: "brand-page" }, current.label)),
    h("div", { class: "topbar-right" },
      h("div", { class: "who", id: "who", hidden: true },
        h("nav", { class: "page-links", id: "page-links" }),
        h("span", { class: "who-name", id: "who-name" }),
        h("span", { class: "who-role", id: "who-role" }),
        h("button", { type: "button", class: "btn btn-on-dark", id: "logout" }, t("Log out"))),
      // Also on the sign-in form: a person picks the language they can read before anything.
      languageMenu()));
  const banner = h("div", { class: "banner", id: "banner", role: "alert", hidden: true });
  const login = h("main", { class: "login", id: "login-view", hidden: true },
    h("form", { class: "card login-card", id: "login-form", novalidate: true },
      h("h1", {}, t("Sign in")),
      h("p", { class: "muted" }, page.intro),
      h("label", { for: "username" }, t("Username")),
      h("input", { id: "username", name: "username", autocomplete: "username", required: true }),
      h("label", { for: "password" }, t("Password")),
      h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
      h("p", { class: "form-error", id: "login-error", role: "alert" }),
      h("button", { type: "submit", class: "btn btn-primary btn-wide", id: "login-submit" }, t("Sign in"))));
  document.body.prepend(header, banner, login);
}

function showLogin(message) {
  $(page.view).hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
  $("username").focus();
}

function signOut(message) {
  session.clear();
  // Nothing of this user's work stays on the page for the next one to see.
  page.reset();
  $("banner").hidden = true;
  history.replaceState(null, "", location.pathname);
  showLogin(message);
}

function refusal(user) {
  return t("This page is for {roles}; {user} is a {role}.", { roles: page.rolesText, user: user.username, role: label(ROLES, user.role) });
}

async function onLogin(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    $("login-error").textContent = t("Enter your username and password.");
    return;
  }
  const button = $("login-submit");
  button.disabled = true;
  button.textContent = t("Signing in…");
  $("login-error").textContent = "";
  try {
    const response = await send("/auth/login", {
      method: "POST",
      auth: false,
      body: { username, password, device_id: session.deviceId() },
    });
    if (!response.ok) throw await problemOf(response);
    const body = await response.json();
    if (!page.roles.includes(body.user.role)) {
      $("login-error").textContent = refusal(body.user);
      return;
    }
    session.save(body);
    $("password").value = "";
    await enterWorkspace();
  } catch (err) {
    $("login-error").textContent = errorText(err);
  } finally {
    button.disabled = false;
    button.textContent = t("Sign in");
  }
}

async function enterWorkspace() {
  const { user } = session.tokens;
  $("who-name").textContent = user.username;
  $("who-role").textContent = label(ROLES, user.role);
  $("page-links").replaceChildren(
    ...PAGES.filter((p) => p.path !== location.pathname && p.roles.includes(user.role))
      .map((p) => h("a", { href: p.path, class: "page-link" }, p.label)),
  );
  $("who").hidden = false;
  $("login-view").hidden = true;
  $(page.view).hidden = false;
  await page.enter();
}

/**
 * Put the header, banner and sign-in form on the page, then show the sign-in form or, with a
 * session of a role the page is for, the page itself.
 *   intro      the sign-in form's line: who the page is for and what it does
 *   roles      the roles that may use it; rolesText says them in words
 *   view       the id of the page's main element (shown once signed in)
 *   prepare()  what to fetch before entering (optional)
 *   enter()    fill the page for the signed-in user
 *   reset()    empty it on sign-out
 */
export async function startPage(options) {
  page = options;
  const current = PAGES.find((p) => p.path === location.pathname) || { label: "" };
  frame(current);
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => signOut(t("You have signed out.")));
  if (page.prepare) await page.prepare();
  const tokens = session.tokens;
  if (!tokens) showLogin();
  // Signed in on another desk page (same tab) as a role this page is not for.
  else if (!page.roles.includes(tokens.user.role)) showLogin(refusal(tokens.user));
  else await enterWorkspace().catch(showError);
}
