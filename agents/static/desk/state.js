/* livechat agent dashboard, state: the chats this agent holds, which one is open, what was
 * sent and not yet acknowledged, and the small flags the page shows. No DOM is drawn and no
 * frame is sent here: protocol.js changes this state from the hub's frames, view.js draws it. */
import * as LC from "../common.js";

const body = document.body;

/** The signed-in agent: username and role from the page, name and status from the hub. */
export const me = { username: body.dataset.username, role: body.dataset.role, name: "", status: "online" };

/** chat_id -> {id, visitor, status, messages[], seqs:Set, unread, typing, readSeq, closed, since, tickets, isNew} */
export const chats = new Map();
export const pending = new Map(); // client_id -> {chatId, text, ts}: sent, not yet acknowledged
export const closingByMe = new Map(); // chat_id -> resolution we asked for
export const transferringByMe = new Set();

/** The rest of what the page holds (one object, so that every module can change it). */
export const state = {
  order: [], // chat ids, oldest first
  activeId: null,
  welcomed: false,
  connected: false, // the socket is open
  ticketBadge: 0, // new tickets and customer replies not seen yet (tickets.js)
  muted: localStorage.getItem("lc.muted") === "1",
  canned: [], // the team's canned replies
  cannedMatches: [], // what the composer's menu offers now
  cannedIndex: 0,
};

export function visitorName(chat) {
  return (chat.visitor && chat.visitor.name) || "Visitor";
}

/** Add a message in seq order; false when it is there already (a repeat after a reconnect). */
export function addMessage(chat, msg) {
  if (typeof msg.seq === "number") {
    if (chat.seqs.has(msg.seq)) return false;
    chat.seqs.add(msg.seq);
  }
  if (msg.client_id && pending.has(msg.client_id)) pending.delete(msg.client_id);
  const list = chat.messages;
  let at = list.length;
  while (at > 0 && typeof msg.seq === "number" && list[at - 1].seq > msg.seq) at--;
  list.splice(at, 0, msg);
  return true;
}

/** Insert or refresh a chat from a welcome item or an assigned frame. */
export function upsertChat(item) {
  const id = item.chat_id;
  if (!id) return null;
  let chat = chats.get(id);
  const fresh = !chat;
  if (!chat) {
    chat = {
      id, visitor: {}, status: "active", messages: [], seqs: new Set(), unread: 0, typing: false,
      readSeq: 0, closed: null, since: LC.now(), tickets: [], isNew: false,
    };
    chats.set(id, chat);
    state.order.push(id);
  }
  if (item.visitor) chat.visitor = item.visitor;
  if (item.status) chat.status = item.status;
  if (Array.isArray(item.tickets)) chat.tickets = item.tickets;
  if (Array.isArray(item.unverified_tickets)) chat.unverifiedTickets = item.unverified_tickets;
  const since = item.started_at || item.assigned_at || item.arrived_at || item.created_at;
  if (since && fresh) chat.since = Number(since);
  if (typeof item.read_seq === "number") chat.readSeq = Math.max(chat.readSeq, item.read_seq);
  if (item.closed || item.status === "closed") chat.closed = chat.closed || { reason: item.reason || "closed", ref: item.ref };
  else if (chat.closed && chat.closed.reason === "reassigned") chat.closed = null;
  for (const msg of item.history || []) addMessage(chat, msg);
  return { chat, fresh };
}

/** Forget a chat; returns where it was in the list (null if it was not held). */
export function forgetChat(id) {
  if (!chats.has(id)) return null;
  const index = state.order.indexOf(id);
  chats.delete(id);
  state.order = state.order.filter((x) => x !== id);
  return index;
}

/** What the list says about a chat's clock: how long the visitor has waited for a reply. */
export function waitingInfo(chat) {
  const last = chat.messages[chat.messages.length - 1];
  if (chat.closed) return { text: "closed", long: false };
  if (last && last.from === "visitor") {
    const waited = LC.now() - last.ts;
    return { text: "waiting " + LC.duration(waited), long: waited >= 60 };
  }
  if (!last) return { text: "new · " + LC.duration(LC.now() - chat.since), long: LC.now() - chat.since >= 60 };
  return { text: "answered · chat " + LC.duration(LC.now() - chat.since), long: false };
}

export function messageState(chat, msg) {
  if (msg.from !== "agent") return "";
  if (msg.pending) return "sending…";
  return msg.seq && msg.seq <= chat.readSeq ? "seen" : "sent";
}

/** A chat's messages with this agent's unacknowledged ones after them. */
export function shownMessages(chat) {
  const out = chat.messages.slice();
  for (const [cid, p] of pending) {
    if (p.chatId === chat.id) out.push({ from: "agent", text: p.text, ts: p.ts, client_id: cid, pending: true, name: me.name });
  }
  return out;
}
