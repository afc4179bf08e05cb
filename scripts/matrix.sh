#!/usr/bin/env bash
# `make test-matrix`: the test suite on Django 5.2 and 6.1, each with psycopg2 and psycopg 3.
#
#   scripts/matrix.sh [PYTEST_ARGS...]      e.g. scripts/matrix.sh -m "not slow and not browser"
#
# Django 5.2 legs run on this machine's python3 (3.11), in virtualenvs under .matrix/. Django
# 6.1 needs Python 3.12+: its legs run in a Debian 13 root (scripts/matrix_root.sh), which needs
# root; elsewhere they are skipped with the reason. Each leg has its own test database, so that
# legs (and `make test`) never clash. Logs: .matrix/logs/LEG.log.
#
# Settings (environment): MATRIX_LEGS (default: all four), MATRIX_TIMEOUT per leg (25m),
# MATRIX_DB_PREFIX (dpq_matrix): legs use databases PREFIX_LEG and test_PREFIX_LEG, so
# two checkouts running the matrix against one server pick different prefixes.
set -uo pipefail
cd "$(dirname "$0")/.."
LEGS=${MATRIX_LEGS:-dj52-psycopg2 dj52-psycopg3 dj61-psycopg2 dj61-psycopg3}
TIMEOUT=${MATRIX_TIMEOUT:-25m}
DB_PREFIX=${MATRIX_DB_PREFIX:-dpq_matrix}
LOGS=.matrix/logs
CALLER_DATABASE_URL=${DATABASE_URL:-}
mkdir -p "$LOGS"

log() { echo "matrix: $*" >&2; }

# Belt and braces: matrix_root.sh mounts only inside a namespace that dies with its run, so
# nothing should ever be mounted under .matrix/ here. If something is, say so and unmount it.
check_mounts() {
    local leftover
    leftover=$(awk -v dir="$PWD/.matrix/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r)
    if [ -n "$leftover" ]; then
        log "unmounting what a run left mounted under .matrix/: $leftover"
        echo "$leftover" | xargs -r -n 1 umount -l
    fi
}
trap check_mounts EXIT

# N from "N WORD" or "N WORDs" in a pytest closing line, else 0.
count() { echo "$2" | grep -oE "[0-9]+ $1s?\b" | grep -oE '^[0-9]+' || echo 0; }

declare -A results
failed=0 total_passed=0 total_failed=0 no_results=0
root_failed=
chroot_reason=$(scripts/matrix_root.sh check) || true
if [ -n "$chroot_reason" ] && [[ "$LEGS" == *dj61* ]]; then
    log "*** the Django 6.1 legs cannot run here: $chroot_reason."
    log "*** They need a Debian 13 root (debootstrap, chroot, as root); running the Django 5.2 legs only."
elif [[ "$LEGS" == *dj61* ]]; then
    started=$SECONDS
    if scripts/matrix_root.sh build; then
        log "the Debian 13 root is ready ($((SECONDS - started)) s)"
    else
        root_failed=1
    fi
fi

for leg in $LEGS; do
    log "=== $leg ==="
    case $leg in
    dj52-*)
        run=(scripts/matrix_leg.sh "$leg" ".matrix/venv-$leg" "$@")
        ;;
    dj61-*)
        if [ -n "$chroot_reason" ]; then
            results[$leg]="not run: $chroot_reason"
            continue
        elif [ -n "$root_failed" ]; then
            results[$leg]="FAILED: could not build the Debian 13 root (see above)"
            failed=1
            continue
        fi
        args=("$@")
        # No chromium in the root (its install failed): deselect instead of failing each test.
        if [ ! -x .matrix/trixie/usr/bin/chromium ]; then
            log "no chromium in the root: deselecting the browser tests"
            args+=(-m "not browser")
        fi
        run=(scripts/matrix_root.sh run /bin/bash /src/scripts/matrix_leg.sh "$leg" "/opt/venv-$leg" "${args[@]}")
        ;;
    *)
        results[$leg]="FAILED: unknown leg (known: dj52-psycopg2 dj52-psycopg3 dj61-psycopg2 dj61-psycopg3)"
        failed=1
        continue
        ;;
    esac
    # A DATABASE_URL given by the caller serves every leg; the test database names keep them apart.
    dbname=${DB_PREFIX}_${leg//-/_}
    if ! url=$(DATABASE_URL=$CALLER_DATABASE_URL python3 scripts/dbenv.py --dbname "$dbname"); then
        results[$leg]="FAILED: no database (scripts/dbenv.py failed)"
        failed=1
        continue
    fi
    started=$SECONDS
    DATABASE_URL=$url DPQ_TEST_DB_NAME=test_$dbname \
        timeout -k 60 "$TIMEOUT" "${run[@]}" 2>&1 | tee "$LOGS/$leg.log"
    rc=${PIPESTATUS[0]}
    elapsed="$(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s"
    check_mounts
    # pytest's closing line: "==== 2 failed, 300 passed, 4 skipped in 95.1s ====" (with -q,
    # the same without the "=").
    counts=$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|skipped|deselected).* in [0-9.]+s' "$LOGS/$leg.log" |
        tail -n 1 | sed -E 's/^=+ //; s/ =+$//; s/ in [0-9.]+s.*//')
    if [ -z "$counts" ]; then
        # pytest stopped before its closing line (e.g. an ImportError while Django set up).
        error=$(grep -E '^[A-Za-z_.]*(Error|Exception)\b' "$LOGS/$leg.log" | tail -n 1)
        counts="no test results${error:+; last error: $error}"
        no_results=$((no_results + 1))
    fi
    versions=$(grep -m 1 '^matrix-leg: versions: ' "$LOGS/$leg.log" | sed 's/^matrix-leg: versions: //')
    case $rc in
    0) status=ok ;;
    124 | 137) status="FAILED (timed out after $TIMEOUT)" ;;
    *) status="FAILED (exit $rc)" ;;
    esac
    [ "$rc" -eq 0 ] || failed=1
    total_passed=$((total_passed + $(count passed "$counts")))
    total_failed=$((total_failed + $(count failed "$counts") + $(count error "$counts")))
    results[$leg]="$status, $counts, $elapsed [${versions:-versions unknown}]"
done

echo
echo "matrix summary (logs in $LOGS/):"
for leg in $LEGS; do
    printf '  %-14s %s\n' "$leg" "${results[$leg]}"
done
# One closing line over all legs, in the form CI tools read.
if [ "$no_results" -eq 0 ]; then
    echo "matrix: $total_passed passed, $total_failed failed"
else
    echo "matrix: $total_passed passed, $total_failed failed, and $no_results leg(s) ran no test"
fi
exit "$failed"
