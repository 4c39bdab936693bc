"""Help centre search latency: `python -m bench.help_search [--articles 3000] [--queries 2000]`.

Builds an index of N articles made from the demo articles (each copied with its sentences
shuffled and a few made-up words added, so the vocabulary grows as a real help centre's does),
then times Index.search for visitor-like questions, typos and half-typed words included.
Prints p50 / p95 / p99 / max in milliseconds. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace

from helpcentre.articles import load_folder
from helpcentre.library import DEMO_ARTICLES
from helpcentre.search import Index

QUESTIONS = [
    ("en", "I forgot my password"), ("en", "reset pasword"), ("en", "thunderbird setup"),
    ("en", "new emails don't show up on my iphone"), ("en", "cancel my subscription and get a refund"),
    ("en", "mailbox full, I cannot receive emails"), ("en", "how to delete my acc"), ("en", "DKIM record"),
    ("fr", "j'ai oublié mon mot de passe"), ("fr", "résilier mon abonnement"), ("fr", "boite plei"),
]


def corpus(n: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    demo = load_folder(DEMO_ARTICLES, 1 << 20)
    out = []
    for i in range(n):
        a = demo[i % len(demo)]
        sentences = list(a.sentences)
        rng.shuffle(sentences)
        extra = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9)))
                         for _ in range(20))
        text = " ".join(sentences) + " " + extra
        out.append(replace(a, slug=f"{a.slug}-{i}", title=f"{a.title} ({i})", text=text, sentences=tuple(sentences)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    index = Index(corpus(args.articles))
    built = time.perf_counter() - started
    times = []
    for i in range(args.queries):
        lang, q = QUESTIONS[i % len(QUESTIONS)]
        t = time.perf_counter()
        index.search(q, lang, None, 3)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    pick = lambda p: times[min(len(times) - 1, int(p * len(times)))]  # noqa: E731
    print(f"{args.articles} articles indexed in {built:.2f} s; {args.queries} searches (top 3):")
    print(f"  p50 {statistics.median(times):.2f} ms  p95 {pick(0.95):.2f} ms  p99 {pick(0.99):.2f} ms  max {times[-1]:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
