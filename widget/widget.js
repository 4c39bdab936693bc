/* livechat visitor widget: plain JavaScript, no dependencies, no build step.
   Embed: <script src="https://HUB/widget.js" data-site="default" async></script>
   Private by construction: it talks only to the hub it was loaded from, keeps its state in
   sessionStorage (never cookies), and inserts every message as text, never as HTML.
   Works under a strict CSP: no inline script or style; its styles live in its shadow root. */
(() => {
  "use strict";
  const me = document.currentScript || document.querySelector('script[src*="/widget.js"]');
  if (!me || document.querySelector("livechat-widget")) return;
  const HUB = new URL(me.src, location.href).origin;
  const WS_URL = HUB.replace(/^http/, "ws") + "/ws/visitor";
  const D = me.dataset, SITE = D.site || "default", KEY = "livechat:" + HUB + ":" + SITE;

  // All UI strings. Add a language by adding one block with the same keys.
  const STR = {
    en: {
      lang: "English", launch: "Chat with us", title: "Support chat", hide: "Minimize", end: "End chat",
      intro: "Ask us anything. We will never ask for your password.",
      name: "Name", email: "Email (optional)", yourEmail: "Your email for our reply", topic: "Topic",
      language: "Language", question: "Your question", hint: "What did you try? Any error message?",
      start: "Start chat", account: "Account & login", technical: "Technical", security: "Security",
      billing: "Billing", other: "Other", emergency: "Emergency (service-wide outage)",
      connecting: "Connecting…", reconnecting: "Connection lost. Reconnecting…",
      queued: "You are number {p} in line.", eta: "Estimated wait: about {m} min.",
      chatting: "You are chatting with {a}.", joined: "{a} joined the chat.", typing: "{a} is typing…",
      you: "You", support: "Support", pending: "Sending…", sent: "Sent", unsent: "Not sent", message: "Message", send: "Send",
      offline: "Nobody can answer right now. Leave us a message and we will reply by email.",
      closedHours: "Our support is closed right now. Leave us a message and we will reply by email.",
      done: "Send to support", waitq: "Sorry for the wait. Keep waiting, or get our answer by email?",
      wait: "Keep waiting", byMail: "Email me instead",
      ticket: "Your request is saved as ticket {r}. We will reply by email.",
      closed: "This chat has ended.", rateq: "How did we do?", scale: "1 = poor, 5 = excellent",
      comment: "Comment (optional)", rate: "Send rating", thanks: "Thank you for your feedback.",
      again: "New chat", signed: "Signed in as {n}.", lost: "Your earlier chat could not be restored, so a new one was started.",
      unread: "new message", refq: "I have a reference", mine: "My tickets",
    },
    fr: {
      lang: "Français", launch: "Discuter avec nous", title: "Chat d'assistance", hide: "Réduire", end: "Terminer",
      intro: "Posez-nous vos questions. Nous ne vous demanderons jamais votre mot de passe.",
      name: "Nom", email: "E-mail (facultatif)", yourEmail: "Votre e-mail pour notre réponse", topic: "Sujet",
      language: "Langue", question: "Votre question", hint: "Qu'avez-vous essayé ? Un message d'erreur ?",
      start: "Commencer", account: "Compte et connexion", technical: "Technique", security: "Sécurité",
      billing: "Facturation", other: "Autre", emergency: "Urgence (panne générale du service)",
      connecting: "Connexion…", reconnecting: "Connexion perdue. Reconnexion…",
      queued: "Vous êtes numéro {p} dans la file.", eta: "Attente estimée : environ {m} min.",
      chatting: "Vous discutez avec {a}.", joined: "{a} a rejoint la discussion.", typing: "{a} écrit…",
      you: "Vous", support: "Assistance", pending: "Envoi…", sent: "Envoyé", unsent: "Non envoyé", message: "Message", send: "Envoyer",
      offline: "Personne ne peut répondre pour le moment. Laissez-nous un message, nous répondrons par e-mail.",
      closedHours: "Notre assistance est fermée pour le moment. Laissez-nous un message, nous répondrons par e-mail.",
      done: "Envoyer à l'assistance", waitq: "Désolés pour l'attente. Continuer d'attendre, ou recevoir notre réponse par e-mail ?",
      wait: "Continuer d'attendre", byMail: "Répondez-moi par e-mail",
      ticket: "Votre demande est enregistrée sous la référence {r}. Nous répondrons par e-mail.",
      closed: "Cette discussion est terminée.", rateq: "Votre avis sur notre aide ?", scale: "1 = mauvais, 5 = excellent",
      comment: "Commentaire (facultatif)", rate: "Envoyer la note", thanks: "Merci pour votre avis.",
      again: "Nouvelle discussion", signed: "Connecté en tant que {n}.", lost: "Votre discussion précédente n'a pas pu être restaurée : une nouvelle a commencé.",
      unread: "nouveau message", refq: "J'ai une référence", mine: "Mes demandes",
    },
  };
  const TOPICS = ["account", "technical", "security", "billing", "other", "emergency"];
  const pick = (l) => (l = String(l || "").toLowerCase().split("-")[0]) in STR && l;
  const UI = pick(D.lang) || (navigator.languages || [navigator.language]).map(pick).find(Boolean) || "en";
  const t = (k, v = {}) => (STR[UI][k] || STR.en[k]).replace(/\{(\w)\}/g, (_, x) => v[x]);
  const fmt = (ts) => new Date(ts * 1000).toLocaleTimeString(UI, { hour: "2-digit", minute: "2-digit" });
  const rid = () => Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");

  // A signed-in customer's identity token; its payload (not secret) says which fields to skip.
  const identity = () => D.identity || window.LivechatIdentity || null;
  const claims = () => {
    try {
      const b = atob(identity().split(".")[0].replace(/-/g, "+").replace(/_/g, "/"));
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(b, (c) => c.charCodeAt(0)))) || {};
    } catch (e) { return {}; }
  };

  // State kept across reloads and pages of this tab: r resume token, s last seq, o panel open,
  // v status, a agent name, q [position, eta], k ticket ref, d rated, n/e name/email, l lang,
  // tp topic, p pending messages, x control frames to send, m shown messages, w wait offer, y offline reason.
  let st = {};
  try { st = JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch (e) { /* storage disabled */ }
  const save = () => { try { sessionStorage.setItem(KEY, JSON.stringify(st)); } catch (e) { /* full or disabled */ } };

  // DOM helper: children are appended as text nodes or elements, never parsed as HTML.
  const h = (tag, a, ...kids) => {
    const e = document.createElement(tag);
    for (const k in a || {}) {
      const v = a[k];
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, "");
      else if (v != null && v !== false) e.setAttribute(k, v);
    }
    for (const c of kids) if (c != null) e.append(c);
    return e;
  };
  const field = (label, control) => h("label", null, h("span", null, label), control);
  const btn = (label, onclick, cls) => h("button", { type: "button", class: cls, onclick }, label);
  const icon = () => {
    const n = "http://www.w3.org/2000/svg", s = document.createElementNS(n, "svg"), p = document.createElementNS(n, "path");
    s.setAttribute("viewBox", "0 0 24 24"); s.setAttribute("aria-hidden", "true");
    p.setAttribute("d", "M4 4h16a1 1 0 0 1 1 1v11a1 1 0 0 1-1 1H9l-5 4v-4H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z");
    s.append(p);
    return s;
  };
  const mailInput = () => h("input", { type: "email", autocomplete: "email", maxlength: 200 });

  // ---- the shadow tree ----
  const host = document.createElement("livechat-widget");
  const root = host.attachShadow({ mode: "open" });
  const wrap = h("div", { class: "lc", lang: UI, hidden: true });
  const css = h("link", { rel: "stylesheet", href: HUB + "/widget.css" });
  if (D.cssIntegrity) { css.integrity = D.cssIntegrity; css.crossOrigin = "anonymous"; }
  css.onload = css.onerror = () => { wrap.hidden = false; scroll(); };

  const badge = h("span", { class: "dot", hidden: true }, h("span", { class: "sr" }, t("unread")));
  const launcher = h("button", { type: "button", class: "launch", "aria-expanded": "false", "aria-controls": "lc-panel", onclick: () => toggle() },
    icon(), h("span", null, t("launch")), badge);
  const endBtn = btn(t("end"), () => queue({ type: "leave" }), "end");
  const hideBtn = btn(t("hide"), () => toggle(false), "hide");
  const status = h("p", { class: "status", role: "status" });

  const fName = h("input", { autocomplete: "name", maxlength: 100 });
  const fEmail = mailInput();
  const fTopic = h("select", null, ...TOPICS.map((x) => h("option", { value: x }, t(x))));
  const fLang = h("select", null, ...Object.keys(STR).map((l) => h("option", { value: l, lang: l }, STR[l].lang)));
  fLang.value = UI;
  const fQ = h("textarea", { rows: 3, maxlength: 4000, "aria-describedby": "lc-hint" });
  const signed = h("p", { class: "hint" });
  const helpBox = h("div", { class: "sugg", hidden: true }); // article suggestions, filled by widget/help.js
  const rows = { n: field(t("name"), fName), e: field(t("email"), fEmail), l: field(t("language"), fLang) };
  const pre = h("form", { class: "pre", onsubmit: start }, h("p", null, t("intro")), signed, rows.n, rows.e,
    field(t("topic"), fTopic), rows.l, field(t("question"), fQ), h("p", { id: "lc-hint", class: "hint" }, t("hint")), helpBox, h("button", { type: "submit" }, t("start")),
    btn(t(identity() ? "mine" : "refq"), () => loadTix(), "alt tix"));

  const log = h("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": t("title") });
  const typing = h("p", { class: "typing", hidden: true });
  const offMail = mailInput();
  const offRow = field(t("yourEmail"), offMail);
  const offText = h("p");
  const offBox = h("div", { class: "box offline", hidden: true }, offText, offRow, btn(t("done"), done));
  const waitMail = mailInput();
  const waitRow = field(t("yourEmail"), waitMail);
  const waitBox = h("div", { class: "box wait", role: "alert", hidden: true }, h("p", null, t("waitq")), waitRow,
    h("div", { class: "row" }, btn(t("wait"), () => choose("wait")), btn(t("byMail"), () => choose("ticket"), "alt")));
  const ticketP = h("p", { class: "box ticket", hidden: true });
  const closedP = h("p", { class: "system closed", hidden: true }, t("closed"));
  const rComment = h("textarea", { rows: 2, maxlength: 1000 });
  const rateForm = h("form", { class: "box rate", hidden: true, onsubmit: rate },
    h("fieldset", null, h("legend", null, t("rateq")),
      h("div", { class: "stars" }, ...[1, 2, 3, 4, 5].map((n) => h("label", null, h("input", { type: "radio", name: "score", value: n, required: true }), h("span", null, n)))),
      h("p", { class: "hint" }, t("scale"))),
    field(t("comment"), rComment), h("button", { type: "submit" }, t("rate")));
  const thanks = h("p", { class: "system thanks", hidden: true }, t("thanks"));
  const again = btn(t("again"), () => reset(), "alt again");
  const ta = h("textarea", { id: "lc-msg", rows: 2, maxlength: 4000, oninput: typed, onkeydown: (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); say(); }
  } });
  const composer = h("form", { class: "say", onsubmit: (e) => { e.preventDefault(); say(); } },
    h("label", { class: "sr", for: "lc-msg" }, t("message")), ta, h("button", { type: "submit" }, t("send")));
  const chat = h("div", { class: "body chat" }, log, typing, offBox, waitBox, ticketP, closedP, rateForm, thanks, again);
  const panel = h("section", { id: "lc-panel", class: "panel", role: "dialog", "aria-labelledby": "lc-title", hidden: true,
    onkeydown: (e) => { if (e.key === "Escape") toggle(false); } },
  h("header", null, h("h2", { id: "lc-title" }, t("title")), endBtn, hideBtn),
  status, h("div", { class: "body form" }, pre), chat, composer);
  wrap.append(panel, launcher);
  root.append(css, wrap);

  // The help centre's code (widget/help.js) is imported when the form first shows, or when an
  // agent's article link is opened: visitors who never see either never download it.
  let help = null;
  const loadHelp = () => help || (help = import(HUB + "/widget/help.js").then((m) => m.default({ HUB, UI, h, btn, root, panel,
    q: fQ, box: helpBox, lang: () => (D.chatLang ? UI : fLang.value), submit: () => pre.requestSubmit(), focus: focusIn }))
    .catch(() => { help = null; }));
  // Tickets (widget/tickets.js: "I have a reference", a verified customer's tickets): loaded on demand only.
  let tix = null;
  const loadTix = () => (tix = tix || import(HUB + "/widget/tickets.js").then((m) => m.default({ HUB, UI, h, btn, field, mailInput, root, pre, identity }))
    .catch(() => { tix = null; })).then((o) => o && o.open());
  const HELP_LINK = new RegExp(HUB.replace(/\W/g, "\\$&") + "/help/([a-z0-9-]+)/([a-z0-9-]+)");

  // ---- connection ----
  let ws = null, ready = false, wasUp = false, tries = 0, timer = 0, typingIn = 0, typedAt = 0, typedTimer = 0;
  const pend = new Map(); // client_id -> element of a message not yet acknowledged

  function connect() {
    clearTimeout(timer);
    drop();
    const s = (ws = new WebSocket(WS_URL));
    s.onopen = () => s.send(JSON.stringify({
      type: "hello", site: SITE, identity: identity(), resume: st.r || null, last_seq: st.s || 0,
      name: st.n || null, email: st.e || null, topic: st.tp, lang: st.l, page: location.origin + location.pathname,
    }));
    s.onmessage = (e) => { if (s === ws) { try { onFrame(JSON.parse(e.data)); } catch (err) { /* not JSON */ } } };
    s.onclose = () => {
      if (s !== ws) return;
      ws = null; ready = false;
      if (st.v && (st.v !== "closed" || st.x.length)) {
        const d = Math.min(10000, 500 * 2 ** tries++); // exponential back-off with jitter
        timer = setTimeout(connect, d / 2 + Math.random() * d / 2);
      }
      render();
    };
  }
  function drop() {
    if (ws) { ws.onclose = null; ws.close(); }
    ws = null; ready = false;
  }
  const send = (f) => ws.send(JSON.stringify(f));
  // Control frames (contact, leave, rate, wait_or_ticket) wait for a live socket.
  function queue(f) {
    if (ready) send(f); else { st.x.push(f); if (!ws) connect(); }
    save();
  }
  addEventListener("online", () => { if (!ws && st.v && st.v !== "closed") connect(); });

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        ready = wasUp = true; tries = 0; st.r = f.resume; st.id = f.chat_id; st.v = f.status;
        if (f.agent && f.agent.name) st.a = f.agent.name;
        for (const p of st.p) send({ type: "message", text: p.t, client_id: p.i });
        for (const x of st.x.splice(0)) send(x);
        break;
      case "queued": st.v = "queued"; st.q = [f.position, f.eta_s]; break;
      case "offline": st.v = "offline"; st.y = f.reason; break;
      case "assigned": {
        const a = (f.agent && f.agent.name) || t("support");
        if (st.v !== "active" || st.a !== a) note(t("joined", { a }));
        st.v = "active"; st.a = a; st.w = 0;
        break;
      }
      case "message": if (!onMessage(f)) return; break;
      case "typing":
        clearTimeout(typingIn);
        typingIn = f.active ? setTimeout(() => { typingIn = 0; render(); }, 8000) : 0;
        break;
      case "ticket": st.k = f.ref; break;
      case "closed":
        st.v = "closed"; st.c = f.reason; st.k = f.ref || st.k; st.w = 0; st.p = []; clearTimeout(typingIn); typingIn = 0;
        for (const el of pend.values()) el.querySelector(".state").textContent = t("unsent"); // too late to deliver
        pend.clear();
        break;
      case "wait_or_ticket": if (st.v === "queued") st.w = 1; break;
      case "error":
        if (pend.has(f.client_id)) { // a refused message (too long, rate limited, chat closed)
          pend.get(f.client_id).querySelector(".state").textContent = t("unsent");
          pend.delete(f.client_id); st.p = st.p.filter((p) => p.i !== f.client_id);
        }
        if (f.code === "bad_resume") { // the hub could not find the old chat and starts a new one from this hello
          Object.assign(st, { s: 0, m: [], a: null, q: null, k: null, d: 0, w: 0 });
          log.replaceChildren(...pend.values()); note(t("lost"));
        }
    }
    save(); render();
    if (f.type !== "typing") scroll();
  }

  // One message from the hub: acknowledges a pending one, is shown once (by seq), or
  // reveals a gap (then reconnect, and the resume replays what is missing).
  function onMessage(f) {
    const el = f.client_id && pend.get(f.client_id);
    if (el) { el.remove(); pend.delete(f.client_id); st.p = st.p.filter((p) => p.i !== f.client_id); }
    if (f.seq <= st.s) return true;
    if (f.seq > st.s + 1) { ws.close(); return false; }
    st.s = f.seq;
    const m = { q: f.seq, f: f.from, t: f.text, ts: f.ts, n: f.name };
    st.m.push(m); if (st.m.length > 300) st.m.shift();
    show(m);
    if (f.from === "agent") { clearTimeout(typingIn); typingIn = 0; if (st.o) read(); else st.u = 1; }
    return true;
  }
  function note(text) { const m = { f: "system", t: text }; st.m.push(m); show(m); }
  function draw(m, pending) {
    const mine = m.f === "visitor";
    return h("li", { class: "m " + m.f + (pending ? " pending" : ""), "data-seq": m.q },
      m.f === "system" ? null : h("span", { class: "who" }, mine ? t("you") : m.n || st.a || t("support")),
      h("p", { class: "tx" }, m.t), card(m),
      m.ts && h("span", { class: "meta" }, h("time", { datetime: new Date(m.ts * 1000).toISOString() }, fmt(m.ts)),
        mine ? h("span", { class: "state" }, t(pending ? "pending" : "sent")) : null));
  }
  function card(m) { // an agent's link to a help article opens it in the panel
    const x = m.f === "agent" && HELP_LINK.exec(m.t);
    return x ? btn(m.t.split("\n").find((l) => l.includes(x[0])).replace(x[0], "").replace(/[\s:–-]+$/, "") || x[0],
      () => loadHelp().then((o) => o && o.open(x[1], x[2], false)), "alt card") : null;
  }
  // Acknowledged messages go before the pending ones, which stay at the end until their echo.
  function show(m) { log.insertBefore(draw(m), log.querySelector(".pending")); scroll(); }
  function showPending(p) { const el = draw({ f: "visitor", t: p.t, ts: p.ts }, true); pend.set(p.i, el); log.append(el); scroll(); }
  const scroll = () => { chat.scrollTop = chat.scrollHeight; };

  // ---- visitor actions ----
  function start(e) {
    e.preventDefault();
    const c = claims(), q = fQ.value.trim();
    st = { o: 1, v: "queued", s: 0, p: [], x: [], m: [], tp: fTopic.value, l: D.chatLang || fLang.value,
      n: c.name || fName.value.trim(), e: c.email || fEmail.value.trim() };
    if (q && help) help.then((o) => o && o.unanswered(q));
    pre.reset(); fLang.value = UI;
    if (q) say(q);
    save(); connect(); render(); ta.focus();
  }
  function say(text) {
    text = text || ta.value.trim();
    if (!text) return;
    if (!arguments.length) ta.value = "";
    typingOff();
    const p = { i: rid(), t: text, ts: Date.now() / 1000 };
    st.p.push(p); showPending(p);
    if (ready) send({ type: "message", text, client_id: p.i });
    save();
  }
  function typed() { // throttled: at most one typing frame every 3 s, "stopped" after 4 s idle
    if (!ready) return;
    const now = Date.now();
    if (now - typedAt > 3000) { typedAt = now; send({ type: "typing", active: true }); }
    clearTimeout(typedTimer); typedTimer = setTimeout(typingOff, 4000);
  }
  function typingOff() {
    clearTimeout(typedTimer);
    if (typedAt && ready) send({ type: "typing", active: false });
    typedAt = 0;
  }
  const needsEmail = () => !st.e && !claims().email;
  function contact(input) { // ask for an email before a ticket is made, if none is known
    if (!needsEmail()) return true;
    input.required = true;
    if (!input.reportValidity()) return false;
    st.e = input.value.trim();
    queue({ type: "contact", email: st.e, name: st.n || null });
    return true;
  }
  function done() {
    if (!st.m.some((m) => m.f === "visitor") && !st.p.length) return ta.focus();
    if (contact(offMail)) queue({ type: "leave" });
  }
  function choose(choice) {
    if (choice === "ticket" && !contact(waitMail)) return;
    st.w = 0; queue({ type: "wait_or_ticket", choice }); render(); ta.focus();
  }
  function rate(e) {
    e.preventDefault();
    const score = +rateForm.querySelector("input:checked").value, comment = rComment.value.trim();
    st.d = 1; queue({ type: "rate", score, comment: comment || null }); render(); again.focus();
  }
  function reset() { // a new chat after the end of the last one
    drop(); clearTimeout(timer); wasUp = false;
    st = { o: st.o }; log.replaceChildren(); pend.clear(); save();
    render(); focusIn();
  }
  const read = () => ready && st.s && send({ type: "read", seq: st.s });
  function toggle(open = !st.o) {
    st.o = open ? 1 : 0; if (open) { st.u = 0; read(); }
    save(); render();
    if (open) { scroll(); focusIn(); } else launcher.focus();
  }
  function focusIn() {
    const target = !st.v ? (rows.n.hidden ? fTopic : fName) : st.v !== "closed" ? ta
      : !rateForm.hidden ? rateForm.querySelector("input") : again;
    target && target.focus();
  }

  function statusText() {
    if (!st.v || st.v === "closed") return "";
    if (!ready) return t(wasUp ? "reconnecting" : "connecting");
    if (st.v === "queued" && st.q) return t("queued", { p: st.q[0] }) + (st.q[1] == null ? "" : " " + t("eta", { m: Math.max(1, Math.round(st.q[1] / 60)) }));
    if (st.v === "active") return t("chatting", { a: st.a || t("support") });
    return "";
  }
  function render() {
    const v = st.v, c = claims(), refocus = root.activeElement === ta && v === "closed";
    panel.hidden = !st.o;
    if (st.o && !v) loadHelp();
    launcher.setAttribute("aria-expanded", !!st.o);
    badge.hidden = !st.u || !!st.o;
    pre.parentNode.hidden = !!v; chat.hidden = !v; composer.hidden = !v || v === "closed";
    endBtn.hidden = !v || v === "closed";
    const s = statusText();
    if (status.textContent !== s) status.textContent = s;
    signed.textContent = c.name ? t("signed", { n: c.name }) : "";
    rows.n.hidden = !!c.name; fName.required = !c.name; rows.e.hidden = !!c.email; rows.l.hidden = !!D.chatLang;
    typing.hidden = !typingIn; typing.textContent = t("typing", { a: st.a || t("support") });
    offBox.hidden = v !== "offline"; offText.textContent = t(st.y === "closed_hours" ? "closedHours" : "offline");
    offRow.hidden = waitRow.hidden = !needsEmail();
    waitBox.hidden = !(st.w && v === "queued");
    ticketP.hidden = !st.k;
    if (st.k) {
      const [a, b] = t("ticket", { r: "\0" }).split("\0");
      ticketP.replaceChildren(a, h("strong", { class: "ref" }, st.k), b);
    }
    closedP.hidden = again.hidden = v !== "closed";
    rateForm.hidden = v !== "closed" || !!st.d; thanks.hidden = !st.d;
    if (refocus) focusIn();
  }

  function mount() { // restore the conversation before the live region is in the page: no flood of announcements
    if (st.v) {
      for (const m of st.m) show(m);
      for (const p of st.p) showPending(p);
      if (st.v !== "closed" || st.x.length) connect();
    }
    render();
    document.body.append(host);
  }
  if (document.body) mount(); else addEventListener("DOMContentLoaded", mount);
})();
