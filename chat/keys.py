"""Every Redis key and pub/sub channel name, in one place.

Keys of one chat share the hash tag ``{chat_id}``; routing state (queues, agents,
presence, timers) shares the tag ``{q}``. Each Lua script touches one tag only, so
the keyspace works unchanged on Redis Cluster.
"""

PREFIX = "lc"

SCHEMA_VERSION = f"{PREFIX}:schema"         # integer: the layout version of this data (chat/schema.py)
SCHEMA_LOCK = f"{PREFIX}:schema:lock"       # string with a TTL: held by the one process migrating

# --- one chat: {chat_id} -------------------------------------------------------


def chat(chat_id: str) -> str:
    """Hash: the visitor's profile (plan, verified, name, email, lang, topic, page),
    created/closed timestamps and the closing reason."""
    return f"{PREFIX}:chat:{{{chat_id}}}"


def chat_log(chat_id: str) -> str:
    """List of msgpack message frames; the frame at index i has seq i + 1."""
    return f"{PREFIX}:chat:{{{chat_id}}}:log"


def chat_client_ids(chat_id: str) -> str:
    """Hash client_id -> seq, so a resent message is stored once."""
    return f"{PREFIX}:chat:{{{chat_id}}}:cids"


def chat_channel(chat_id: str) -> str:
    """Pub/sub channel for live events of one chat (messages, typing, assignment)."""
    return f"{PREFIX}:chat:{{{chat_id}}}:ev"


def chat_ticket(chat_id: str) -> str:
    """String: the ticket reference made from this chat (SET NX: one ticket per chat)."""
    return f"{PREFIX}:chat:{{{chat_id}}}:ticket"


def resume(token_hash: str) -> str:
    """String: chat id for a resume token, keyed by the token's SHA-256 (the secret is never stored)."""
    return f"{PREFIX}:resume:{token_hash}"


# --- routing: {q} --------------------------------------------------------------

ROUTE = f"{PREFIX}:{{q}}:route"            # hash chat_id -> msgpack {lang, topic, score, state, agent, ...}
QUEUE_ALL = f"{PREFIX}:{{q}}:queue"        # zset chat_id -> virtual arrival, every waiting chat
AGENTS = f"{PREFIX}:{{q}}:agents"          # hash username -> msgpack {name, langs, topics, max_chats, status}
AGENTS_SEEN = f"{PREFIX}:{{q}}:seen:agents"      # zset username -> last heartbeat of any of its sockets
VISITORS_SEEN = f"{PREFIX}:{{q}}:seen:visitors"  # zset chat_id -> last heartbeat of its visitor socket
TIMERS = f"{PREFIX}:{{q}}:timers"          # zset "<kind>|<chat_id>" -> deadline
TIMER_FAILURES = f"{PREFIX}:{{q}}:timer-failures"  # hash "<kind>|<chat_id>" -> failed attempts (back-off)
STATS = f"{PREFIX}:{{q}}:stats"            # hash of running figures (handling time average, counters)
QUEUE_CHANNEL = f"{PREFIX}:{{q}}:ev"       # pub/sub: the queue changed
QUEUE_HISTORY = f"{PREFIX}:{{q}}:depth"    # zset minute -> "minute:depth", queue depth over the last hour
EMERGENCY_GUARD = f"{PREFIX}:{{q}}:emergency"  # prefix for abuse-guard keys (see emergency_guard)


def queue(lang: str, topic: str | None = None) -> str:
    """Zset of waiting chats in one language (and topic, "_" for none) scored by virtual arrival."""
    if topic is None:
        return f"{PREFIX}:{{q}}:queue:{lang}"
    return f"{PREFIX}:{{q}}:queue:{lang}:{topic}"


def agent_chats(username: str) -> str:
    """Set of chat ids an agent holds (scripts receive it in KEYS, like every key)."""
    return f"{PREFIX}:{{q}}:held:{username}"


def agent_channel(username: str) -> str:
    """Pub/sub channel for one agent's sockets: chats given to or taken from it."""
    return f"{PREFIX}:{{q}}:agent:{username}:ev"


def emergency_guard(who: str) -> str:
    """String with a TTL: this unverified visitor (hashed resume token or IP) used the emergency flag."""
    return f"{EMERGENCY_GUARD}:{who}"


# --- accounts and sessions: {a} -------------------------------------------------------
# Accounts, their sessions and the canned replies share the tag {a}: an account and the list
# of its usernames, a session and its user's list of sessions, change in one transaction, on
# Redis Cluster too. A desk has hundreds of agents, not millions: one slot holds them all.

ACCOUNTS_TAG = f"{PREFIX}:{{a}}"


def account(username: str) -> str:
    """Hash: an agent or supervisor account (password hash, role, skills, capacity)."""
    return f"{ACCOUNTS_TAG}:account:{username}"


ACCOUNTS = f"{ACCOUNTS_TAG}:accounts"      # set of usernames


def session(session_id: str) -> str:
    """Hash with a TTL: a logged-in agent session (username, role, csrf token)."""
    return f"{ACCOUNTS_TAG}:session:{session_id}"


def user_sessions(username: str) -> str:
    """Set of a user's session ids (with the longest session's TTL), so that a role or password
    change, `livechat agent disable` or `remove` can end every session of that user at once."""
    return f"{ACCOUNTS_TAG}:sessions:{username}"


def login_attempts(who: str) -> str:
    """Counter with a TTL for login rate limiting (who = username or hashed client address);
    one script checks a user's and an address's counters together, so they share {a}."""
    return f"{ACCOUNTS_TAG}:login:{who}"


SERVER_SECRET = f"{PREFIX}:secret"          # random key shared by every hub (cookie signing, IP salts)
CANNED_REPLIES = f"{ACCOUNTS_TAG}:canned"   # hash shortcut -> text, the team's canned replies


# --- tickets, mail, archive ------------------------------------------------------
# One ticket's keys share the tag {t:REF} (its hash, thread, files, viewers, the fingerprints
# of the mails stored in it, its follow-up list and its outbox mails), so each change of one
# ticket is one single-slot transaction. The global indexes of tickets share {ti}, the outbox's
# queues {o}, the archive of closed chats {ar}: each is written in a step of its own after
# the ticket's transaction (transcripts/tickets.py says in what order, and which sweep
# repairs a crash between two steps).


def _ticket_tag(ref: str) -> str:
    return f"{PREFIX}:ticket:{{t:{ref}}}"


def ticket(ref: str) -> str:
    """Hash: one ticket (reference, status, visitor, trigger, timestamps, msgpack transcript,
    `rev`: the number of changes, so the indexes are never set back by a late writer)."""
    return _ticket_tag(ref)


def ticket_thread(ref: str) -> str:
    """List of msgpack entries: what happened to a ticket after it was made (mails in)."""
    return f"{_ticket_tag(ref)}:thread"


def ticket_files(ref: str) -> str:
    """Hash attachment id -> bytes: files customers mailed with a ticket (kept up to
    [mail_in] attachment_bytes per mail, deleted with the ticket)."""
    return f"{_ticket_tag(ref)}:files"


def ticket_viewers(ref: str) -> str:
    """Hash with a short TTL: username -> msgpack {name, replying, until} of the agents who
    have this ticket open ([timing] ticket_viewing_ttl), shared by every hub."""
    return f"{_ticket_tag(ref)}:viewers"


def ticket_mails_in(ref: str) -> str:
    """Hash fingerprint -> when: the incoming mails stored in this ticket, so that a mail
    delivered again after a crash (before its global mail_in mark was set) is stored once."""
    return f"{_ticket_tag(ref)}:mails-in"


def ticket_mails(ref: str) -> str:
    """Set of the outbox ids of this ticket's mails, so the ticket's deletion finds them all."""
    return f"{_ticket_tag(ref)}:mails"


def ticket_todo(ref: str) -> str:
    """List of msgpack follow-ups a change of this ticket wrote in its own transaction and
    that live in other slots: mails to put in the outbox's queue, report events to count.
    Done (and removed) right after the change; by the repair sweep after a crash."""
    return f"{_ticket_tag(ref)}:todo"


def outbox_mail(mail_id: str) -> str:
    """Hash: one queued mail (msgpack message, attempts, last error). Every mail belongs to a
    ticket (its id is "REF.kind[-token]") and lives in the ticket's slot."""
    return f"{_ticket_tag(mail_id.partition('.')[0])}:mail:{mail_id}"


def plan_by_email(email_hash: str) -> str:
    """String with a TTL: the plan of the last verified customer seen with this address (an
    identity token vouched for both), so a mail from that address is on the same plan. A lone
    key, never in a transaction with another: its own name is its slot."""
    return f"{PREFIX}:plan-by-email:{email_hash}"


def mail_in(fingerprint: str) -> str:
    """String with a TTL: the reference an incoming mail (by Message-ID, else its bytes) was
    stored in, so a mail delivered twice is stored once. A lone key (set after the ticket's
    own transaction, which also remembers the fingerprint: ticket_mails_in)."""
    return f"{PREFIX}:mail-in:{fingerprint}"


TICKETS_TAG = f"{PREFIX}:{{ti}}"
TICKETS = f"{TICKETS_TAG}:tickets"              # zset ref -> created_at, every ticket, for paging
TICKETS_DUE = f"{TICKETS_TAG}:due"              # zset ref -> due_at of every open ticket (transcripts/desk.py)
TICKETS_PENDING = f"{TICKETS_TAG}:pending-since"  # zset ref -> when it began to wait for the customer
TICKETS_INDEXED = f"{TICKETS_TAG}:indexed"      # hash ref -> "rev:email hash:customer hash" the indexes show
TICKETS_ANNOUNCED = f"{TICKETS_TAG}:announced"  # hash ref -> highest rev a writer is about to make
TICKETS_DIRTY = f"{TICKETS_TAG}:dirty"          # zset ref -> since when a change is unfinished (repair sweep)
TICKETS_CHANNEL = f"{PREFIX}:tickets:ev"   # pub/sub: a ticket changed (msgpack {"type": "ticket", "ref"})
OUTBOX_TAG = f"{PREFIX}:{{o}}"
OUTBOX = f"{OUTBOX_TAG}:outbox"                # zset mail_id -> next attempt time
OUTBOX_FAILED = f"{OUTBOX_TAG}:outbox-failed"  # zset mail_id -> when delivery failed for good (not retried)
ARCHIVE_TAG = f"{PREFIX}:{{ar}}"
CHATS_CLOSED = f"{ARCHIVE_TAG}:closed"         # zset chat_id -> closed_at, for retention


def ticket_gone(ref: str) -> str:
    """String with a TTL, in {ti}: this ticket was deleted, so a writer that read it before
    the deletion cannot put it back into the indexes."""
    return f"{TICKETS_TAG}:gone:{ref}"


def tickets_by_customer(sub_hash: str) -> str:
    """Set of ticket refs of one verified customer (SHA-256 of the identity token's `sub`):
    their own tickets, never those anyone filed under the same address."""
    return f"{TICKETS_TAG}:by-customer:{sub_hash}"


def tickets_by_email(email_hash: str) -> str:
    """Set of ticket refs for one visitor email (hashed), for history and erasure."""
    return f"{TICKETS_TAG}:by-email:{email_hash}"


def chats_by_email(email_hash: str) -> str:
    """Set of chat ids for one visitor email (hashed), for erasure on request."""
    return f"{ARCHIVE_TAG}:chats-by-email:{email_hash}"


# --- dashboard (agent dashboard, supervisor view, metrics) -----------------------
# Owned by the dashboard part: chat/snapshot.py, chat/supervisor_socket.py, agents/views.py.


def queue_history_mark(minute: int) -> str:
    """String with a short TTL: the queue-depth point for this minute (unix seconds, floored
    to the minute) was recorded, so several hubs add one point per minute between them."""
    return f"{QUEUE_HISTORY}:mark:{minute}"


# --- transcripts helper's keys (tickets by status, outbox wake-up) ----------------

OUTBOX_CHANNEL = f"{PREFIX}:outbox-ev"     # pub/sub: a mail was queued, outbox workers wake up


def tickets_by_status(status: str) -> str:
    """Zset ref -> created_at of the tickets in one status (open, pending, solved), for paging."""
    return f"{TICKETS_TAG}:status:{status}"


# --- reliability: abuse guards (chat/connection.py) --------------------------------


def confirmations(email_hash: str) -> str:
    """Counter with a one-day TTL: ticket confirmations mailed to one address (hashed)
    ([limits] confirmations_per_address_per_day)."""
    return f"{PREFIX}:limit:confirmations:{email_hash}"


def ticket_requests(who: str) -> str:
    """Counter with a 60 s TTL: private ticket page and widget ticket requests of one hashed
    client address ([limits] ticket_requests_per_minute)."""
    return f"{PREFIX}:limit:ticket-requests:{who}"


def ticket_links(who: str) -> str:
    """Counter with a one-hour TTL: "I have a reference" requests of one hashed client
    address ([limits] ticket_links_per_hour)."""
    return f"{PREFIX}:limit:ticket-links:{who}"


def new_chats(who: str) -> str:
    """Counter with a 60 s TTL: new visitor chats from one hashed client address
    ([limits] new_chats_per_minute). One key per address, no hash tag needed."""
    return f"{PREFIX}:limit:new-chats:{who}"


# --- help centre (helpcentre/) ------------------------------------------------------


def help_rate(who: str) -> str:
    """Counter with a one-minute TTL: help searches and events of one hashed client address."""
    return f"{PREFIX}:help:rate:{who}"


def help_gaps(lang: str) -> str:
    """Zset "terms" -> count: questions in lang that became a chat despite the help centre."""
    return f"{PREFIX}:help:gaps:{lang}"


def help_gaps_unmatched(lang: str) -> str:
    """Zset "terms" -> count: the subset of help_gaps for which no article was suggested."""
    return f"{PREFIX}:help:gaps:{lang}:none"


# --- reports over time (chat/rollups.py, chat/reports.py): {r} -------------------------
# Every key of the reports shares the tag {r}, so that one script can test an event's marker
# and add to the hour buckets it touches, on Redis Cluster too.

ROLLUP_TOTALS = f"{PREFIX}:{{r}}:rollup:all"       # hash: all-time counters and histograms by plan (/metrics), no TTL
AGENTS_ONLINE_SINCE = f"{PREFIX}:{{r}}:online-since"  # hash username -> when the agent went online (hours online)


def rollup(hour: str) -> str:
    """Hash with a TTL of [reports] keep_days: counters and histogram buckets of one UTC hour
    (``YYYYMMDDHH``), field ``metric|dimension:value``. No personal data: no name, address,
    text or chat id, so it outlives the retention purge."""
    return f"{PREFIX}:{{r}}:rollup:{hour}"


def rollup_mark(kind: str, event_id: str) -> str:
    """String with a TTL of [retention] days: this event (kind + chat id or ticket reference)
    is counted in the rollups already, so that two hubs recording it count it once."""
    return f"{PREFIX}:{{r}}:mark:{kind}:{event_id}"
