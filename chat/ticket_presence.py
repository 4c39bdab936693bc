"""Who has a ticket open: the agents' dashboards say so (`ticket_viewing`), every hub hears
it (`ticket_viewers`), so two agents never answer one customer twice without knowing.

Presence lives in Redis (keys.ticket_viewers, a hash per ticket) rather than in one hub's
memory, because the two agents may be on different hubs. Each entry carries its own expiry
([timing] ticket_viewing_ttl): a dashboard repeats its frame while the ticket stays open, and
an entry of a socket that vanished with its hub lapses by itself.
"""

from __future__ import annotations

from typing import Any

import msgpack

from chat import frames, keys
from chat.store import publish as bus_publish
from chat.runtime import Runtime


async def set_viewing(rt: Runtime, ref: str, username: str, name: str, viewing: bool,
                      replying: bool = False) -> list[dict[str, Any]]:
    """Record (or end) one agent's presence on a ticket and publish who is there now to every
    hub (which forward it as `ticket_viewers`). Returns the viewers."""
    key = keys.ticket_viewers(ref)
    now = rt.clock()
    ttl = rt.config.timing.ticket_viewing_ttl
    async with rt.redis.pipeline(transaction=True) as pipe:
        if viewing:
            pipe.hset(key, username, msgpack.packb({"name": name, "replying": replying, "until": now + ttl}))
        else:
            pipe.hdel(key, username)
        pipe.expire(key, max(1, int(ttl) + 1))
        pipe.hgetall(key)
        *_, raw = await pipe.execute()
    viewers, lapsed = [], []
    for user, packed in sorted(raw.items()):
        entry = msgpack.unpackb(packed)
        if float(entry.get("until", 0)) < now:
            lapsed.append(user)
            continue
        viewers.append({"username": user.decode(), "name": entry.get("name", ""), "replying": bool(entry.get("replying"))})
    async with rt.redis.pipeline(transaction=False) as pipe:
        if lapsed:
            pipe.hdel(key, *lapsed)
        bus_publish(pipe, keys.TICKETS_CHANNEL, msgpack.packb(
            {"type": frames.EVENT_VIEWERS, "ref": ref, "viewers": viewers[:frames.TICKET_VIEWERS_SHOWN]}))
        await pipe.execute()
    return viewers
