#!/usr/bin/env bash
# One leg of `make test-matrix`: a virtualenv with one Django and one PostgreSQL driver, then
# pytest. Runs the same on the host and inside the Debian 13 root (scripts/matrix_root.sh).
#
#   scripts/matrix_leg.sh LEG VENV [PYTEST_ARGS...]
#
# LEG is dj52-psycopg2, dj52-psycopg3, dj61-psycopg2 or dj61-psycopg3. The caller sets
# DATABASE_URL and DPQ_TEST_DB_NAME (a test database of the leg's own).
set -euo pipefail
cd "$(dirname "$0")/.."
leg=$1
venv=$2
shift 2

case $leg in
dj52-*) django="Django>=5.2,<5.3" ;;
dj61-*) django="Django>=6.1,<6.2" ;;
*) echo "matrix-leg: unknown leg $leg" >&2 && exit 2 ;;
esac
# Each leg has exactly one driver, so a stray import of the other one fails the leg. Django
# takes psycopg 3 when it can import it, so the psycopg2 legs must not have it either.
case $leg in
*-psycopg2) extras=dev && unwanted="psycopg psycopg-binary psycopg-c" ;;
*-psycopg3) extras=dev,psycopg && unwanted="psycopg2-binary psycopg2" ;;
*) echo "matrix-leg: $leg names no driver (psycopg2 or psycopg3)" >&2 && exit 2 ;;
esac

# Install again only when pyproject.toml or this script changed since the last install.
stamp=$venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
    echo "matrix-leg: $leg: setting up $venv ($django, .[$extras]) ..."
    rm -f "$stamp"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e ".[$extras]" "$django"
    # pyproject.toml lists psycopg2-binary as a dependency: pip installs it in every leg.
    # shellcheck disable=SC2086  # $unwanted is a list of names
    "$venv/bin/pip" uninstall -q -y $unwanted 2>&1 | grep -v "^WARNING: Skipping" || true
    touch "$stamp"
fi

# What this leg really runs, for the log and the summary.
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import platform

def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None

drivers = [
    f"{name} {version(dist)}"
    for name, dist in [("psycopg2", "psycopg2-binary"), ("psycopg2", "psycopg2"), ("psycopg", "psycopg")]
    if version(dist)
]
print(f"matrix-leg: versions: Python {platform.python_version()}, Django {version('Django')}, "
      + (", ".join(drivers) or "no driver"))
EOF

exec "$venv/bin/pytest" "$@"
