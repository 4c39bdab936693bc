/* livechat agent dashboard, composer: the reply box of the open chat, the typing frames it
 * sends, canned replies ("/shortcut") and help centre articles ("/help words"). */
import * as LC from "../common.js";
import { chats, pending, state } from "./state.js";
import { $, closeCanned, renderList, renderMessages } from "./view.js";
import { send } from "./protocol.js";

let typingSentAt = 0;
let typingStopTimer = null;
let typingChat = null;

// --- typing and sending -------------------------------------------------------------

function sendTyping(active) {
  if (!state.activeId) return;
  send({ type: "typing", chat_id: typingChat || state.activeId, active });
}

function stopTyping() {
  clearTimeout(typingStopTimer);
  if (typingSentAt) {
    sendTyping(false);
    typingSentAt = 0;
    typingChat = null;
  }
}

function onComposerInput() {
  updateCanned();
  const chat = chats.get(state.activeId);
  if (!chat || chat.closed) return;
  const now = Date.now();
  if ($("composer-text").value.trim() && (now - typingSentAt > 3000 || typingChat !== state.activeId)) {
    if (typingChat && typingChat !== state.activeId) stopTyping();
    typingChat = state.activeId;
    sendTyping(true);
    typingSentAt = now;
  }
  clearTimeout(typingStopTimer);
  typingStopTimer = setTimeout(stopTyping, 4000);
}

function sendMessage() {
  const box = $("composer-text");
  const chat = chats.get(state.activeId);
  const text = box.value.trim();
  if (!chat || chat.closed || !text) return;
  const cid = LC.randomId();
  pending.set(cid, { chatId: chat.id, text, ts: LC.now() });
  send({ type: "message", chat_id: chat.id, text, client_id: cid });
  stopTyping();
  box.value = "";
  closeCanned();
  renderMessages();
  renderList();
}

// --- canned replies and articles ------------------------------------------------------

async function loadCanned() {
  try {
    const response = await fetch("/api/canned", { credentials: "same-origin", cache: "no-store" });
    if (response.ok) state.canned = (await response.json()).replies || [];
  } catch (err) {
    /* keep the old list */
  }
}

function cannedToken() {
  const box = $("composer-text");
  const before = box.value.slice(0, box.selectionStart);
  const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(before);
  return match ? { start: before.length - match[2].length - 1, query: match[2].toLowerCase() } : null;
}

// "/help words" searches the help centre; the article chosen goes in as "Title: link", which
// the visitor's widget shows as a card that opens the article in its panel.
let helpTimer = 0;
let helpSeq = 0;

function helpToken() {
  const box = $("composer-text");
  const before = box.value.slice(0, box.selectionStart);
  const match = /(^|\s)\/help\s+([^\n/]{2,200})$/i.exec(before);
  return match ? { start: before.length - match[0].length + match[1].length, query: match[2].trim() } : null;
}

async function searchHelp(query) {
  const seq = ++helpSeq;
  const chat = chats.get(state.activeId);
  const lang = (chat && chat.visitor.lang) || "";
  const find = async (params) => {
    const response = await fetch("/api/help/search?" + new URLSearchParams({ q: query, limit: 5, ...params }), { credentials: "omit" });
    return response.ok ? (await response.json()).results : [];
  };
  let results = [];
  try {
    results = await find({ lang });
    if (!results.length && lang) results = await find({}); // no article in the chat's language: any language
  } catch (err) {
    /* no suggestions */
  }
  if (seq !== helpSeq || !helpToken()) return;
  state.cannedMatches = results.map((r) => ({ label: r.title, detail: r.snippet, text: r.title + ": " + location.origin + r.url }));
  drawMenu();
}

function updateCanned() {
  const help = helpToken();
  if (help) {
    clearTimeout(helpTimer);
    helpTimer = setTimeout(() => searchHelp(help.query), 200);
    return;
  }
  helpSeq++;
  const token = cannedToken();
  if (!token || !state.canned.length) return closeCanned();
  state.cannedMatches = state.canned.filter((r) => r.shortcut.startsWith(token.query) || (token.query.length > 1 && r.text.toLowerCase().includes(token.query)))
    .map((r) => ({ label: "/" + r.shortcut, detail: r.text, text: r.text }));
  drawMenu();
}

function drawMenu() {
  const menu = $("canned-menu");
  if (!state.cannedMatches.length) return closeCanned();
  state.cannedIndex = Math.min(state.cannedIndex, state.cannedMatches.length - 1);
  LC.clear(menu);
  state.cannedMatches.forEach((reply, i) => {
    menu.append(
      LC.el(
        "li",
        {
          role: "option",
          class: "canned-item" + (i === state.cannedIndex ? " selected" : ""),
          "aria-selected": i === state.cannedIndex ? "true" : "false",
          onmousedown: (event) => {
            event.preventDefault();
            insertCanned(i);
          },
        },
        LC.el("strong", { text: reply.label }),
        LC.el("span", { text: reply.detail }),
      ),
    );
  });
  menu.hidden = false;
}

function insertCanned(index) {
  const reply = state.cannedMatches[index];
  const token = helpToken() || cannedToken();
  if (!reply || !token) return closeCanned();
  const box = $("composer-text");
  const after = box.value.slice(box.selectionStart);
  box.value = box.value.slice(0, token.start) + reply.text + after;
  const caret = token.start + reply.text.length;
  box.setSelectionRange(caret, caret);
  closeCanned();
  box.focus();
}

// --- wiring ------------------------------------------------------------------------------

/** Listen to the reply box and the form; load the canned replies with every welcome. */
export function wireComposer() {
  const box = $("composer-text");
  box.addEventListener("input", onComposerInput);
  box.addEventListener("blur", () => setTimeout(closeCanned, 150));
  box.addEventListener("keydown", (event) => {
    const matches = state.cannedMatches;
    const menuOpen = !$("canned-menu").hidden && matches.length;
    if (menuOpen && (event.key === "ArrowDown" || event.key === "ArrowUp") && !event.altKey) {
      event.preventDefault();
      state.cannedIndex = (state.cannedIndex + (event.key === "ArrowDown" ? 1 : -1) + matches.length) % matches.length;
      drawMenu();
      return;
    }
    if (menuOpen && (event.key === "Enter" || event.key === "Tab")) {
      event.preventDefault();
      insertCanned(state.cannedIndex);
      return;
    }
    if (menuOpen && event.key === "Escape") {
      event.preventDefault();
      closeCanned();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  document.addEventListener("lc:welcome", loadCanned);
}
