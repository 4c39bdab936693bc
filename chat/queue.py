"""The waiting line and who holds which chat, all under the {q} hash tag.

Waiting chats sit in sorted sets scored by virtual arrival (chat/plans.py): one for every
waiting chat (QUEUE_ALL), one per language and one per language and topic. An agent claims
its best chat in one Lua script that also enforces its status and capacity, so two hub
processes can never give one chat to two agents nor an agent more chats than its max_chats.
The cost of a claim is O(languages x topics x log n). Who holds a chat: one set per agent
(keys.agent_chats), and the route (ROUTE: chat -> msgpack lang, topic, score, state, agent).

Every key a script touches arrives in KEYS, named by chat/keys.py (Redis Cluster and Redis 7
functions require it; no script builds a key name). That asks the caller to know the lines
and the holder of the chat it acts on, which it does not always; the rules:

- **The caller says what it believes** of the route (a :class:`Hint`: language, routing
  topic, holder; '' where it does not know), and passes the keys the hint names. The script
  checks the route against the hint before it changes anything: if the route is in other
  lines or with another holder than those it needs, it changes nothing and answers with the
  route, and the wrapper calls again with that route's keys. Each attempt is one atomic step,
  so claims stay atomic and capacity and the language lines (behind every place in line:
  RANKS_SCRIPT) stay exact. The close path and the visitor socket know the chat's lines (from
  its record) and an agent acting on a chat knows it holds it, so the hot paths (a close, and
  the claim for the slot it frees, in one round trip) take one attempt; the rare callers who
  know nothing (the last agent gone: go_offline; an agent handing a chat back to the queue)
  pay a second round trip.
- **A claim cannot know which chat it gets**, so not, for an agent without topics, the topic
  line of that chat (its language lines it knows: they are the agent's). Such a claim takes
  the chat out of QUEUE_ALL and its language line and marks the route ``linger``: the chat is
  still a member of its topic line, which only topic specialists read. Lazy rule: every
  reader of a topic line (the claim of an agent with topics) skips a member whose route is
  not waiting in that line and removes it for good (clearing ``linger``); the record of the
  claim (chat/lifecycle.py ``assigned``, in the round trip it makes anyway) removes it at
  once with the keys from the chat's record (:meth:`Queue.unlink_on`); and every script that
  ends or moves a route with ``linger`` needs the topic line like any other line (requeue
  puts it back, remove takes it out). So a chat is in a topic line only while its route
  exists and names that line: nothing accumulates, and no sweep is needed.

Line membership (join and leave all lines of a chat) is written once, MEMBERSHIP, and the
start of every single-chat script (its keys, its hint, the check) once, ONE_CHAT; both are
concatenated into the scripts that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping

import msgpack
from redis.asyncio import Redis

from chat import frames, keys
from chat.store import Lua, execute, publish

NO_TOPIC = "_"
EMERGENCY_TOPIC = "emergency"
ATTEMPTS = 5  # calls of one change when the route keeps moving between them (one in practice)
# On the queue channel: agents' profiles changed (every hub reads them again); nobody's place
# in line did (chat/lifecycle.py queue_news).
AGENTS_CHANGED = msgpack.packb({"type": frames.EVENT_CHANGED, "agents": True, "moved": []})

# The one writer of line membership. A waiting chat is in QUEUE_ALL, its language line and its
# topic line, scored alike; leaving without the topic line's key (a claim from a language
# line) marks the route `linger` (module docstring). `moved` is the answer of a script whose
# caller did not pass the keys the route needs: the wrapper calls again with them.
MEMBERSHIP = """
local function join_lines(id, score, all, lang, topic, r)
  redis.call('ZADD', all, score, id)
  redis.call('ZADD', lang, score, id)
  redis.call('ZADD', topic, score, id)
  if r then r.linger = nil end
end
local function leave_lines(id, r, all, lang, topic)
  redis.call('ZREM', all, id)
  redis.call('ZREM', lang, id)
  if topic then
    redis.call('ZREM', topic, id)
    r.linger = nil
  else
    r.linger = true
  end
end
local function unlinger(id, r, topic)
  redis.call('ZREM', topic, id)
  r.linger = nil
end
local function moved(...) return {'moved', ...} end
"""

# The start of every script that acts on one chat. KEYS: 1 ROUTE, 2 QUEUE_ALL, 3 the language
# line, 4 the topic line, 5 the holder's held set, then the script's own; ARGV: 1 chat id, then
# the Hint: 2 lang, 3 topic, 4 holder ('' where the caller does not know: KEYS 3 to 5 then
# name keys that are never touched), then the script's own. `hinted` says whether KEYS name
# what the change touches: the holder's set (held) and the chat's lines (lines).
ONE_CHAT = MEMBERSHIP + """
local id = ARGV[1]
local raw = redis.call('HGET', KEYS[1], id)
local r = raw and cmsgpack.unpack(raw)
local function hinted(lines, held)
  if held and (r.agent or '') ~= ARGV[4] then return false end
  return not lines or (r.lang == ARGV[2] and r.topic == ARGV[3])
end
"""

# KEYS: AGENTS, agent_chats(u), ROUTE, QUEUE_ALL, the agent's language lines, then (an agent
# with topics) its topic lines. ARGV: username, now, number of languages, the languages, then
# for each topic line the index of its language and its topic. The candidates are the topic
# lines, or the language lines when there are none. A claim reads the first five of each; in a
# topic line, members not waiting there (lingering, module docstring) are removed as they are
# met, and the head is read again after removals (at most 20 times: lingering members are
# claimed chats whose record is a round trip away, so there are few).
CLAIM_SCRIPT = MEMBERSHIP + """
local me = ARGV[1]
local prof = redis.call('HGET', KEYS[1], me)
if not prof then return false end
local a = cmsgpack.unpack(prof)
if a.status ~= 'online' then return false end
if redis.call('SCARD', KEYS[2]) >= tonumber(a.max_chats) then return false end
local nlangs = tonumber(ARGV[3])
local bylang = #KEYS == 4 + nlangs
local first = bylang and 5 or 5 + nlangs
local best, bestscore, bestroute, bestlang, bestline
for i = first, #KEYS do
  local lang, topic = i - 4, nil
  if not bylang then
    local at = 2 * (i - first) + 4 + nlangs
    lang, topic = tonumber(ARGV[at]), ARGV[at + 1]
  end
  local langname = ARGV[3 + lang]
  for _ = 1, 20 do
    local top = redis.call('ZRANGE', KEYS[i], 0, 4, 'WITHSCORES')
    local done, removed = #top == 0, false
    for j = 1, #top, 2 do
      local s = tonumber(top[j + 1])
      if best and s >= bestscore then done = true break end
      local raw = redis.call('HGET', KEYS[3], top[j])
      local r = raw and cmsgpack.unpack(raw)
      if topic and not (r and r.state == 'queued' and r.lang == langname and r.topic == topic) then
        redis.call('ZREM', KEYS[i], top[j])
        removed = true
        if r and r.linger and r.lang == langname and r.topic == topic then
          r.linger = nil
          redis.call('HSET', KEYS[3], top[j], cmsgpack.pack(r))
        end
      elseif r and r['not'] ~= me then
        best, bestscore, bestroute, bestlang, bestline = top[j], s, r, lang, topic and KEYS[i]
        done = true
        break
      end
    end
    if done or not removed then break end
  end
end
if not best then return false end
leave_lines(best, bestroute, KEYS[4], KEYS[4 + bestlang], bestline)
bestroute.state = 'active'
bestroute.agent = me
bestroute['not'] = nil
local packed = cmsgpack.pack(bestroute)
redis.call('HSET', KEYS[3], best, packed)
redis.call('SADD', KEYS[2], best)
return {best, packed}
"""
CLAIM = Lua(CLAIM_SCRIPT)

# KEYS: ROUTE, QUEUE_ALL, queue(lang), queue(lang, topic), TIMERS, VISITORS_SEEN
# ARGV: chat_id, msgpack route, score, timer entry ('' for none), its deadline, the visitor's
# presence time ('' for none). One atomic step: a claim never sees a route without its queue
# entries nor the other way round.
ENQUEUE = Lua(MEMBERSHIP + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
join_lines(ARGV[1], ARGV[3], KEYS[2], KEYS[3], KEYS[4])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1]) end
return 1
""")

# KEYS: one language's queue; ARGV: chat ids. 1-based places, 0 for a chat not in that line.
RANKS = Lua("""
local out = {}
for i, id in ipairs(ARGV) do
  local r = redis.call('ZRANK', KEYS[1], id)
  if r then out[i] = r + 1 else out[i] = 0 end
end
return out
""")

# ONE_CHAT; ARGV 5: agent to exclude ('' for none), 6: the agent who must hold the chat ('' for
# anyone: 0 if someone else does)
REQUEUE = Lua(ONE_CHAT + """
if not r then return false end
if r.state == 'queued' then return false end
if ARGV[6] ~= '' and r.agent ~= ARGV[6] then return 0 end
if not hinted(true, true) then return moved(raw) end
if r.agent then redis.call('SREM', KEYS[5], id) end
r.state = 'queued'
r.agent = nil
if ARGV[5] ~= '' then r['not'] = ARGV[5] end
join_lines(id, r.score, KEYS[2], KEYS[3], KEYS[4], r)
redis.call('HSET', KEYS[1], id, cmsgpack.pack(r))
return 1
""")

# ONE_CHAT; ARGV 5: the agent who must hold the chat ('' for anyone: 0 if someone else does,
# and nothing changes)
REMOVE = Lua(ONE_CHAT + """
if not r then return false end
if ARGV[5] ~= '' and r.agent ~= ARGV[5] then return 0 end
local queued = r.state == 'queued'
if not hinted(queued or r.linger, true) then return moved(raw) end
redis.call('HDEL', KEYS[1], id)
if queued then
  leave_lines(id, r, KEYS[2], KEYS[3], KEYS[4])
elseif r.linger then
  unlinger(id, r, KEYS[4])
end
if r.agent then redis.call('SREM', KEYS[5], id) end
return raw
""")

# ONE_CHAT + AGENTS, agent_chats(target); ARGV 5: target username, 6: the agent who must hold
# the chat ('' for anyone)
TRANSFER = Lua(ONE_CHAT + """
if not r then return 'gone' end
if ARGV[6] ~= '' and r.agent ~= ARGV[6] then return 'not_holder' end
if r.state ~= 'active' then return 'not_active' end
if not hinted(false, true) then return moved(raw) end
local prof = redis.call('HGET', KEYS[6], ARGV[5])
if not prof then return 'unknown_agent' end
local a = cmsgpack.unpack(prof)
if a.status ~= 'online' then return 'agent_unavailable' end
if redis.call('SCARD', KEYS[7]) >= tonumber(a.max_chats) then return 'agent_full' end
redis.call('SREM', KEYS[5], id)
redis.call('SADD', KEYS[7], id)
local previous = r.agent
r.agent = ARGV[5]
redis.call('HSET', KEYS[1], id, cmsgpack.pack(r))
return 'ok:' .. previous
""")

# ONE_CHAT + the new topic line; ARGV 5: new score, 6: new topic, 7: emergency ('1'/'0').
# Only a chat that is still waiting moves: one already claimed by an agent is left alone.
RESCORE = Lua(ONE_CHAT + """
if not r then return false end
if r.state ~= 'queued' then return false end
if not hinted(true, false) then return moved(raw) end
leave_lines(id, r, KEYS[2], KEYS[3], KEYS[4])
r.score = tonumber(ARGV[5])
r.topic = ARGV[6]
r.emergency = ARGV[7] == '1'
join_lines(id, r.score, KEYS[2], KEYS[3], KEYS[6], r)
redis.call('HSET', KEYS[1], id, cmsgpack.pack(r))
return 1
""")

# ONE_CHAT (the holder is not needed): a claimed chat that lingers in its topic line leaves it.
UNLINK = Lua(ONE_CHAT + """
if not r or not r.linger then return 0 end
if not hinted(true, false) then return moved(raw) end
unlinger(id, r, KEYS[4])
redis.call('HSET', KEYS[1], id, cmsgpack.pack(r))
return 1
""")

# KEYS: AGENTS_SEEN, AGENTS, ROUTE, QUEUE_ALL, agent_chats(u), then for each chat the caller
# believes the agent holds: its language line and its topic line. ARGV: username, cutoff, then
# for each such chat: id, lang, topic. If the agent holds other chats, or in other lines,
# nothing changes and the answer is 'moved' with each held chat and its route ('' if none).
AGENT_GONE = Lua(MEMBERSHIP + """
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen or tonumber(seen) >= tonumber(ARGV[2]) then return false end
local held = redis.call('SMEMBERS', KEYS[5])
local passed, routes = {}, {}
for k = 1, (#ARGV - 2) / 3 do passed[ARGV[3 * k]] = k end
local right = #held == (#ARGV - 2) / 3
for _, id in ipairs(held) do
  local raw = redis.call('HGET', KEYS[3], id)
  local k = passed[id]
  if not k then right = false end
  if raw then
    local r = cmsgpack.unpack(raw)
    routes[id] = r
    if k and (r.lang ~= ARGV[3 * k + 1] or r.topic ~= ARGV[3 * k + 2]) then right = false end
  end
end
if not right then
  local out = {}
  for _, id in ipairs(held) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
  end
  return moved(unpack(out))
end
redis.call('ZREM', KEYS[1], ARGV[1])
local prof = redis.call('HGET', KEYS[2], ARGV[1])
if prof then
  local a = cmsgpack.unpack(prof)
  a.status = 'offline'
  redis.call('HSET', KEYS[2], ARGV[1], cmsgpack.pack(a))
end
for _, id in ipairs(held) do
  local r = routes[id]
  if r then
    local k = passed[id]
    r.state = 'queued'
    r.agent = nil
    join_lines(id, r.score, KEYS[4], KEYS[4 + 2 * k], KEYS[5 + 2 * k], r)
    redis.call('HSET', KEYS[3], id, cmsgpack.pack(r))
  end
end
redis.call('DEL', KEYS[5])
return {'requeued', unpack(held)}
""")


class NotHolder(Exception):
    """The agent acting on a chat does not hold it (any more): another agent took it after a
    requeue or a transfer. Checked in Redis by the script that acts, never from the socket's
    own list of chats, which can be stale (a hub paused past agent_grace)."""


class RouteKeptMoving(Exception):
    """A change found the chat's route in other lines or with another holder on every one of
    ATTEMPTS calls (each changed nothing): routes that busy mean something is wrong."""


@dataclass(frozen=True)
class Hint:
    """What a caller believes of a chat's route: its language, routing topic and holder (''
    where it does not know). A script takes the keys these name and acts only if they are the
    route's (module docstring); the chat's record (:func:`hint_of`) is the usual source."""

    lang: str = ""
    topic: str = ""
    agent: str = ""

    def keys(self) -> list[str]:
        """ONE_CHAT's keys for this hint."""
        return [keys.ROUTE, keys.QUEUE_ALL, keys.queue(self.lang), keys.queue(self.lang, self.topic),
                keys.agent_chats(self.agent)]

    def args(self, chat_id: str) -> list[str]:
        return [chat_id, self.lang, self.topic, self.agent]


def hint_of(chat: Mapping[str, str], agent: str | None = None) -> Hint:
    """The route a chat's record (chat/chats.py, decoded) implies: its language, its routing
    topic, and its agent while it is active (or the given agent: one who says it holds it)."""
    if agent is None:
        agent = chat.get("agent", "") if chat.get("status") == frames.CHAT_ACTIVE else ""
    return Hint(chat.get("lang", ""), topic_key(chat.get("topic"), chat.get("emergency") == "1"), agent or "")


def _route_hint(raw: bytes) -> Hint:
    route = msgpack.unpackb(raw)
    return Hint(route.get("lang") or "", route.get("topic") or "", route.get("agent") or "")


def moved_to(result: Any) -> Hint | None:
    """The route a single-chat script found instead of the hinted one (its 'moved' answer),
    or None when the script acted."""
    if isinstance(result, list) and result and result[0] == b"moved":
        return _route_hint(result[1])
    return None


@dataclass(frozen=True)
class Claimed:
    """A chat a claim gave an agent, with what its route says of it: its lines (which the
    record of the assignment takes it out of) and its place's score (the news of the line)."""

    chat_id: str
    hint: Hint
    score: float | None


def claimed(result: Any) -> Claimed | None:
    """What CLAIM returns (a claim's result, from ``claim_on``), or None when nothing was claimed."""
    if not result:
        return None
    if isinstance(result, Exception):
        raise result
    chat_id, raw = result
    route = msgpack.unpackb(raw)
    score = route.get("score")
    return Claimed(chat_id.decode(), _route_hint(raw), float(score) if score is not None else None)


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

    def claim_call(self, now: float) -> tuple[list[str], list[Any]]:
        """CLAIM's keys and arguments for this agent."""
        script_keys = [keys.AGENTS, keys.agent_chats(self.username), keys.ROUTE, keys.QUEUE_ALL,
                       *(keys.queue(lang) for lang in self.langs)]
        args: list[Any] = [self.username, repr(now), len(self.langs), *self.langs]
        if self.topics:
            script_keys += self.candidate_queues()
            for i in range(len(self.langs)):
                for topic in (*self.topics, NO_TOPIC):
                    args += [i + 1, topic]
        return script_keys, args


def topic_key(topic: str | None, emergency: bool) -> str:
    """The routing topic: emergencies and chats without a topic go to every agent of the
    language. So does the "emergency" topic when the abuse guard refused the flag: the chat
    then waits like any other, but is not stranded for want of an "emergency" specialist."""
    if emergency or not topic or topic == EMERGENCY_TOPIC:
        return NO_TOPIC
    return topic


class Queue:
    """Routing operations for one process; each is one atomic Redis step (repeated, each
    time atomic, only when the route was not what the caller believed: module docstring)."""

    def __init__(self, redis: Redis):
        self.redis = redis

    async def _settled(self, call: Callable[[Hint], Awaitable[Any]], hint: Hint, chat_id: str) -> Any:
        """Run a single-chat script with the keys of hint, and again with those of the route
        it found, until it acts."""
        for _ in range(ATTEMPTS):
            result = await call(hint)
            found = moved_to(result)
            if found is None:
                return result
            hint = found
        raise RouteKeptMoving(chat_id)

    async def enqueue(self, chat_id: str, *, lang: str, topic: str, plan: str, score: float,
                      arrived_at: float, emergency: bool, timer: tuple[str, float] | None = None,
                      seen: float | None = None) -> None:
        """Put a chat in line (its route and its three queue entries, in one atomic step);
        with timer, also schedule that (TIMERS entry, deadline); with seen, mark its visitor
        present at that time."""
        script_keys, args = self._enqueue_call(chat_id, lang, topic, plan, score, arrived_at, emergency, timer, seen)
        await ENQUEUE(self.redis, script_keys, args)

    def enqueue_on(self, pipe: Any, chat_id: str, *, lang: str, topic: str, plan: str, score: float,
                   arrived_at: float, emergency: bool, timer: tuple[str, float] | None = None,
                   seen: float | None = None) -> None:
        """Queue ``enqueue`` on a pipeline the caller executes (with raise_on_error=False; a
        NoScriptError in its place means: call ``enqueue`` itself, the script was not loaded,
        and ring the doorbell again after it)."""
        script_keys, args = self._enqueue_call(chat_id, lang, topic, plan, score, arrived_at, emergency, timer, seen)
        pipe.execute_command("EVALSHA", ENQUEUE.sha, len(script_keys), *script_keys, *args)

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
        """Give the agent its best waiting chat if it is online and has room: its id, or None."""
        found = await self.claim_next(agent, now)
        return found.chat_id if found else None

    async def claim_next(self, agent: AgentSkills, now: float) -> Claimed | None:
        """``claim``, with what the chat's route says of it (the record of the assignment
        then needs no read of the chat first)."""
        return claimed(await CLAIM(self.redis, *agent.claim_call(now)))

    def claim_on(self, pipe: Any, agent: AgentSkills, now: float) -> None:
        """Queue ``claim`` on a pipeline the caller runs with chat.store.execute; pass its
        result to ``claimed``."""
        CLAIM.queue_on(pipe, *agent.claim_call(now))

    async def unlink(self, chat_id: str, hint: Hint | None = None) -> None:
        """Take a claimed chat out of the topic line it lingers in (module docstring)."""
        await self._settled(lambda h: UNLINK(self.redis, h.keys(), h.args(chat_id)), hint or Hint(), chat_id)

    def unlink_on(self, pipe: Any, chat_id: str, hint: Hint) -> None:
        """Queue ``unlink`` on a pipeline the caller runs with chat.store.execute; if its
        result is a moved answer (``moved_to``), call ``unlink`` with the route it names."""
        UNLINK.queue_on(pipe, hint.keys(), hint.args(chat_id))

    async def rescore(self, chat_id: str, *, score: float, topic: str, emergency: bool,
                      hint: Hint | None = None) -> bool:
        """Move a still-waiting chat to a new place in line (an emergency flagged by its first
        message); False if an agent has claimed it meanwhile (then nothing changes)."""
        def call(h: Hint) -> Awaitable[Any]:
            return RESCORE(self.redis, [*h.keys(), keys.queue(h.lang, topic)],
                           [*h.args(chat_id), repr(score), topic, "1" if emergency else "0"])
        return bool(await self._settled(call, hint or Hint(), chat_id))

    async def requeue(self, chat_id: str, exclude_agent: str = "", holder: str = "", hint: Hint | None = None) -> bool:
        """Put an assigned chat back in line at its original place. With holder, only if that
        agent holds it (NotHolder otherwise)."""
        done = await self._settled(lambda h: REQUEUE(self.redis, h.keys(), [*h.args(chat_id), exclude_agent, holder]),
                                   hint or Hint(agent=holder), chat_id)
        if done == 0:
            raise NotHolder(chat_id)
        return bool(done)

    async def remove(self, chat_id: str, holder: str = "", hint: Hint | None = None) -> dict[str, Any] | None:
        """Take a chat out of routing altogether (closed, ticket); return its last route. With
        holder, only if that agent holds it (NotHolder otherwise, and nothing changes)."""
        raw = await self._settled(lambda h: REMOVE(self.redis, h.keys(), [*h.args(chat_id), holder]),
                                  hint or Hint(agent=holder), chat_id)
        if raw == 0:
            raise NotHolder(chat_id)
        return msgpack.unpackb(raw) if raw else None

    def remove_on(self, pipe: Any, chat_id: str, holder: str = "", hint: Hint | None = None) -> None:
        """Queue ``remove`` on a pipeline the caller runs with chat.store.execute; pass its
        result to ``removed``."""
        hint = hint or Hint(agent=holder)
        REMOVE.queue_on(pipe, hint.keys(), [*hint.args(chat_id), holder])

    async def removed(self, result: Any, chat_id: str, holder: str = "") -> dict[str, Any] | None:
        """What ``remove`` returns, from the result of ``remove_on``: raises its error or
        NotHolder, and calls ``remove`` when the route was not the hinted one."""
        if isinstance(result, Exception):
            raise result
        found = moved_to(result)
        if found is not None:
            return await self.remove(chat_id, holder, found)
        if result == 0:
            raise NotHolder(chat_id)
        return msgpack.unpackb(result) if result else None

    async def transfer(self, chat_id: str, to_agent: str, holder: str = "", hint: Hint | None = None) -> tuple[bool, str]:
        """Hand an active chat to a named agent who is online and has room. With holder, only
        if that agent holds it (NotHolder otherwise). Returns (True, previous agent) or (False, reason)."""
        def call(h: Hint) -> Awaitable[Any]:
            return TRANSFER(self.redis, [*h.keys(), keys.AGENTS, keys.agent_chats(to_agent)],
                            [*h.args(chat_id), to_agent, holder])
        result = (await self._settled(call, hint or Hint(agent=holder), chat_id)).decode()
        if result == "not_holder":
            raise NotHolder(chat_id)
        if result.startswith("ok:"):
            return True, result[3:]
        return False, result

    async def agent_gone(self, username: str, cutoff: float) -> list[str] | None:
        """If the agent has not been seen since cutoff, mark it offline and requeue its
        chats; exactly one process wins this. Returns the requeued chat ids or None. The
        first call believes the agent holds nothing; if it does, the script answers with its
        chats and their routes, and the second call passes their lines."""
        held: list[tuple[str, str, str]] = []
        for _ in range(ATTEMPTS):
            script_keys = [keys.AGENTS_SEEN, keys.AGENTS, keys.ROUTE, keys.QUEUE_ALL, keys.agent_chats(username)]
            args: list[Any] = [username, repr(cutoff)]
            for chat_id, lang, topic in held:
                script_keys += [keys.queue(lang), keys.queue(lang, topic)]
                args += [chat_id, lang, topic]
            result = await AGENT_GONE(self.redis, script_keys, args)
            if not result:
                return None
            if result[0] == b"requeued":
                await agents_changed(self.redis)  # the script set the agent offline
                return [c.decode() for c in result[1:]]
            pairs = result[1:]
            held = [(chat_id.decode(), *_lines_of(raw)) for chat_id, raw in zip(pairs[::2], pairs[1::2])]
        raise RouteKeptMoving(username)

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
                RANKS.queue_on(pipe, [keys.queue(lang)], [entries[i][0] for i in indexes])
            results = await execute(self.redis, pipe)
        aht_raw, ranks_by_lang = results[0], results[1:]
        places: list[int | None] = [None] * len(entries)
        for (lang, indexes), ranks in zip(by_lang.items(), ranks_by_lang):
            for i, rank in zip(indexes, ranks):
                places[i] = rank or None
        return places, float(aht_raw) if aht_raw else None


def _lines_of(raw: bytes) -> tuple[str, str]:
    """The language and topic of a route as AGENT_GONE returns it ('' when it has none: such
    a chat is skipped, and any line will do)."""
    if not raw:
        return "", ""
    hint = _route_hint(raw)
    return hint.lang, hint.topic


async def read_agents(redis: Redis) -> dict[str, dict[str, Any]]:
    """Every known agent's routing profile and status."""
    return decode_agents(await redis.hgetall(keys.AGENTS))


def decode_agents(raw: dict[bytes, bytes]) -> dict[str, dict[str, Any]]:
    """The AGENTS hash as read (HGETALL): username -> profile."""
    return {k.decode(): msgpack.unpackb(v) for k, v in raw.items()}


async def write_agent(redis: Redis, username: str, profile: dict[str, Any]) -> None:
    """Store an agent's routing profile and tell every hub, in the same round trip: hubs keep
    the profiles in memory (chat/dispatch.py) and read them again when told."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.AGENTS, username, msgpack.packb(profile))
        publish(pipe, keys.QUEUE_CHANNEL, AGENTS_CHANGED)
        await pipe.execute()


async def agents_changed(redis: Redis) -> None:
    """Tell every hub that agents' profiles changed (removed, or written by a script)."""
    await publish(redis, keys.QUEUE_CHANNEL, AGENTS_CHANGED)
