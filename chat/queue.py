"""The waiting line and who holds which chat, all under the {q} hash tag.

Waiting chats sit in sorted sets scored by virtual arrival (chat/plans.py): one for every
waiting chat, one per language and one per language and topic. An agent claims its best chat
in one Lua script that also enforces its status and capacity, so two hub processes can never
give one chat to two agents nor an agent more chats than its max_chats. The cost of a claim
is O(languages x topics x log n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import msgpack
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from chat import frames, keys
from chat.store import publish

NO_TOPIC = "_"
EMERGENCY_TOPIC = "emergency"
QUEUE_PREFIX = keys.queue("").rstrip(":")
# On the queue channel: agents' profiles changed (every hub reads them again); nobody's place
# in line did (chat/lifecycle.py queue_news).
AGENTS_CHANGED = msgpack.packb({"type": frames.EVENT_CHANGED, "agents": True, "moved": []})

# KEYS: AGENTS, agent_chats(u), ROUTE, QUEUE_ALL, candidate queues...
# ARGV: username, now, queue prefix
CLAIM_SCRIPT = """
local prof = redis.call('HGET', KEYS[1], ARGV[1])
if not prof then return false end
local a = cmsgpack.unpack(prof)
if a.status ~= 'online' then return false end
if redis.call('SCARD', KEYS[2]) >= tonumber(a.max_chats) then return false end
local best, bestscore, bestroute
for i = 5, #KEYS do
  local top = redis.call('ZRANGE', KEYS[i], 0, 4, 'WITHSCORES')
  for j = 1, #top, 2 do
    local s = tonumber(top[j + 1])
    if best and s >= bestscore then break end
    local r = cmsgpack.unpack(redis.call('HGET', KEYS[3], top[j]))
    if r['not'] ~= ARGV[1] then
      best, bestscore, bestroute = top[j], s, r
      break
    end
  end
end
if not best then return false end
redis.call('ZREM', KEYS[4], best)
redis.call('ZREM', ARGV[3] .. ':' .. bestroute.lang, best)
redis.call('ZREM', ARGV[3] .. ':' .. bestroute.lang .. ':' .. bestroute.topic, best)
bestroute.state = 'active'
bestroute.agent = ARGV[1]
bestroute['not'] = nil
redis.call('HSET', KEYS[3], best, cmsgpack.pack(bestroute))
redis.call('SADD', KEYS[2], best)
return best
"""

# KEYS: ROUTE, QUEUE_ALL, queue(lang), queue(lang, topic), TIMERS, VISITORS_SEEN
# ARGV: chat_id, msgpack route, score, timer entry ('' for none), its deadline, the visitor's
# presence time ('' for none). One atomic step: a claim never sees a route without its queue
# entries nor the other way round.
ENQUEUE_SCRIPT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1]) end
return 1
"""

# KEYS: one language's queue; ARGV: chat ids. 1-based places, 0 for a chat not in that line.
RANKS_SCRIPT = """
local out = {}
for i, id in ipairs(ARGV) do
  local r = redis.call('ZRANK', KEYS[1], id)
  if r then out[i] = r + 1 else out[i] = 0 end
end
return out
"""

# KEYS: ROUTE, QUEUE_ALL; ARGV: chat_id, queue prefix, agent to exclude ('' for none), held prefix,
# the agent who must hold the chat ('' for anyone: 0 if someone else does)
REQUEUE_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local r = cmsgpack.unpack(raw)
if r.state == 'queued' then return false end
if ARGV[5] ~= '' and r.agent ~= ARGV[5] then return 0 end
if r.agent then redis.call('SREM', ARGV[4] .. r.agent, ARGV[1]) end
r.state = 'queued'
r.agent = nil
if ARGV[3] ~= '' then r['not'] = ARGV[3] end
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(r))
redis.call('ZADD', KEYS[2], r.score, ARGV[1])
redis.call('ZADD', ARGV[2] .. ':' .. r.lang, r.score, ARGV[1])
redis.call('ZADD', ARGV[2] .. ':' .. r.lang .. ':' .. r.topic, r.score, ARGV[1])
return 1
"""

# KEYS: ROUTE, QUEUE_ALL; ARGV: chat_id, queue prefix, the agent who must hold the chat ('' for
# anyone: 0 if someone else does, and nothing changes), held prefix
REMOVE_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local r = cmsgpack.unpack(raw)
if ARGV[3] ~= '' and r.agent ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. ':' .. r.lang, ARGV[1])
redis.call('ZREM', ARGV[2] .. ':' .. r.lang .. ':' .. r.topic, ARGV[1])
if r.agent then redis.call('SREM', ARGV[4] .. r.agent, ARGV[1]) end
return raw
"""

# KEYS: ROUTE, AGENTS; ARGV: chat_id, target username, queue prefix, held prefix, the agent who
# must hold the chat ('' for anyone)
TRANSFER_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'gone' end
local r = cmsgpack.unpack(raw)
if ARGV[5] ~= '' and r.agent ~= ARGV[5] then return 'not_holder' end
if r.state ~= 'active' then return 'not_active' end
local prof = redis.call('HGET', KEYS[2], ARGV[2])
if not prof then return 'unknown_agent' end
local a = cmsgpack.unpack(prof)
if a.status ~= 'online' then return 'agent_unavailable' end
local target = ARGV[4] .. ARGV[2]
if redis.call('SCARD', target) >= tonumber(a.max_chats) then return 'agent_full' end
redis.call('SREM', ARGV[4] .. r.agent, ARGV[1])
redis.call('SADD', target, ARGV[1])
local previous = r.agent
r.agent = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(r))
return 'ok:' .. previous
"""

# KEYS: ROUTE, QUEUE_ALL; ARGV: chat_id, queue prefix, new score, new topic key, emergency ('1'/'0')
# Only a chat that is still waiting moves: one already claimed by an agent is left alone.
RESCORE_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local r = cmsgpack.unpack(raw)
if r.state ~= 'queued' then return false end
redis.call('ZREM', ARGV[2] .. ':' .. r.lang .. ':' .. r.topic, ARGV[1])
r.score = tonumber(ARGV[3])
r.topic = ARGV[4]
r.emergency = ARGV[5] == '1'
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(r))
redis.call('ZADD', KEYS[2], r.score, ARGV[1])
redis.call('ZADD', ARGV[2] .. ':' .. r.lang, r.score, ARGV[1])
redis.call('ZADD', ARGV[2] .. ':' .. r.lang .. ':' .. r.topic, r.score, ARGV[1])
return 1
"""

# KEYS: AGENTS_SEEN, AGENTS, ROUTE, QUEUE_ALL; ARGV: username, cutoff, queue prefix, held prefix
AGENT_GONE_SCRIPT = """
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen or tonumber(seen) >= tonumber(ARGV[2]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
local prof = redis.call('HGET', KEYS[2], ARGV[1])
if prof then
  local a = cmsgpack.unpack(prof)
  a.status = 'offline'
  redis.call('HSET', KEYS[2], ARGV[1], cmsgpack.pack(a))
end
local held = ARGV[4] .. ARGV[1]
local chats = redis.call('SMEMBERS', held)
for _, id in ipairs(chats) do
  local raw = redis.call('HGET', KEYS[3], id)
  if raw then
    local r = cmsgpack.unpack(raw)
    r.state = 'queued'
    r.agent = nil
    redis.call('HSET', KEYS[3], id, cmsgpack.pack(r))
    redis.call('ZADD', KEYS[4], r.score, id)
    redis.call('ZADD', ARGV[3] .. ':' .. r.lang, r.score, id)
    redis.call('ZADD', ARGV[3] .. ':' .. r.lang .. ':' .. r.topic, r.score, id)
  end
end
redis.call('DEL', held)
return chats
"""


class NotHolder(Exception):
    """The agent acting on a chat does not hold it (any more): another agent took it after a
    requeue or a transfer. Checked in Redis by the script that acts, never from the socket's
    own list of chats, which can be stale (a hub paused past agent_grace)."""


@dataclass(frozen=True)
class AgentSkills:
    """What an agent can take: languages, topics (empty = all), capacity."""

    username: str
    langs: tuple[str, ...]
    topics: tuple[str, ...]
    max_chats: int

    def candidate_queues(self) -> list[str]:
        if not self.topics:
            return [keys.queue(lang) for lang in self.langs]
        return [keys.queue(lang, t) for lang in self.langs for t in (*self.topics, NO_TOPIC)]


def topic_key(topic: str | None, emergency: bool) -> str:
    """The routing topic: emergencies and chats without a topic go to every agent of the
    language. So does the "emergency" topic when the abuse guard refused the flag: the chat
    then waits like any other, but is not stranded for want of an "emergency" specialist."""
    if emergency or not topic or topic == EMERGENCY_TOPIC:
        return NO_TOPIC
    return topic


class Queue:
    """Routing operations for one process; each is one atomic Redis step."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._requeue = redis.register_script(REQUEUE_SCRIPT)
        self._remove = redis.register_script(REMOVE_SCRIPT)
        self._transfer = redis.register_script(TRANSFER_SCRIPT)
        self._agent_gone = redis.register_script(AGENT_GONE_SCRIPT)
        self._rescore = redis.register_script(RESCORE_SCRIPT)
        self._ranks = redis.register_script(RANKS_SCRIPT)
        self._enqueue = redis.register_script(ENQUEUE_SCRIPT)

    async def enqueue(self, chat_id: str, *, lang: str, topic: str, plan: str, score: float,
                      arrived_at: float, emergency: bool, timer: tuple[str, float] | None = None,
                      seen: float | None = None) -> None:
        """Put a chat in line (its route and its three queue entries, in one atomic step);
        with timer, also schedule that (TIMERS entry, deadline); with seen, mark its visitor
        present at that time."""
        script_keys, args = self._enqueue_call(chat_id, lang, topic, plan, score, arrived_at, emergency, timer, seen)
        await self._enqueue(keys=script_keys, args=args)

    def enqueue_on(self, pipe: Any, chat_id: str, *, lang: str, topic: str, plan: str, score: float,
                   arrived_at: float, emergency: bool, timer: tuple[str, float] | None = None,
                   seen: float | None = None) -> None:
        """Queue ``enqueue`` on a pipeline the caller executes (with raise_on_error=False; a
        NoScriptError in its place means: call ``enqueue`` itself, the script was not loaded)."""
        script_keys, args = self._enqueue_call(chat_id, lang, topic, plan, score, arrived_at, emergency, timer, seen)
        pipe.execute_command("EVALSHA", self._enqueue.sha, len(script_keys), *script_keys, *args)

    @staticmethod
    def _enqueue_call(chat_id: str, lang: str, topic: str, plan: str, score: float, arrived_at: float,
                      emergency: bool, timer: tuple[str, float] | None,
                      seen: float | None) -> tuple[list[str], list[Any]]:
        route = {"lang": lang, "topic": topic, "plan": plan, "score": score, "arrived_at": arrived_at,
                 "state": "queued", "emergency": emergency}
        script_keys = [keys.ROUTE, keys.QUEUE_ALL, keys.queue(lang), keys.queue(lang, topic), keys.TIMERS,
                       keys.VISITORS_SEEN]
        entry, deadline = timer if timer else ("", 0.0)
        return script_keys, [chat_id, msgpack.packb(route), repr(score), entry, repr(deadline),
                             "" if seen is None else repr(seen)]

    async def claim(self, agent: AgentSkills, now: float) -> str | None:
        """Give the agent its best waiting chat if it is online and has room; None otherwise."""
        found = await self._claim(keys=self._claim_keys(agent), args=[agent.username, repr(now), QUEUE_PREFIX])
        return found.decode() if found else None

    def claim_on(self, pipe: Any, agent: AgentSkills, now: float) -> None:
        """Queue ``claim`` on a pipeline the caller executes (raise_on_error=False; its result
        is a chat id, None, or a NoScriptError when the script was not loaded)."""
        claim_keys = self._claim_keys(agent)
        pipe.execute_command("EVALSHA", self._claim.sha, len(claim_keys), *claim_keys, agent.username, repr(now), QUEUE_PREFIX)

    @staticmethod
    def _claim_keys(agent: AgentSkills) -> list[str]:
        return [keys.AGENTS, keys.agent_chats(agent.username), keys.ROUTE, keys.QUEUE_ALL, *agent.candidate_queues()]

    async def rescore(self, chat_id: str, *, score: float, topic: str, emergency: bool) -> bool:
        """Move a still-waiting chat to a new place in line (an emergency flagged by its first
        message); False if an agent has claimed it meanwhile (then nothing changes)."""
        return bool(await self._rescore(keys=[keys.ROUTE, keys.QUEUE_ALL],
                                        args=[chat_id, QUEUE_PREFIX, repr(score), topic, "1" if emergency else "0"]))

    async def requeue(self, chat_id: str, exclude_agent: str = "", holder: str = "") -> bool:
        """Put an assigned chat back in line at its original place. With holder, only if that
        agent holds it (NotHolder otherwise)."""
        done = await self._requeue(keys=[keys.ROUTE, keys.QUEUE_ALL],
                                   args=[chat_id, QUEUE_PREFIX, exclude_agent, keys.HELD_PREFIX, holder])
        if done == 0:
            raise NotHolder(chat_id)
        return bool(done)

    async def remove(self, chat_id: str, holder: str = "") -> dict[str, Any] | None:
        """Take a chat out of routing altogether (closed, ticket); return its last route. With
        holder, only if that agent holds it (NotHolder otherwise, and nothing changes)."""
        raw = await self._remove(keys=[keys.ROUTE, keys.QUEUE_ALL], args=[chat_id, QUEUE_PREFIX, holder, keys.HELD_PREFIX])
        if raw == 0:
            raise NotHolder(chat_id)
        return msgpack.unpackb(raw) if raw else None

    def remove_on(self, pipe: Any, chat_id: str, holder: str = "") -> None:
        """Queue ``remove`` on a pipeline the caller executes (with raise_on_error=False; a
        NoScriptError in its place means: call ``remove`` itself, the script was not loaded).
        Its result is the last route, None, or 0 when holder does not hold the chat."""
        pipe.execute_command("EVALSHA", self._remove.sha, 2, keys.ROUTE, keys.QUEUE_ALL, chat_id, QUEUE_PREFIX, holder,
                             keys.HELD_PREFIX)

    async def transfer(self, chat_id: str, to_agent: str, holder: str = "") -> tuple[bool, str]:
        """Hand an active chat to a named agent who is online and has room. With holder, only
        if that agent holds it (NotHolder otherwise). Returns (True, previous agent) or (False, reason)."""
        result = (await self._transfer(keys=[keys.ROUTE, keys.AGENTS],
                                       args=[chat_id, to_agent, QUEUE_PREFIX, keys.HELD_PREFIX, holder])).decode()
        if result == "not_holder":
            raise NotHolder(chat_id)
        if result.startswith("ok:"):
            return True, result[3:]
        return False, result

    async def agent_gone(self, username: str, cutoff: float) -> list[str] | None:
        """If the agent has not been seen since cutoff, mark it offline and requeue its
        chats; exactly one process wins this. Returns the requeued chat ids or None."""
        result = await self._agent_gone(
            keys=[keys.AGENTS_SEEN, keys.AGENTS, keys.ROUTE, keys.QUEUE_ALL], args=[username, repr(cutoff), QUEUE_PREFIX, keys.HELD_PREFIX]
        )
        if result is None:
            return None
        await agents_changed(self.redis)  # the script set the agent offline
        return [c.decode() for c in result]

    async def route(self, chat_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.ROUTE, chat_id)
        return msgpack.unpackb(raw) if raw else None

    async def positions(self, waiting: Iterable[tuple[str, str]]) -> tuple[list[int | None], float | None]:
        """1-based places in line among waiting chats of the same language, from sorted-set
        ranks, and the running average handling time (for ETAs): one round trip, one script
        call per language however many chats (10,000 waiting sockets would otherwise cost the
        hub 10,000 commands of client overhead on every update)."""
        entries = list(waiting)
        by_lang: dict[str, list[int]] = {}
        for i, (_, lang) in enumerate(entries):
            by_lang.setdefault(lang, []).append(i)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.STATS, "aht")
            for lang, indexes in by_lang.items():
                pipe.execute_command("EVALSHA", self._ranks.sha, 1, keys.queue(lang), *(entries[i][0] for i in indexes))
            results = await pipe.execute(raise_on_error=False)
        aht_raw, ranks_by_lang = results[0], results[1:]
        if isinstance(aht_raw, Exception):
            raise aht_raw
        places: list[int | None] = [None] * len(entries)
        for (lang, indexes), ranks in zip(by_lang.items(), ranks_by_lang):
            if isinstance(ranks, NoScriptError):  # Redis lost its script cache (it restarted)
                ranks = await self._ranks(keys=[keys.queue(lang)], args=[entries[i][0] for i in indexes])
            elif isinstance(ranks, Exception):
                raise ranks
            for i, rank in zip(indexes, ranks):
                places[i] = rank or None
        return places, float(aht_raw) if aht_raw else None


async def read_agents(redis: Redis) -> dict[str, dict[str, Any]]:
    """Every known agent's routing profile and status."""
    return decode_agents(await redis.hgetall(keys.AGENTS))


def decode_agents(raw: dict[bytes, bytes]) -> dict[str, dict[str, Any]]:
    """The AGENTS hash as read (HGETALL): username -> profile."""
    return {k.decode(): msgpack.unpackb(v) for k, v in raw.items()}


async def write_agent(redis: Redis, username: str, profile: dict[str, Any]) -> None:
    """Store an agent's routing profile and tell every hub, in the same round trip: hubs keep
    the profiles in memory (chat/hub.py) and read them again when told."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.AGENTS, username, msgpack.packb(profile))
        publish(pipe, keys.QUEUE_CHANNEL, AGENTS_CHANGED)
        await pipe.execute()


async def agents_changed(redis: Redis) -> None:
    """Tell every hub that agents' profiles changed (removed, or written by a script)."""
    await publish(redis, keys.QUEUE_CHANNEL, AGENTS_CHANGED)
