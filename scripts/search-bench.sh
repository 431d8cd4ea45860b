#!/usr/bin/env bash
# Search over 1,000,000 stored messages (issue 17): seeds a fresh PostgreSQL database and a
# fresh SQLite file with the real migrations and 1M messages by bulk SQL (8 words each from a
# 5,000-word vocabulary, 100 public rooms, a reader who is a member of some and banned from
# one), then runs the exact query `Store::search_messages` sends, with a random word, and
# prints latency percentiles. Not a test: figures go to docs/benchmarks.md.
#   PG_URL=postgres://postgres@127.0.0.1:5432 scripts/search-bench.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=parley_search_bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

seed_sql() { # $1: row generator for 1..1000000
cat <<SQL
INSERT INTO users (id, username, password_hash, is_staff, created_at, is_guest, is_active, token_epoch)
  VALUES (1, 'reader', 'x', false, 0, false, true, 0), (2, 'writer', 'x', false, 0, false, true, 0);
INSERT INTO rooms (id, name, kind, topic, created_at, read_only)
  SELECT g, 'room' || g, CASE WHEN g % 10 = 0 THEN 'private' ELSE 'public' END, '', 0, false FROM $1 AS g WHERE g <= 100;
INSERT INTO memberships (room_id, user_id, role, joined_at) SELECT g, 1, 'member', 0 FROM $1 AS g WHERE g <= 20;
INSERT INTO room_bans (room_id, user_id, created_at) VALUES (7, 1, 0);
SQL
}

echo "== PostgreSQL: seeding 1M messages"
psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
for m in migrations/postgres/*/up.sql; do psql -q -v ON_ERROR_STOP=1 "$PG_URL/$DB" -f "$m" >/dev/null; done
time psql -q -v ON_ERROR_STOP=1 "$PG_URL/$DB" <<SQL
$(seed_sql "generate_series(1, 1000000)")
INSERT INTO messages (id, room_id, sender_id, body, created_at)
  SELECT g, 1 + g % 100, 2,
    (SELECT string_agg('w' || (floor(random() * 5000 + k * 0 + g * 0))::int, ' ') FROM generate_series(1, 8) AS k),
    g FROM generate_series(1, 1000000) AS g;
SELECT setval('messages_id_seq', 1000000);
VACUUM ANALYZE;
SQL
cat > "$WORK/q.sql" <<'SQL'
\set w random(0, 4999)
SELECT m.id, m.body, r.name, u.username, u.is_guest FROM messages m
  JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.sender_id
  WHERE m.deleted_at IS NULL
    AND to_tsvector('simple', m.body) @@ plainto_tsquery('simple', 'w:w')
    AND (r.kind = 'public' OR m.room_id IN (SELECT room_id FROM memberships WHERE user_id = 1))
    AND NOT (m.room_id IN (SELECT room_id FROM room_bans WHERE user_id = 1))
  ORDER BY m.id + 0 DESC LIMIT 21;
SQL
(cd "$WORK" && pgbench -n -c 1 -T "$SECS" -f q.sql --log --log-prefix=pg "$PG_URL/$DB" >/dev/null)
cat "$WORK"/pg* | awk '{print $3/1000}' | sort -n | awk '{a[NR]=$1} END {printf "PostgreSQL: %d queries, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", NR, a[int(NR*0.5)], a[int(NR*0.99)], a[NR]}'
[ -n "${KEEP:-}" ] || psql -q "$PG_URL/postgres" -c "DROP DATABASE $DB"

echo "== SQLite: seeding 1M messages"
S="$WORK/bench.sqlite"
for m in migrations/sqlite/*/up.sql; do sqlite3 "$S" < "$m"; done
time sqlite3 "$S" <<SQL
PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
CREATE TEMP VIEW series AS WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 1000000) SELECT value FROM s;
BEGIN;
$(seed_sql "(SELECT value AS g FROM series)" | sed 's/AS g WHERE g/AS s WHERE g/')
INSERT INTO messages (id, room_id, sender_id, body, created_at)
  SELECT value, 1 + value % 100, 2,
    'w' || abs(random() % 5000) || ' w' || abs(random() % 5000) || ' w' || abs(random() % 5000) || ' w' || abs(random() % 5000)
    || ' w' || abs(random() % 5000) || ' w' || abs(random() % 5000) || ' w' || abs(random() % 5000) || ' w' || abs(random() % 5000),
    value FROM series;
COMMIT;
ANALYZE;
SQL
python3 - "$S" "$SECS" <<'PY'
import random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); end = time.time() + float(sys.argv[2]); lat = []
q = """SELECT m.id, m.body, r.name, u.username, u.is_guest FROM messages m
  JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.sender_id
  WHERE m.deleted_at IS NULL
    AND m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)
    AND (r.kind = 'public' OR m.room_id IN (SELECT room_id FROM memberships WHERE user_id = 1))
    AND NOT (m.room_id IN (SELECT room_id FROM room_bans WHERE user_id = 1))
  ORDER BY m.id DESC LIMIT 21"""
while time.time() < end:
    t = time.perf_counter(); db.execute(q, ('"w%d"' % random.randrange(5000),)).fetchall()
    lat.append((time.perf_counter() - t) * 1000)
lat.sort(); n = len(lat)
print("SQLite %s: %d queries, p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (sqlite3.sqlite_version, n, lat[n // 2], lat[int(n * .99)], lat[-1]))
PY
