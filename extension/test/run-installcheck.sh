#!/usr/bin/env bash
# Run the extension's pg_regress suite against a throwaway server.
#
# Starts a fresh PostgreSQL server as the `postgres` OS user (initdb in a temp
# directory under /var/tmp, Unix socket in that directory, loopback only,
# shared_preload_libraries = pgraft, short Raft timeouts), waits until the
# supervisor reports the node RUNNING, runs `make installcheck`, stops the
# server and removes the directory (kept, with its log, when a test fails).
#
# Usage (as root, after scripts/install-node-venv.sh):
#   extension/test/run-installcheck.sh      (builds and installs the extension first)
# Environment: PG_CONFIG (default pg_config), PGRAFT_PYTHON (node interpreter,
# default: the compiled-in pgraft.python).
set -euo pipefail

ext_dir=$(cd "$(dirname "$0")/.." && pwd)
pg_config=${PG_CONFIG:-pg_config}
bindir=$("$pg_config" --bindir)
make -s -C "$ext_dir" install PG_CONFIG="$pg_config" >/dev/null
as_pg() { runuser -u postgres -- "$@"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

tmp=$(mktemp -d /var/tmp/pgraft-installcheck.XXXXXX)
chmod 0755 "$tmp"
chown postgres: "$tmp"
data="$tmp/data"
port=$(free_port)
raft_port=$(free_port)
while [ "$raft_port" = "$port" ]; do raft_port=$(free_port); done

as_pg "$bindir/initdb" -D "$data" -U postgres -A trust --no-sync >"$tmp/initdb.log"
cat >>"$data/postgresql.conf" <<EOF
port = $port
listen_addresses = ''
unix_socket_directories = '$tmp'
shared_preload_libraries = 'pgraft'
fsync = off
pgraft.node_id = 1
pgraft.address = '127.0.0.1'
pgraft.port = $raft_port
pgraft.cluster_name = 'installcheck'
pgraft.heartbeat_interval = 100
pgraft.election_timeout = 1000
EOF
if [ -n "${PGRAFT_PYTHON:-}" ]; then
    echo "pgraft.python = '$PGRAFT_PYTHON'" >>"$data/postgresql.conf"
fi

stop() { as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true; }
trap stop EXIT
as_pg "$bindir/pg_ctl" -D "$data" -l "$tmp/server.log" -w start >/dev/null

psql_q() { "$bindir/psql" -X -h "$tmp" -p "$port" -U postgres -d postgres -Atqc "$1"; }
psql_q "CREATE EXTENSION pgraft" >/dev/null
state=""
for _ in $(seq 1 300); do
    state=$(psql_q "SELECT pgraft_get_worker_state()")
    [ "$state" = RUNNING ] && break
    sleep 0.1
done
if [ "$state" != RUNNING ]; then
    echo "pgraft node did not come up (state $state); server log:" >&2
    tail -n 40 "$tmp/server.log" >&2
    exit 1
fi
psql_q "DROP EXTENSION pgraft" >/dev/null

status=0
make -C "$ext_dir" installcheck PG_CONFIG="$pg_config" \
    PGHOST="$tmp" PGPORT="$port" PGUSER=postgres || status=$?
stop
trap - EXIT
if [ "$status" -ne 0 ]; then
    echo "installcheck failed; server directory kept: $tmp" >&2
    [ -f "$ext_dir/regression.diffs" ] && cat "$ext_dir/regression.diffs" >&2
    exit "$status"
fi
rm -rf "$tmp"
echo "installcheck passed"
