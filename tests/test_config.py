"""The desk's policy file: default plans and hours, overrides, and errors that name the key."""

from __future__ import annotations

import subprocess
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chat.config import DEFAULT_TOML, ConfigError, load_config, parse_config
from chat.plans import ALWAYS, is_open
from tests.support.servers import hub_env, LIVECHAT, ROOT

BRUSSELS = ZoneInfo("Europe/Brussels")


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    """A unix time given as Brussels wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=BRUSSELS).timestamp()


def test_default_plans_are_free_plus_professional_visionary_lowest_first():
    """Without a file there are four plans, the lowest (for unverified visitors) first."""
    config = parse_config(DEFAULT_TOML)
    assert list(config.plans) == ["free", "plus", "professional", "visionary"]
    assert config.lowest_plan.name == "free"
    assert [p.rank for p in config.plans.values()] == [0, 1, 2, 3]


def test_default_plans_grow_head_start_patience_and_hours():
    """Each plan up has a bigger head start and a longer max_wait; only the top one is 24/7."""
    plans = list(parse_config(DEFAULT_TOML).plans.values())
    assert [p.head_start for p in plans] == sorted(p.head_start for p in plans)
    assert len({p.head_start for p in plans}) == 4
    assert [p.max_wait for p in plans] == sorted(p.max_wait for p in plans)
    assert [p.hours for p in plans] == ["office", "office", "extended", ALWAYS]
    assert all(p.live_chat for p in plans)


def test_default_office_hours_are_weekdays_nine_to_six_in_brussels():
    """The office schedule opens Monday-Friday 09:00-18:00 Brussels time, summer and winter."""
    config = parse_config(DEFAULT_TOML)
    free = config.plans["free"]
    assert is_open(free, config.schedules, at(2025, 1, 6, 9, 0))       # Monday, winter (CET)
    assert is_open(free, config.schedules, at(2025, 7, 4, 17, 59))     # Friday, summer (CEST)
    assert not is_open(free, config.schedules, at(2025, 1, 6, 8, 59))
    assert not is_open(free, config.schedules, at(2025, 1, 6, 18, 0))
    assert not is_open(free, config.schedules, at(2025, 1, 11, 12, 0))  # Saturday


def test_top_plan_is_open_around_the_clock():
    """Visionary is served at night and on Sundays."""
    config = parse_config(DEFAULT_TOML)
    assert is_open(config.plans["visionary"], config.schedules, at(2025, 1, 12, 3, 0))


def test_plan_without_live_chat_is_never_open():
    """live_chat = false closes the plan to chat whatever its hours."""
    config = parse_config('[plans.basic]\nhours = "24/7"\nlive_chat = false\n')
    assert not is_open(config.plans["basic"], config.schedules, at(2025, 1, 6, 12, 0))


def test_schedule_with_no_days_is_never_open():
    """days = [] is a schedule that never opens (tests use it for closed hours)."""
    config = parse_config('[schedules.never]\ndays = []\n[plans.free]\nhours = "never"\n')
    assert not any(is_open(config.plans["free"], config.schedules, at(2025, 1, d, h)) for d in range(6, 13) for h in range(24))


def test_file_replaces_plans_and_keeps_default_schedules_and_timers():
    """A file that lists its own plans replaces the default plans; left-out sections keep defaults."""
    config = parse_config('[plans.basic]\nhead_start = 0\n[plans.gold]\nhead_start = 60\nhours = "office"\n', "desk.toml")
    assert list(config.plans) == ["basic", "gold"]
    assert config.plans["gold"].head_start == 60.0 and config.plans["basic"].hours == ALWAYS
    assert "office" in config.schedules and config.emergency_head_start == 3600.0
    assert config.timing.agent_grace == 30.0


def test_toml_local_times_are_accepted_for_opening_hours():
    """opens = 08:30:00 (a TOML time) works like opens = "08:30"."""
    config = parse_config("[schedules.early]\nopens = 08:30:00\ncloses = \"12:00\"\n")
    assert str(config.schedules["early"].opens) == "08:30:00"


def test_unknown_plan_name_falls_back_to_the_lowest_plan():
    """Asking for a plan that does not exist gives the lowest plan, never a higher one."""
    config = parse_config(DEFAULT_TOML)
    assert config.plan("platinum").name == "free" and config.plan(None).name == "free"


def test_demo_opens_every_plan_around_the_clock():
    """The demo (make run) serves every plan 24/7 so that it can be tried at any hour."""
    config = load_config(None, demo=True)
    assert {p.hours for p in config.plans.values()} == {ALWAYS}


def test_frame_limits_per_socket_kind_come_from_the_file():
    """An operator can raise or lower the per-socket flood limits of visitors and agents."""
    limits = parse_config("[limits]\nvisitor_frames_per_second = 4\nagent_frame_burst = 200\n").limits
    assert (limits.visitor_frames_per_second, limits.visitor_frame_burst) == (4, 30)
    assert (limits.agent_frames_per_second, limits.agent_frame_burst) == (30, 200)


BROKEN = [
    ('[plans.free]\nhead_start = "soon"\n', "plans.free.head_start"),
    ('[plans.free]\nmax_wait = -5\n', "plans.free.max_wait"),
    ('[plans.free]\nhead_start = nan\n', "plans.free.head_start"),
    ('[plans.free]\nhours = "lunchtime"\n', "plans.free.hours"),
    ('[plans.free]\nhours = ["office"]\n', "plans.free.hours"),
    ('[plans.free]\nlive_chat = "yes"\n', "plans.free.live_chat"),
    ('[plans.free]\nheadstart = 10\n', "plans.free.headstart"),
    ("[plans]\n", "plans"),
    ('[schedules.office]\ntz = "Mars/Olympus"\n', "schedules.office.tz"),
    ('[schedules.office]\ndays = ["monday"]\n', "schedules.office.days"),
    ('[schedules.office]\nopens = "9am"\n', "schedules.office.opens"),
    ('[schedules.office]\nopens = "18:00"\ncloses = "09:00"\n', "schedules.office.closes"),
    ('[schedules.office]\nopen = "09:00"\n', "schedules.office.open"),
    ("[emergency]\nhead_start = true\n", "emergency.head_start"),
    ("[emergency]\nguard = 10\n", "emergency.guard"),
    ("[timing]\nagent_grace = -1\n", "timing.agent_grace"),
    ("[timing]\nheartbeat = 0\n", "timing.heartbeat"),
    ("[timing]\nlunch = 60\n", "timing.lunch"),
    ("[retention]\nweeks = 4\n", "retention.weeks"),
    ("[limits]\nvisitor_frames_per_second = 0\n", "limits.visitor_frames_per_second"),
    ("[limits]\nagent_frame_burst = 2.5\n", "limits.agent_frame_burst"),
    ("[limits]\nidentity_max_ttl = 0\n", "limits.identity_max_ttl"),
    ("[limits]\nlogin_verifications_per_user = 0\n", "limits.login_verifications_per_user"),
    ("[pricing]\nfree = 0\n", "pricing"),
    ("emergency = 3\n", "emergency"),
    ("[plans.free\nhead_start = 0\n", "(syntax)"),
]


@pytest.mark.parametrize("text,key", BROKEN, ids=[key for _, key in BROKEN])
def test_config_error_names_the_file_and_the_key(text, key):
    """Every kind of mistake is refused with the file, the exact key and what is wrong."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "/etc/livechat/desk.toml")
    assert caught.value.key == key
    assert str(caught.value).startswith(f"/etc/livechat/desk.toml: {key}: ")
    assert caught.value.problem


def test_missing_config_file_is_named(tmp_path):
    """LIVECHAT_CONFIG naming a file that does not exist is an error naming that file."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(caught.value)


def test_serve_with_a_broken_config_exits_naming_file_and_key(tmp_path):
    """`livechat serve` refuses to start on a broken LIVECHAT_CONFIG and says where the fault is."""
    path = tmp_path / "desk.toml"
    path.write_text('[plans.free]\nhours = "sometimes"\n')
    result = subprocess.run([LIVECHAT, "serve", "--port", "1"], env=hub_env(None, tmp_path / "data", path), cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert str(path) in result.stderr and "plans.free.hours" in result.stderr and "sometimes" in result.stderr
