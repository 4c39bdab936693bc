/* livechat tickets in the widget: a module that widget.js imports only when the visitor asks
   for it ("I have a reference", or "My tickets" for a signed-in customer).
   - "I have a reference": the reference and the address the ticket was opened with; the hub
     mails a fresh private link to that address if they match, and answers the same neutral
     text either way. Nothing of the ticket is ever shown here.
   - A verified customer (identity token) sees their open tickets and can add a message to one.
   Every text is inserted as text, never as HTML; nothing but the hub is contacted. */
const STR = {
  en: {
    ref: "Reference (e.g. LC-7K3F9Q)", email: "The email address of the request", send: "Email me the link",
    intro: "Enter your reference and the address you used: we will email you a private link to your request.",
    mine: "Your open requests", none: "You have no open request.", add: "Add a message", post: "Send", back: "Back",
    sent: "Added to your request.", failed: "That did not work. Please try again later.", you: "You", support: "Support",
  },
  fr: {
    ref: "Référence (ex. LC-7K3F9Q)", email: "L'adresse e-mail de la demande", send: "M'envoyer le lien",
    intro: "Indiquez votre référence et l'adresse utilisée : nous vous enverrons par e-mail un lien privé vers votre demande.",
    mine: "Vos demandes en cours", none: "Vous n'avez aucune demande en cours.", add: "Ajouter un message", post: "Envoyer",
    back: "Retour", sent: "Ajouté à votre demande.", failed: "Cela n'a pas fonctionné. Réessayez plus tard.", you: "Vous",
    support: "Assistance",
  },
};
const MINE = new Set(["mail_in", "web_in", "widget_in"]);

export default function init(w) {
  const { HUB, h, btn, field, pre } = w, S = STR[w.UI] || STR.en;
  const post = (path, body) => fetch(HUB + path, { method: "POST", body: JSON.stringify(body), credentials: "omit" })
    .then(async (r) => ({ ok: r.ok, status: r.status, data: await r.json().catch(() => ({})) }));
  w.root.append(h("link", { rel: "stylesheet", href: HUB + "/widget/tickets.css" }));

  const note = h("p", { class: "hint tnote", role: "status" });
  const fRef = h("input", { maxlength: 40, autocomplete: "off", spellcheck: "false" });
  const fMail = w.mailInput();
  const refForm = h("form", { class: "tref", onsubmit: ask }, h("p", null, S.intro), field(S.ref, fRef), field(S.email, fMail),
    h("button", { type: "submit" }, S.send));
  const list = h("div", { class: "tmine" });
  const box = h("div", { class: "tix", hidden: true }, btn(S.back, close, "alt tback"), list, refForm, note);
  pre.after(box);

  async function ask(e) {
    e.preventDefault();
    const r = await post("/api/widget/ticket-link", { ref: fRef.value.trim(), email: fMail.value.trim(), lang: w.UI }).catch(() => null);
    note.textContent = r && r.data.message ? r.data.message : r && r.data.error ? r.data.message : S.failed;
    if (r && r.ok) fRef.value = "";
  }

  async function mine() {
    const token = w.identity();
    if (!token) return;
    const r = await post("/api/widget/tickets", { identity: token }).catch(() => null);
    if (!r || !r.ok) return list.replaceChildren(h("p", { class: "hint" }, S.failed));
    const tickets = r.data.tickets || [];
    list.replaceChildren(h("h3", null, S.mine), ...(tickets.length ? tickets.map(ticket) : [h("p", { class: "hint" }, S.none)]));
  }

  function ticket(t) {
    const text = h("textarea", { rows: 2, maxlength: 4000 });
    const status = h("p", { class: "hint", role: "status" });
    const form = h("form", { class: "tadd", onsubmit: async (e) => {
      e.preventDefault();
      if (!text.value.trim()) return;
      const r = await post("/api/widget/tickets/" + encodeURIComponent(t.ref) + "/messages", { identity: w.identity(), text: text.value })
        .catch(() => null);
      if (r && r.ok) { text.value = ""; item.replaceWith(ticket(r.data)); } else status.textContent = (r && r.data.message) || S.failed;
    } }, field(S.add, text), h("button", { type: "submit" }, S.post), status);
    const item = h("details", { class: "tone", "data-ref": t.ref },
      h("summary", null, h("strong", null, t.ref), " ", t.subject || "", " · ", t.status),
      t.promise ? h("p", { class: "hint" }, t.promise) : null,
      h("ol", { class: "tlog" }, ...t.messages.map((m) => h("li", { class: MINE.has(m.kind) || (m.kind === "chat" && m.from === "visitor") ? "me" : "them" },
        h("span", { class: "who" }, MINE.has(m.kind) || m.from === "visitor" ? S.you : m.name || S.support), h("p", null, m.text)))),
      form);
    return item;
  }

  function close() { box.hidden = true; pre.hidden = false; }
  return { open() { pre.hidden = true; box.hidden = false; note.textContent = ""; mine(); (w.identity() ? list : fRef).focus(); } };
}
