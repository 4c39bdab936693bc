"""The Jinja2 environment for mail bodies and ticket pages.

HTML templates are autoescaped (a visitor's text is hostile until proven otherwise); plain
text templates (``.txt``) are not, since they are never rendered by a browser.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from chat import frames

TEMPLATES = Path(__file__).with_name("templates")

TRIGGER_WORDING = {
    frames.TRIGGER_OFFLINE: "left a message while no agent was available",
    frames.TRIGGER_MAX_WAIT: "waited longer than the plan allows and asked to be answered by email",
    frames.TRIGGER_VISITOR_LEFT: "left the queue before an agent could answer",
    frames.TRIGGER_UNRESOLVED: "was closed as unresolved by the agent",
}


def utc(ts: float | int | str | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A unix time as readable UTC ("" when unknown)."""
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc).strftime(fmt)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def speaker(message: dict[str, Any], visitor_name: str = "") -> str:
    """Who said it, as shown in a transcript."""
    sender = message.get("from")
    if sender == frames.FROM_VISITOR:
        return visitor_name or "Visitor"
    if sender == frames.FROM_AGENT:
        return message.get("name") or "Agent"
    return "System"


def transcript_rows(messages: Iterable[dict[str, Any]], visitor_name: str = "") -> list[dict[str, Any]]:
    """Messages prepared for the templates: who, when, what, and the sender's side."""
    return [
        {
            "seq": m.get("seq"),
            "side": m.get("from", "system"),
            "who": speaker(m, visitor_name),
            "time": utc(m.get("ts"), "%H:%M"),
            "when": utc(m.get("ts"), "%Y-%m-%d %H:%M:%S UTC"),
            "text": str(m.get("text", "")),
        }
        for m in messages
    ]


def _indent(text: str, prefix: str = "    ") -> str:
    return text.replace("\n", "\n" + prefix)


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
env.filters["utc"] = utc
env.filters["continuation"] = _indent
env.globals["TRIGGER_WORDING"] = TRIGGER_WORDING


def render(template: str, /, **context: Any) -> str:
    return env.get_template(template).render(**context)


def pick_template(stem: str, ext: str, lang: str | None) -> str:
    """``stem.<lang>.ext`` when such a translation exists, else ``stem.ext`` (English)."""
    base = (lang or "").split("-")[0].lower()
    if base and base != "en" and (TEMPLATES / f"{stem}.{base}.{ext}").exists():
        return f"{stem}.{base}.{ext}"
    return f"{stem}.{ext}"
