"""The `livechat` command: embedded Redis, accounts from stdin, identity tokens."""

from __future__ import annotations

import os
import subprocess
import time

from chat.identity import verify
from tests.support.clients import agent, PASSWORD, visitor
from tests.support.servers import hub_env, HubProcess, LIVECHAT, TEST_CONFIG, TEST_SITE_SECRET
from tests.support.waiting import wait_until


def _redis_children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if int(fields[1]) == pid and b"redis-server" in cmd:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_agent_add_reads_the_password_from_stdin(tmp_path, redis_url):
    """`livechat agent add` takes the password on standard input and saves the account."""
    env = hub_env(redis_url, tmp_path)
    result = subprocess.run([LIVECHAT, "agent", "add", "cli-agent", "--langs", "en,fr", "--topics", "billing",
                             "--max-chats", "4"], input=PASSWORD + "\n", env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "cli-agent saved" in result.stdout and PASSWORD not in result.stdout + result.stderr


def test_token_command_prints_a_token_the_hub_accepts(tmp_path):
    """`livechat token` signs with LIVECHAT_SITE_SECRET a token that verifies."""
    env = hub_env(None, tmp_path)
    out = subprocess.run([LIVECHAT, "token", "--sub", "user-42", "--plan", "visionary", "--email", "ada@example.org"],
                         env=env, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    identity = verify(TEST_SITE_SECRET, out, ["free", "visionary"], time.time())
    assert (identity.sub, identity.plan, identity.email) == ("user-42", "visionary", "ada@example.org")


async def test_serve_without_redis_url_runs_embedded_redis_that_persists_and_stops(tmp_path):
    """No REDIS_URL: serve starts its own redis-server (unix socket, AOF), whose data survives
    a restart, and which is gone after SIGTERM."""
    config = tmp_path / "livechat.toml"
    config.write_text(TEST_CONFIG)
    data = tmp_path / "var"
    env = hub_env(None, data, config)
    hub = HubProcess(env, data).start()
    try:
        assert (data / "redis.sock").exists() and (data / "appendonly.aof").exists() or list(data.glob("appendonly*"))
        children = _redis_children(hub.process.pid)
        assert len(children) == 1
        add = subprocess.run([LIVECHAT, "agent", "add", "persist", "--langs", "pz"], input=PASSWORD + "\n",
                             env=env, capture_output=True, text=True, timeout=60)
        assert add.returncode == 0, add.stderr
        from redis.asyncio import Redis

        rds = Redis.from_url(f"unix://{data / 'redis.sock'}")
        _, welcome = await visitor(hub, "pz")
        await rds.aclose()
    finally:
        assert hub.terminate() == 0
    wait_until(lambda: not any(_alive(p) for p in children), 10, message="embedded redis-server to exit")
    again = HubProcess(env, data, port=hub.port).start()
    try:
        from redis.asyncio import Redis

        rds = Redis.from_url(f"unix://{data / 'redis.sock'}")
        assert await rds.exists(f"lc:chat:{{{welcome['chat_id']}}}")
        sam, held = await agent(again, rds, "persist", ["pz"], create=False)
        await rds.aclose()
    finally:
        again.terminate()


def test_broken_config_stops_serve_with_the_file_and_key(tmp_path):
    """A broken LIVECHAT_CONFIG stops `livechat serve` with a message naming file and key."""
    config = tmp_path / "bad.toml"
    config.write_text('[plans.free]\nmax_wait = "soon"\n')
    env = hub_env(None, tmp_path / "var", config)
    result = subprocess.run([LIVECHAT, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert str(config) in result.stderr and "plans.free.max_wait" in result.stderr
