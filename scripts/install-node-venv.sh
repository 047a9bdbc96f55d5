#!/usr/bin/env bash
# Create or refresh the Python environment that runs the pgraft node.
#
# PostgreSQL runs as the `postgres` OS user, which cannot read root's home (nor
# a pyenv interpreter there), so the node gets its own virtualenv built from
# Debian's /usr/bin/python3 at a path every user can traverse
# (/opt/pgraft/venv, the compiled-in default of pgraft.python).  The repository
# is installed NON-editable (a copy, readable by postgres).  A stamp holding
# the hash of the sources makes re-runs cheap: nothing happens when the
# installed copy is current.  Re-run it after changing src/.
#
# Usage (as root): scripts/install-node-venv.sh [--force]
# Environment: PGRAFT_VENV (default /opt/pgraft/venv),
#              PGRAFT_BASE_PYTHON (default /usr/bin/python3).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${PGRAFT_VENV:-/opt/pgraft/venv}
base_python=${PGRAFT_BASE_PYTHON:-/usr/bin/python3}
stamp="$venv/.pgraft-source-hash"

source_hash() {
    (cd "$repo" && find pyproject.toml src/pgraft -type f \
        \( -name '*.py' -o -name '*.toml' -o -name 'py.typed' \) -print0 |
        sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

hash=$(source_hash)
if [ "${1:-}" != "--force" ] && [ -x "$venv/bin/python" ] &&
    [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
    echo "pgraft node venv $venv is up to date"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    "$base_python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet "msgpack>=1.0" "click>=8.1" "rich>=13" "uvloop>=0.19"

# Build from a copy so that the shared source tree gets no build/ or egg-info.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$repo/pyproject.toml" "$work/"
[ -f "$repo/README.md" ] && cp "$repo/README.md" "$work/"
mkdir -p "$work/src"
cp -r "$repo/src/pgraft" "$work/src/"
find "$work" -name '__pycache__' -prune -exec rm -rf {} +
"$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$work"

echo "$hash" >"$stamp"
chmod -R a+rX "$(dirname "$venv")"
echo "pgraft node venv $venv installed from $repo"
