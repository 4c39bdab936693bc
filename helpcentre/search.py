"""Relevance search over the articles: SQLite FTS5 (standard library) ranked by BM25.

Text is reduced to search terms before it reaches SQLite: lowercased, common words dropped,
stemmed with the Snowball stemmer of the article's language (English and French; other
languages are only lowercased), accents removed. A query gets the same treatment, plus:

- typo tolerance: a query term that is in no article of that language is replaced by the
  closest terms of the vocabulary by shared trigrams ("pasword" -> "password");
- the last word, while still being typed, also matches as a prefix ("passw" -> "password").

Terms are ORed and BM25 weighs the title over the keywords over the body, so a question in
plain words finds the article whose title and keywords share most of its rare words.

One index is built per load of the folder, in memory, and replaced whole on a change; it is
queried from a worker thread (the event loop never waits on SQLite).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import snowballstemmer

from helpcentre.articles import Article

STEMMERS = {"en": "english", "fr": "french"}

STOP = {
    "en": set("""a about after all also am an and any are as at be been but by can could do does did doing
        don for from get got has have having how i i'm if in into is it its it's just me my myself no not
        of on or our please so some than that the their them then there these they this to too us was we
        were what when where which who why will with would you your yours hi hello thanks thank help t s
        m ll ve d re""".split()),
    "fr": set("""a à au aux avec ce ces cette dans de des du elle en est et être eu il ils je j l la le les
        leur lui ma mais me mes moi mon n ne nos notre nous on ou où par pas pour qu que qui sa se ses si
        son sur ta te tes toi ton tu un une vos votre vous c d m s t y ai as avez ont suis sont bonjour
        merci aide aider comment quoi puis peux peut faire fait""".split()),
}

WORD = re.compile(r"\w+", re.UNICODE)
WEIGHTS = (10.0, 6.0, 1.0)  # title, keywords, body


def _fold(term: str) -> str:
    """Remove accents: "récupérer" and "recuperer" are the same search term."""
    return "".join(c for c in unicodedata.normalize("NFKD", term) if not unicodedata.combining(c))


class Analyzer:
    """Words to search terms for one language (stop words out, stemmed, folded)."""

    def __init__(self, lang: str):
        base = lang.split("-")[0]
        self.stop = STOP.get(base, set())
        self.stemmer = snowballstemmer.stemmer(STEMMERS[base]) if base in STEMMERS else None
        self._lock = threading.Lock()  # a Snowball stemmer object keeps state between calls
        self._seen: dict[str, str] = {}  # word -> term

    def words(self, text: str) -> list[str]:
        return [w for w in WORD.findall(text.lower()) if w not in self.stop and not w.isdigit()]

    def terms(self, words: Iterable[str]) -> list[str]:
        """Stemmed and folded; each distinct word is stemmed once (Snowball is pure Python)."""
        out = []
        for word in words:
            term = self._seen.get(word)
            if term is None:
                if self.stemmer is not None:
                    with self._lock:
                        term = self.stemmer.stemWord(word)
                term = _fold(term or word)
                if len(self._seen) < 200_000:
                    self._seen[word] = term
            if term:
                out.append(term)
        return out

    def __call__(self, text: str) -> list[str]:
        return self.terms(self.words(text))


_analyzers: dict[str, Analyzer] = {}


def analyzer(lang: str) -> Analyzer:
    if lang not in _analyzers:
        _analyzers[lang] = Analyzer(lang)
    return _analyzers[lang]


def _trigrams(term: str) -> set[str]:
    padded = f"^{term}$"
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


@dataclass(frozen=True)
class Hit:
    article: Article
    score: float
    snippet: str

    def as_json(self) -> dict[str, str]:
        a = self.article
        return {"slug": a.slug, "lang": a.lang, "title": a.title, "url": a.url, "topic": a.topic,
                "snippet": self.snippet}


class Index:
    """An in-memory FTS5 index of one set of articles."""

    def __init__(self, articles: list[Article]):
        self.articles = articles
        self.by_key = {(a.lang, a.slug): a for a in articles}
        self.langs = sorted({a.lang for a in articles})
        self.vocab: dict[str, set[str]] = {}
        self.grams: dict[str, dict[str, set[str]]] = {}
        self._lock = threading.Lock()
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute("CREATE VIRTUAL TABLE docs USING fts5(title, keywords, body, lang UNINDEXED, "
                        "topic UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')")
        rows = []
        self.sentence_terms: list[list[tuple[str, frozenset[str]]]] = []
        for rowid, a in enumerate(articles):
            an = analyzer(a.lang)
            self.sentence_terms.append([(s, frozenset(an(s))) for s in a.sentences[:80]])
            fields = (an(a.title), an(" ".join(a.keywords)), an(a.text))
            vocab = self.vocab.setdefault(a.lang, set())
            for terms in fields:
                vocab.update(terms)
            rows.append((rowid, *(" ".join(t) for t in fields), a.lang, a.topic))
        self.db.executemany("INSERT INTO docs(rowid, title, keywords, body, lang, topic) VALUES (?,?,?,?,?,?)", rows)
        for lang, vocab in self.vocab.items():
            grams: dict[str, set[str]] = {}
            for term in vocab:
                for g in _trigrams(term):
                    grams.setdefault(g, set()).add(term)
            self.grams[lang] = grams
        self._close = lru_cache(maxsize=4096)(self._close_uncached)

    def _close_uncached(self, lang: str, term: str) -> tuple[str, ...]:
        """The vocabulary terms of lang nearest to an unknown term (Dice coefficient of
        trigrams >= 0.5; at most two)."""
        grams = self.grams.get(lang, {})
        mine = _trigrams(term)
        shared: Counter[str] = Counter()
        for g in mine:
            shared.update(grams.get(g, ()))
        scored = []
        for other, n in shared.items():
            dice = 2 * n / (len(mine) + len(other) + 2)
            if dice >= 0.5:
                scored.append((dice, other))
        scored.sort(reverse=True)
        return tuple(t for _, t in scored[:2])

    def _expression(self, lang: str | None, query: str, max_terms: int) -> tuple[str, set[str]]:
        """The FTS5 MATCH expression for a question, and the terms it looks for."""
        langs = [lang] if lang else self.langs or ["en"]
        groups: list[str] = []
        wanted: set[str] = set()
        partial = bool(query) and not query[-1].isspace() and not query[-1] in ".?!"
        for code in langs:
            an = analyzer(code)
            words = an.words(query)[:max_terms]
            terms = an.terms(words)
            vocab = self.vocab.get(code, set())
            for i, term in enumerate(terms):
                options = {term}
                last = partial and i == len(terms) - 1
                if term not in vocab and len(term) >= 4:
                    options.update(self._close(code, term))
                wanted.update(options)
                parts = [f'"{t}"' for t in sorted(options)]
                if last and len(words[i]) >= 3:
                    parts.append(f'"{_fold(words[i])}" *')
                groups.append(" OR ".join(parts))
        return " OR ".join(f"({g})" for g in dict.fromkeys(groups)), wanted

    def search(self, query: str, lang: str | None = None, topic: str | None = None, limit: int = 5,
               max_terms: int = 32) -> list[Hit]:
        """The best articles for a question, best first (empty when nothing matches)."""
        expression, wanted = self._expression(lang, query, max_terms)
        if not expression:
            return []
        sql = "SELECT rowid, bm25(docs, ?, ?, ?) AS rank FROM docs WHERE docs MATCH ?"
        params: list[object] = [*WEIGHTS, expression]
        if lang:
            sql += " AND lang = ?"
            params.append(lang)
        if topic:
            sql += " AND topic = ?"
            params.append(topic)
        sql += " ORDER BY rank LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self.db.execute(sql, params).fetchall()
        return [Hit(self.articles[rowid], -rank, self._snippet(rowid, wanted)) for rowid, rank in rows]

    def _snippet(self, rowid: int, wanted: set[str], width: int = 180) -> str:
        """The sentence of the body that shares most terms with the question (else the first)."""
        sentences = self.sentence_terms[rowid]
        best, best_score = (sentences[0][0] if sentences else ""), 0
        for sentence, terms in sentences:
            score = len(wanted & terms)
            if score > best_score:
                best, best_score = sentence, score
        return best if len(best) <= width else best[: width - 1].rsplit(" ", 1)[0] + "…"
