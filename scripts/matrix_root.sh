#!/usr/bin/env bash
# The Debian 13 root that the Django 6.1 legs of `make test-matrix` run in: Django 6 needs
# Python 3.12+, and Debian 12 has 3.11. Debian 13 (trixie) brings Python 3.13.
#
#   scripts/matrix_root.sh check         say whether a root can be built and run here (exit 1: no)
#   scripts/matrix_root.sh build         build .matrix/trixie unless it exists (debootstrap, ~1 min)
#   scripts/matrix_root.sh run CMD...    run CMD inside the root, as root, with this checkout at /src
#
# Each `run` mounts the checkout, /proc and /dev inside a mount namespace of its own (unshare):
# the kernel drops those mounts when the last process in it exits, however it exits (timeout,
# kill -9), so no mount outlives a run and `rm -rf .matrix` never reaches into the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=$PWD
ROOT=$PROJECT/.matrix/trixie
SUITE=trixie

log() { echo "matrix-root: $*" >&2; }

# Why this machine cannot build or enter the root, or nothing when it can.
unavailable_reason() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "not running as root (debootstrap, mount and chroot need root)"
    elif ! command -v unshare >/dev/null || ! unshare --mount --propagation private true 2>/dev/null; then
        echo "cannot make a mount namespace (unshare --mount failed: no CAP_SYS_ADMIN?)"
    elif ! command -v debootstrap >/dev/null; then
        if ! command -v apt-get >/dev/null; then
            echo "debootstrap is missing and there is no apt-get to install it"
        else
            log "installing debootstrap ..."
            if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } >&2; then
                echo "debootstrap is missing and apt-get install debootstrap failed"
            fi
        fi
    fi
}

# The Debian mirror apt already uses (deb822 .sources or one-line .list), not the security one.
apt_mirror() {
    local mirror
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -E '^[[:space:]]*(URIs:|deb )' | grep -oE 'https?://[^[:space:]]+' |
        grep -v security | grep debian | head -n 1 || true)
    echo "${MATRIX_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
}

# Lines of /proc/mounts under DIR (nothing, normally).
mounts_under() {
    awk -v dir="$1" 'index($2, dir "/") == 1 || $2 == dir { print $2 }' /proc/mounts
}

# pip's settings and the CA bundle (it may hold a proxy's CA), name resolution: from the host,
# refreshed on every run because the host's may change.
copy_host_files() {
    local dir=$1 file
    for file in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf /etc/hosts; do
        if [ -f "$file" ]; then
            mkdir -p "$dir$(dirname "$file")"
            cp -L "$file" "$dir$file"
        fi
    done
}

# Mount what a run needs into root DIR. Only ever called inside a private mount namespace.
mount_into() {
    local dir=$1
    mkdir -p "$dir/src"
    mount --bind "$PROJECT" "$dir/src"
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
}

build() {
    if [ -x "$ROOT/usr/bin/python3" ]; then
        # A root built before the server binaries were part of it gets them now.
        install_postgresql "$ROOT"
        return 0
    fi
    local reason
    reason=$(unavailable_reason)
    if [ -n "$reason" ]; then
        log "cannot build the root: $reason"
        return 1
    fi
    # Built under another name and renamed when complete: an interrupted build never looks done.
    local tmp=$ROOT.building mirror
    mirror=$(apt_mirror)
    if [ -n "$(mounts_under "$tmp")" ]; then
        log "refusing to delete $tmp: something is mounted under it:"
        mounts_under "$tmp" >&2
        return 1
    fi
    rm -rf "$tmp"
    mkdir -p "$(dirname "$ROOT")"
    log "building a Debian 13 root in ${tmp#"$PROJECT"/} from $mirror ..."
    local started=$SECONDS
    # debootstrap mounts /proc and /sys in the root while it works: keep those mounts private too.
    unshare --mount --propagation private \
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$tmp" "$mirror" >"$PROJECT/.matrix/debootstrap.log" 2>&1 || {
        log "debootstrap failed; the last lines of .matrix/debootstrap.log:"
        tail -n 15 "$PROJECT/.matrix/debootstrap.log" >&2
        return 1
    }
    log "debootstrap took $((SECONDS - started)) s"
    copy_host_files "$tmp"
    # The browser tests drive Debian's chromium; without it the chroot legs deselect them.
    started=$SECONDS
    if [ "${MATRIX_CHROMIUM:-1}" = 1 ]; then
        log "installing chromium in the root ..."
        if unshare --mount --propagation private "$0" _enter "$tmp" \
            sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium && apt-get clean' \
            >"$PROJECT/.matrix/chromium.log" 2>&1; then
            log "chromium took $((SECONDS - started)) s"
        else
            log "could not install chromium (see .matrix/chromium.log); browser tests will be deselected"
        fi
    fi
    install_postgresql "$tmp"
    mv "$tmp" "$ROOT"
    log "root ready: ${ROOT#"$PROJECT"/}"
}

# The server binaries (initdb, pg_ctl) for the tests that start a private cluster and restart
# it. The suite's own server stays the host's: no cluster is created, and nothing is started.
install_postgresql() {
    local dir=$1 started=$SECONDS
    if compgen -G "$dir/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        return 0
    fi
    log "installing the PostgreSQL server binaries in the root ..."
    mkdir -p "$dir/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.d/dpq-matrix.conf"
    # Exit status 101 tells invoke-rc.d not to start services while packages install.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod +x "$dir/usr/sbin/policy-rc.d"
    if unshare --mount --propagation private "$0" _enter "$dir" \
        sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql && apt-get clean' \
        >"$PROJECT/.matrix/postgresql.log" 2>&1; then
        log "postgresql took $((SECONDS - started)) s"
    else
        log "could not install postgresql (see .matrix/postgresql.log); the restart tests will fail"
    fi
}

case "${1:-}" in
check)
    reason=$(unavailable_reason)
    if [ -n "$reason" ]; then
        echo "$reason"
        exit 1
    fi
    ;;
build)
    build
    ;;
run)
    shift
    build
    copy_host_files "$ROOT"
    install_postgresql "$ROOT"
    exec unshare --mount --propagation private "$0" _enter "$ROOT" "$@"
    ;;
_enter)
    # Internal: we are in the private namespace; mount, then become CMD inside the root.
    dir=$2
    shift 2
    mount_into "$dir"
    # A clean environment: nothing from the host's Python setup leaks in (PIP_*, VIRTUAL_ENV).
    exec chroot "$dir" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        ${DATABASE_URL:+DATABASE_URL="$DATABASE_URL"} \
        ${DPQ_TEST_DB_NAME:+DPQ_TEST_DB_NAME="$DPQ_TEST_DB_NAME"} \
        ${DPQ_REQUIRE_BROWSER:+DPQ_REQUIRE_BROWSER="$DPQ_REQUIRE_BROWSER"} \
        "$@"
    ;;
*)
    sed -n '2,11s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
