"""Articles: Markdown files with a small front matter, read from the help folder.

```
---
title: Recover your account
lang: en
topic: account
slug: recover-your-account
keywords: forgot password, reset, locked out
---
Markdown body...
```

The body is rendered by markdown-it-py with raw HTML turned off: a `<script>` written in an
article is shown as text, never run. Links keep only the schemes markdown-it allows (no
`javascript:`, `vbscript:`, `file:`, `data:`). The same parse also gives a small JSON tree
(tag, attributes, children) that the widget builds with createElement, so it never parses
HTML either (and works on sites that enforce Trusted Types).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.tree import SyntaxTreeNode

log = logging.getLogger("livechat.help")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
TOPIC = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
REQUIRED = ("title", "lang", "topic", "slug")
KNOWN = (*REQUIRED, "keywords")

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
_render_image = _md.renderer.rules["image"]


def _image(renderer: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
    """An image on the hub itself (a path) is shown; one elsewhere becomes a link to it, so
    a help page never makes the reader's browser contact another site."""
    token = tokens[idx]
    src = str(token.attrs.get("src", ""))
    if src.startswith("/") and not src.startswith("//"):
        return _render_image(tokens, idx, options, env)
    alt = renderer.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}" rel="noopener noreferrer">{escapeHtml(alt)}</a>'


_md.add_render_rule("image", _image)


class ArticleError(ValueError):
    """An article file that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Article:
    lang: str
    slug: str
    title: str
    topic: str
    keywords: tuple[str, ...]
    body: str  # the Markdown source
    html: str  # rendered, inert
    tree: list[Any]  # the same as [tag, attrs, *children] lists for the widget
    text: str  # plain text of the body (search, snippets)
    path: str = ""
    sentences: tuple[str, ...] = field(default=(), repr=False)

    @property
    def url(self) -> str:
        return f"/help/{self.lang}/{self.slug}"


def front_matter(source: str) -> tuple[dict[str, str], str]:
    """Split `---` front matter (one `key: value` per line) from the body."""
    lines = source.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ArticleError("no front matter (the file must start with a line \"---\")")
    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            return meta, "\n".join(lines[number:])
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in KNOWN:
            raise ArticleError(f"line {number}: expected one of {', '.join(KNOWN)} as \"key: value\"")
        meta[key] = value.strip().strip("\"'")
    raise ArticleError("front matter is not closed by a line \"---\"")


def parse_article(source: str, path: str = "") -> Article:
    """One article from the text of its file; ArticleError if it cannot be served."""
    meta, body = front_matter(source)
    missing = [k for k in REQUIRED if not meta.get(k)]
    if missing:
        raise ArticleError(f"missing {', '.join(missing)} in the front matter")
    lang, slug, topic = meta["lang"].lower(), meta["slug"], meta["topic"].lower()
    if not LANG.match(lang):
        raise ArticleError(f"lang {lang!r} is not a language code like en or fr")
    if not SLUG.match(slug):
        raise ArticleError(f"slug {slug!r} must be lowercase letters, digits and dashes")
    if not TOPIC.match(topic):
        raise ArticleError(f"topic {topic!r} must be lowercase letters, digits, dashes")
    raw_keywords = meta.get("keywords", "").strip("[]")
    keywords = tuple(k.strip().strip("\"'") for k in raw_keywords.split(",") if k.strip())
    tokens = _md.parse(body)
    tree = _tree(SyntaxTreeNode(tokens))
    text = _plain(tree)
    sentences = tuple(s.strip() for s in re.split(r"(?<=[.!?:])\s+|\n+", text) if len(s.strip()) > 2)
    return Article(lang=lang, slug=slug, title=meta["title"][:200], topic=topic, keywords=keywords, body=body,
                   html=_md.renderer.render(tokens, _md.options, {}), tree=tree, text=text, path=path,
                   sentences=sentences)


def load_folder(folder: Path, max_bytes: int) -> list[Article]:
    """Every `*.md` under the folder (sorted by path; on a duplicate language and slug the
    first wins). A broken or oversized file is skipped with a warning naming it: one bad
    article must not take the others down."""
    if not folder.is_dir():
        return []
    articles: dict[tuple[str, str], Article] = {}
    for path in sorted(folder.rglob("*.md")):
        try:
            if path.stat().st_size > max_bytes:
                raise ArticleError(f"larger than [limits] help_article_bytes = {max_bytes}")
            article = parse_article(path.read_text(encoding="utf-8"), str(path))
        except (ArticleError, OSError, UnicodeDecodeError) as exc:
            log.warning("help article %s skipped: %s", path, exc)
            continue
        key = (article.lang, article.slug)
        if key in articles:
            log.warning("help article %s skipped: %s/%s is already %s", path, *key, articles[key].path)
            continue
        articles[key] = article
    return list(articles.values())


def signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when an article is added, edited or removed (path, size, mtime)."""
    if not folder.is_dir():
        return ()
    out = []
    for path in sorted(folder.rglob("*.md")):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


# --- the widget's tree --------------------------------------------------------------

BLOCKS = {"paragraph": "p", "bullet_list": "ul", "ordered_list": "ol", "list_item": "li", "blockquote": "blockquote",
          "strong": "strong", "em": "em", "table": "table", "thead": "thead", "tbody": "tbody", "tr": "tr",
          "th": "th", "td": "td"}


def _tree(node: SyntaxTreeNode) -> list[Any]:
    """[tag, attrs, *children] for every child of node; text stays text."""
    out: list[Any] = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "html_inline", "html_block"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append(["br", {}])
        elif kind == "code_inline":
            out.append(["code", {}, child.content])
        elif kind in ("fence", "code_block"):
            out.append(["pre", {}, ["code", {}, child.content]])
        elif kind == "hr":
            out.append(["hr", {}])
        elif kind == "heading":
            level = min(6, int(child.tag[1]) + 1)  # the article's title is the page's h1
            out.append([f"h{level}", {}, *_tree(child)])
        elif kind == "link":
            out.append(["a", {"href": str(child.attrs.get("href", ""))}, *_tree(child)])
        elif kind == "image":
            out.append(str(child.attrs.get("alt") or "") or _plain(_tree(child)))
        elif kind == "inline":
            out.extend(_tree(child))
        elif kind in BLOCKS:
            out.append([BLOCKS[kind], {}, *_tree(child)])
        else:  # anything new in a later markdown-it: keep its text
            out.extend(_tree(child))
    return out


def _plain(tree: list[Any]) -> str:
    parts: list[str] = []
    for item in tree:
        if isinstance(item, str):
            parts.append(item)
        else:
            inner = _plain(item[2:])
            parts.append(inner + ("\n" if item[0] in ("p", "li", "h2", "h3", "h4", "h5", "h6", "pre", "tr") else ""))
    return "".join(parts)
