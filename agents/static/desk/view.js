/* livechat agent dashboard, rendering: the chat list, the open conversation, the visitor
 * panel, the status and sound buttons, the title badge, toasts and the beep. Reads state.js,
 * sends nothing. Every visitor- or agent-written string is put on the page with textContent /
 * text nodes (LC.el), never as HTML. */
import * as LC from "../common.js";
import { chats, me, state, forgetChat, messageState, shownMessages, visitorName, waitingInfo } from "./state.js";

export const $ = (id) => document.getElementById(id);
const baseTitle = document.title;

// --- sound and title ----------------------------------------------------------

let audio = null;

export function wakeAudio() {
  if (audio || state.muted) return;
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx) audio = new Ctx();
  } catch (err) {
    audio = null;
  }
}

/** A short soft beep made with WebAudio (no sound file, nothing fetched). */
export function beep(high) {
  if (state.muted || !audio) return;
  try {
    if (audio.state === "suspended") audio.resume();
    const t = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.setValueAtTime(high ? 880 : 660, t);
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.08, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.28);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.3);
  } catch (err) {
    /* sound is a nicety */
  }
}

export function updateTitle() {
  let count = 0;
  for (const chat of chats.values()) count += chat.unread || (chat.isNew ? 1 : 0);
  count += state.ticketBadge;
  document.title = (count ? "(" + count + ") " : "") + baseTitle;
  $("chat-count").textContent = chats.size ? String(chats.size) : "";
}

/** The Tickets view's count of news not seen yet, added to the title badge. */
export function setTicketBadge(n) {
  state.ticketBadge = n;
  updateTitle();
}

export function renderMute() {
  const button = $("mute-toggle");
  button.textContent = state.muted ? "Sound: off" : "Sound: on";
  button.setAttribute("aria-pressed", state.muted ? "true" : "false");
}

// --- toasts ---------------------------------------------------------------------

export function toast(text, kind) {
  let box = $("toasts");
  if (!box) {
    box = LC.el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = LC.el("div", { class: "toast " + (kind || "") , text: text });
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

// --- the chat list ----------------------------------------------------------------

function showWait(node, chat) {
  const info = waitingInfo(chat);
  node.textContent = info.text;
  node.classList.toggle("long", info.long);
}

function badges(visitor, compact) {
  const items = [];
  if (visitor.emergency) items.push(LC.el("span", { class: "badge badge-emergency", text: "Emergency" }));
  const plan = visitor.plan || "free";
  items.push(
    LC.el("span", { class: "badge badge-plan plan-" + plan.replace(/[^a-z0-9_-]/gi, ""), text: plan }),
    visitor.verified
      ? LC.el("span", { class: "badge badge-verified", title: "Identity vouched for by our website", text: "✓ verified" })
      : LC.el("span", { class: "badge badge-unverified", title: "Not signed in: identity not verified", text: "unverified" }),
  );
  if (visitor.lang) items.push(LC.el("span", { class: "badge", title: "Language", text: visitor.lang }));
  if (visitor.topic && !compact) items.push(LC.el("span", { class: "badge badge-topic", title: "Topic", text: visitor.topic }));
  else if (visitor.topic) items.push(LC.el("span", { class: "badge badge-topic", text: visitor.topic }));
  return items;
}

export function renderList() {
  const list = LC.clear($("chats"));
  $("no-chats").hidden = state.order.length > 0;
  for (const id of state.order) {
    const chat = chats.get(id);
    const selected = id === state.activeId;
    const item = LC.el(
      "li",
      {
        class: "chat-item" + (selected ? " selected" : "") + (chat.closed ? " is-closed" : "") + (chat.visitor.emergency ? " is-emergency" : ""),
        role: "option",
        "aria-selected": selected ? "true" : "false",
        tabindex: selected ? "0" : "-1",
        dataset: { chatId: id },
        onclick: () => select(id, true),
        onkeydown: (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            select(id, true);
          }
        },
      },
      LC.el(
        "div",
        { class: "chat-item-top" },
        LC.el("span", { class: "chat-name", text: visitorName(chat) }),
        chat.unread ? LC.el("span", { class: "unread", title: "Unread messages", text: String(chat.unread) }) : null,
        chat.isNew && !chat.unread ? LC.el("span", { class: "unread new", text: "new" }) : null,
      ),
      LC.el("div", { class: "chat-badges" }, ...badges(chat.visitor, true)),
      LC.el("div", { class: "chat-wait", dataset: { wait: id } }),
    );
    showWait(item.querySelector(".chat-wait"), chat);
    list.append(item);
  }
}

/** Once a second: the waiting clocks in the list. */
export function tickWaits() {
  for (const node of document.querySelectorAll("[data-wait]")) {
    const chat = chats.get(node.dataset.wait);
    if (chat) showWait(node, chat);
  }
}

// --- the open conversation ------------------------------------------------------

function messageNode(chat, msg) {
  const who = msg.from === "visitor" ? visitorName(chat) : msg.from === "agent" ? msg.name || "Agent" : "";
  const shown = messageState(chat, msg);
  return LC.el(
    "li",
    { class: "msg msg-" + (msg.from || "system") + (msg.pending ? " msg-pending" : ""), dataset: { seq: msg.seq || "", cid: msg.client_id || "" } },
    LC.el("div", { class: "bubble", text: msg.text }),
    LC.el(
      "div",
      { class: "msg-meta" },
      who ? LC.el("span", { class: "msg-who", text: who }) : null,
      LC.el("time", { text: LC.clock(msg.ts) }),
      shown ? LC.el("span", { class: "msg-state state-" + shown.replace(/[^a-z]/g, ""), text: shown }) : null,
    ),
  );
}

export function renderMessages() {
  const chat = chats.get(state.activeId);
  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  LC.clear(box);
  if (!chat) return;
  for (const msg of shownMessages(chat)) box.append(messageNode(chat, msg));
  if (nearBottom || box.dataset.chat !== chat.id) box.scrollTop = box.scrollHeight;
  box.dataset.chat = chat.id;
}

function renderConversation() {
  const chat = chats.get(state.activeId);
  $("conv-empty").hidden = !!chat;
  $("conv").hidden = !chat;
  renderDetails();
  if (!chat) return;
  $("conv-title").textContent = visitorName(chat);
  $("conv-sub").textContent = [chat.visitor.email, chat.visitor.topic].filter(Boolean).join(" · ");
  const closed = !!chat.closed;
  const banner = $("closed-banner");
  banner.hidden = !closed;
  if (closed) {
    const reasons = {
      resolved: "This chat was closed as resolved.",
      visitor_left: "The visitor left the chat.",
      ticket: "This chat became an email ticket.",
      timeout: "This chat timed out.",
      reassigned: "This chat is no longer yours (it went back to the queue or to another agent).",
      transferred: "This chat was transferred.",
    };
    let text = reasons[chat.closed.reason] || "This chat is closed.";
    if (chat.closed.ref) text += " Ticket " + chat.closed.ref + ".";
    banner.textContent = text;
  }
  for (const id of ["transfer-btn", "close-resolved", "close-unresolved"]) $(id).hidden = closed;
  $("dismiss-btn").hidden = !closed;
  $("composer-text").disabled = closed;
  $("send-btn").disabled = closed;
  $("typing").hidden = !chat.typing || closed;
  if (closed) $("transfer-panel").hidden = true;
  renderMessages();
}

function renderDetails() {
  const chat = chats.get(state.activeId);
  const list = LC.clear($("details"));
  const tickets = LC.clear($("tickets"));
  $("details-empty").hidden = !!chat;
  $("tickets-empty").hidden = !!(chat && (chat.tickets.length || (chat.unverifiedTickets || []).length));
  if (!chat) return;
  const v = chat.visitor;
  const rows = [
    ["Name", v.name || "(not given)"],
    ["Email", v.email || "(not given)"],
    ["Plan", null, LC.el("span", {}, ...badges({ plan: v.plan, verified: v.verified }, true))],
    ["Language", v.lang || "–"],
    ["Topic", v.topic || "–"],
    ["Page", v.page || "–"],
  ];
  if (v.emergency) rows.unshift(["Flag", null, LC.el("span", { class: "badge badge-emergency", text: "Emergency" })]);
  if (!v.verified) rows.push(["Note", "Identity not verified: do not act on the account before the visitor signs in on the website."]);
  for (const [label, text, node] of rows) {
    list.append(LC.el("dt", { text: label }), LC.el("dd", { class: label === "Page" ? "url" : "" }, node || text));
  }
  const item = (ticket, note) => {
    const ref = typeof ticket === "string" ? ticket : ticket.ref;
    const when = ticket && ticket.created_at ? new Date(ticket.created_at * 1000).toLocaleDateString() : "";
    const what = (ticket && (ticket.subject || ticket.trigger || ticket.status)) || "";
    return LC.el("li", { class: note ? "unverified" : "" }, LC.el("strong", { text: ref || "?" }),
      when ? " " + when : "", what ? " · " + what : "", note ? " · " + note : "");
  };
  for (const ticket of chat.tickets) tickets.append(item(ticket, ""));
  for (const ticket of chat.unverifiedTickets || []) {
    tickets.append(item(ticket, "same address, not verified: may not be this customer"));
  }
}

export function renderAll() {
  renderList();
  renderConversation();
  updateTitle();
}

export function renderStatus() {
  const button = $("status-toggle");
  button.disabled = !state.connected;
  const online = me.status === "online";
  button.textContent = online ? "● Online" : "○ Away";
  button.className = "btn status-btn " + (online ? "status-online" : "status-away");
  button.setAttribute("aria-pressed", online ? "true" : "false");
  button.title = online ? "Taking new chats. Click to go away (keeps current chats)." : "Away: no new chats. Click to go online.";
}

// --- which chat is open ---------------------------------------------------------------

/** The composer's menu of canned replies or articles, closed and emptied. */
export function closeCanned() {
  const menu = $("canned-menu");
  menu.hidden = true;
  state.cannedMatches = [];
  state.cannedIndex = 0;
}

export function select(id, focusComposer) {
  if (!chats.has(id)) return;
  state.activeId = id;
  sessionStorage.setItem("lc.active", id);
  const chat = chats.get(id);
  chat.unread = 0;
  chat.isNew = false;
  $("transfer-panel").hidden = true;
  closeCanned();
  renderAll();
  if (focusComposer && !chat.closed) $("composer-text").focus();
}

/** Alt+Up / Alt+Down: the previous or next chat, round the list. */
export function move(step) {
  const order = state.order;
  if (!order.length) return;
  const index = state.activeId ? order.indexOf(state.activeId) : -1;
  const next = order[(index + step + order.length) % order.length];
  select(next, true);
}

/** Take a chat off the list; the next one (or none) opens if it was the open one. */
export function removeChat(id) {
  const index = forgetChat(id);
  if (index === null) return;
  if (state.activeId === id) {
    state.activeId = null;
    const next = state.order[Math.min(index, state.order.length - 1)];
    if (next) select(next, false);
    else renderConversation();
  }
  renderList();
  updateTitle();
}
