"""The help centre: Markdown articles in a folder, searched with SQLite FTS5, served as pages
at /help, suggested by the widget before a chat starts and linked by agents from the composer.

Articles are files, not Redis data: every hub reads the same folder (deployed like the code),
so the text needs no replication and a restart of Redis loses nothing. Only counters (views,
deflections, unanswered questions) live in Redis, where every hub shares them.
"""
