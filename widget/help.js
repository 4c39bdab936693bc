/* livechat help suggestions: a module that widget.js imports only when its pre-chat form opens
   (or an agent's article link is opened), so the widget itself stays small.
   While the visitor types the question, up to three articles of the help centre are suggested;
   one opens inside the panel. Articles arrive as a tree of [tag, attributes, ...children] and are
   built with createElement from a short list of tags: no HTML is ever parsed, links keep only
   http(s) and mailto, and nothing but the hub is contacted. */
const STR = {
  en: {
    suggested: "These articles may answer your question:", solved: "This answered my question",
    need: "I still need help", back: "Back to the chat", glad: "Glad it helped! Ask us anything else at any time.",
    failed: "The article could not be loaded.", article: "Help article",
  },
  fr: {
    suggested: "Ces articles répondent peut-être à votre question :", solved: "Cela a répondu à ma question",
    need: "J'ai encore besoin d'aide", back: "Retour au chat", glad: "Tant mieux ! Revenez quand vous voulez.",
    failed: "L'article n'a pas pu être chargé.", article: "Article d'aide",
  },
};
const TAGS = new Set(["p", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code", "pre", "blockquote",
  "a", "br", "hr", "table", "thead", "tbody", "tr", "th", "td"]);
const ARTICLE = /^\/help\/([a-z0-9-]+)\/([a-z0-9-]+)$/;

export default function init(w) {
  const { HUB, h, btn } = w, S = STR[w.UI] || STR.en;
  const api = (path) => fetch(HUB + path, { credentials: "omit" }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)));
  const report = (event) => fetch(HUB + "/api/help/event", { method: "POST", body: JSON.stringify(event), credentials: "omit",
    keepalive: true }).catch(() => {});

  w.root.append(h("link", { rel: "stylesheet", href: HUB + "/widget/help.css" }));
  const list = h("ul", { class: "hs" });
  const glad = h("p", { class: "hint glad", role: "status" });
  w.box.append(h("p", { class: "hint" }, S.suggested), list);
  w.box.after(glad);

  // ---- suggestions while the question is typed (debounced; a newer search cancels the older) ----
  let timer = 0, asked = "", searched = false, shown = [], ctl = null;
  w.q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 300); glad.textContent = ""; });
  if (w.q.value.trim()) suggest(); // typed while this module was loading
  async function suggest() {
    const q = w.q.value.trim().slice(0, 500);
    if (q === asked) return;
    asked = q;
    if (ctl) ctl.abort();
    if (q.length < 3) return draw([]);
    ctl = new AbortController();
    try {
      const r = await fetch(HUB + "/api/help/search?" + new URLSearchParams({ q, lang: w.lang(), limit: 3 }),
        { credentials: "omit", signal: ctl.signal });
      if (r.ok) { searched = true; draw((await r.json()).results.slice(0, 3)); }
    } catch (e) { /* aborted by a newer search, or offline: no suggestions */ }
  }
  function draw(results) {
    shown = results.map((r) => r.slug);
    list.replaceChildren(...results.map((r) => h("li", null,
      h("a", { href: HUB + r.url, onclick: (e) => { e.preventDefault(); open(r.lang, r.slug, true); } }, r.title),
      h("p", { class: "hint" }, r.snippet))));
    w.box.hidden = !results.length;
  }

  // ---- one article inside the panel ----
  const title = h("h2", { tabindex: -1 });
  const body = h("div", { class: "doc" });
  const actions = h("div", { class: "row" });
  const view = h("section", { class: "art", hidden: true, "aria-label": S.article },
    h("header", null, title), h("div", { class: "body" }, body, actions));
  w.panel.append(view);
  let back = null;

  function build(node) {
    if (typeof node === "string") return node;
    const [tag, attrs, ...kids] = node;
    if (!TAGS.has(tag)) return h("span", null, ...kids.map(build));
    if (tag !== "a") return h(tag, null, ...kids.map(build));
    const href = String((attrs && attrs.href) || ""), m = ARTICLE.exec(href);
    if (m) return h("a", { href: HUB + href, onclick: (e) => { e.preventDefault(); open(m[1], m[2], !!back); } }, ...kids.map(build));
    const safe = /^(https?:|mailto:)/i.test(href) ? href : href.startsWith("/") ? HUB + href : null;
    return safe ? h("a", { href: safe, target: "_blank", rel: "noopener noreferrer" }, ...kids.map(build)) : h("span", null, ...kids.map(build));
  }
  function close() { view.hidden = true; }
  async function open(lang, slug, fromForm) {
    let a;
    try { a = await api("/api/help/article/" + encodeURIComponent(lang) + "/" + encodeURIComponent(slug)); }
    catch (e) { a = { title: S.failed, tree: [] }; }
    title.textContent = a.title;
    body.replaceChildren(...(a.tree || []).map(build));
    back = fromForm;
    actions.replaceChildren(...(fromForm
      ? [btn(S.solved, solved), btn(S.need, () => { close(); w.submit(); }, "alt")]
      : [btn(S.back, () => { close(); w.focus(); }, "alt")]));
    view.hidden = false;
    view.querySelector(".body").scrollTop = 0;
    title.focus();
    if (a.slug) { report({ event: "viewed", lang: a.lang, slug: a.slug }); view.dataset.lang = a.lang; view.dataset.slug = a.slug; }
  }
  function solved() {
    report({ event: "solved", lang: view.dataset.lang, slug: view.dataset.slug });
    close();
    w.q.value = ""; asked = ""; searched = false; draw([]);
    glad.textContent = S.glad;
    w.q.focus();
  }
  // The question became a chat: told to the hub, so supervisors see which articles are missing.
  function unanswered(q) {
    if (searched) report({ event: "unanswered", lang: w.lang(), q: q.slice(0, 500), shown });
    clearTimeout(timer); if (ctl) ctl.abort();
    close(); asked = ""; searched = false; draw([]); glad.textContent = "";
  }
  return { open, unanswered };
}
