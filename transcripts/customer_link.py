"""The signed link to a ticket's private page, and the words that say when to expect an
answer: what every mail to a customer carries (transcripts/mailer.py) and the page shows
(transcripts/customer.py).

The token is an HMAC of the reference and the ticket's `link_version` under the desk secret
(rt.secret, shared by every hub and worker): nothing is stored per link, any process checks
it, and an agent revokes every link of a ticket at once by bumping the version.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from chat.config import DeskConfig
from chat.plans import ALWAYS
from chat.runtime import Runtime

TOKEN_BYTES = 16  # 128 bits of HMAC: unguessable, short enough for a mail line

TEXTS = {
    "en": {
        "title": "Your request {ref}", "status": "Status", "open": "We are on it: the next answer is ours.",
        "pending": "We answered and are waiting for your reply.", "solved": "Solved. Write below if it is not.",
        "you": "You", "support": "Support", "reply": "Add a message", "send": "Send", "files": "Attach files (screenshots…)",
        "sent": "Thank you: your message is with your request.", "empty": "Please write a message first.",
        "long": "This message is too long.",
        "closed": "This request was solved a while ago: to ask again, reply to one of our mails or start a chat.", "busy": "Too many requests from your address: try again in a minute.",
        "private": "This page is private to you: do not share its address.",
        "within": "We answer within {n} {unit}.", "hour": "hour", "hours": "hours",
        "bhour": "business hour", "bhours": "business hours", "minutes": "minutes",
        "notfound": "Not found", "notfound_text": "This page does not exist.",
    },
    "fr": {
        "title": "Votre demande {ref}", "status": "Statut", "open": "Nous nous en occupons : la prochaine réponse est la nôtre.",
        "pending": "Nous avons répondu et attendons votre retour.", "solved": "Résolue. Écrivez ci-dessous si ce n'est pas le cas.",
        "you": "Vous", "support": "Assistance", "reply": "Ajouter un message", "send": "Envoyer", "files": "Joindre des fichiers (captures d'écran…)",
        "sent": "Merci : votre message est joint à votre demande.", "empty": "Écrivez d'abord un message.",
        "long": "Ce message est trop long.",
        "closed": "Cette demande est résolue depuis un moment : pour nous écrire à nouveau, répondez à l'un de nos messages ou ouvrez une discussion.", "busy": "Trop de requêtes depuis votre adresse : réessayez dans une minute.",
        "private": "Cette page vous est réservée : n'en partagez pas l'adresse.",
        "within": "Nous répondons sous {n} {unit}.", "hour": "heure", "hours": "heures",
        "bhour": "heure ouvrée", "bhours": "heures ouvrées", "minutes": "minutes",
        "notfound": "Introuvable", "notfound_text": "Cette page n'existe pas.",
    },
}


def texts(lang: str | None) -> dict[str, str]:
    return TEXTS.get((lang or "en").split("-")[0].lower(), TEXTS["en"])


# --- the link -----------------------------------------------------------------------------


def link_token(secret: bytes, ref: str, version: Any) -> str:
    """The token of a ticket's private page for one link version."""
    digest = hmac.new(secret, f"ticket-page|{ref}|{int(version or 0)}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).decode().rstrip("=")


def token_ok(secret: bytes, ticket: dict[str, Any], token: str) -> bool:
    return hmac.compare_digest(link_token(secret, ticket["ref"], ticket.get("link_version")), token)


def page_link(rt: Runtime, ticket: dict[str, Any]) -> str:
    """The ticket's private page, when the hub knows its public address (LIVECHAT_PUBLIC_URL,
    or the demo's); "" otherwise (a mail then says nothing of a page)."""
    base = rt.settings.public_url
    if not base or not rt.secret:
        return ""
    return f"{base}/t/{ticket['ref']}/{link_token(rt.secret, ticket['ref'], ticket.get('link_version'))}"


def promise(config: DeskConfig, ticket: dict[str, Any], answered: bool | None = None) -> str:
    """When to expect an answer, in the customer's language: "We answer within 8 business
    hours." The plan's first_response until an agent answered, then next_response; an
    emergency counts [tickets] emergency_response around the clock."""
    words = texts(ticket.get("lang"))
    if answered is None:
        answered = bool(ticket.get("first_response_at"))
    plan = config.plan(ticket.get("plan"))
    if ticket.get("emergency"):
        seconds, business = config.tickets.emergency_response, False
    else:
        seconds = plan.next_response if answered else plan.first_response
        business = plan.hours != ALWAYS
    if seconds < 3600:
        return words["within"].format(n=max(1, round(seconds / 60)), unit=words["minutes"])
    hours = round(seconds / 3600, 1)
    n = int(hours) if hours == int(hours) else hours
    unit = ("bhour" if n == 1 else "bhours") if business else ("hour" if n == 1 else "hours")
    return words["within"].format(n=n, unit=words[unit])
