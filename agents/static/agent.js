/* livechat agent dashboard (/agent): the chats an agent holds, one open at a time, over
 * /ws/agent, and the Tickets view. This entry module wires the page's buttons and keys and
 * starts the socket; the work is in
 *   desk/state.js     what the page holds (chats, the open one, pending messages)
 *   desk/protocol.js  the socket and the hub's frames (docs/protocol.md, section 4)
 *   desk/view.js      drawing it all (list, conversation, visitor panel, title, toasts, sound)
 *   desk/composer.js  the reply box, typing, canned replies and /help articles
 *   tickets.js        the Tickets view
 * Every visitor- or agent-written string is put on the page as text (LC.el), never as HTML. */
import * as LC from "./common.js";
import { chats, closingByMe, me, state, transferringByMe } from "./desk/state.js";
import { $, move, removeChat, renderAll, renderList, renderMute, renderStatus, tickWaits, toast, updateTitle, wakeAudio } from "./desk/view.js";
import { connect, drop, send } from "./desk/protocol.js";
import { wireComposer } from "./desk/composer.js";
import "./tickets.js";

// --- actions --------------------------------------------------------------------

function closeChat(resolution) {
  const chat = chats.get(state.activeId);
  if (!chat || chat.closed) return;
  closingByMe.set(chat.id, resolution);
  if (!send({ type: "close", chat_id: chat.id, resolution })) {
    closingByMe.delete(chat.id);
    toast("Not connected: try again in a moment.", "error");
  }
}

$("close-resolved").addEventListener("click", () => closeChat("resolved"));
$("close-unresolved").addEventListener("click", () => closeChat("unresolved"));
$("dismiss-btn").addEventListener("click", () => state.activeId && removeChat(state.activeId));

$("transfer-btn").addEventListener("click", async () => {
  const panel = $("transfer-panel");
  if (!panel.hidden) {
    panel.hidden = true;
    return;
  }
  const select = LC.clear($("transfer-to"));
  select.append(LC.el("option", { value: "queue", text: "Back to the queue" }));
  try {
    const response = await fetch("/api/agents", { credentials: "same-origin", cache: "no-store" });
    const agents = response.ok ? (await response.json()).agents || [] : [];
    for (const agent of agents) {
      if (agent.username === me.username) continue;
      const label = agent.name + " (" + agent.username + ") · " + agent.status + " · " + agent.load + "/" + agent.capacity;
      select.append(LC.el("option", { value: agent.username, text: label }));
    }
  } catch (err) {
    /* the queue is always an option */
  }
  panel.hidden = false;
  select.focus();
});
$("transfer-cancel").addEventListener("click", () => ($("transfer-panel").hidden = true));
$("transfer-panel").addEventListener("submit", (event) => {
  event.preventDefault();
  const chat = chats.get(state.activeId);
  const to = $("transfer-to").value;
  if (!chat || !to) return;
  transferringByMe.add(chat.id);
  if (send({ type: "transfer", chat_id: chat.id, to })) $("transfer-panel").hidden = true;
  else {
    transferringByMe.delete(chat.id);
    toast("Not connected: try again in a moment.", "error");
  }
});

$("status-toggle").addEventListener("click", () => {
  const next = me.status === "online" ? "away" : "online";
  if (send({ type: "status", status: next })) {
    me.status = next;
    renderStatus();
  }
});

$("mute-toggle").addEventListener("click", () => {
  state.muted = !state.muted;
  localStorage.setItem("lc.muted", state.muted ? "1" : "0");
  if (!state.muted) wakeAudio();
  renderMute();
});

// --- keys, visibility, sound -----------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    move(event.key === "ArrowDown" ? 1 : -1);
  }
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.activeId && chats.get(state.activeId)) {
    chats.get(state.activeId).unread = 0;
    renderList();
    updateTitle();
  }
});

document.addEventListener("pointerdown", wakeAudio, { once: true });
document.addEventListener("keydown", wakeAudio, { once: true });

// --- start -------------------------------------------------------------------------

wireComposer();
renderMute();
renderStatus();
renderAll();
setInterval(tickWaits, 1000);
connect();
// For tests and debugging: a read-only look at what the page holds.
window.lcDesk = {
  chats,
  get activeId() { return state.activeId; },
  get welcomed() { return state.welcomed; },
  dropConnection: drop,
};
