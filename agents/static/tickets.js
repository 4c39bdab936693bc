/* livechat agent dashboard, Tickets view: the ticket list (GET /api/tickets, soonest due
 * first), one ticket with its whole thread, the customer panel, answers and notes, status and
 * assignee. An ES module imported by agent.js; it uses the dashboard's socket (desk/protocol.js)
 * for live news (ticket_changed) and presence (ticket_viewing / ticket_viewers), and its
 * sound, toasts and title badge (desk/view.js). Every customer- or agent-written string
 * reaches the page as text (LC.el), never as HTML. */
import * as LC from "./common.js";
import { send as sendFrame } from "./desk/protocol.js";
import { beep, setTicketBadge, toast } from "./desk/view.js";

const $ = (id) => document.getElementById(id);
const me = document.body.dataset.username;
const csrf = document.body.dataset.csrf;
const DUE_SOON = 3600; // seconds: amber within the hour (transcripts/targets.py DUE_SOON)
const VIEWING_EVERY = 10000; // ms between two ticket_viewing frames ([timing] ticket_viewing_ttl is 30 s)
const CUSTOMER_KINDS = new Set(["mail_in", "web_in", "widget_in", "chat"]);
const KIND_LABELS = {
  chat: "Chat", mail_in: "Mail from the customer", mail_out: "Answer (mailed)", note: "Internal note",
  web_in: "From the ticket page", widget_in: "From the chat widget",
};

let tickets = []; // summaries as listed
let selected = null; // ref highlighted in the list
let open = null; // the ticket shown (detail)
let viewers = []; // other agents on the open ticket
let canned = [];
let cannedMatches = [];
let cannedIndex = 0;
let agents = [];
let listTimer = 0;
let listSeq = 0;
let viewingTimer = 0;
let replying = false;
const lastSeen = new Map(); // ref -> id of the last message this agent has seen
const unseen = new Set(); // refs with a new ticket or customer reply not looked at yet
const startedAt = LC.now();

// --- HTTP --------------------------------------------------------------------------

async function api(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin", cache: "no-store",
    headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json", "X-CSRF-Token": csrf } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401) location.assign("/agent/login");
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
  return data;
}

// --- tabs --------------------------------------------------------------------------

function showTab(which) {
  const ticketsOn = which === "tickets";
  $("chats-view").hidden = ticketsOn;
  $("tickets-view").hidden = !ticketsOn;
  $("tab-chats").setAttribute("aria-selected", String(!ticketsOn));
  $("tab-tickets").setAttribute("aria-selected", String(ticketsOn));
  document.body.dataset.view = which;
  sessionStorage.setItem("lc.view", which);
  if (ticketsOn) {
    loadList();
    if (open) markSeen(open);
  }
  sendViewing();
}

$("tab-chats").addEventListener("click", () => showTab("chats"));
$("tab-tickets").addEventListener("click", () => showTab("tickets"));
const ticketsShown = () => !$("tickets-view").hidden;

// --- the list ----------------------------------------------------------------------

function filters() {
  const params = new URLSearchParams({ sort: "due", per_page: "100" });
  const q = $("ticket-q").value.trim();
  if (q) params.set("q", q);
  if ($("ticket-who").value) params.set("assignee", $("ticket-who").value);
  if ($("ticket-status-filter").value) params.set("status", $("ticket-status-filter").value);
  if ($("ticket-plan").value) params.set("plan", $("ticket-plan").value);
  return params;
}

async function loadList() {
  const seq = ++listSeq;
  try {
    const data = await api("GET", "/api/tickets?" + filters());
    if (seq !== listSeq) return;
    tickets = data.tickets || [];
    renderList();
  } catch (err) {
    /* a failed refresh keeps the old list; the next change fetches again */
  }
}

function loadListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(loadList, 250);
}

/** What the list and the header say about when the answer is due. */
function dueInfo(t) {
  if (t.status !== "open" || !t.due_at) return { text: t.status, cls: "" };
  const left = t.due_at - LC.now();
  if (left < 0 || t.breached) return { text: "overdue " + LC.duration(-left), cls: "due-breached" };
  return { text: "due in " + LC.duration(left), cls: left <= DUE_SOON ? "due-soon" : "" };
}

function badges(t) {
  const plan = t.plan || "free";
  return [
    t.emergency ? LC.el("span", { class: "badge badge-emergency", text: "Emergency" }) : null,
    LC.el("span", { class: "badge badge-plan plan-" + plan.replace(/[^a-z0-9_-]/gi, ""), text: plan }),
    t.verified
      ? LC.el("span", { class: "badge badge-verified", title: "Identity vouched for by our website", text: "✓ verified" })
      : LC.el("span", { class: "badge badge-unverified", title: "Identity not verified", text: "unverified" }),
    LC.el("span", { class: "badge badge-status status-" + t.status, text: t.status }),
    LC.el("span", { class: "badge badge-assignee", title: "Assignee", text: t.assignee ? "@" + t.assignee : "unassigned" }),
  ];
}

function renderList() {
  const list = LC.clear($("ticket-list"));
  $("ticket-list-empty").hidden = tickets.length > 0;
  if (selected && !tickets.some((t) => t.ref === selected)) selected = open ? open.ref : null;
  for (const t of tickets) {
    const due = dueInfo(t);
    const isSelected = t.ref === selected;
    list.append(LC.el("li", {
      class: "chat-item ticket-item" + (isSelected ? " selected" : "") + (t.emergency ? " is-emergency" : "") + (due.cls ? " " + due.cls : ""),
      role: "option", "aria-selected": String(isSelected), tabindex: isSelected ? "0" : "-1",
      dataset: { ref: t.ref },
      onclick: () => openTicket(t.ref),
    },
    LC.el("div", { class: "chat-item-top" },
      LC.el("span", { class: "chat-name", text: t.subject || t.name || t.email || t.ref }),
      unseen.has(t.ref) ? LC.el("span", { class: "unread new", text: "new" }) : null),
    LC.el("div", { class: "ticket-line muted" }, LC.el("span", { class: "ref", text: t.ref }), " · ", t.name || t.email || "no name"),
    LC.el("div", { class: "chat-badges" }, ...badges(t)),
    LC.el("div", { class: "chat-wait ticket-due " + due.cls, dataset: { due: t.ref }, text: due.text })));
  }
}

function tickDue() {
  for (const node of document.querySelectorAll("[data-due]")) {
    const t = tickets.find((x) => x.ref === node.dataset.due);
    if (!t) continue;
    const due = dueInfo(t);
    node.textContent = due.text;
    node.className = "chat-wait ticket-due " + due.cls;
    node.closest(".ticket-item").classList.toggle("due-breached", due.cls === "due-breached");
    node.closest(".ticket-item").classList.toggle("due-soon", due.cls === "due-soon");
  }
  if (open) renderHead();
}

function move(step) {
  if (!tickets.length) return;
  let at = tickets.findIndex((t) => t.ref === selected);
  at = at < 0 ? 0 : Math.max(0, Math.min(tickets.length - 1, at + step));
  selected = tickets[at].ref;
  renderList();
  const node = $("ticket-list").querySelector('[data-ref="' + selected + '"]');
  if (node) {
    node.focus();
    node.scrollIntoView({ block: "nearest" });
  }
}

for (const id of ["ticket-who", "ticket-status-filter", "ticket-plan"]) $(id).addEventListener("change", loadList);
let searchTimer = 0;
$("ticket-q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadList, 250);
});
$("ticket-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadList();
});

// --- one ticket ----------------------------------------------------------------------

async function openTicket(ref, focusComposer) {
  selected = ref;
  try {
    const ticket = await api("GET", "/api/tickets/" + encodeURIComponent(ref));
    if (!open || open.ref !== ticket.ref) {
      viewers = [];
      $("ticket-text").value = "";
      $("ticket-note").checked = false;
      replying = false;
    }
    open = ticket;
    markSeen(ticket);
    renderTicket();
    sendViewing();
    if (focusComposer) $("ticket-text").focus();
  } catch (err) {
    toast("Ticket " + ref + ": " + err.message, "error");
  }
  renderList();
}

function markSeen(ticket) {
  const last = ticket.messages[ticket.messages.length - 1];
  lastSeen.set(ticket.ref, last ? last.id : "");
  if (unseen.delete(ticket.ref)) updateBadge();
}

function renderHead() {
  const t = open;
  $("ticket-title").textContent = t.ref + (t.subject ? " · " + t.subject : "");
  const due = dueInfo(t);
  const sub = LC.clear($("ticket-sub"));
  sub.append(...badges(t).filter(Boolean), " ", LC.el("span", { class: "ticket-due " + due.cls, text: due.text }));
}

function renderTicket() {
  const t = open;
  $("ticket-empty").hidden = true;
  $("ticket").hidden = false;
  renderHead();
  $("ticket-set-status").value = t.status;
  renderAssignees();
  renderThread();
  renderCustomer();
  renderViewers();
  renderComposerMode();
}

function who(t, m) {
  if (m.kind === "note" || m.kind === "mail_out") return m.name || m.from || "agent";
  if (m.kind === "chat" && m.from === "agent") return m.name || "agent";
  return t.name || t.email || "customer";
}

function renderThread() {
  const t = open;
  const list = LC.clear($("ticket-thread"));
  for (const m of t.messages) {
    const side = m.kind === "note" ? "note" : (CUSTOMER_KINDS.has(m.kind) && m.from !== "agent") ? "visitor" : "agent";
    const meta = LC.el("div", { class: "msg-meta" },
      LC.el("span", { class: "kind", text: KIND_LABELS[m.kind] || m.kind }),
      LC.el("span", { text: who(t, m) }),
      LC.el("span", { text: m.ts ? new Date(m.ts * 1000).toLocaleString() : "" }));
    const item = LC.el("li", { class: "msg msg-" + side + " kind-" + m.kind, dataset: { id: m.id, kind: m.kind } },
      meta, LC.el("div", { class: "bubble", text: m.text }));
    if (m.original && m.original !== m.text) {
      item.append(LC.el("details", { class: "original" }, LC.el("summary", { text: "Show original" }),
        LC.el("pre", { text: m.original })));
    }
    for (const a of m.attachments || []) {
      if (a && a.url) item.append(LC.el("a", { class: "attachment", href: a.url, download: a.name || "", text: "📎 " + (a.name || "attachment") }));
    }
    list.append(item);
  }
  list.scrollTop = list.scrollHeight;
}

function renderCustomer() {
  const t = open;
  $("customer-empty").hidden = true;
  const dl = LC.clear($("customer"));
  const rows = [["Name", t.name], ["Email", t.email], ["Plan", t.plan || "free"], ["Verified", t.verified ? "yes" : "no"],
    ["Language", t.lang], ["Channel", t.channel], ["Opened", t.created_at ? new Date(t.created_at * 1000).toLocaleString() : ""],
    ["Previous", t.previous_ref]];
  for (const [label, value] of rows) if (value) dl.append(LC.el("dt", { text: label }), LC.el("dd", { text: value }));
  const list = LC.clear($("customer-tickets"));
  for (const p of t.previous || []) {
    list.append(LC.el("li", null, LC.el("a", {
      href: "#" + p.ref, text: p.ref,
      onclick: (event) => {
        event.preventDefault();
        openTicket(p.ref);
      },
    }), " · " + p.status + " · " + new Date(p.created_at * 1000).toLocaleDateString()));
  }
  $("customer-tickets-empty").hidden = (t.previous || []).length > 0;
  const chatList = LC.clear($("customer-chats"));
  for (const c of t.previous_chats || []) {
    const what = [c.agent_name && "with " + c.agent_name, c.reason, c.ticket && "ticket " + c.ticket].filter(Boolean);
    chatList.append(LC.el("li", null, new Date(c.created_at * 1000).toLocaleDateString() +
      (what.length ? " · " + what.join(" · ") : "")));
  }
  $("customer-chats-empty").hidden = (t.previous_chats || []).length > 0;
}

async function renderAssignees() {
  const select = $("ticket-set-assignee");
  const names = new Map([["", "nobody"]]);
  for (const a of agents) names.set(a.username, a.name + " (" + a.username + ")");
  if (!names.has(me)) names.set(me, "me (" + me + ")");
  if (open.assignee && !names.has(open.assignee)) names.set(open.assignee, open.assignee);
  LC.clear(select);
  for (const [value, label] of names) select.append(LC.el("option", { value, text: label }));
  select.value = open.assignee || "";
}

function renderViewers() {
  const node = $("ticket-viewers");
  const others = viewers.filter((v) => v.username !== me);
  node.hidden = !others.length;
  if (!others.length) return;
  const typing = others.filter((v) => v.replying).map((v) => v.name || v.username);
  const looking = others.filter((v) => !v.replying).map((v) => v.name || v.username);
  const parts = [];
  if (typing.length) parts.push(typing.join(", ") + (typing.length > 1 ? " are" : " is") + " replying…");
  if (looking.length) parts.push(looking.join(", ") + (looking.length > 1 ? " are" : " is") + " viewing this ticket");
  node.textContent = parts.join(" · ");
  node.classList.toggle("is-replying", typing.length > 0);
}

function renderComposerMode() {
  const note = $("ticket-note").checked;
  $("ticket-composer").classList.toggle("is-note", note);
  $("ticket-send").textContent = note ? "Add note" : "Send answer";
  $("ticket-text").placeholder = note
    ? "Internal note: never shown to the customer (Ctrl+Enter adds it)"
    : "Answer the customer by mail (Ctrl+Enter sends, / canned replies)";
  $("ticket-then").value = note ? open && open.status : "pending";
}

// --- presence ------------------------------------------------------------------------

function sendViewing() {
  clearTimeout(viewingTimer);
  const ref = open && ticketsShown() && !document.hidden ? open.ref : null;
  sendFrame({ type: "ticket_viewing", ref, replying: !!ref && replying });
  if (ref) viewingTimer = setTimeout(sendViewing, VIEWING_EVERY);
}

function updateReplying() {
  const now = $("ticket-text").value.trim().length > 0;
  if (now !== replying) {
    replying = now;
    sendViewing();
  }
}

// --- answering -------------------------------------------------------------------------

async function send() {
  if (!open) return;
  const text = $("ticket-text").value.trim();
  if (!text) return;
  const internal = $("ticket-note").checked;
  const status = $("ticket-then").value;
  $("ticket-send").disabled = true;
  try {
    await api("POST", "/api/tickets/" + open.ref + "/messages", { text, internal, status: status || undefined });
    $("ticket-text").value = "";
    $("ticket-note").checked = false;
    updateReplying();
    toast(internal ? "Note added to " + open.ref + "." : "Answer mailed for " + open.ref + ".", "ok");
    await openTicket(open.ref);
    loadListSoon();
  } catch (err) {
    toast(err.message, "error");
  } finally {
    $("ticket-send").disabled = false;
  }
}

async function change(body) {
  if (!open) return;
  try {
    open = { ...open, ...(await api("PATCH", "/api/tickets/" + open.ref, body)), previous: open.previous,
      previous_chats: open.previous_chats };
    renderTicket();
    loadListSoon();
  } catch (err) {
    toast(err.message, "error");
    renderTicket();
  }
}

$("ticket-composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
$("ticket-note").addEventListener("change", renderComposerMode);
$("ticket-set-status").addEventListener("change", () => change({ status: $("ticket-set-status").value }));
$("ticket-set-assignee").addEventListener("change", () => change({ assignee: $("ticket-set-assignee").value }));
$("ticket-revoke").addEventListener("click", async () => {
  if (!open || !confirm("Revoke the customer's private link to " + open.ref + "? The next mail to them carries a new one.")) return;
  try {
    await api("POST", "/api/tickets/" + open.ref + "/link/revoke", {});
    toast("The private link of " + open.ref + " is revoked.", "ok");
  } catch (err) {
    toast(err.message, "error");
  }
});

// Canned replies: "/" and a shortcut, as in the chats.
function cannedToken() {
  const box = $("ticket-text");
  const before = box.value.slice(0, box.selectionStart);
  const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(before);
  return match ? { start: before.length - match[2].length - 1, query: match[2].toLowerCase() } : null;
}

function drawCanned() {
  const menu = $("ticket-canned");
  const token = cannedToken();
  cannedMatches = token ? canned.filter((r) => r.shortcut.startsWith(token.query)) : [];
  if (!cannedMatches.length) {
    menu.hidden = true;
    return;
  }
  cannedIndex = Math.min(cannedIndex, cannedMatches.length - 1);
  LC.clear(menu);
  cannedMatches.forEach((reply, i) => menu.append(LC.el("li", {
    role: "option", class: "canned-item" + (i === cannedIndex ? " selected" : ""), "aria-selected": String(i === cannedIndex),
    onmousedown: (event) => {
      event.preventDefault();
      insertCanned(i);
    },
  }, LC.el("strong", { text: "/" + reply.shortcut }), LC.el("span", { text: reply.text }))));
  menu.hidden = false;
}

function insertCanned(index) {
  const reply = cannedMatches[index];
  const token = cannedToken();
  const box = $("ticket-text");
  if (reply && token) {
    const after = box.value.slice(box.selectionStart);
    box.value = box.value.slice(0, token.start) + reply.text + after;
    const caret = token.start + reply.text.length;
    box.setSelectionRange(caret, caret);
  }
  $("ticket-canned").hidden = true;
  cannedMatches = [];
  updateReplying();
}

$("ticket-text").addEventListener("input", () => {
  drawCanned();
  updateReplying();
});
$("ticket-text").addEventListener("blur", () => setTimeout(() => ($("ticket-canned").hidden = true), 150));
$("ticket-text").addEventListener("keydown", (event) => {
  const menuOpen = !$("ticket-canned").hidden && cannedMatches.length;
  if (menuOpen && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    event.preventDefault();
    cannedIndex = (cannedIndex + (event.key === "ArrowDown" ? 1 : -1) + cannedMatches.length) % cannedMatches.length;
    drawCanned();
  } else if (menuOpen && (event.key === "Enter" || event.key === "Tab")) {
    event.preventDefault();
    insertCanned(cannedIndex);
  } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    send();
  } else if (event.key === "Escape") {
    event.preventDefault();
    $("ticket-canned").hidden = true;
    $("ticket-text").blur();
    focusList();
  }
});

function focusList() {
  const node = $("ticket-list").querySelector(".selected") || $("ticket-list").firstElementChild;
  if (node) node.focus();
}

// --- keyboard ------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.altKey && (event.key === "1" || event.key === "2")) {
    event.preventDefault();
    showTab(event.key === "2" ? "tickets" : "chats");
    if (event.key === "2") focusList();
    return;
  }
  if (!ticketsShown() || event.altKey || event.ctrlKey || event.metaKey) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName);
  if (typing) {
    if (event.key === "Escape" && document.activeElement.id === "ticket-q") focusList();
    if (event.key === "Enter" && document.activeElement.id === "ticket-q") {
      event.preventDefault();
      focusList();
    }
    return;
  }
  const keys = {
    ArrowDown: () => move(1), j: () => move(1), ArrowUp: () => move(-1), k: () => move(-1),
    Enter: () => selected && openTicket(selected, true),
    "/": () => $("ticket-q").focus(),
    r: () => open && (($("ticket-note").checked = false), renderComposerMode(), $("ticket-text").focus()),
    n: () => open && (($("ticket-note").checked = true), renderComposerMode(), $("ticket-text").focus()),
    Escape: focusList,
  };
  const action = keys[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});

// --- live --------------------------------------------------------------------------------

function updateBadge() {
  $("tickets-badge").textContent = unseen.size ? String(unseen.size) : "";
  setTicketBadge(unseen.size);
}

/** A ticket was made or changed: refresh the list, the open ticket, and the badge when the
 * news is a new ticket or a customer's message this agent has not seen. */
async function onTicketChanged(event) {
  const ref = event.detail && event.detail.ref;
  loadListSoon();
  if (!ref) return;
  let ticket;
  try {
    ticket = await api("GET", "/api/tickets/" + encodeURIComponent(ref));
  } catch (err) {
    return;
  }
  const last = ticket.messages[ticket.messages.length - 1];
  const fresh = !lastSeen.has(ref) ? ticket.created_at >= startedAt - 5 || (last && last.ts >= startedAt) : lastSeen.get(ref) !== (last && last.id);
  const fromCustomer = last && CUSTOMER_KINDS.has(last.kind) && last.from !== "agent";
  const looking = open && open.ref === ref && ticketsShown() && !document.hidden;
  if (open && open.ref === ref) {
    open = { ...ticket };
    renderTicket();
  }
  if (looking) markSeen(ticket);
  else if (fresh && fromCustomer && !unseen.has(ref)) {
    unseen.add(ref);
    lastSeen.set(ref, last.id);
    updateBadge();
    beep(true);
    renderList();
  }
}

function onViewers(event) {
  const frame = event.detail;
  if (!open || frame.ref !== open.ref) return;
  viewers = frame.viewers || [];
  renderViewers();
}

document.addEventListener("lc:ticket_changed", onTicketChanged);
document.addEventListener("lc:ticket_viewers", onViewers);
document.addEventListener("lc:welcome", () => {
  loadList();
  loadCanned();
  loadAgents();
  if (open) openTicket(open.ref);
  else sendViewing();
});
document.addEventListener("lc:open-ticket", (event) => {
  showTab("tickets");
  $("ticket-status-filter").value = "";
  loadList();
  openTicket(event.detail.ref, true);
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && open && ticketsShown()) markSeen(open);
  sendViewing();
});

async function loadCanned() {
  try {
    canned = (await api("GET", "/api/canned")).replies || [];
  } catch (err) {
    /* keep the old list */
  }
}

async function loadAgents() {
  try {
    agents = (await api("GET", "/api/agents?all=1")).agents || []; // offline agents too: a ticket waits
  } catch (err) {
    /* the current assignee and "me" are always offered */
  }
}

setInterval(tickDue, 1000);
loadList();
if (sessionStorage.getItem("lc.view") === "tickets") showTab("tickets");
window.lcTickets = {
  get list() { return tickets; },
  get open() { return open; },
  get viewers() { return viewers; },
  openTicket,
};
