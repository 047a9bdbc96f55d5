#!/usr/bin/env bash
# Install what building and running pgraft needs (Debian/Ubuntu, as root).
#
# Idempotent: installs only missing packages.  Uses the PostgreSQL server that
# is already installed (the highest /usr/lib/postgresql/N) and adds the
# matching postgresql-server-dev-N; where no server is installed it installs
# the distribution's default major (postgresql + postgresql-server-dev-all).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pg_major() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && basename "$(dirname "$(dirname "$dir")")"
}

missing=()
for pkg in build-essential python3 python3-venv ca-certificates; do
    installed "$pkg" || missing+=("$pkg")
done

major=$(pg_major || true)
updated=0
if [ -z "$major" ]; then
    apt-get update -q && updated=1
    apt-get install -y -q postgresql postgresql-contrib
    major=$(pg_major)
fi
installed "postgresql-server-dev-$major" || missing+=("postgresql-server-dev-$major")

if [ "${#missing[@]}" -gt 0 ]; then
    [ "$updated" = 1 ] || apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi
echo "pgraft dependencies present (PostgreSQL $major: $(/usr/lib/postgresql/"$major"/bin/pg_config --version))"
