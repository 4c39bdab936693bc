"""The durable, ordered log of one chat: a Redis list of msgpack message frames.

A message is stored before it is acknowledged; seq is its 1-based position in the list, so
seq has no gaps and a resume is one LRANGE. One Lua script stores, deduplicates by
client_id and publishes, so a message is never delivered live without being stored.
"""

from __future__ import annotations

from typing import Any

import msgpack
from redis.asyncio import Redis

from chat import frames, keys
from chat.batching import ScriptBatcher
from chat.store import is_cluster
from chat.queue import NotHolder

SEQ_PLACEHOLDER = 0xFFFFFFFF  # packed as 0xce + 4 bytes at a fixed offset, patched by the script

# Python packs the frame (msgpack floats stay float64); Lua only splices in the seq.
APPEND_SCRIPT = """
local cid = ARGV[1]
if cid ~= '' then
  local old = redis.call('HGET', KEYS[2], cid)
  if old then
    return {tonumber(old), redis.call('LINDEX', KEYS[1], tonumber(old) - 1), 0}
  end
end
local status = redis.call('HGET', KEYS[3], 'status')
if not status then return {-1} end
if status == 'closed' then return {-2} end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[3], 'agent') ~= ARGV[7] then return {-4} end
local blob = ARGV[2]
if ARGV[3] == 'visitor' then
  local max_msgs, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
  if max_msgs > 0 and tonumber(redis.call('HGET', KEYS[3], 'visitor_msgs') or '0') >= max_msgs then return {-3} end
  if max_bytes > 0 and tonumber(redis.call('HGET', KEYS[3], 'visitor_bytes') or '0') + #blob > max_bytes then return {-3} end
  redis.call('HINCRBY', KEYS[3], 'visitor_bytes', #blob)
end
local seq = redis.call('LLEN', KEYS[1]) + 1
local msg = string.sub(blob, 1, 6) .. struct.pack('>I4', seq) .. string.sub(blob, 11)
redis.call('RPUSH', KEYS[1], msg)
if cid ~= '' then redis.call('HSET', KEYS[2], cid, seq) end
redis.call('HSET', KEYS[3], 'last_ts', ARGV[4], 'last_from', ARGV[3])
if ARGV[3] == 'visitor' then redis.call('HINCRBY', KEYS[3], 'visitor_msgs', 1) end
redis.call(ARGV[8], KEYS[4], msg)  -- PUBLISH, or SPUBLISH on a cluster (chat.bus.publish)
return {seq, msg, 1}
"""


class ChatGone(Exception):
    """The chat does not exist or is closed: nothing more can be written to it."""


class ChatFull(Exception):
    """The visitor has stored as many messages (or bytes) in this chat as the caps allow:
    nothing was stored. Anonymous visitors must not grow Redis without bound; the agent,
    who is not capped, can still write."""


def pack_message(sender: str, text: str, ts: float, client_id: str | None, name: str | None = None) -> bytes:
    frame: dict[str, Any] = {"seq": SEQ_PLACEHOLDER, "type": frames.MESSAGE, "from": sender, "text": text, "ts": ts}
    if client_id:
        frame["client_id"] = client_id
    if name:
        frame["name"] = name
    blob = msgpack.packb(frame)
    assert blob[1:6] == b"\xa3seq\xce"
    return blob


class ChatLog:
    """Appends to and reads chat logs; one instance per process holds the loaded script.
    With a batcher (the hub's), appends made at the same time share one round trip."""

    def __init__(self, redis: Redis, batcher: ScriptBatcher | None = None):
        self.redis = redis
        self.batcher = batcher
        self._append = redis.register_script(APPEND_SCRIPT)
        self._publish = "SPUBLISH" if is_cluster(redis) else "PUBLISH"  # the bus is sharded on a cluster

    async def append(
        self, chat_id: str, sender: str, text: str, ts: float, client_id: str | None = None, name: str | None = None,
        max_messages: int = 0, max_bytes: int = 0, holder: str = "",
    ) -> tuple[int, bytes, bool]:
        """Store one message; return (seq, packed frame, newly stored). A client_id seen
        before returns the stored message again and stores nothing. For the visitor,
        max_messages / max_bytes (0 = none) cap what the chat may hold from them: past
        either, ChatFull and nothing stored. With holder (an agent's username), NotHolder
        unless the chat's record names that agent: an agent whose chat went to someone else
        while its hub was away must not write in it."""
        script_keys = [keys.chat_log(chat_id), keys.chat_client_ids(chat_id), keys.chat(chat_id), keys.chat_channel(chat_id)]
        args = [client_id or "", pack_message(sender, text, ts, client_id, name), sender, repr(ts),
                max_messages, max_bytes, holder, self._publish]
        if self.batcher is not None:
            result = await self.batcher.call(self._append, script_keys, args)
        else:
            result = await self._append(keys=script_keys, args=args)
        if result[0] == -3:
            raise ChatFull(chat_id)
        if result[0] == -4:
            raise NotHolder(chat_id)
        if result[0] < 0:
            raise ChatGone(chat_id)
        return int(result[0]), result[1], bool(result[2])


async def read_log(redis: Redis, chat_id: str, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """Messages with seq > after_seq, in order (at most ``limit``)."""
    end = -1 if limit is None else after_seq + limit - 1
    raw = await redis.lrange(keys.chat_log(chat_id), max(after_seq, 0), end)
    return [msgpack.unpackb(item) for item in raw]
