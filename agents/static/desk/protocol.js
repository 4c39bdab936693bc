/* livechat agent dashboard, protocol: the /ws/agent socket (common.js's Socket reconnects it
 * with back-off) and the hub's frames (docs/protocol.md, section 4), each turned into a change
 * of state.js and a redraw by view.js. Ticket frames go on to tickets.js as DOM events
 * ("lc:ticket_changed", "lc:ticket_viewers"), as do "lc:welcome" and "lc:open-ticket". */
import * as LC from "../common.js";
import { chats, closingByMe, me, pending, state, transferringByMe, upsertChat, addMessage, visitorName } from "./state.js";
import { $, beep, removeChat, renderAll, renderList, renderMessages, renderStatus, select, toast, updateTitle } from "./view.js";

const body = document.body;
let socket = null;

const tell = (name, detail) => document.dispatchEvent(new CustomEvent(name, { detail }));

// --- frames from the hub --------------------------------------------------------

function onWelcome(frame) {
  const profile = frame.agent || frame.profile || {};
  me.name = profile.name || me.name;
  if (profile.status || frame.status) me.status = profile.status || frame.status;
  const held = new Set();
  for (const item of frame.chats || []) {
    const done = upsertChat(item);
    if (done) held.add(done.chat.id);
  }
  // A close or transfer asked for on the last connection has happened (the chat is no longer
  // held) or was lost with that connection: either way nothing is pending any more.
  closingByMe.clear();
  transferringByMe.clear();
  // Chats we showed that the hub no longer gives us went elsewhere while we were away.
  for (const [id, chat] of chats) {
    if (!held.has(id) && !chat.closed) chat.closed = { reason: "reassigned" };
  }
  // Messages typed while the connection was down go out now (same client_id: stored once).
  for (const [cid, p] of pending) {
    if (held.has(p.chatId)) send({ type: "message", chat_id: p.chatId, text: p.text, client_id: cid });
    else pending.delete(cid);
  }
  if (!state.activeId || !chats.has(state.activeId)) {
    const remembered = sessionStorage.getItem("lc.active");
    state.activeId = remembered && chats.has(remembered) ? remembered : state.order.find((id) => !chats.get(id).closed) || null;
  }
  state.welcomed = true;
  body.dataset.ready = "1";
  renderStatus();
  renderAll();
  tell("lc:welcome"); // composer.js loads the canned replies, tickets.js its list
}

function onAssigned(frame) {
  const done = upsertChat(frame);
  if (!done) return;
  const { chat, fresh } = done;
  chat.closed = null;
  if (fresh && frame.chat_id !== state.activeId) chat.isNew = true;
  beep(true);
  if (fresh && frame.transferred_from) toast(visitorName(chat) + " was transferred to you by " + frame.transferred_from + ".");
  if (!state.activeId || (chats.get(state.activeId) && chats.get(state.activeId).closed)) select(chat.id, false);
  else renderAll();
}

function onMessage(frame) {
  const chat = chats.get(frame.chat_id);
  if (!chat) return;
  const msg = Object.assign({}, frame);
  delete msg.chat_id;
  if (!addMessage(chat, msg)) return;
  if (msg.from === "visitor") {
    chat.typing = false;
    if (chat.id !== state.activeId || document.hidden) {
      chat.unread += chat.id !== state.activeId ? 1 : 0;
      beep(false);
    }
    if (document.hidden && chat.id === state.activeId) chat.unread += 1;
  }
  if (chat.id === state.activeId) {
    $("typing").hidden = !chat.typing;
    renderMessages();
  }
  renderList();
  updateTitle();
}

function onTyping(frame) {
  const chat = chats.get(frame.chat_id);
  if (!chat) return;
  chat.typing = !!frame.active;
  clearTimeout(chat.typingTimer);
  if (chat.typing) chat.typingTimer = setTimeout(() => onTyping({ chat_id: chat.id, active: false }), 8000);
  if (chat.id === state.activeId) $("typing").hidden = !chat.typing || !!chat.closed;
}

function onRead(frame) {
  const chat = chats.get(frame.chat_id);
  if (!chat || typeof frame.seq !== "number") return;
  chat.readSeq = Math.max(chat.readSeq, frame.seq);
  if (chat.id === state.activeId) renderMessages();
}

function onClosed(frame) {
  const chat = chats.get(frame.chat_id);
  if (!chat) return;
  const reason = frame.reason || "closed";
  if (closingByMe.has(chat.id) || transferringByMe.has(chat.id) || reason === "transferred") {
    const byMe = closingByMe.get(chat.id);
    closingByMe.delete(chat.id);
    transferringByMe.delete(chat.id);
    let text = "Chat with " + visitorName(chat) + (reason === "transferred" ? " transferred." : " closed (" + (byMe || reason) + ").");
    if (frame.ref) text += " Ticket " + frame.ref + ".";
    toast(text, "ok");
    removeChat(chat.id);
    if (byMe === "unresolved" && frame.ref) tell("lc:open-ticket", { ref: frame.ref }); // "Turn into ticket"
    return;
  }
  chat.closed = { reason, ref: frame.ref || (chat.closed && chat.closed.ref) };
  chat.typing = false;
  beep(false);
  renderAll();
}

function onReleased(frame) {
  const chat = chats.get(frame.chat_id);
  if (!chat) return;
  if (transferringByMe.has(chat.id)) {
    transferringByMe.delete(chat.id);
    toast("Chat with " + visitorName(chat) + " transferred.", "ok");
    removeChat(chat.id);
    return;
  }
  chat.closed = { reason: "reassigned" };
  renderAll();
}

/** A refused frame. A refused close or transfer leaves the chat with this agent: forget that
 * it was asked for, or the chat's next "closed" (the visitor leaving) would look like ours. */
function onError(frame) {
  if (typeof frame.chat_id === "string") {
    if (frame.refused === "close") closingByMe.delete(frame.chat_id);
    if (frame.refused === "transfer") transferringByMe.delete(frame.chat_id);
  }
  toast((frame.message || frame.code || "Refused") + "", "error");
}

function onFrame(frame) {
  switch (frame.type) {
    case "welcome": onWelcome(frame); break;
    case "assigned": onAssigned(frame); break;
    case "message": onMessage(frame); break;
    case "typing": onTyping(frame); break;
    case "read": onRead(frame); break;
    case "closed": onClosed(frame); break;
    case "released": onReleased(frame); break;
    case "status":
      if (frame.status) me.status = frame.status;
      renderStatus();
      break;
    case "error": onError(frame); break;
    case "ticket_changed": case "ticket_viewers": tell("lc:" + frame.type, frame); break; // tickets.js
    default: break;
  }
}

// --- the socket -------------------------------------------------------------------

/** Open /ws/agent (once); it reconnects by itself and every connection starts with a welcome. */
export function connect() {
  if (socket) return;
  socket = new LC.Socket("/ws/agent", {
    frame: onFrame,
    open: () => {
      state.connected = true;
      renderStatus();
    },
    closed: () => {
      state.connected = false;
      state.welcomed = false;
      body.dataset.ready = "0";
      renderStatus();
    },
    policy: (event, retry) => LC.checkSession(retry),
  });
}

/** Send a frame; false when the socket is not open (nothing is queued). */
export function send(frame) {
  return !!socket && socket.send(frame);
}

/** Drop the connection as a network loss would (tests try the reconnect path with it). */
export function drop() {
  state.welcomed = false;
  if (socket) socket.drop();
}
