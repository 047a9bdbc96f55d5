#!/usr/bin/env bash
# Bring up a working three-server pgraft cluster on this machine and show it working.
#
#   scripts/demo-cluster.sh          install what is needed, start 3 servers, demo
#   scripts/demo-cluster.sh stop     stop the 3 servers (data stays in the demo dir)
#
# Run as root (PostgreSQL runs as the postgres OS user).  Steps: install-deps.sh,
# install-node-venv.sh, `make -C extension install`; then servers on ports
# 5433-5435 (loopback only) with Raft ports 7001-7003 in /var/tmp/pgraft-demo
# (PGRAFT_DEMO_DIR), the README's Quick Start typed through psql, the members,
# leader and term, an append on a follower read back on every server, and a
# failover: the leader's server is stopped with `pg_ctl -m immediate`, the others
# elect a new leader, and the old one rejoins as a follower when started again.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${PGRAFT_DEMO_DIR:-/var/tmp/pgraft-demo}
pg_ports=(5433 5434 5435)
raft_ports=(7001 7002 7003)
heartbeat_ms=250
election_ms=2500

bindir() {
    if command -v pg_config >/dev/null; then
        pg_config --bindir
    else
        ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
    fi
}
as_pg() { runuser -u postgres -- "$@"; }
node_dir() { echo "$base/node$1"; }
pg_ctl_n() { as_pg "$(bindir)/pg_ctl" -D "$(node_dir "$1")/data" "${@:2}"; }
is_up() { [ -f "$(node_dir "$1")/data/postmaster.pid" ]; }
psql_n() {
    "$(bindir)/psql" -X -v ON_ERROR_STOP=1 -h "$(node_dir "$1")" -p "${pg_ports[$1 - 1]}" \
        -U postgres -d postgres "${@:2}"
}
q() { psql_n "$1" -Atqc "$2"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_all() {
    for n in 1 2 3; do
        if is_up "$n"; then pg_ctl_n "$n" -m fast -w stop >/dev/null && echo "stopped server $n"; fi
    done
}

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.2
    done
}
running() { [ "$(q "$1" 'SELECT pgraft_get_worker_state()')" = RUNNING ]; }
agreed_leader() { # agreed_leader EXCLUDED NODE... : all nodes name one leader, not EXCLUDED
    local excluded=$1 first="" l
    shift
    for n in "$@"; do
        l=$(q "$n" 'SELECT pgraft_get_leader()') || return 1
        [ "$l" != 0 ] && [ "$l" != "$excluded" ] || return 1
        [ -z "$first" ] || [ "$first" = "$l" ] || return 1
        first=$l
    done
}

case "${1:-start}" in
stop)
    stop_all
    exit 0
    ;;
start) ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac

if [ "$(id -u)" != 0 ]; then
    echo "run as root: servers are started as the postgres OS user" >&2
    exit 1
fi

say "Installing dependencies, the node's virtualenv and the extension"
"$repo/scripts/install-deps.sh"
"$repo/scripts/install-node-venv.sh"
make -s -C "$repo/extension" install >/dev/null

stop_all
for port in "${pg_ports[@]}" "${raft_ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port on 127.0.0.1 is in use; stop what uses it first" >&2
        exit 1
    fi
done
rm -rf "$base"
mkdir -p "$base"
chmod 0755 "$base"

say "Starting three PostgreSQL servers (ports ${pg_ports[*]}, Raft ports ${raft_ports[*]})"
for n in 1 2 3; do
    dir=$(node_dir "$n")
    mkdir -p "$dir"
    chown postgres: "$dir"
    as_pg "$(bindir)/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    cat >>"$dir/data/postgresql.conf" <<EOF
port = ${pg_ports[$n - 1]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pgraft'
pgraft.node_id = $n
pgraft.address = '127.0.0.1'
pgraft.port = ${raft_ports[$n - 1]}
pgraft.cluster_name = 'demo_cluster'
pgraft.heartbeat_interval = $heartbeat_ms
pgraft.election_timeout = $election_ms
EOF
    pg_ctl_n "$n" -l "$dir/server.log" -w start >/dev/null
    echo "server $n: port ${pg_ports[$n - 1]}, data $dir/data, log $dir/server.log"
done

say "Quick Start: CREATE EXTENSION and pgraft_init() on each server"
for n in 1 2 3; do
    q "$n" 'CREATE EXTENSION IF NOT EXISTS pgraft'
    wait_until 30 "the pgraft node of server $n" running "$n"
    echo "server $n: pgraft_init() = $(q "$n" 'SELECT pgraft_init()')"
done
say "On server 1: add nodes 2 and 3"
psql_n 1 -e -c "SELECT pgraft_add_node(2, '127.0.0.1', ${raft_ports[1]})" \
    -c "SELECT pgraft_add_node(3, '127.0.0.1', ${raft_ports[2]})"
wait_until 30 "a leader" agreed_leader 0 1 2 3

say "Members, as seen from server 2"
psql_n 2 -c 'SELECT * FROM pgraft_get_nodes()'
for n in 1 2 3; do
    echo "server $n: worker $(q "$n" 'SELECT pgraft_get_worker_state()'), leader $(q "$n" \
        'SELECT pgraft_get_leader()'), term $(q "$n" 'SELECT pgraft_get_term()'), is_leader $(q "$n" \
        'SELECT pgraft_is_leader()')"
done

leader=$(q 1 'SELECT pgraft_get_leader()')
follower=$((leader % 3 + 1))
say "Append on follower $follower, read back on every server"
index=$(q "$follower" "SELECT pgraft_log_append(0, '{\"action\": \"user_created\", \"user_id\": 123}')")
echo "pgraft_log_append returned index $index"
for n in 1 2 3; do
    q "$n" "SELECT pgraft_log_apply($index)" >/dev/null
    echo "server $n: $(q "$n" "SELECT format('index %s, term %s: %s', index, term, data) FROM pgraft_log_read($index, $index)")"
done

say "Failover: pg_ctl stop -m immediate of the leader's server ($leader)"
pg_ctl_n "$leader" -m immediate -w stop >/dev/null
survivors=()
for n in 1 2 3; do [ "$n" = "$leader" ] || survivors+=("$n"); done
start=$SECONDS
wait_until 60 "a new leader" agreed_leader "$leader" "${survivors[@]}"
new_leader=$(q "${survivors[0]}" 'SELECT pgraft_get_leader()')
echo "new leader: node $new_leader (term $(q "${survivors[0]}" 'SELECT pgraft_get_term()'), after ~$((SECONDS - start)) s)"
index=$(q "${survivors[0]}" "SELECT pgraft_log_append(0, 'written during the failover')")
echo "append during the failover: index $index"

say "Restarting server $leader: it rejoins as a follower"
pg_ctl_n "$leader" -l "$(node_dir "$leader")/server.log" -w start >/dev/null
wait_until 30 "the pgraft node of server $leader" running "$leader"
wait_until 60 "server $leader to follow" agreed_leader 0 1 2 3
q "$leader" "SELECT pgraft_log_apply($index)" >/dev/null
echo "server $leader: leader $(q "$leader" 'SELECT pgraft_get_leader()'), is_leader $(q "$leader" \
    'SELECT pgraft_is_leader()'), has entry $index: $(q "$leader" "SELECT data FROM pgraft_log_read($index, $index)")"
psql_n "$leader" -c 'SELECT * FROM pgraft_get_cluster_status()'

say "The cluster is running"
echo "connect:  psql -h 127.0.0.1 -p 5433 -U postgres      (5434, 5435 for the others)"
echo "stop:     $0 stop"
