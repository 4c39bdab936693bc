"""The documentation keeps up with the code: every setting, variable, error code and frame
type the code has is written down, every link leads somewhere, and nothing points outside the
repository. Pure file reading: no server, no Redis."""

from __future__ import annotations

import ast
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
TICKETS = DOCS / "tickets.md"
SERVER_SOURCES = ("chat", "transcripts", "agents", "helpcentre")
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


def glance_row(kind: str) -> str:
    """The second cell of one row of docs/protocol.md's "Constants at a glance" table."""
    section = text(PROTOCOL).split("## 10. Constants at a glance", 1)[1]
    row = re.search(rf"^\| {re.escape(kind)} \| (.*) \|$", section, re.M)
    assert row, f"no row {kind!r} in section 10 of docs/protocol.md"
    return row.group(1)


def glance(kind: str) -> list[str]:
    """The values in backticks of one row of docs/protocol.md's "Constants at a glance" table."""
    return re.findall(r"`([^`]+)`", glance_row(kind))


def first_column(markdown: str, header: str) -> list[str]:
    """The values in backticks of the first column of the table whose header row starts with header."""
    table = markdown.split(f"| {header} |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", table, re.M)


def server_sources() -> list[Path]:
    return [p for package in SERVER_SOURCES for p in sorted((ROOT / package).rglob("*.py"))]


def type_entries(source: str) -> Iterator[ast.expr]:
    """The value of every `"type": …` entry of a dict display in a Python source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "type":
                    yield value


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
    assert "limit_reached" in frames.ERROR_CODES
    page = text(PROTOCOL)
    assert sorted(c for c in frames.ERROR_CODES if not in_backticks(c, page)) == []


def test_protocol_names_every_close_code():
    """Every close code of chat/frames.py is named in backticks in docs/protocol.md."""
    codes = {str(value) for name, value in vars(frames).items() if name.startswith("CLOSE_")}
    page = text(PROTOCOL)
    assert codes and sorted(c for c in codes if not in_backticks(c, page)) == []


def test_protocol_names_every_wire_value():
    """Every frame type, status, reason, trigger and field value of chat/frames.py is named in
    backticks in docs/protocol.md."""
    values = (frames.CLIENT_FRAMES | frames.SERVER_FRAMES | set(frames.CHAT_STATUSES) | set(frames.AGENT_STATUSES)
              | set(frames.OFFLINE_REASONS) | set(frames.CLOSED_REASONS) | set(frames.TRIGGERS)
              | set(frames.TICKET_STATUSES) | set(frames.CHANNELS) | set(frames.THREAD_KINDS) | set(frames.SENDERS)
              | set(frames.RESOLUTIONS) | set(frames.WAIT_CHOICES))
    page = text(PROTOCOL)
    assert sorted(v for v in values if not in_backticks(v, page)) == []


def test_protocol_glance_lists_the_frame_types_of_each_socket():
    """Section 10 of docs/protocol.md lists exactly the frame types chat/frames.py gives each socket."""
    assert glance("visitor → hub frames") == list(frames.VISITOR_SENDS)
    assert glance("hub → visitor frames") == list(frames.TO_VISITOR)
    assert glance("agent → hub frames") == list(frames.AGENT_SENDS)
    assert glance("hub → agent frames") == list(frames.TO_AGENT)
    assert glance("supervisor ↔ hub frames") == [*frames.SUPERVISOR_SENDS, *frames.TO_SUPERVISOR]


def test_protocol_glance_lists_every_status_reason_and_choice():
    """Section 10 of docs/protocol.md lists exactly the statuses, reasons, triggers and choices of chat/frames.py."""
    assert glance("chat statuses") == list(frames.CHAT_STATUSES)
    assert glance("agent statuses") == list(frames.AGENT_STATUSES)
    assert glance("`offline` reasons") == list(frames.OFFLINE_REASONS)
    assert glance("`closed` reasons") == list(frames.CLOSED_REASONS)
    assert glance("message senders (`from`)") == list(frames.SENDERS)
    assert glance("`close` resolutions") == list(frames.RESOLUTIONS)
    assert glance("`wait_or_ticket` choices") == list(frames.WAIT_CHOICES)
    assert glance("`transfer` targets") == [frames.TO_QUEUE]
    assert glance("ticket triggers") == list(frames.TRIGGERS)
    assert glance("ticket statuses") == list(frames.TICKET_STATUSES)
    assert glance("ticket thread kinds") == [*frames.THREAD_KINDS, frames.THREAD_CHAT, "messages"]


def test_protocol_glance_states_every_field_limit():
    """Section 10 of docs/protocol.md states the frame and field limits of chat/frames.py."""
    row = glance_row("limits")
    stated = [f"WebSocket message `{frames.MAX_FRAME_BYTES}` bytes", f"`text` `{frames.MAX_TEXT_CHARS}` characters",
              f"`client_id` {frames.MAX_ID_CHARS}", f"`name` {frames.MAX_NAME_CHARS}", f"`email` {frames.MAX_EMAIL_CHARS}",
              f"`site` {frames.MAX_SITE_CHARS}", f"`page` {frames.MAX_PAGE_CHARS}", f"`topic` {frames.MAX_TOPIC_CHARS}",
              f"`identity` {frames.MAX_IDENTITY_CHARS}", f"`comment` {frames.MAX_COMMENT_CHARS}",
              f"`to` {frames.MAX_USERNAME_CHARS}"]
    assert [s for s in stated if s not in row] == []


def test_ticket_page_explains_every_trigger_and_status():
    """docs/tickets.md's trigger and status tables have exactly one row per trigger and ticket status of chat/frames.py."""
    page = text(TICKETS)
    assert first_column(page, "trigger") == list(frames.TRIGGERS)
    assert first_column(page, "status") == list(frames.TICKET_STATUSES)


def test_every_value_of_frames_belongs_to_a_group():
    """Every word constant of chat/frames.py is in a group the docs tests check, or an internal event."""
    groups = (frames.ERROR_CODES | frames.CLIENT_FRAMES | frames.SERVER_FRAMES | frames.INTERNAL_EVENTS
              | {frames.TO_QUEUE}, frames.CHAT_STATUSES, frames.AGENT_STATUSES, frames.OFFLINE_REASONS,
              frames.CLOSED_REASONS, frames.TRIGGERS, frames.TICKET_STATUSES, frames.CHANNELS, frames.THREAD_KINDS,
              frames.SENDERS, frames.RESOLUTIONS, frames.WAIT_CHOICES)
    grouped = set().union(*groups)
    words = {name: value for name, value in vars(frames).items()
             if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z][a-z_]*", value)}
    assert "CHAT_QUEUED" in words  # the search itself works
    assert sorted(name for name, value in words.items() if value not in grouped) == []


def test_server_sources_name_frame_types_by_their_constant():
    """No dict in the server's sources spells a frame or event type as a string: chat/frames.py is the one source."""
    spelt = [f"{p.relative_to(ROOT)}: {value.value!r}" for p in server_sources()
             for value in type_entries(text(p))
             if isinstance(value, ast.Constant) and re.fullmatch(r"[a-z_]+", str(value.value))]  # not ASGI's "http.request"
    assert spelt == []


def test_server_sources_send_only_grouped_frame_types():
    """Every `"type": frames.X` the server's sources put in a dict is a server frame type or an internal event."""
    named = {value.attr for p in server_sources() for value in type_entries(text(p))
             if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "frames"}
    assert {"WELCOME", "QUEUE", "RELEASED", "WAIT_OR_TICKET"} <= named  # the search itself works
    assert sorted(n for n in named if getattr(frames, n, None) not in frames.SERVER_FRAMES | frames.INTERNAL_EVENTS) == []


def test_widget_handles_only_frames_the_server_sends():
    """The widget's frame handlers (widget/*.js) are for frame types the server sends."""
    handled = set().union(*(handled_frame_types(text(p)) for p in sorted((ROOT / "widget").glob("*.js"))))
    assert "welcome" in handled  # the search itself works
    assert sorted(handled - frames.SERVER_FRAMES) == []


def test_supervisor_view_handles_only_frames_the_server_sends():
    """The supervisor view's frame handlers (agents/static/supervisor.js) are for frames the server sends."""
    handled = handled_frame_types(text(ROOT / "agents" / "static" / "supervisor.js"))
    assert "queue" in handled  # the search itself works
    assert sorted(handled - frames.SERVER_FRAMES) == []


def test_dashboard_handles_only_frames_the_server_sends():
    """The agent dashboard's frame handlers (agents/static/**/*.js, its modules) are for frame types the server sends."""
    handled = {p: handled_frame_types(text(p)) for p in sorted((ROOT / "agents" / "static").rglob("*.js"))}
    protocol = ROOT / "agents" / "static" / "desk" / "protocol.js"  # the module that takes the socket's frames
    assert {"welcome", "assigned", "released", "ticket_changed"} <= handled[protocol]  # the search itself works
    assert sorted(set().union(*handled.values()) - frames.SERVER_FRAMES) == []


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
