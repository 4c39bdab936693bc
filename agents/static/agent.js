/* livechat agent dashboard: the chats an agent holds, one open at a time, over /ws/agent.
 * Frames: PROTOCOL.md. Every visitor- or agent-written string is put on the page with
 * textContent / text nodes (LC.el), never as HTML. */
"use strict";

(function () {
  const LC = window.LC;
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const me = { username: body.dataset.username, role: body.dataset.role, name: "", status: "online" };
  const baseTitle = document.title;

  /** chat_id -> {id, visitor, status, messages[], seqs:Set, unread, typing, readSeq, closed, since, tickets, isNew} */
  const chats = new Map();
  let order = []; // chat ids, oldest first
  let activeId = null;
  let canned = [];
  let cannedIndex = 0;
  let cannedMatches = [];
  const pending = new Map(); // client_id -> {chatId, text, ts}: sent, not yet acknowledged
  const closingByMe = new Map(); // chat_id -> resolution we asked for
  const transferringByMe = new Set();
  let muted = localStorage.getItem("lc.muted") === "1";
  let audio = null;
  let typingSentAt = 0;
  let typingStopTimer = null;
  let typingChat = null;
  let welcomed = false;
  let ticketBadge = 0; // new tickets and customer replies not seen yet (tickets.js)
  const tell = (name, detail) => document.dispatchEvent(new CustomEvent(name, { detail }));

  // --- sound and title ----------------------------------------------------------

  function wakeAudio() {
    if (audio || muted) return;
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx) audio = new Ctx();
    } catch (err) {
      audio = null;
    }
  }
  document.addEventListener("pointerdown", wakeAudio, { once: true });
  document.addEventListener("keydown", wakeAudio, { once: true });

  /** A short soft beep made with WebAudio (no sound file, nothing fetched). */
  function beep(high) {
    if (muted || !audio) return;
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

  function updateTitle() {
    let count = 0;
    for (const chat of chats.values()) count += chat.unread || (chat.isNew ? 1 : 0);
    count += ticketBadge;
    document.title = (count ? "(" + count + ") " : "") + baseTitle;
    $("chat-count").textContent = chats.size ? String(chats.size) : "";
  }

  function renderMute() {
    const button = $("mute-toggle");
    button.textContent = muted ? "Sound: off" : "Sound: on";
    button.setAttribute("aria-pressed", muted ? "true" : "false");
  }

  // --- toasts ---------------------------------------------------------------------

  function toast(text, kind) {
    let box = $("toasts");
    if (!box) {
      box = LC.el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
      body.append(box);
    }
    const item = LC.el("div", { class: "toast " + (kind || "") , text: text });
    box.append(item);
    setTimeout(() => item.remove(), 6000);
  }

  // --- state changes --------------------------------------------------------------

  function visitorName(chat) {
    return (chat.visitor && chat.visitor.name) || "Visitor";
  }

  function addMessage(chat, msg) {
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
  function upsertChat(item) {
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
      order.push(id);
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

  function removeChat(id) {
    if (!chats.has(id)) return;
    const index = order.indexOf(id);
    chats.delete(id);
    order = order.filter((x) => x !== id);
    if (activeId === id) {
      activeId = null;
      const next = order[Math.min(index, order.length - 1)];
      if (next) select(next, false);
      else renderConversation();
    }
    renderList();
    updateTitle();
  }

  // --- rendering ------------------------------------------------------------------

  /** What the list says about a chat's clock: how long the visitor has waited for a reply. */
  function waitingInfo(chat) {
    const last = chat.messages[chat.messages.length - 1];
    if (chat.closed) return { text: "closed", long: false };
    if (last && last.from === "visitor") {
      const waited = LC.now() - last.ts;
      return { text: "waiting " + LC.duration(waited), long: waited >= 60 };
    }
    if (!last) return { text: "new · " + LC.duration(LC.now() - chat.since), long: LC.now() - chat.since >= 60 };
    return { text: "answered · chat " + LC.duration(LC.now() - chat.since), long: false };
  }

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

  function renderList() {
    const list = LC.clear($("chats"));
    $("no-chats").hidden = order.length > 0;
    for (const id of order) {
      const chat = chats.get(id);
      const selected = id === activeId;
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

  function tickWaits() {
    for (const node of document.querySelectorAll("[data-wait]")) {
      const chat = chats.get(node.dataset.wait);
      if (chat) showWait(node, chat);
    }
  }

  function messageState(chat, msg) {
    if (msg.from !== "agent") return "";
    if (msg.pending) return "sending…";
    return msg.seq && msg.seq <= chat.readSeq ? "seen" : "sent";
  }

  function messageNode(chat, msg) {
    const who = msg.from === "visitor" ? visitorName(chat) : msg.from === "agent" ? msg.name || "Agent" : "";
    const state = messageState(chat, msg);
    return LC.el(
      "li",
      { class: "msg msg-" + (msg.from || "system") + (msg.pending ? " msg-pending" : ""), dataset: { seq: msg.seq || "", cid: msg.client_id || "" } },
      LC.el("div", { class: "bubble", text: msg.text }),
      LC.el(
        "div",
        { class: "msg-meta" },
        who ? LC.el("span", { class: "msg-who", text: who }) : null,
        LC.el("time", { text: LC.clock(msg.ts) }),
        state ? LC.el("span", { class: "msg-state state-" + state.replace(/[^a-z]/g, ""), text: state }) : null,
      ),
    );
  }

  function shownMessages(chat) {
    const out = chat.messages.slice();
    for (const [cid, p] of pending) {
      if (p.chatId === chat.id) out.push({ from: "agent", text: p.text, ts: p.ts, client_id: cid, pending: true, name: me.name });
    }
    return out;
  }

  function renderMessages() {
    const chat = chats.get(activeId);
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    LC.clear(box);
    if (!chat) return;
    for (const msg of shownMessages(chat)) box.append(messageNode(chat, msg));
    if (nearBottom || box.dataset.chat !== chat.id) box.scrollTop = box.scrollHeight;
    box.dataset.chat = chat.id;
  }

  function renderConversation() {
    const chat = chats.get(activeId);
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
    const chat = chats.get(activeId);
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

  function renderAll() {
    renderList();
    renderConversation();
    updateTitle();
  }

  function renderStatus() {
    const button = $("status-toggle");
    button.disabled = !socket.open;
    const online = me.status === "online";
    button.textContent = online ? "● Online" : "○ Away";
    button.className = "btn status-btn " + (online ? "status-online" : "status-away");
    button.setAttribute("aria-pressed", online ? "true" : "false");
    button.title = online ? "Taking new chats. Click to go away (keeps current chats)." : "Away: no new chats. Click to go online.";
  }

  function select(id, focusComposer) {
    if (!chats.has(id)) return;
    activeId = id;
    sessionStorage.setItem("lc.active", id);
    const chat = chats.get(id);
    chat.unread = 0;
    chat.isNew = false;
    $("transfer-panel").hidden = true;
    closeCanned();
    renderAll();
    if (focusComposer && !chat.closed) $("composer-text").focus();
  }

  function move(step) {
    if (!order.length) return;
    const index = activeId ? order.indexOf(activeId) : -1;
    const next = order[(index + step + order.length) % order.length];
    select(next, true);
  }

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
      if (held.has(p.chatId)) socket.send({ type: "message", chat_id: p.chatId, text: p.text, client_id: cid });
      else pending.delete(cid);
    }
    if (!activeId || !chats.has(activeId)) {
      const remembered = sessionStorage.getItem("lc.active");
      activeId = remembered && chats.has(remembered) ? remembered : order.find((id) => !chats.get(id).closed) || null;
    }
    welcomed = true;
    body.dataset.ready = "1";
    loadCanned();
    renderStatus();
    renderAll();
    tell("lc:welcome");
  }

  function onAssigned(frame) {
    const done = upsertChat(frame);
    if (!done) return;
    const { chat, fresh } = done;
    chat.closed = null;
    if (fresh && frame.chat_id !== activeId) chat.isNew = true;
    beep(true);
    if (fresh && frame.transferred_from) toast(visitorName(chat) + " was transferred to you by " + frame.transferred_from + ".");
    if (!activeId || (chats.get(activeId) && chats.get(activeId).closed)) select(chat.id, false);
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
      if (chat.id !== activeId || document.hidden) {
        chat.unread += chat.id !== activeId ? 1 : 0;
        beep(false);
      }
      if (document.hidden && chat.id === activeId) chat.unread += 1;
    }
    if (chat.id === activeId) {
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
    if (chat.id === activeId) $("typing").hidden = !chat.typing || !!chat.closed;
  }

  function onRead(frame) {
    const chat = chats.get(frame.chat_id);
    if (!chat || typeof frame.seq !== "number") return;
    chat.readSeq = Math.max(chat.readSeq, frame.seq);
    if (chat.id === activeId) renderMessages();
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

  function onGone(frame) {
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
      case "released": onGone(frame); break;
      case "status":
        if (frame.status) me.status = frame.status;
        renderStatus();
        break;
      case "error": onError(frame); break;
      case "ticket_changed": case "ticket_viewers": tell("lc:" + frame.type, frame); break; // tickets.js
      default: break;
    }
  }

  const socket = new LC.Socket("/ws/agent", {
    frame: onFrame,
    open: () => renderStatus(),
    closed: () => {
      welcomed = false;
      body.dataset.ready = "0";
      renderStatus();
    },
    policy: (event, retry) => LC.checkSession(retry),
  });

  // --- composer, typing, canned replies --------------------------------------------

  function sendTyping(active) {
    if (!activeId) return;
    socket.send({ type: "typing", chat_id: typingChat || activeId, active });
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
    const chat = chats.get(activeId);
    if (!chat || chat.closed) return;
    const now = Date.now();
    if ($("composer-text").value.trim() && (now - typingSentAt > 3000 || typingChat !== activeId)) {
      if (typingChat && typingChat !== activeId) stopTyping();
      typingChat = activeId;
      sendTyping(true);
      typingSentAt = now;
    }
    clearTimeout(typingStopTimer);
    typingStopTimer = setTimeout(stopTyping, 4000);
  }

  function sendMessage() {
    const box = $("composer-text");
    const chat = chats.get(activeId);
    const text = box.value.trim();
    if (!chat || chat.closed || !text) return;
    const cid = LC.randomId();
    pending.set(cid, { chatId: chat.id, text, ts: LC.now() });
    socket.send({ type: "message", chat_id: chat.id, text, client_id: cid });
    stopTyping();
    box.value = "";
    closeCanned();
    renderMessages();
    renderList();
  }

  async function loadCanned() {
    try {
      const response = await fetch("/api/canned", { credentials: "same-origin", cache: "no-store" });
      if (response.ok) canned = (await response.json()).replies || [];
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
    const chat = chats.get(activeId);
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
    cannedMatches = results.map((r) => ({ label: r.title, detail: r.snippet, text: r.title + ": " + location.origin + r.url }));
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
    if (!token || !canned.length) return closeCanned();
    cannedMatches = canned.filter((r) => r.shortcut.startsWith(token.query) || (token.query.length > 1 && r.text.toLowerCase().includes(token.query)))
      .map((r) => ({ label: "/" + r.shortcut, detail: r.text, text: r.text }));
    drawMenu();
  }

  function drawMenu() {
    const menu = $("canned-menu");
    if (!cannedMatches.length) return closeCanned();
    cannedIndex = Math.min(cannedIndex, cannedMatches.length - 1);
    LC.clear(menu);
    cannedMatches.forEach((reply, i) => {
      menu.append(
        LC.el(
          "li",
          {
            role: "option",
            class: "canned-item" + (i === cannedIndex ? " selected" : ""),
            "aria-selected": i === cannedIndex ? "true" : "false",
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

  function closeCanned() {
    const menu = $("canned-menu");
    menu.hidden = true;
    cannedMatches = [];
    cannedIndex = 0;
  }

  function insertCanned(index) {
    const reply = cannedMatches[index];
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

  $("composer-text").addEventListener("input", onComposerInput);
  $("composer-text").addEventListener("blur", () => setTimeout(closeCanned, 150));
  $("composer-text").addEventListener("keydown", (event) => {
    const menuOpen = !$("canned-menu").hidden && cannedMatches.length;
    if (menuOpen && (event.key === "ArrowDown" || event.key === "ArrowUp") && !event.altKey) {
      event.preventDefault();
      cannedIndex = (cannedIndex + (event.key === "ArrowDown" ? 1 : -1) + cannedMatches.length) % cannedMatches.length;
      drawMenu();
      return;
    }
    if (menuOpen && (event.key === "Enter" || event.key === "Tab")) {
      event.preventDefault();
      insertCanned(cannedIndex);
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

  // --- actions --------------------------------------------------------------------

  function closeChat(resolution) {
    const chat = chats.get(activeId);
    if (!chat || chat.closed) return;
    closingByMe.set(chat.id, resolution);
    if (!socket.send({ type: "close", chat_id: chat.id, resolution })) {
      closingByMe.delete(chat.id);
      toast("Not connected: try again in a moment.", "error");
    }
  }

  $("close-resolved").addEventListener("click", () => closeChat("resolved"));
  $("close-unresolved").addEventListener("click", () => closeChat("unresolved"));
  $("dismiss-btn").addEventListener("click", () => activeId && removeChat(activeId));

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
    const chat = chats.get(activeId);
    const to = $("transfer-to").value;
    if (!chat || !to) return;
    transferringByMe.add(chat.id);
    if (socket.send({ type: "transfer", chat_id: chat.id, to })) $("transfer-panel").hidden = true;
    else {
      transferringByMe.delete(chat.id);
      toast("Not connected: try again in a moment.", "error");
    }
  });

  $("status-toggle").addEventListener("click", () => {
    const next = me.status === "online" ? "away" : "online";
    if (socket.send({ type: "status", status: next })) {
      me.status = next;
      renderStatus();
    }
  });

  $("mute-toggle").addEventListener("click", () => {
    muted = !muted;
    localStorage.setItem("lc.muted", muted ? "1" : "0");
    if (!muted) wakeAudio();
    renderMute();
  });

  document.addEventListener("keydown", (event) => {
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      move(event.key === "ArrowDown" ? 1 : -1);
    }
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && activeId && chats.get(activeId)) {
      chats.get(activeId).unread = 0;
      renderList();
      updateTitle();
    }
  });

  renderMute();
  renderStatus();
  renderAll();
  setInterval(tickWaits, 1000);
  // For tests and debugging: a read-only look at what the page holds.
  window.lcDesk = {
    chats,
    get activeId() { return activeId; },
    get welcomed() { return welcomed; },
    dropConnection() {
      welcomed = false;
      socket.drop();
    },
    // Hooks for the Tickets view (tickets.js): the same socket, sound, toasts and title badge.
    send: (frame) => socket.send(frame),
    beep,
    toast,
    setTicketBadge(n) {
      ticketBadge = n;
      updateTitle();
    },
  };
})();
