"""The documentation keeps up with the code: every setting, variable, error code and frame
type the code has is written down, every link leads somewhere, and nothing points outside the
repository. Pure file reading: no server, no Redis."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, Iterator

from chat import config, frames

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PROTOCOL = DOCS / "protocol.md"
SERVER_SOURCES = ("chat", "transcripts", "agents", "helpcentre")
# Pub/sub events between hub processes that sockets turn into frames (or closes); never sent
# to a client as such, so not part of the wire protocol.
INTERNAL_EVENTS = {
    "changed",   # chat/lifecycle.py: the queue moved (keys.QUEUE_CHANNEL)
    "requeued",  # chat/lifecycle.py: a visitor socket sends `queued` frames again
    "revoked",   # agents/accounts.py: the user's sockets are closed (1008)
}
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def flatten(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from flatten(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def lookup(table: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(table, dict) or key not in table:
            return KeyError
        table = table[key]
    return table


def toml_blocks(markdown: str) -> list[dict[str, Any]]:
    """Every ```toml block of a page that parses."""
    parsed = []
    for block in re.findall(r"^```toml\n(.*?)^```", markdown, re.M | re.S):
        try:
            parsed.append(tomllib.loads(block))
        except tomllib.TOMLDecodeError:
            pass
    return parsed


def in_backticks(name: str, markdown: str) -> bool:
    return f"`{name}`" in markdown


def server_frame_types() -> set[str]:
    """Every `"type": "…"` the server's Python sources put in a dict, minus the events that
    only travel between hub processes."""
    found: set[str] = set()
    for package in SERVER_SOURCES:
        for source in sorted((ROOT / package).glob("*.py")):
            source_text = text(source)
            found |= set(re.findall(r"[\"']type[\"']\s*:\s*[\"']([a-z_]+)[\"']", source_text))
            found |= {getattr(frames, name) for name in re.findall(r"[\"']type[\"']\s*:\s*frames\.([A-Z_]+)", source_text)}
    return found - INTERNAL_EVENTS


def _block_end(source: str, start: int) -> int:
    """The index just after the `}` closing the `{` at start, skipping JS string literals."""
    depth, i, quote = 0, start, ""
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(source)


def handled_frame_types(source: str) -> set[str]:
    """Frame types a script reacts to: the cases of its `switch (x.type)` and `x.type === "…"`."""
    found = {m.group(2) for m in re.finditer(r"(typeof\s+)?[\w$]+(?:\.[\w$]+)*\.type\s*[!=]==?\s*[\"']([a-z_]+)[\"']", source)
             if not m.group(1)}  # `typeof x.type === "string"` checks a field's kind, not a frame
    for match in re.finditer(r"switch\s*\(\s*[\w.]+\.type\s*\)\s*\{", source):
        body = source[match.end() - 1:_block_end(source, match.end() - 1)]
        found |= set(re.findall(r"\bcase\s+[\"']([a-z_]+)[\"']\s*:", body))
    return found


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted(DOCS.glob("*.md"))]


def tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        listed = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / name for name in listed.decode().split("\0") if name]
    skip = {".git", ".venv", "var", "artifacts", "__pycache__", ".pytest_cache", "results"}
    return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_configuration_names_every_default_key():
    """Every key of every section of DEFAULT_TOML is named in backticks in docs/configuration.md."""
    page = text(CONFIGURATION)
    keys = {path[-1] for path, _ in flatten(tomllib.loads(config.DEFAULT_TOML))}
    assert sorted(k for k in keys if not in_backticks(k, page)) == []


def test_configuration_shows_every_default_value():
    """docs/configuration.md holds the defaults file: every key of DEFAULT_TOML with its value."""
    blocks = toml_blocks(text(CONFIGURATION))
    wrong = [".".join(path) for path, value in flatten(tomllib.loads(config.DEFAULT_TOML))
             if not any(lookup(block, path) == value for block in blocks)]
    assert wrong == []


def test_configuration_names_every_environment_variable():
    """Every environment variable the code reads is named in backticks in docs/configuration.md."""
    page = text(CONFIGURATION)
    settings = text(ROOT / "chat" / "settings.py")
    names = set(re.findall(r"env(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\"", settings))
    for source in (ROOT / "chat").glob("*.py"):
        code = text(source)
        names |= set(re.findall(r"\"(LIVECHAT_[A-Z0-9_]+)\"", code))
        names |= set(re.findall(r"environ\.get\(\s*\"([A-Z][A-Z0-9_]*)\"", code))
    assert {"LIVECHAT_CONFIG", "REDIS_URL", "LIVECHAT_HELP_DIR"} <= names  # the search itself works
    assert sorted(n for n in names if not in_backticks(n, page)) == []


def test_protocol_names_every_error_code():
    """Every error code of chat/frames.py is named in backticks in docs/protocol.md."""
    codes = {value for name, value in vars(frames).items()
             if name.isupper() and not name.startswith(("_", "OFFLINE_")) and isinstance(value, str)
             and re.fullmatch(r"[a-z][a-z_]*", value)}
    assert "limit_reached" in codes
    page = text(PROTOCOL)
    assert sorted(c for c in codes if not in_backticks(c, page)) == []


def test_protocol_names_every_close_code():
    """Every close code of chat/frames.py is named in backticks in docs/protocol.md."""
    codes = {str(value) for name, value in vars(frames).items() if name.startswith("CLOSE_")}
    page = text(PROTOCOL)
    assert codes and sorted(c for c in codes if not in_backticks(c, page)) == []


def test_protocol_names_every_offline_reason():
    """Every offline reason of chat/frames.py is named in backticks in docs/protocol.md."""
    reasons = {value for name, value in vars(frames).items() if name.startswith("OFFLINE_")}
    page = text(PROTOCOL)
    assert reasons and sorted(r for r in reasons if not in_backticks(r, page)) == []


def test_protocol_names_every_frame_type_the_server_sends():
    """Every frame type the server's sources send is named in backticks in docs/protocol.md."""
    sent = server_frame_types()
    assert {"welcome", "queue", "wait_or_ticket", "released"} <= sent  # the search itself works
    page = text(PROTOCOL)
    assert sorted(t for t in sent if not in_backticks(t, page)) == []


def test_widget_handles_only_frames_the_server_sends():
    """The widget's frame handlers (widget/*.js) are for frame types the server sends."""
    handled = set().union(*(handled_frame_types(text(p)) for p in sorted((ROOT / "widget").glob("*.js"))))
    assert "welcome" in handled  # the search itself works
    assert sorted(handled - server_frame_types()) == []


def test_supervisor_view_handles_only_frames_the_server_sends():
    """The supervisor view's frame handlers (agents/static/supervisor.js) are for frames the server sends."""
    handled = handled_frame_types(text(ROOT / "agents" / "static" / "supervisor.js"))
    assert "queue" in handled  # the search itself works
    assert sorted(handled - server_frame_types()) == []


def test_dashboard_handles_only_frames_the_server_sends():
    """The agent dashboard's frame handlers (agents/static/**/*.js, its modules) are for frame types the server sends."""
    handled = {p: handled_frame_types(text(p)) for p in sorted((ROOT / "agents" / "static").rglob("*.js"))}
    protocol = ROOT / "agents" / "static" / "desk" / "protocol.js"  # the module that takes the socket's frames
    assert {"welcome", "assigned", "released", "ticket_changed"} <= handled[protocol]  # the search itself works
    assert sorted(set().union(*handled.values()) - server_frame_types()) == []


def test_relative_links_lead_to_files():
    """Every relative link in README.md, bench/README.md and docs/*.md points to an existing file."""
    broken = []
    for page in doc_pages():
        prose = INLINE_CODE.sub("", FENCE.sub("", text(page)))
        for target in LINK.findall(prose):
            if re.match(r"^(?:[a-z][a-z0-9+.-]*:|#)", target, re.I):
                continue  # a URL with a scheme, or an anchor on the same page
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_tracked_file_points_outside_the_repository():
    """No tracked file refers to the external design folder (the protocol is docs/protocol.md)."""
    needles = [("shared" + "/design").encode(), (".." + "/shared").encode()]
    found = [str(p.relative_to(ROOT)) for p in tracked_files()
             if p.is_file() and any(n in p.read_bytes() for n in needles)]
    assert found == []


def test_readme_is_a_front_door():
    """README.md stays short (at most 250 lines): the rest lives in docs/."""
    assert len(text(ROOT / "README.md").splitlines()) <= 250
