"""The articles a hub serves: loaded from the help folder when the hub starts, and again
whenever a file there is added, edited or removed ([timing] help_reload seconds apart).

Every hub reads the same folder, so every hub answers the same; nothing about the text is
kept in Redis (the folder is deployed with the hub, like its configuration). Reading,
parsing and indexing happen in a worker thread; the new index replaces the old one whole,
so a search never sees half a reload.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from chat.runtime import Runtime
from helpcentre.articles import load_folder, signature
from helpcentre.search import Index

log = logging.getLogger("livechat.help")
DEMO_ARTICLES = Path(__file__).resolve().parent / "articles"


class Library:
    def __init__(self, folder: Path, max_bytes: int, interval: float):
        self.folder = folder
        self.max_bytes = max_bytes
        self.interval = interval
        self.index = Index([])
        self._signature: tuple = ()
        self._task: asyncio.Task | None = None

    def _build(self) -> tuple[tuple, Index | None]:
        sig = signature(self.folder)
        if sig == self._signature:
            return sig, None
        return sig, Index(load_folder(self.folder, self.max_bytes))

    async def refresh(self) -> bool:
        """Reload if the folder changed; True when a new index is in place."""
        sig, index = await asyncio.to_thread(self._build)
        if index is None:
            return False
        self._signature, self.index = sig, index
        log.info("help centre: %d articles (%s) from %s", len(index.articles), ", ".join(index.langs) or "none",
                 self.folder)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:  # a bad moment on the disk must not end the watching
                log.exception("help centre: reloading %s failed", self.folder)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._watch(), name="help-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


async def start(rt: Runtime) -> Library:
    """Load the help folder and keep watching it (the app keeps it on its state for the routes)."""
    library = Library(rt.settings.help_folder, rt.config.limits.help_article_bytes, rt.config.timing.help_reload)
    await library.start()
    return library


def install_demo_articles(folder: Path) -> bool:
    """The demo's articles (Lumen Mail, en and fr) copied into an empty or missing help folder,
    so that `make run` has a help centre to show and the user may edit it."""
    if folder.exists() and any(folder.rglob("*.md")):
        return False
    shutil.copytree(DEMO_ARTICLES, folder, dirs_exist_ok=True)
    return True
