/* Conveyor dashboard: vanilla JS over the /v1 API, no build step.
 *
 * DOM is built with createElement/textContent only (never innerHTML with data), so job
 * payloads and error texts cannot inject markup; no inline scripts or styles, so a strict
 * Content-Security-Policy (script-src 'self') applies. Views re-render from the API every
 * POLL_MS while visible ("live"), and pause while a dialog is open or the tab is hidden.
 */
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "conveyor.token";
const USER_KEY = "conveyor.user";
const REFRESH_KEY = "conveyor.refresh";
const STATUSES = ["queued", "scheduled", "running", "retrying", "completed", "dead", "cancelled"];
const TERMINAL = new Set(["completed", "dead", "cancelled"]);

const $ = (id) => document.getElementById(id);

/* ---------- DOM helper ---------- */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/* ---------- formatting ---------- */
function ago(iso) {
  if (!iso) return "—";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (Math.abs(s) < 1) return "now";
  const fmt = (v, u) => `${Math.round(v)}${u}`;
  const abs = Math.abs(s);
  const text = abs < 60 ? fmt(abs, "s") : abs < 3600 ? fmt(abs / 60, "m") : abs < 86400 ? fmt(abs / 3600, "h") : fmt(abs / 86400, "d");
  return s >= 0 ? `${text} ago` : `in ${text}`;
}
function seconds(v) {
  if (v === null || v === undefined) return "—";
  return v < 1 ? `${(v * 1000).toFixed(0)} ms` : v < 60 ? `${v.toFixed(1)} s` : `${(v / 60).toFixed(1)} min`;
}
function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("span", { title: d.toISOString() }, `${d.toLocaleString()} (${ago(iso)})`);
}
function shortId(id) { return String(id).slice(-12); }
function num(n) { return n ? h("span", {}, n.toLocaleString()) : h("span", { class: "zero" }, "0"); }
function badge(text, cls) { return h("span", { class: `badge ${cls || text}` }, text); }
function json(v) { return JSON.stringify(v, null, 2); }
function firstLine(s) { return (s || "").split("\n")[0]; }

/* ---------- API ---------- */
class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

let refreshing = null;

/* Access tokens are short-lived: on a 401, trade the refresh token for a new pair once
 * (shared by concurrent requests), and only then send the operator back to the login. */
async function refreshToken() {
  const rt = sessionStorage.getItem(REFRESH_KEY);
  if (!rt) return false;
  refreshing = refreshing || fetch("/v1/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ refresh_token: rt }),
  }).then(async (resp) => {
    if (!resp.ok) return false;
    const data = await resp.json();
    sessionStorage.setItem(TOKEN_KEY, data.access_token);
    if (data.refresh_token) sessionStorage.setItem(REFRESH_KEY, data.refresh_token);
    return true;
  }).catch(() => false).finally(() => { setTimeout(() => { refreshing = null; }, 0); });
  return refreshing;
}

async function api(method, path, body, retried) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const text = await resp.text();
  if (text) { try { data = JSON.parse(text); } catch { data = { detail: text }; } }
  if (resp.status === 401 && token && !retried && await refreshToken()) {
    return api(method, path, body, true);
  }
  if (resp.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(REFRESH_KEY);
    showLogin(token ? "Your session has expired; please sign in again." : "");
    throw new ApiError(401, data);
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}
const get = (p) => api("GET", p);
const post = (p, b) => api("POST", p, b === undefined ? {} : b);
const patch = (p, b) => api("PATCH", p, b);

function toast(message, isError) {
  const el = $("toast");
  el.textContent = message;
  el.className = isError ? "toast error" : "toast";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

async function act(label, fn) {
  try {
    const r = await fn();
    toast(label);
    await refresh();
    return r;
  } catch (e) {
    if (e.status !== 401) toast(`${e.message}`, true);
    return null;
  }
}

/* ---------- modal ---------- */
function modal(title, body, okLabel, onOk) {
  const dlg = $("modal");
  $("modal-title").textContent = title;
  $("modal-body").replaceChildren(body);
  $("modal-error").textContent = "";
  $("modal-ok").textContent = okLabel;
  const ok = $("modal-ok");
  const handler = async (ev) => {
    ev.preventDefault();
    try {
      await onOk();
      dlg.close();
    } catch (e) {
      $("modal-error").textContent = e.message;
    }
  };
  ok.onclick = handler;
  dlg.showModal();
}

/* ---------- login ---------- */
let authMode = "unknown"; // "open" (no auth), "token"

function showLogin(message) {
  $("shell").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-user").focus();
}

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const username = $("login-user").value.trim();
  const password = $("login-pass").value;
  try {
    const resp = await fetch("/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      $("login-error").textContent = resp.status === 404
        ? "This server has no login endpoint."
        : data.detail || data.title || `Sign-in failed (HTTP ${resp.status})`;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, data.access_token);
    if (data.refresh_token) sessionStorage.setItem(REFRESH_KEY, data.refresh_token);
    sessionStorage.setItem(USER_KEY, username);
    $("login-pass").value = "";
    authMode = "token";
    start();
  } catch (e) {
    $("login-error").textContent = `Cannot reach the server: ${e.message}`;
  }
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(REFRESH_KEY);
  sessionStorage.removeItem(USER_KEY);
  stopPolling();
  showLogin("Signed out.");
}

/* ---------- routing & polling ---------- */
let timer = null;
let rendering = false;
let lastOk = 0;

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "jobs" && parts[1]) return { view: "job", id: parts[1], params };
  return { view: parts[0] || "overview", params };
}

const views = {};
const state = { jobs: { extra: [], cursor: null }, selected: new Set() };

async function refresh() {
  if (rendering || $("modal").open) return;
  rendering = true;
  const r = route();
  const view = views[r.view] || views.overview;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === (r.view === "job" ? "jobs" : r.view));
  }
  try {
    const content = await view(r);
    if (content) {
      const main = $("main");
      // Keep focus and typed text in filter inputs across live re-renders.
      const focused = document.activeElement && document.activeElement.id;
      const caret = document.activeElement && document.activeElement.selectionStart;
      main.replaceChildren(content);
      if (focused && $(focused) && $(focused) !== document.body) {
        const el = $(focused);
        el.focus();
        if (caret !== undefined && caret !== null && el.setSelectionRange) {
          try { el.setSelectionRange(caret, caret); } catch { /* not a text input */ }
        }
      }
    }
    lastOk = Date.now();
    await updateDeadBadge();
  } catch (e) {
    if (e.status !== 401) {
      $("main").replaceChildren(h("div", { class: "card" }, h("h2", {}, "Could not load"), h("p", { class: "error-text" }, e.message)));
    }
  } finally {
    rendering = false;
    const live = $("live");
    const stale = Date.now() - lastOk > POLL_MS * 3;
    live.classList.toggle("stale", stale);
    $("live-text").textContent = stale ? "reconnecting" : "live";
  }
}

async function updateDeadBadge() {
  const b = $("dead-badge");
  const n = state.deadTotal || 0;
  b.hidden = !n;
  b.textContent = n > 999 ? "999+" : String(n);
}

function startPolling() {
  stopPolling();
  timer = setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
}
function stopPolling() { if (timer) clearInterval(timer); timer = null; }

function setParams(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const base = location.hash.replace(/^#/, "").split("?")[0] || "/";
  const next = `#${base}${q.toString() ? "?" + q.toString() : ""}`;
  if (location.hash !== next) location.hash = next; else refresh();
}

/* ---------- Overview ---------- */
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function throughputChart(history) {
  const W = 720, H = 190, L = 34, B = 20, T = 8;
  const pts = history.points || [];
  const tick = niceCeil(Math.max(4, ...pts.map((p) => p.completed + p.dead)) / 4);
  const max = tick * 4;
  const step = (W - L) / Math.max(pts.length, 1);
  const y = (v) => H - B - ((H - B - T) * v) / max;
  const g = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    g.push(svg("line", { class: "grid", x1: L, x2: W, y1: y(v), y2: y(v) }));
    g.push(svg("text", { class: "axis", x: L - 6, y: y(v) + 3, "text-anchor": "end" }, v.toLocaleString()));
  }
  pts.forEach((p, i) => {
    const x = L + i * step + 1;
    const w = Math.max(1, step - 2);
    if (p.completed) g.push(svg("rect", { class: "bar-ok", x, width: w, y: y(p.completed), height: H - B - y(p.completed) }, svg("title", {}, `${new Date(p.at).toLocaleTimeString()}: ${p.completed} completed`)));
    if (p.dead) g.push(svg("rect", { class: "bar-fail", x, width: w, y: y(p.completed + p.dead), height: y(p.completed) - y(p.completed + p.dead) }, svg("title", {}, `${new Date(p.at).toLocaleTimeString()}: ${p.dead} dead`)));
    if (i % 10 === 0) g.push(svg("text", { class: "axis", x: x, y: H - 5 }, new Date(p.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  });
  return svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Jobs per minute" }, g);
}

views.overview = async () => {
  const data = await get("/v1/dashboard/overview");
  const totals = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const q of data.queues) for (const s of STATUSES) totals[s] += q.counts[s] || 0;
  state.deadTotal = totals.dead;
  const lastHour = (data.history.points || []).reduce((a, p) => ({ c: a.c + p.completed, d: a.d + p.dead }), { c: 0, d: 0 });
  const stat = (label, value, cls, id) => h("div", { class: "stat", id }, h("div", { class: "label" }, label), h("div", { class: `value ${cls || ""}` }, value));
  // On the Redis transport, each queue's ids in Redis: ready to take, and taken by a worker
  // that has not acknowledged its claim yet (a dead worker's, until the sweep puts them back).
  const viaTransport = data.transport && data.transport !== "store";
  const tname = viaTransport ? data.transport.charAt(0).toUpperCase() + data.transport.slice(1) : "";
  const transportHeads = viaTransport ? [
    h("th", { class: "num", title: `ids in ${tname} waiting for a worker to take them` }, `${tname} ready`),
    h("th", { class: "num", title: `ids taken from ${tname} by a worker whose store claim is not acknowledged yet` }, `${tname} processing`),
  ] : [];
  const rows = data.queues.map((q) => h("tr", { dataset: { queue: q.name } },
    h("td", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}` }, q.name), " ", q.paused ? badge("paused") : null,
      q.unconsumed ? h("span", { class: "badge fail", title: "ready jobs wait here, and no live worker consumes this queue: start one with --queues including it (or '*')" }, "no worker") : null),
    ...["queued", "scheduled", "running", "retrying", "dead", "completed", "cancelled"].map((s) =>
      h("td", { class: "num", dataset: { status: s } }, q.counts[s] && s === "dead" ? h("a", { href: `#/dead?queue=${encodeURIComponent(q.name)}` }, q.counts[s].toLocaleString()) : num(q.counts[s]))),
    ...(viaTransport ? ["ready", "processing"].map((k) => h("td", { class: "num", dataset: { transport: k } }, q.transport
      ? num(q.transport[k])
      : h("span", { class: "muted", title: `${tname} does not answer: workers claim from the store until it does` }, "—"))) : []),
    h("td", { class: "actions" }, q.paused
      ? h("button", { class: "btn small", onclick: () => act(`Resumed ${q.name}`, () => patch(`/v1/queues/${encodeURIComponent(q.name)}`, { paused: false })) }, "Resume")
      : h("button", { class: "btn small", onclick: () => act(`Paused ${q.name}`, () => patch(`/v1/queues/${encodeURIComponent(q.name)}`, { paused: true })) }, "Pause")),
  ));
  return h("div", {},
    h("div", { class: "page-head" }, h("h1", {}, "Overview")),
    h("div", { class: "grid-stats" },
      stat("Workers alive", data.workers_alive, data.workers_alive ? "green" : "red", "stat-workers"),
      stat("Ready", totals.queued.toLocaleString(), "", "stat-queued"),
      stat("Running", totals.running.toLocaleString(), "", "stat-running"),
      stat("Completed (last hour)", lastHour.c.toLocaleString(), "", "stat-completed"),
      stat("Dead letters", totals.dead.toLocaleString(), totals.dead ? "red" : "", "stat-dead"),
    ),
    h("div", { class: "card" },
      h("h2", {}, "Throughput — jobs finished per minute, last hour"),
      throughputChart(data.history),
      h("div", { class: "legend" }, h("span", {}, h("i", { class: "ok" }), "completed"), h("span", {}, h("i", { class: "fail" }), "dead-lettered"),
        h("span", {}, "from the store: finished jobs that retention keeps")),
    ),
    h("div", { class: "card flush" },
      h("h2", {}, "Queues"),
      h("table", { id: "queues" },
        h("thead", {}, h("tr", {}, h("th", {}, "Queue"), ...["Ready", "Scheduled", "Running", "Retrying", "Dead", "Completed", "Cancelled"].map((t) => h("th", { class: "num" }, t)), ...transportHeads, h("th", {}, ""))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9 + transportHeads.length, class: "empty" }, "No queues yet."))),
      ),
    ),
  );
};

/* ---------- Jobs ---------- */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function jobRow(j) {
  return h("tr", { class: "clickable", dataset: { id: j.id }, onclick: () => { location.hash = `#/jobs/${j.id}`; } },
    h("td", { class: "mono", title: j.id }, shortId(j.id)),
    h("td", {}, j.type),
    h("td", {}, j.queue),
    h("td", {}, badge(j.status)),
    h("td", { class: "num" }, `${j.attempt}/${j.max_retries + 1}`),
    h("td", {}, ago(j.created_at)),
    h("td", {}, ago(j.updated_at)),
  );
}

views.jobs = async (r) => {
  const p = r.params;
  const q = new URLSearchParams({ limit: "50" });
  for (const k of ["queue", "status", "type", "tag"]) if (p.get(k)) q.set(k, p.get(k));
  const search = p.get("q") || "";
  let jobs = [];
  let next = null;
  let note = null;
  if (UUID_RE.test(search)) {
    try { jobs = [await get(`/v1/jobs/${search}`)]; } catch (e) { if (e.status === 404) note = "No job with that id."; else throw e; }
  } else {
    if (search) q.set(search.includes(":") ? "tag" : "type", search);
    const page = await get(`/v1/jobs?${q}`);
    jobs = page.jobs;
    next = page.next_cursor;
  }
  const queues = (await get("/v1/queues")).queues.map((x) => x.name);
  const filters = h("form", { class: "filters", onsubmit: (ev) => { ev.preventDefault(); applyJobFilters(); } },
    h("input", { type: "search", id: "job-search", placeholder: "Search by job id, type or tag (schedule:name)", value: search }),
    h("select", { id: "job-status", onchange: applyJobFilters },
      h("option", { value: "" }, "Any status"),
      ...STATUSES.map((s) => h("option", { value: s, selected: p.get("status") === s }, s))),
    h("select", { id: "job-queue", onchange: applyJobFilters },
      h("option", { value: "" }, "Any queue"),
      ...queues.map((n) => h("option", { value: n, selected: p.get("queue") === n }, n))),
    h("button", { class: "btn", type: "submit" }, "Search"),
    (p.toString() ? h("a", { href: "#/jobs", class: "btn ghost" }, "Clear") : null),
  );
  const body = jobs.map(jobRow);
  return h("div", {},
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), h("span", { class: "muted" }, "newest first")),
    h("div", { class: "card flush" }, filters,
      h("table", { id: "jobs" },
        h("thead", {}, h("tr", {}, ...["Id", "Type", "Queue", "Status", "Attempt", "Created", "Updated"].map((t) => h("th", { class: t === "Attempt" ? "num" : "" }, t)))),
        h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: 7, class: "empty" }, note || "No jobs match."))),
      ),
      next ? h("div", { class: "toolbar" }, h("span", { class: "count" }, `Showing the newest ${jobs.length}; narrow the filters to find older jobs.`)) : null,
    ),
  );
};

function applyJobFilters() {
  setParams({ q: $("job-search").value.trim(), status: $("job-status").value, queue: $("job-queue").value });
}

/* ---------- Job detail ---------- */
function editAndRequeue(job) {
  const area = h("textarea", { id: "edit-payload", spellcheck: "false" }, json(job.payload));
  modal(`Edit payload and requeue ${shortId(job.id)}`, h("div", {}, h("p", { class: "muted" }, `${job.type} on ${job.queue}. The job restarts at attempt 1 with this payload.`), area), "Requeue", async () => {
    let payload;
    try { payload = JSON.parse(area.value); } catch (e) { throw new Error(`Not valid JSON: ${e.message}`); }
    // Any JSON value is a payload; null asks the server to keep the current one.
    if (payload === null) throw new Error("null would keep the current payload: requeue without editing instead.");
    await post(`/v1/jobs/${job.id}/retry`, { payload });
    toast("Requeued with the edited payload");
    setTimeout(refresh, 0);
  });
}

views.job = async (r) => {
  const [job, ev] = await Promise.all([get(`/v1/jobs/${r.id}`), get(`/v1/jobs/${r.id}/events`)]);
  const actions = [];
  if (!TERMINAL.has(job.status)) actions.push(h("button", { class: "btn danger", onclick: () => act("Cancelled", () => post(`/v1/jobs/${job.id}/cancel`)) }, "Cancel"));
  if (job.status === "dead") {
    actions.push(h("button", { class: "btn primary", id: "requeue", onclick: () => act("Requeued", () => post(`/v1/jobs/${job.id}/retry`)) }, "Requeue"));
    actions.push(h("button", { class: "btn", onclick: () => editAndRequeue(job) }, "Edit & requeue"));
  }
  const kv = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const runtime = job.started_at && job.finished_at ? seconds((new Date(job.finished_at) - new Date(job.started_at)) / 1000) : "—";
  return h("div", {},
    h("div", { class: "page-head" },
      h("a", { href: "#/jobs" }, "← Jobs"),
      h("h1", { class: "mono" }, job.id), badge(job.status), h("span", { class: "spacer" }), ...actions),
    h("div", { class: "two-col" },
      h("div", {},
        h("div", { class: "card" }, h("h2", {}, "Job"),
          h("dl", { class: "kv" },
            kv("Type", job.type), kv("Queue", job.queue), kv("Priority", job.priority),
            kv("Attempt", `${job.attempt} of ${job.max_retries + 1}`), kv("Timeout", seconds(job.timeout)),
            kv("Run at", when(job.run_at)), kv("Created", when(job.created_at)), kv("Started", when(job.started_at)),
            kv("Finished", when(job.finished_at)), kv("Last run time", runtime), kv("Worker", job.worker_id || "—"),
            kv("Unique key", job.unique_key || "—"), kv("Tags", job.tags.length ? job.tags.join(", ") : "—"),
          )),
        h("div", { class: "card" }, h("h2", {}, "Payload"), h("pre", { id: "payload" }, json(job.payload))),
        job.result !== null && job.result !== undefined ? h("div", { class: "card" }, h("h2", {}, "Result"), h("pre", {}, json(job.result))) : null,
        job.last_error ? h("div", { class: "card" }, h("h2", {}, "Last error"), h("pre", { class: "error", id: "last-error" }, job.last_error)) : null,
      ),
      h("div", { class: "card" }, h("h2", {}, "Timeline"),
        h("ol", { class: "timeline", id: "timeline" }, ev.events.map((e) => h("li", {},
          h("div", {}, e.from_status ? [badge(e.from_status), " → "] : "created as ", badge(e.to_status), e.attempt ? h("span", { class: "muted" }, `  attempt ${e.attempt}`) : null),
          h("div", { class: "when" }, new Date(e.at).toLocaleString(), e.worker_id ? ` · ${e.worker_id}` : ""),
          e.message ? h("div", { class: "msg" }, firstLine(e.message)) : null,
        )))),
    ),
  );
};

/* ---------- Dead letters ---------- */
views.dead = async (r) => {
  const q = new URLSearchParams({ limit: "200" });
  if (r.params.get("queue")) q.set("queue", r.params.get("queue"));
  const page = await get(`/v1/dead?${q}`);
  const jobs = page.jobs;
  const ids = new Set(jobs.map((j) => j.id));
  for (const id of [...state.selected]) if (!ids.has(id)) state.selected.delete(id);
  const sel = state.selected;
  const bulk = async (what, path, verb) => {
    const chosen = [...sel];
    if (!chosen.length) return;
    await act(`${verb} ${chosen.length} job${chosen.length > 1 ? "s" : ""}`, () => post(path, { ids: chosen }));
    sel.clear();
    await refresh();
  };
  const allBox = h("input", { type: "checkbox", id: "select-all", "aria-label": "Select all", checked: jobs.length > 0 && sel.size === jobs.length,
    onchange: (e) => { if (e.target.checked) jobs.forEach((j) => sel.add(j.id)); else sel.clear(); refresh(); } });
  const rows = jobs.map((j) => h("tr", { dataset: { id: j.id } },
    h("td", {}, h("input", { type: "checkbox", "aria-label": `Select ${j.id}`, checked: sel.has(j.id), onchange: (e) => { if (e.target.checked) sel.add(j.id); else sel.delete(j.id); refresh(); } })),
    h("td", { class: "mono" }, h("a", { href: `#/jobs/${j.id}`, title: j.id }, shortId(j.id))),
    h("td", {}, j.type), h("td", {}, j.queue),
    h("td", { class: "num" }, j.attempt),
    h("td", { class: "error-cell", title: firstLine(j.last_error) }, firstLine(j.last_error)),
    h("td", {}, ago(j.finished_at || j.updated_at)),
    h("td", { class: "actions" },
      h("button", { class: "btn small", dataset: { action: "requeue" }, onclick: () => act("Requeued", () => post(`/v1/jobs/${j.id}/retry`)) }, "Requeue"),
      h("button", { class: "btn small", onclick: () => editAndRequeue(j) }, "Edit…"),
      h("button", { class: "btn small danger", onclick: () => act("Discarded", () => post("/v1/dead/discard", { ids: [j.id] })) }, "Discard")),
  ));
  return h("div", {},
    h("div", { class: "page-head" }, h("h1", {}, "Dead letters"),
      h("span", { class: "muted" }, "jobs that ran out of retries or failed for good; fix the cause, then requeue")),
    h("div", { class: "card flush" },
      h("div", { class: "toolbar" }, h("span", { class: "count" }, sel.size ? `${sel.size} selected` : `${jobs.length}${page.next_cursor ? "+" : ""} dead job${jobs.length === 1 ? "" : "s"}`),
        h("button", { class: "btn small", id: "bulk-requeue", disabled: !sel.size, onclick: () => bulk("requeue", "/v1/dead/requeue", "Requeued") }, "Requeue selected"),
        h("button", { class: "btn small danger", id: "bulk-discard", disabled: !sel.size, onclick: () => bulk("discard", "/v1/dead/discard", "Discarded") }, "Discard selected")),
      h("table", { id: "dead" },
        h("thead", {}, h("tr", {}, h("th", {}, allBox), ...["Id", "Type", "Queue", "Attempts", "Error", "Died", ""].map((t) => h("th", { class: t === "Attempts" ? "num" : "" }, t)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "The dead-letter queue is empty."))),
      )),
  );
};

/* ---------- Schedules ---------- */
views.schedules = async () => {
  const data = await get("/v1/dashboard/schedules");
  const rows = data.schedules.map((s) => h("tr", { dataset: { name: s.name } },
    h("td", {}, h("strong", {}, s.name)),
    h("td", { class: "mono" }, s.cron, h("div", { class: "muted" }, s.timezone)),
    h("td", {}, s.type, h("div", { class: "muted" }, `queue ${s.queue}`)),
    h("td", {}, badge(s.enabled ? "enabled" : "disabled")),
    h("td", {}, s.enabled ? h("div", {}, ...s.upcoming.slice(0, 3).map((t, i) => h("div", { class: i ? "muted" : "" }, `${new Date(t).toLocaleString()} (${ago(t)})`))) : h("span", { class: "muted" }, "—")),
    h("td", {}, s.last_run_at ? ago(s.last_run_at) : h("span", { class: "muted" }, "never")),
    h("td", { class: "actions" },
      h("button", { class: "btn small", onclick: () => act(`Fired ${s.name}`, () => post(`/v1/schedules/${encodeURIComponent(s.name)}/trigger`)) }, "Trigger now"),
      h("button", { class: "btn small", onclick: () => act(`${s.enabled ? "Disabled" : "Enabled"} ${s.name}`, () => patch(`/v1/schedules/${encodeURIComponent(s.name)}`, { enabled: !s.enabled })) }, s.enabled ? "Disable" : "Enable")),
  ));
  return h("div", {},
    h("div", { class: "page-head" }, h("h1", {}, "Schedules")),
    h("div", { class: "card flush" },
      h("table", { id: "schedules" },
        h("thead", {}, h("tr", {}, ...["Name", "Cron", "Job", "State", "Next fire times", "Last fired", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No schedules. Create one with `conveyor schedule set` or POST /v1/schedules."))),
      )),
  );
};

/* ---------- Workers ---------- */
function meter(used, total) {
  const frac = total ? Math.min(1, used / total) : 0;
  return svg("svg", { class: "meter", viewBox: "0 0 100 8", preserveAspectRatio: "none" },
    svg("rect", { class: "track", x: 0, y: 0, width: 100, height: 8, rx: 4 }),
    svg("rect", { class: "fill", x: 0, y: 0, width: Math.max(frac * 100, used ? 3 : 0), height: 8, rx: 4 }));
}

function breakers(meta) {
  const b = meta && (meta.breakers || meta.circuits);
  if (!b || typeof b !== "object") return h("span", { class: "muted" }, "—");
  const entries = Array.isArray(b) ? b.map((x) => [x.type || x.name, x.state]) : Object.entries(b).map(([k, v]) => [k, typeof v === "object" ? v.state : v]);
  if (!entries.length) return h("span", { class: "muted" }, "all closed");
  return h("div", {}, ...entries.map(([t, s]) => h("div", {}, badge(String(s), String(s).replace(" ", "_")), " ", h("span", { class: "mono" }, t))));
}

views.workers = async () => {
  const data = await get("/v1/workers");
  const rows = data.workers.map((w) => h("tr", { dataset: { id: w.id } },
    h("td", { class: "mono" }, w.id),
    h("td", {}, w.queues.join(", ")),
    h("td", {}, meter(w.running, w.concurrency), `${w.running} / ${w.concurrency}`),
    h("td", {}, badge(w.heartbeat_age < 60 ? "ok" : "stale"), " ", `${seconds(w.heartbeat_age)} ago`),
    h("td", {}, ago(w.started_at)),
    h("td", {}, breakers(w.meta)),
  ));
  return h("div", {},
    h("div", { class: "page-head" }, h("h1", {}, "Workers"), h("span", { class: "muted" }, `${data.workers.length} registered`)),
    h("div", { class: "card flush" },
      h("table", { id: "workers" },
        h("thead", {}, h("tr", {}, ...["Worker", "Queues", "Running", "Heartbeat", "Started", "Circuit breakers"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No workers are registered."))),
      )),
  );
};

/* ---------- start ---------- */
async function start() {
  // Probe once: 401 means this server wants a login; anything else means we are in.
  try {
    await get("/v1/queues");
  } catch (e) {
    if (e.status === 401) return;
    throw e;
  }
  if (!sessionStorage.getItem(TOKEN_KEY)) authMode = "open";
  $("login").hidden = true;
  $("shell").hidden = false;
  const user = sessionStorage.getItem(USER_KEY);
  $("whoami").textContent = authMode === "open" ? "auth disabled" : user || "";
  $("logout").hidden = authMode === "open";
  await refresh();
  startPolling();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("modal-cancel").addEventListener("click", () => $("modal").close());
  window.addEventListener("hashchange", () => { state.selected.clear(); refresh(); });
  start().catch((e) => showLogin(`Cannot reach the server: ${e.message}`));
});
