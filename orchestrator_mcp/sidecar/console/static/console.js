/* orchestrator-mcp console: sign-in, bearer header on every request, live run pages,
   approval decisions and start forms. No inline script anywhere (CSP script-src 'self'). */
"use strict";

const TOKEN_KEY = "orchestrator-console-token";
const SCOPES = ["read", "run", "approve", "admin"];
let me = null;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  return headers;
}

function byId(id) { return document.getElementById(id); }

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

/* An error answer {"error", "detail"} as lines of text (detail: a string or a list of
   {"field", "problem"}). */
async function problemsOf(response) {
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!body) return [response.status + " " + response.statusText];
  const detail = body.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d.field ? d.field + ": " : "") + (d.problem || JSON.stringify(d)));
  }
  return [String(detail || body.error || response.status)];
}

function showProblems(element, lines) {
  if (!element) return;
  element.replaceChildren();
  for (const line of lines) {
    const item = document.createElement("div");
    item.textContent = line;
    element.appendChild(item);
  }
  element.hidden = lines.length === 0;
}

function flash(lines) { showProblems(byId("flash"), lines); }

async function api(path, options) {
  const init = Object.assign({}, options || {});
  init.headers = authHeaders(Object.assign(
    init.body ? { "Content-Type": "application/json" } : {}, init.headers || {}));
  init.credentials = "omit";
  const response = await fetch(path, init);
  if (response.status === 401) signOut("Your token was refused; sign in again.");
  return response;
}

/* ---- sign-in ------------------------------------------------------------------------ */

async function signIn() {
  const response = await fetch("/console/api/me", { headers: authHeaders(), credentials: "omit" });
  if (!response.ok) {
    const had = token() !== "";
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(had ? (await problemsOf(response)) : []);
    return;
  }
  me = await response.json();
  for (const scope of SCOPES) document.body.classList.toggle("scope-" + scope, me.scopes.includes(scope));
  byId("signin").hidden = true;
  byId("content").hidden = false;
  byId("who").hidden = false;
  byId("who-name").textContent = me.name + " (" + me.scopes.join(", ") + ")";
  document.body.classList.add("signed-in");
  startPage();
}

function showSignIn(problems) {
  byId("content").hidden = true;
  byId("who").hidden = true;
  byId("signin").hidden = false;
  showProblems(byId("signin-error"), problems);
  byId("token").focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  document.body.classList.remove("signed-in");
  showSignIn(message ? [message] : []);
}

/* ---- fragments ---------------------------------------------------------------------- */

/* True while the operator types in a fragment: a refresh would throw their edits away. */
function isEditing(element) {
  const active = document.activeElement;
  if (active && element.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return true;
  for (const field of element.querySelectorAll("textarea, input")) {
    if (field.value !== field.defaultValue) return true;
  }
  return false;
}

function load(element) { htmx.trigger(element, "console:load"); }

function loadAndWait(element) {
  return new Promise((resolve) => {
    element.addEventListener("htmx:afterSettle", () => resolve(), { once: true });
    load(element);
    setTimeout(resolve, 5000);
  });
}

function refreshSoon(element) {
  if (element._refreshing) return;
  element._refreshing = true;
  const attempt = () => {
    if (isEditing(element)) { setTimeout(attempt, 1000); return; }
    element._refreshing = false;
    load(element);
  };
  setTimeout(attempt, 250);
}

function startPage() {
  const current = document.body.dataset.page;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === current) link.setAttribute("aria-current", "page");
  }
  for (const element of document.querySelectorAll(".fragment")) {
    load(element);
    const seconds = Number(element.dataset.refresh || 0);
    if (seconds > 0) {
      setInterval(() => { if (me && !isEditing(element)) load(element); }, seconds * 1000);
    }
  }
  const run = byId("run");
  if (run) followRun(run);
}

/* ---- a run, live ------------------------------------------------------------------- */

function finished(element) {
  const state = element.querySelector(".run-state");
  return state !== null && state.dataset.finished === "true";
}

/* Server-sent events from a fetch() body (EventSource cannot send a bearer header). */
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = { id: null, event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data += (event.data ? "\n" : "") + text;
        else if (field === "id" || field === "event") event[field] = text;
      }
      yield event;
    }
  }
}

/* Follow GET /runs/{id}/stream and refresh the run on each event; where the server has
   no stream (404), re-read the run every 2 s until it ends. */
function liveMode(mode, text) {
  const shown = byId("live");
  if (!shown) return;
  shown.dataset.mode = mode;
  if (mode === "stream" || mode === "poll") shown.dataset.followedBy = mode;
  shown.textContent = text;
}

async function followRun(element) {
  const url = "/runs/" + encodeURIComponent(element.dataset.runId) + "/stream";
  let lastId = null;
  for (;;) {
    let response;
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      response = await fetch(url, { headers: headers, credentials: "omit", cache: "no-store" });
    } catch (e) {
      await sleep(2000);
      continue;
    }
    const type = response.headers.get("content-type") || "";
    if (response.status === 401) { signOut("Your token was refused; sign in again."); return; }
    if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
      return pollRun(element);
    }
    liveMode("stream", "● live");
    try {
      for await (const event of sseEvents(response.body)) {
        if (event.id !== null) lastId = event.id;
        refreshSoon(element);
        if (event.event === "end") {
          await loadAndWait(element);
          liveMode("ended", "run ended");
          return;
        }
      }
    } catch (e) { /* the connection dropped: reconnect from lastId */ }
    liveMode("reconnecting", "reconnecting…");
    await sleep(1000);
  }
}

function pollRun(element) {
  liveMode("poll", "refreshing every 2 s");
  const timer = setInterval(() => {
    if (!me) return;
    if (finished(element)) { clearInterval(timer); liveMode("ended", "run ended"); return; }
    if (!isEditing(element)) load(element);
  }, 2000);
}

/* ---- JSON Schema check (the common keywords; the server checks in full) ------------- */

function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function fits(type, value) {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

function checkSchema(schema, value, where, problems, depth) {
  if (!schema || typeof schema !== "object" || depth > 32 || problems.length >= 20) return problems;
  const here = where || "(top level)";
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => fits(t, value))) {
      problems.push(here + ": must be " + types.join(" or ") + ", not " + typeOf(value));
      return problems;
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    problems.push(here + ": must be one of " + schema.enum.map((e) => JSON.stringify(e)).join(", "));
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) problems.push(here + ": must be ≥ " + schema.minimum);
    if (typeof schema.maximum === "number" && value > schema.maximum) problems.push(here + ": must be ≤ " + schema.maximum);
  }
  if (typeof value === "string") {
    if (typeof schema.minLength === "number" && value.length < schema.minLength) problems.push(here + ": at least " + schema.minLength + " characters");
    if (typeof schema.maxLength === "number" && value.length > schema.maxLength) problems.push(here + ": at most " + schema.maxLength + " characters");
  }
  if (typeOf(value) === "object") {
    const properties = schema.properties || {};
    for (const name of schema.required || []) {
      if (!(name in value)) problems.push(here + ": '" + name + "' is required");
    }
    for (const [name, item] of Object.entries(value)) {
      const path = where ? where + "/" + name : name;
      if (Object.prototype.hasOwnProperty.call(properties, name)) checkSchema(properties[name], item, path, problems, depth + 1);
      else if (schema.additionalProperties === false) problems.push(path + ": is not an argument of this tool");
    }
  }
  if (Array.isArray(value) && schema.items && typeof schema.items === "object") {
    value.forEach((item, i) => checkSchema(schema.items, item, (where || "") + "/" + i, problems, depth + 1));
  }
  return problems;
}

function schemaOf(card) {
  if (!card.dataset.schema) return null;
  try { return JSON.parse(card.dataset.schema); } catch (e) { return null; }
}

/* ---- decisions ----------------------------------------------------------------------- */

async function decide(form, submitter) {
  const card = form.closest(".approval");
  const problems = form.querySelector(".problems");
  const approve = submitter && submitter.value === "approve";
  const body = { approved: approve };
  const reason = form.elements.reason.value.trim();
  if (reason) body.reason = reason;
  if (approve) {
    const field = form.elements.arguments;
    if (field.value !== field.defaultValue) {
      let parsed;
      try {
        parsed = JSON.parse(field.value);
      } catch (e) {
        showProblems(problems, ["The arguments are not valid JSON: " + e.message]);
        return;
      }
      if (typeOf(parsed) !== "object") {
        showProblems(problems, ["The arguments must be a JSON object, not " + typeOf(parsed)]);
        return;
      }
      const schema = schemaOf(card);
      const found = schema ? checkSchema(schema, parsed, "", [], 0) : [];
      if (found.length) {
        showProblems(problems, ["The arguments do not fit the tool's input schema:"].concat(found));
        return;
      }
      body.modified_arguments = parsed;
    }
  }
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  const response = await api("/approvals/" + encodeURIComponent(form.dataset.runId),
                             { method: "POST", body: JSON.stringify(body) });
  for (const button of form.querySelectorAll("button")) button.disabled = false;
  if (!response.ok) {
    showProblems(problems, await problemsOf(response));
    return;
  }
  const done = document.createElement("p");
  done.className = "decided";
  done.textContent = (approve ? "Approved" : "Rejected") + (body.modified_arguments ? " with modified arguments" : "") + ".";
  const fragment = card.closest(".fragment");
  form.replaceWith(done);
  if (fragment) load(fragment);
}

/* ---- start forms --------------------------------------------------------------------- */

async function start(form) {
  const problems = [];
  const data = {};
  const inputs = {};
  for (const field of form.elements) {
    if (!field.name || field.tagName === "BUTTON") continue;
    let value = field.value;
    if (field.dataset.json) {
      if (!value.trim()) continue;
      try { value = JSON.parse(value); } catch (e) {
        problems.push(field.name.replace(/^input:/, "") + ": not valid JSON (" + e.message + ")");
        continue;
      }
      if (typeOf(value) !== field.dataset.json) {
        problems.push(field.name.replace(/^input:/, "") + ": must be a JSON " + field.dataset.json);
        continue;
      }
    } else if (field.name.startsWith("input:") && value === "") {
      continue;  // the workflow's default
    }
    if (field.name.startsWith("input:")) inputs[field.name.slice(6)] = value;
    else data[field.name] = value;
  }
  const shown = form.querySelector(".problems");
  if (problems.length) { showProblems(shown, problems); return; }
  const body = form.dataset.kind === "workflow" ? { name: form.dataset.name, inputs: inputs } : data;
  const response = await api(form.dataset.action, { method: "POST", body: JSON.stringify(body) });
  if (!response.ok) { showProblems(shown, await problemsOf(response)); return; }
  const started = await response.json();
  window.location.assign("/console/runs/" + encodeURIComponent(started.run_id || started.id));
}

/* ---- wiring -------------------------------------------------------------------------- */

document.addEventListener("htmx:configRequest", (event) => {
  Object.assign(event.detail.headers, authHeaders());
});

document.addEventListener("htmx:responseError", async (event) => {
  const xhr = event.detail.xhr;
  if (xhr.status === 401) { signOut("Your token was refused; sign in again."); return; }
  let lines = [xhr.status + " " + xhr.statusText];
  try {
    const body = JSON.parse(xhr.responseText);
    lines = Array.isArray(body.detail) ? body.detail.map((d) => d.field + ": " + d.problem) : [String(body.detail)];
  } catch (e) { /* not JSON */ }
  const target = event.detail.target;
  if (target && target.hasAttribute("data-show-errors")) {  // next to what was asked
    const shown = document.createElement("div");
    shown.className = "error";
    target.replaceChildren(shown);
    showProblems(shown, lines);
  } else {
    flash(lines);
  }
});

document.addEventListener("htmx:afterSwap", () => flash([]));

document.addEventListener("input", (event) => {
  const form = event.target.form;
  if (form && (form.classList.contains("decide") || form.classList.contains("start"))) {
    showProblems(form.querySelector(".problems"), []);
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.id === "signin-form") {
    event.preventDefault();
    const value = byId("token").value.trim();
    byId("token").value = "";
    if (value) { sessionStorage.setItem(TOKEN_KEY, value); signIn(); }
  } else if (form.classList.contains("decide")) {
    event.preventDefault();
    decide(form, event.submitter);
  } else if (form.classList.contains("start")) {
    event.preventDefault();
    start(form);
  }
});

document.addEventListener("DOMContentLoaded", () => {
  byId("sign-out").addEventListener("click", () => signOut(""));
  signIn();
});
