/* livechat supervisor view: the queue snapshot pushed over /ws/supervisor (shape: README,
 * "Supervisor view"), a one-hour queue-depth chart drawn as inline SVG, open tickets and
 * the team's canned replies. An ES module; the socket and its reconnecting are common.js's.
 * All text goes in with textContent (LC.el). */
import * as LC from "./common.js";

const $ = (id) => document.getElementById(id);
const csrf = document.body.dataset.csrf;
let snap = null;
let receivedAt = 0; // local clock when snap arrived, to keep ages ticking between pushes

function age(seconds) {
  return seconds + (snap ? LC.now() - receivedAt : 0);
}

function setText(id, text) {
  const node = $(id);
  if (node) node.textContent = text;
}

function num(value) {
  return LC.el("td", { class: "num", text: value });
}

// --- tiles and tables -----------------------------------------------------------

function renderTiles() {
  setText("waiting-total", String(snap.waiting));
  setText("emergencies", String(snap.emergencies));
  $("tile-emergencies").classList.toggle("alert-tile", snap.emergencies > 0);
  setText("active", String(snap.active));
  setText("agents-summary", snap.agents_online + " / " + snap.agents_away + " / " + snap.agents_busy);
  setText("free-capacity", String(snap.free_capacity));
  setText("avg-wait", snap.avg_wait_today === null ? "–" : LC.duration(snap.avg_wait_today));
  setText("avg-handle", snap.avg_handle_today === null ? "–" : LC.duration(snap.avg_handle_today));
  setText("tickets-due", `${snap.tickets_open ?? 0} / ${snap.tickets_due_soon ?? 0} / ${snap.tickets_breached ?? 0}`);
  $("tile-tickets").classList.toggle("alert-tile", (snap.tickets_breached || 0) > 0);
  setText("avg-rating", snap.avg_rating_today === null ? "–" : `${snap.avg_rating_today} / 5 (${snap.ratings_today})`);
  const memory = snap.redis_memory || {};
  $("redis-memory-warning").hidden = !memory.warning;
  if (memory.warning) {
    setText("redis-memory-warning", "Redis memory is at " + Math.round(100 * memory.used_bytes / memory.max_bytes) +
      "% of its maxmemory: when it is full, every hub answers `unavailable`. Add memory or shorten retention.");
  }
  renderAges();
}

/** The parts that move with the clock: oldest wait and per-plan ages. */
function renderAges() {
  if (!snap) return;
  const oldest = snap.waiting ? age(snap.oldest_wait) : null;
  setText("oldest-wait", oldest === null ? "–" : LC.duration(oldest));
  const tile = $("tile-oldest");
  const limit = snap.oldest_max_wait;
  setText("oldest-note", oldest !== null && limit ? snap.oldest_plan + " plan · ticket at " + LC.duration(limit) : "");
  tile.classList.toggle("warn-tile", oldest !== null && !!limit && oldest > limit * 0.5);
  tile.classList.toggle("alert-tile", oldest !== null && !!limit && oldest > limit * 0.8);
  for (const node of document.querySelectorAll("[data-plan-age]")) {
    const plan = (snap.plans || []).find((p) => p.name === node.dataset.planAge);
    if (!plan) continue;
    const value = plan.waiting ? age(plan.oldest_wait) : null;
    node.textContent = value === null ? "–" : LC.duration(value);
    const meter = document.querySelector('meter[data-plan="' + CSS.escape(plan.name) + '"]');
    if (meter) meter.value = value === null ? 0 : Math.min(value, plan.max_wait || value);
  }
}

function renderPlans() {
  const body = LC.clear($("plans-table").tBodies[0]);
  for (const plan of snap.plans || []) {
    const max = plan.max_wait || 1;
    const meter = LC.el("meter", {
      min: 0, max, low: max * 0.5, high: max * 0.8, optimum: 0, value: 0,
      dataset: { plan: plan.name }, title: "Oldest wait against this plan's max_wait",
    });
    body.append(
      LC.el(
        "tr",
        { dataset: { planRow: plan.name } },
        LC.el("th", { scope: "row", text: plan.name }),
        LC.el("td", { class: "num", dataset: { planWaiting: plan.name }, text: String(plan.waiting) }),
        LC.el("td", { class: "num", dataset: { planAge: plan.name }, text: "–" }),
        num(LC.duration(plan.max_wait)),
        LC.el("td", {}, meter),
      ),
    );
  }
}

function renderLangs() {
  const body = LC.clear($("langs-table").tBodies[0]);
  const entries = Object.entries(snap.waiting_by_lang || {});
  $("langs-empty").hidden = entries.length > 0;
  $("langs-table").hidden = entries.length === 0;
  for (const [lang, count] of entries) {
    body.append(LC.el("tr", { dataset: { lang } }, LC.el("th", { scope: "row", text: lang || "(none)" }), num(String(count))));
  }
}

function renderAgents() {
  const body = LC.clear($("agents-table").tBodies[0]);
  const agents = snap.agents || [];
  $("agents-empty").hidden = agents.length > 0;
  for (const agent of agents) {
    const full = agent.capacity && agent.load >= agent.capacity;
    const status = agent.status === "online" && full ? "busy" : agent.status;
    body.append(
      LC.el(
        "tr",
        { dataset: { agent: agent.username } },
        LC.el("th", { scope: "row" }, agent.name, LC.el("span", { class: "muted", text: " " + agent.username })),
        LC.el("td", {}, LC.el("span", { class: "dot dot-" + status }), " " + status),
        LC.el("td", { class: "num", text: agent.load + " / " + agent.capacity }),
        LC.el("td", { text: (agent.langs || []).join(", ") }),
        LC.el("td", { text: (agent.topics || []).join(", ") || "all" }),
      ),
    );
  }
}

function renderTicketsToday() {
  const body = LC.clear($("tickets-today").tBodies[0]);
  const labels = { offline: "Nobody available", max_wait: "Waited too long", visitor_left: "Visitor left", unresolved: "Closed unresolved" };
  for (const [trigger, count] of Object.entries(snap.tickets_today || {})) {
    body.append(LC.el("tr", { dataset: { trigger } }, LC.el("th", { scope: "row", text: labels[trigger] || trigger }), num(String(count))));
  }
  body.append(LC.el("tr", { class: "total" }, LC.el("th", { scope: "row", text: "Total" }), num(String(snap.tickets_today_total || 0))));
}

// --- chart ----------------------------------------------------------------------

/** Queue depth over the last hour as a step line with a light fill, in inline SVG. */
function renderChart() {
  const box = LC.clear($("depth-chart"));
  const W = 640, H = 180, L = 34, R = 10, T = 10, B = 24;
  const now = snap.at;
  const start = now - 3600;
  const points = (snap.history || []).filter((p) => p[0] >= start);
  const peak = Math.max(1, ...points.map((p) => p[1]));
  const top = peak <= 4 ? Math.max(peak, 1) : Math.ceil(peak / 5) * 5;
  const x = (t) => L + ((t - start) / 3600) * (W - L - R);
  const y = (d) => T + (1 - d / top) * (H - T - B);
  const svg = LC.svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart-svg", "aria-hidden": "true" });
  for (const frac of [0, 0.5, 1]) {
    const value = Math.round(top * frac);
    svg.append(LC.svg("line", { x1: L, x2: W - R, y1: y(value), y2: y(value), class: "grid-line" }));
    svg.append(LC.svg("text", { x: L - 6, y: y(value) + 4, class: "axis-label", "text-anchor": "end", text: String(value) }));
  }
  for (const [label, t] of [["−60m", start], ["−30m", start + 1800], ["now", now]]) {
    svg.append(LC.svg("text", { x: x(t), y: H - 6, class: "axis-label", "text-anchor": t === start ? "start" : t === now ? "end" : "middle", text: label }));
  }
  if (points.length) {
    let line = "M" + x(points[0][0]).toFixed(1) + "," + y(points[0][1]).toFixed(1);
    for (let i = 1; i < points.length; i++) {
      line += " H" + x(points[i][0]).toFixed(1) + " V" + y(points[i][1]).toFixed(1);
    }
    const area = line + " V" + y(0).toFixed(1) + " H" + x(points[0][0]).toFixed(1) + " Z";
    svg.append(LC.svg("path", { d: area, class: "chart-area" }));
    svg.append(LC.svg("path", { d: line, class: "chart-line" }));
    const last = points[points.length - 1];
    svg.append(LC.svg("circle", { cx: x(last[0]), cy: y(last[1]), r: 3.5, class: "chart-dot" }));
  }
  box.append(svg);
  box.setAttribute("aria-label", "Queue depth over the last hour; now " + snap.waiting + ", peak " + peak);
}

/** Mails the mail server refused for good (not retried): the newest, and how many in all. */
function renderMailFailed() {
  const list = snap.mail_failed_recent || [];
  const body = LC.clear($("mail-failed").tBodies[0]);
  for (const mail of list) {
    body.append(LC.el("tr", {},
      LC.el("td", { text: mail.id }),
      LC.el("td", { text: new Date(mail.at * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC" }),
      LC.el("td", { text: mail.error })));
  }
  $("mail-failed").hidden = !list.length;
  const more = (snap.mail_failed || 0) - list.length;
  $("mail-failed-empty").hidden = !!list.length && more <= 0;
  setText("mail-failed-empty", list.length ? "… and " + more + " more (livechat transcript outbox)" : "No mail refused for good.");
}

function render(frame) {
  snap = frame;
  receivedAt = LC.now();
  document.body.dataset.ready = "1";
  renderPlans();
  renderTiles();
  renderLangs();
  renderAgents();
  renderTicketsToday();
  renderMailFailed();
  renderChart();
}

// --- open tickets (the transcripts part's endpoint; shown when it answers) --------

async function loadTickets() {
  let data;
  try {
    const response = await fetch("/api/tickets?page=1&per_page=20&status=open&sort=newest", {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    data = await response.json();
  } catch (err) {
    return;
  }
  const list = Array.isArray(data) ? data : data.tickets || [];
  const open = list.filter((t) => t && t.ref && (!t.status || t.status === "open"));
  const body = LC.clear($("open-tickets").tBodies[0]);
  for (const ticket of open) {
    const who = [ticket.name, ticket.email].filter(Boolean).join(" · ") || "(no contact)";
    const now = Date.now() / 1000;
    const due = typeof ticket.due_at === "number" ? ticket.due_at : null;
    const left = due === null ? "" : due < now ? "overdue " + LC.duration(now - due) : "in " + LC.duration(due - now);
    const urgency = due === null ? "" : due < now ? "breached" : due - now < 3600 ? "due-soon" : "";
    body.append(
      LC.el(
        "tr",
        { dataset: { ref: ticket.ref }, class: urgency },
        LC.el("td", {}, LC.el("a", { href: "/api/tickets/" + encodeURIComponent(ticket.ref), text: ticket.ref })),
        LC.el("td", { text: who }),
        LC.el("td", { text: ticket.plan || "" }),
        LC.el("td", { text: left, title: due === null ? "" : new Date(due * 1000).toLocaleString() }),
      ),
    );
  }
  const total = typeof data.total === "number" ? data.total : open.length;
  $("open-tickets").hidden = open.length === 0;
  $("open-tickets-empty").hidden = false;
  $("open-tickets-empty").textContent = open.length
    ? (total > open.length ? "Newest " + open.length + " of " + total + " open tickets." : "")
    : "No open tickets.";
  $("open-tickets-empty").hidden = !$("open-tickets-empty").textContent;
  $("all-tickets").hidden = false;
}

// --- help centre: questions that became chats despite the suggestions -------------

async function loadHelpGaps() {
  let gaps;
  try {
    const response = await fetch("/api/help/gaps", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    gaps = (await response.json()).gaps || [];
  } catch (err) {
    return;
  }
  const body = LC.clear($("help-gaps").tBodies[0]);
  for (const gap of gaps.slice(0, 30)) {
    body.append(
      LC.el(
        "tr",
        {},
        LC.el("td", { text: gap.terms }),
        LC.el("td", { text: gap.lang }),
        LC.el("td", { class: "num", text: String(gap.count) }),
        LC.el("td", { class: "num", text: String(gap.no_suggestion) }),
      ),
    );
  }
  $("help-gaps").hidden = gaps.length === 0;
  $("help-gaps-empty").hidden = gaps.length > 0;
}

// --- canned replies ---------------------------------------------------------------

async function loadCanned() {
  let replies = [];
  try {
    const response = await fetch("/api/canned", { credentials: "same-origin", cache: "no-store" });
    if (response.ok) replies = (await response.json()).replies || [];
  } catch (err) {
    return;
  }
  const body = LC.clear($("canned-table").tBodies[0]);
  $("canned-table").hidden = replies.length === 0;
  $("canned-empty").hidden = replies.length > 0;
  for (const reply of replies) {
    body.append(
      LC.el(
        "tr",
        {},
        LC.el("th", { scope: "row", text: "/" + reply.shortcut }),
        LC.el("td", { class: "canned-text", text: reply.text }),
        LC.el(
          "td",
          { class: "canned-actions" },
          LC.el("button", { type: "button", class: "btn btn-quiet", onclick: () => editCanned(reply), text: "Edit" }),
          LC.el("button", { type: "button", class: "btn btn-quiet", onclick: () => deleteCanned(reply.shortcut), text: "Delete" }),
        ),
      ),
    );
  }
}

function editCanned(reply) {
  $("canned-shortcut").value = reply.shortcut;
  $("canned-text").value = reply.text;
  $("canned-text").focus();
}

async function cannedRequest(method, shortcut, payload) {
  const response = await fetch("/api/canned/" + encodeURIComponent(shortcut), {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: payload ? JSON.stringify(payload) : undefined,
  });
  let message = "";
  try {
    message = (await response.json()).error || "";
  } catch (err) {
    message = "";
  }
  const done = method === "DELETE" ? "Deleted." : "Saved.";
  const failed = method === "DELETE" ? "Not deleted: " : "Not saved: ";
  setText("canned-status", response.ok ? done : failed + (message || response.status));
  if (response.ok) await loadCanned();
  return response.ok;
}

async function deleteCanned(shortcut) {
  await cannedRequest("DELETE", shortcut);
}

$("canned-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const ok = await cannedRequest("PUT", $("canned-shortcut").value.trim().toLowerCase(), { text: $("canned-text").value });
  if (ok) {
    $("canned-shortcut").value = "";
    $("canned-text").value = "";
  }
});

// --- live feed --------------------------------------------------------------------

new LC.Socket("/ws/supervisor", {
  frame: (frame) => {
    if (frame.type === "queue") render(frame);
  },
  closed: () => {
    document.body.dataset.ready = "0";
  },
  policy: (event, retry) => LC.checkSession(retry),
});

setInterval(renderAges, 1000);
loadTickets();
setInterval(loadTickets, 30000);
loadCanned();
loadHelpGaps();
setInterval(loadHelpGaps, 60000);
