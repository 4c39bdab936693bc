"""What the tests share, one module per kind of thing; the fixtures built on it live in
tests/conftest.py, so a test module imports helpers from here and never a fixture.

- waiting: ``wait_until`` (sync) and ``eventually`` (async), the only ways a test waits
- servers: `livechat serve` / `worker` processes, the test desk file, free ports
- processes: what /proc says about a process and its children
- redis: the session server's databases, a Redis that can crash and come back, routing's view
- cluster: a real Redis Cluster (Debian's redis-server 7)
- clients: the one WebSocket client, visitors and agents on it, accounts, the one login
- rawsocket: a WebSocket client on a bare TCP socket, for what no library would send
- http: plain HTTP requests (with or without following redirects)
- metrics: a strict reader of the Prometheus text format
- browser: Chromium via Playwright: the host site, the widget, the dashboard
- mail: a real SMTP server, a real Dovecot, and the mails customers write
- desk: a hub on a database of its own with an SMTP server, driven over HTTP and `mail-in`
- transcripts: a Runtime on the transcripts tests' own database, and chats opened through it
- help: the help centre's test folder and its search and event calls
"""
