"""What the load-generator processes do: open visitor and agent sockets, then send and time
messages, in one of three dialects (our hub, the bare baseline, the python-socketio peer).

One ``LoadClient`` lives in each client process and keeps its sockets between commands
(bench/workers.py passes the commands). Latency is end to end: the sender writes its
CLOCK_MONOTONIC time (system-wide on Linux, so a message may cross client processes) into
the message text, and the receiver subtracts it from its own clock on arrival.

The timestamp is spelled in letters (base 26), not digits, so that the hub's masking of
card-number-like digit runs can never touch it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from array import array
from typing import Any

import msgpack

from bench.wsclient import WSClient

monotonic = time.monotonic
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_VALUES = {c: i for i, c in enumerate(_LETTERS)}
# A typical short chat line (letters only, ~60 characters with the stamp).
FILLER = " hello there, I have a question about my last invoice"


def stamp(now: float) -> str:
    n = int(now * 1_000_000)
    out = []
    while n:
        n, r = divmod(n, 26)
        out.append(_LETTERS[r])
    return "lc" + "".join(reversed(out)) + FILLER


def sent_at(text: Any) -> float | None:
    """The send time written by stamp(), or None for any other text."""
    if not isinstance(text, str) or not text.startswith("lc"):
        return None
    end = text.find(" ")
    n = 0
    try:
        for c in text[2 : end if end > 0 else None]:
            n = n * 26 + _VALUES[c]
    except KeyError:
        return None
    return n / 1_000_000


class Peer:
    """One socket of the load: a visitor (one chat) or an agent (several chats)."""

    __slots__ = ("ws", "role", "chat", "chats", "status", "ready", "assigned", "waiter", "binary", "sio_ready",
                 "t_hello", "t_welcome", "t_queued")

    def __init__(self, role: str):
        self.ws: WSClient | None = None
        self.role = role
        self.chat = ""  # visitor: its chat id (ours) or room (baselines)
        self.chats: list[str] = []  # agent: chats held
        self.status = ""
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.assigned = False
        self.waiter: asyncio.Future | None = None  # agent: next "assigned"
        self.binary = False
        self.sio_ready = False
        self.t_hello = self.t_welcome = self.t_queued = 0.0  # visitor: hello sent, welcome and first queued received


class LoadClient:
    """Base: counters, the two traffic modes, and the commands every dialect shares."""

    def __init__(self, worker: int, host: str, port: int, codec: str = "msgpack", concurrency: int = 256,
                 sources: int = 1, **_: Any):
        self.worker = worker
        # sources > 1: visitor sockets spread over 127.0.0.2 ... (1 + sources), each address with
        # its own ~28,000 ephemeral ports (the idle scenario past 20,000 sockets)
        self.sources = [f"127.0.0.{2 + i}" for i in range(sources)] if sources > 1 else []
        self.host, self.port = host, port
        self.codec = codec
        self.concurrency = concurrency
        self.visitors: list[Peer] = []
        self.agents: list[Peer] = []
        self.errors: collections.Counter = collections.Counter()
        self.frames: collections.Counter = collections.Counter()
        self.closes: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()
        self.mode = ""
        self.t_send0 = self.t_rec0 = self.t_rec1 = 0.0
        self.lat = array("d")
        self.sent = 0
        self.delivered = 0
        self.late = 0
        self.ids = 0

    # --- dialect hooks ------------------------------------------------------------------

    async def open_visitor(self, index: int, spec: dict[str, Any]) -> Peer:
        raise NotImplementedError

    async def open_agent(self, spec: dict[str, Any]) -> Peer:
        raise NotImplementedError

    def send(self, peer: Peer, chat: str, text: str) -> None:
        raise NotImplementedError

    # --- deliveries ---------------------------------------------------------------------

    def on_delivery(self, peer: Peer, chat: str, text: Any) -> None:
        ts = sent_at(text)
        if ts is None:
            return
        now = monotonic()
        if self.mode == "pingpong":
            if self.t_rec0 <= now < self.t_rec1:
                self.delivered += 1
                self.lat.append(now - ts)
            if now < self.t_rec1:
                self.send(peer, chat, stamp(monotonic()))
        elif self.t_rec0 <= ts < self.t_rec1:
            self.delivered += 1
            self.lat.append(now - ts)
            if now > self.t_rec1 + 5.0:
                self.late += 1

    def on_close(self, ws: WSClient) -> None:
        self.closes[ws.close_code or 1006] += 1

    # --- opening ------------------------------------------------------------------------

    async def _bounded(self, coros: list, timeout: float) -> list:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(coro):
            async with sem:
                try:
                    return await asyncio.wait_for(coro, timeout)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    self.failures[type(exc).__name__ + (": " + str(exc)[:80] if str(exc) else "")] += 1
                    return None

        return await asyncio.gather(*(one(c) for c in coros))

    async def cmd_open_visitors(self, specs: list[dict[str, Any]], timeout: float = 60.0) -> dict[str, Any]:
        """Open visitor sockets (bounded concurrency), each ready when the server said so."""
        t0 = monotonic()
        base = len(self.visitors)
        peers = await self._bounded([self.open_visitor(base + i, s) for i, s in enumerate(specs)], timeout)
        t1 = monotonic()
        opened = [p for p in peers if p is not None]
        self.visitors.extend(opened)
        return {"opened": len(opened), "failed": len(specs) - len(opened), "t0": t0, "t1": t1,
                "statuses": dict(collections.Counter(p.status for p in opened))}

    async def cmd_open_agents(self, specs: list[dict[str, Any]], timeout: float = 60.0) -> dict[str, Any]:
        t0 = monotonic()
        peers = await self._bounded([self.open_agent(s) for s in specs], timeout)
        opened = [p for p in peers if p is not None]
        self.agents.extend(opened)
        return {"opened": len(opened), "failed": len(specs) - len(opened), "t0": t0, "t1": monotonic()}

    async def cmd_counts(self) -> dict[str, Any]:
        return {
            "visitors": len(self.visitors),
            "visitors_open": sum(1 for p in self.visitors if p.ws and p.ws.is_open),
            "visitors_assigned": sum(1 for p in self.visitors if p.assigned),
            "agents": len(self.agents),
            "agent_chats": sum(len(a.chats) for a in self.agents),
            "statuses": dict(collections.Counter(p.status for p in self.visitors)),
            "errors": dict(self.errors),
            "closes": dict(self.closes),
            "failures": dict(self.failures),
            "frames": dict(self.frames),
        }

    def entries(self) -> list[tuple[Peer, str]]:
        """Every (socket, chat) that may send: each visitor once, each agent once per chat."""
        out = [(v, v.chat) for v in self.visitors if v.chat and v.ws and v.ws.is_open and v.assigned]
        out += [(a, c) for a in self.agents if a.ws and a.ws.is_open for c in a.chats]
        return out

    def _reset_window(self, start_at: float, warmup: float, seconds: float) -> None:
        self.t_send0 = start_at
        self.t_rec0 = start_at + warmup
        self.t_rec1 = self.t_rec0 + seconds
        self.lat = array("d")
        self.sent = self.delivered = self.late = 0

    def _result(self, **extra: Any) -> dict[str, Any]:
        return {"sent": self.sent, "delivered": self.delivered, "late": self.late, "lat": self.lat.tobytes(),
                "errors": dict(self.errors), "closes": dict(self.closes), **extra}

    async def _sleep_until(self, t: float) -> None:
        delay = t - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _newcomers(self, every: float, start: float, until: float) -> list[Peer]:
        """New visitors arriving one at a time, every ``every`` seconds from ``start`` until
        ``until``: what a visitor sees while the desk is busy (hello, welcome, first place in line)."""
        await self._sleep_until(start)
        peers: list[Peer] = []
        while monotonic() < until:
            try:
                peers.append(await asyncio.wait_for(self.open_visitor(10_000_000 + len(peers), {"lang": "en"}), 10.0))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                self.failures["newcomer " + type(exc).__name__] += 1
            await asyncio.sleep(every)
        return peers

    async def cmd_relay(self, rate: float, start_at: float, warmup: float, seconds: float, drain: float,
                        newcomers: float = 0.0) -> dict[str, Any]:
        """Send at a fixed total rate (this process's share: ``rate`` msg/s) spread over every
        chat in both directions, for warmup + seconds; count what was sent in the window and
        what of it arrived (until drain seconds after). With newcomers (a rate per second),
        new visitors also arrive during the window, timed from hello to welcome and from
        welcome to their first place in line."""
        entries = self.entries()
        arrivals = None
        random.Random(self.worker).shuffle(entries)
        self._reset_window(start_at, warmup, seconds)
        self.mode = "relay"
        await self._sleep_until(start_at)
        if newcomers > 0:
            arrivals = asyncio.create_task(self._newcomers(1.0 / newcomers, self.t_rec0, self.t_rec1))
        n = i = 0
        count = len(entries)
        max_burst = 0
        send = self.send
        while count:
            now = monotonic()
            if now >= self.t_rec1:
                break
            due = int((now - start_at) * rate) - n
            if due > max_burst:
                max_burst = due
            for _ in range(due):
                peer, chat = entries[i % count]
                i += 1
                t = monotonic()
                send(peer, chat, stamp(t))
                if t >= self.t_rec0:
                    self.sent += 1
            n += max(due, 0)
            # sleep until the next message is due, in ticks of 2 to 10 ms (the loop's timers
            # have 1 ms resolution; shorter sleeps would spin): at 2,000 msg/s, 4 per tick
            await asyncio.sleep(min(0.01, max(0.002, (n + 1) / rate - (monotonic() - start_at))))
        await asyncio.sleep(drain)
        self.mode = ""
        extra: dict[str, Any] = {}
        if arrivals is not None:
            peers = await arrivals
            self.visitors.extend(peers)
            welcome = array("d", (p.t_welcome - p.t_hello for p in peers if p.t_welcome))
            queued = array("d", (p.t_queued - p.t_welcome for p in peers if p.t_queued and p.t_welcome))
            extra = {"newcomers": len(peers), "welcome_lat": welcome.tobytes(), "queued_lat": queued.tobytes(),
                     "newcomer_statuses": dict(collections.Counter(p.status for p in peers))}
        return self._result(entries=count, max_burst=max_burst, **extra)

    async def cmd_pingpong(self, window: int, start_at: float, warmup: float, seconds: float, drain: float) -> dict[str, Any]:
        """Rate unbounded but windowed: every visitor starts ``window`` messages; whoever
        receives one answers at once on the same chat, so each pair has at most ``window``
        in flight and the server's speed alone sets the pace."""
        self._reset_window(start_at, warmup, seconds)
        self.mode = "pingpong"
        await self._sleep_until(start_at)
        for v in self.visitors:
            if v.chat and v.ws and v.ws.is_open and v.assigned:
                for _ in range(window):
                    self.send(v, v.chat, stamp(monotonic()))
        await self._sleep_until(self.t_rec1)
        await asyncio.sleep(drain)
        self.mode = ""
        return self._result()

    async def cmd_close_all(self) -> dict[str, Any]:
        for p in self.visitors + self.agents:
            if p.ws:
                p.ws.close()
        await asyncio.sleep(0.2)
        n = len(self.visitors) + len(self.agents)
        self.visitors, self.agents = [], []
        return {"closed": n}

    def next_id(self) -> str:
        self.ids += 1
        return f"w{self.worker}m{self.ids}"


# --- our hub ---------------------------------------------------------------------------


class OursClient(LoadClient):
    """livechat: /ws/visitor with hello, /ws/agent with the session cookie and status online.
    With codec "msgpack" every socket offers the livechat.msgpack subprotocol."""

    def _subprotocols(self) -> tuple[str, ...]:
        return ("livechat.msgpack",) if self.codec == "msgpack" else ()

    def _write(self, peer: Peer, frame: dict[str, Any]) -> None:
        ws = peer.ws
        if ws is None:
            return
        if peer.binary:
            ws.send_binary(msgpack.packb(frame))
        else:
            ws.send_text(json.dumps(frame, separators=(",", ":")))

    def send(self, peer: Peer, chat: str, text: str) -> None:
        if peer.role == "visitor":
            self._write(peer, {"type": "message", "text": text, "client_id": self.next_id()})
        else:
            self._write(peer, {"type": "message", "chat_id": chat, "text": text, "client_id": self.next_id()})

    def _decode(self, payload: bytes, binary: bool) -> dict[str, Any] | None:
        try:
            frame = msgpack.unpackb(payload) if binary else json.loads(payload)
        except Exception:  # noqa: BLE001
            self.errors["undecodable"] += 1
            return None
        return frame if isinstance(frame, dict) else None

    def on_visitor_frame(self, ws: WSClient, payload: bytes, binary: bool) -> None:
        frame = self._decode(payload, binary)
        if frame is None:
            return
        peer: Peer = ws.user  # type: ignore[assignment]
        kind = frame.get("type")
        self.frames["v:" + str(kind)] += 1
        if kind == "message":
            if frame.get("from") == "agent":
                self.on_delivery(peer, peer.chat, frame.get("text"))
        elif kind == "welcome":
            peer.t_welcome = monotonic()
            peer.chat = frame.get("chat_id", "")
            peer.status = frame.get("status", "")
            if peer.status == "active":
                peer.assigned = True
            if not peer.ready.done():
                peer.ready.set_result(None)
        elif kind == "assigned":
            peer.status = "active"
            peer.assigned = True
        elif kind == "queued":
            peer.status = "queued"
            if not peer.t_queued:
                peer.t_queued = monotonic()
        elif kind == "offline":
            peer.status = "offline"
        elif kind == "closed":
            peer.status = "closed"
            peer.assigned = False
        elif kind == "error":
            self.errors[str(frame.get("code"))] += 1

    def on_agent_frame(self, ws: WSClient, payload: bytes, binary: bool) -> None:
        frame = self._decode(payload, binary)
        if frame is None:
            return
        peer: Peer = ws.user  # type: ignore[assignment]
        kind = frame.get("type")
        self.frames["a:" + str(kind)] += 1
        if kind == "message":
            if frame.get("from") == "visitor":
                self.on_delivery(peer, frame.get("chat_id", ""), frame.get("text"))
        elif kind == "assigned":
            chat_id = frame.get("chat_id") or (frame.get("chat") or {}).get("id") or ""
            if chat_id and chat_id not in peer.chats:
                peer.chats.append(chat_id)
            if peer.waiter is not None and not peer.waiter.done():
                peer.waiter.set_result(chat_id)
        elif kind == "welcome":
            for chat in frame.get("chats") or ():
                chat_id = chat.get("chat_id") or chat.get("id") if isinstance(chat, dict) else chat
                if chat_id and chat_id not in peer.chats:
                    peer.chats.append(chat_id)
            if not peer.ready.done():
                peer.ready.set_result(None)
        elif kind == "closed":
            chat_id = frame.get("chat_id")
            if chat_id in peer.chats:
                peer.chats.remove(chat_id)
        elif kind == "error":
            self.errors[str(frame.get("code"))] += 1

    def _watch_close(self, ws: WSClient) -> None:
        ws.closed.add_done_callback(lambda _f: self.on_close(ws))

    async def open_visitor(self, index: int, spec: dict[str, Any]) -> Peer:
        peer = Peer("visitor")
        local = self.sources[index % len(self.sources)] if self.sources else None
        ws = await WSClient.connect(self.host, self.port, "/ws/visitor", self.on_visitor_frame, self._subprotocols(),
                                    local_host=local)
        ws.user, peer.ws = peer, ws
        peer.binary = ws.subprotocol == "livechat.msgpack"
        self._watch_close(ws)
        hello = {"type": "hello", "site": "default", "lang": spec.get("lang", "en"), "name": f"Visitor {self.worker}-{index}",
                 "page": "https://example.org/pricing"}
        if spec.get("topic"):
            hello["topic"] = spec["topic"]
        peer.t_hello = monotonic()
        self._write(peer, hello)
        await peer.ready
        return peer

    async def open_agent(self, spec: dict[str, Any]) -> Peer:
        peer = Peer("agent")
        headers = {"Cookie": f"lc_session={spec['cookie']}"}
        ws = await WSClient.connect(self.host, self.port, "/ws/agent", self.on_agent_frame, self._subprotocols(), headers)
        ws.user, peer.ws = peer, ws
        peer.binary = ws.subprotocol == "livechat.msgpack"
        self._watch_close(ws)
        await peer.ready
        self._write(peer, {"type": "status", "status": "online"})
        return peer

    async def cmd_routing(self, samples: int, topup: bool, gap: float, timeout: float = 30.0) -> dict[str, Any]:
        """Free one slot at a time (an agent closes its oldest chat) and time the close
        frame's send to the next ``assigned`` frame on that agent's socket."""
        lat = array("d")
        missed = 0
        loop = asyncio.get_running_loop()
        agents = [a for a in self.agents if a.chats]
        for s in range(samples):
            if not agents:
                break
            agent = agents[s % len(agents)]
            if not agent.chats:
                missed += 1
                continue
            chat = agent.chats.pop(0)
            agent.waiter = loop.create_future()
            t0 = monotonic()
            self._write(agent, {"type": "close", "chat_id": chat, "resolution": "resolved"})
            try:
                await asyncio.wait_for(agent.waiter, timeout)
                lat.append(monotonic() - t0)
            except asyncio.TimeoutError:
                missed += 1
            agent.waiter = None
            if topup:
                await self.cmd_open_visitors([{"lang": "en"}])
            if gap:
                await asyncio.sleep(gap)
        return {"lat": lat.tobytes(), "missed": missed, "errors": dict(self.errors), "closes": dict(self.closes)}


# --- bare baseline ----------------------------------------------------------------------


class BareClient(LoadClient):
    """bench/baselines/bare_relay.py: join rooms, then {"room", "text"} frames, same codec
    as our hub's clients."""

    def _write(self, peer: Peer, frame: dict[str, Any]) -> None:
        if peer.ws is None:
            return
        if peer.binary:
            peer.ws.send_binary(msgpack.packb(frame))
        else:
            peer.ws.send_text(json.dumps(frame, separators=(",", ":")))

    def send(self, peer: Peer, chat: str, text: str) -> None:
        self._write(peer, {"room": chat, "text": text})

    def on_frame(self, ws: WSClient, payload: bytes, binary: bool) -> None:
        try:
            frame = msgpack.unpackb(payload) if binary else json.loads(payload)
        except Exception:  # noqa: BLE001
            self.errors["undecodable"] += 1
            return
        self.on_delivery(ws.user, frame.get("room", ""), frame.get("text"))  # type: ignore[arg-type]

    async def _open(self, role: str, rooms: list[str]) -> Peer:
        peer = Peer(role)
        subprotocols = ("livechat.msgpack",) if self.codec == "msgpack" else ()
        ws = await WSClient.connect(self.host, self.port, "/ws", self.on_frame, subprotocols)
        ws.user, peer.ws = peer, ws
        peer.binary = ws.subprotocol == "livechat.msgpack"
        ws.closed.add_done_callback(lambda _f: self.on_close(ws))
        self._write(peer, {"join": rooms})
        if role == "visitor":
            peer.chat, peer.assigned, peer.status = rooms[0], True, "active"
        else:
            peer.chats = list(rooms)
        return peer

    async def open_visitor(self, index: int, spec: dict[str, Any]) -> Peer:
        return await self._open("visitor", [spec["room"]])

    async def open_agent(self, spec: dict[str, Any]) -> Peer:
        return await self._open("agent", spec["rooms"])


# --- python-socketio peer ------------------------------------------------------------------


class SocketioClient(LoadClient):
    """bench/baselines/socketio_relay.py over raw Engine.IO v4 websocket frames (the same
    lean client as for our hub, so that client cost does not differ): open packet "0{...}",
    namespace connect "40", events "42[...]", ping "2" answered by pong "3"."""

    def send(self, peer: Peer, chat: str, text: str) -> None:
        if peer.ws is not None:
            peer.ws.send_text('42["msg",' + json.dumps({"room": chat, "text": text}, separators=(",", ":")) + "]")

    def on_frame(self, ws: WSClient, payload: bytes, binary: bool) -> None:
        peer: Peer = ws.user  # type: ignore[assignment]
        if payload.startswith(b"42"):
            try:
                event, data = json.loads(payload[2:])
            except Exception:  # noqa: BLE001
                self.errors["undecodable"] += 1
                return
            if event == "msg":
                self.on_delivery(peer, data.get("room", ""), data.get("text"))
        elif payload == b"2":
            ws.send_text("3")
        elif payload.startswith(b"40"):
            if not peer.ready.done():
                peer.ready.set_result(None)
        elif payload.startswith(b"0"):
            ws.send_text("40")
        elif payload.startswith(b"44"):
            self.errors["connect_error"] += 1

    async def _open(self, role: str, rooms: list[str]) -> Peer:
        peer = Peer(role)
        ws = await WSClient.connect(self.host, self.port, "/socket.io/?EIO=4&transport=websocket", self.on_frame)
        ws.user, peer.ws = peer, ws
        ws.closed.add_done_callback(lambda _f: self.on_close(ws))
        await peer.ready
        ws.send_text('42["join",' + json.dumps(rooms) + "]")
        if role == "visitor":
            peer.chat, peer.assigned, peer.status = rooms[0], True, "active"
        else:
            peer.chats = list(rooms)
        return peer

    async def open_visitor(self, index: int, spec: dict[str, Any]) -> Peer:
        return await self._open("visitor", [spec["room"]])

    async def open_agent(self, spec: dict[str, Any]) -> Peer:
        return await self._open("agent", spec["rooms"])


DIALECTS = {"livechat": OursClient, "bare_relay": BareClient, "socketio_relay": SocketioClient}
