#!/usr/bin/env bash
# libreswan 4.10 as an interop peer, from Debian's packages but unpacked:
# the libreswan package conflicts with strongSwan's, which the suite needs
# installed too.
#
#   tests/lab/libreswan.sh setup          root, once per machine (idempotent, locked): prints the root
#   tests/lab/libreswan.sh root           prints the unpacked root (fails if not set up)
#   tests/lab/libreswan.sh exec CMD...    runs CMD (pluto, whack, addconn, certutil: by name, or a
#                                         path) with the unpacked libraries, in a private mount
#                                         namespace where the unpacked usr/libexec hides /usr/libexec
#                                         (pluto and the ipsec script exec fixed paths below it)
#
# The cache (IKED_LIBRESWAN_CACHE, default /var/cache/iked-libreswan) holds
# root/ (the four packages below, dpkg-deb -x) and `complete` once done.
# The libraries libreswan links to that do not conflict with strongSwan are
# installed with apt-get as usual.
set -euo pipefail

CACHE=${IKED_LIBRESWAN_CACHE:-/var/cache/iked-libreswan}
# Unpacked: libreswan itself, the two libraries that are not on a stock
# system and certutil for pluto's NSS database.
UNPACKED="libreswan libldns3 libevent-pthreads-2.1-7 libnss3-tools"
# Installed: the rest of libreswan's (and certutil's) shared libraries.
INSTALLED="libaudit1 libcap-ng0 libcrypt1 libcurl3-nss libevent-core-2.1-7 libldap-2.5-0 libnspr4
libnss3 libpam0g libselinux1 libsystemd0 libunbound8 iproute2 util-linux"

fail() { echo "libreswan-lab: $*" >&2; exit 2; }

cmd_setup() {
    [ "$(id -u)" = 0 ] || fail "setup needs root (it installs packages)"
    # Tests may call setup concurrently: one at a time, the others then
    # find the cache complete.
    mkdir -p "$(dirname "$CACHE")"
    exec 9> "$CACHE.lock"
    flock 9
    local want=() p
    for p in $INSTALLED; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || want+=("$p"); done
    if [ ${#want[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null
    fi
    if [ -f "$CACHE/complete" ]; then echo "$CACHE/root"; return 0; fi
    rm -rf "$CACHE"; mkdir -p "$CACHE/download"
    # apt-get download writes as _apt where it can; the cache is root's.
    chmod 755 "$CACHE" "$CACHE/download"
    if ! (cd "$CACHE/download" && apt-get download -q $UNPACKED >/dev/null 2>&1); then
        apt-get update -qq
        (cd "$CACHE/download" && apt-get download -q $UNPACKED >/dev/null) || fail "cannot download $UNPACKED"
    fi
    local deb
    for deb in "$CACHE"/download/*.deb; do dpkg-deb -x "$deb" "$CACHE/root"; done
    rm -rf "$CACHE/download"
    local missing
    missing=$(LD_LIBRARY_PATH="$CACHE/root/usr/lib/x86_64-linux-gnu" ldd \
        "$CACHE/root/usr/libexec/ipsec/pluto" "$CACHE/root/usr/libexec/ipsec/whack" \
        "$CACHE/root/usr/libexec/ipsec/addconn" "$CACHE/root/usr/bin/certutil" | grep 'not found' || true)
    [ -z "$missing" ] || fail "libraries missing for the unpacked libreswan: $missing"
    LD_LIBRARY_PATH="$CACHE/root/usr/lib/x86_64-linux-gnu" "$CACHE/root/usr/libexec/ipsec/pluto" --version \
        | head -n1 > "$CACHE/version"
    touch "$CACHE/complete"
    echo "$CACHE/root"
}

require_setup() {
    [ -f "$CACHE/complete" ] || fail "not set up: run 'tests/lab/libreswan.sh setup' as root first"
}

cmd_exec() {
    require_setup
    [ $# -gt 0 ] || fail "usage: libreswan.sh exec CMD..."
    local root="$CACHE/root" cmd=$1; shift
    case $cmd in
        */*) ;;
        certutil) cmd=$root/usr/bin/certutil;;
        # strongSwan's /usr/sbin/ipsec may be installed: ours is the unpacked one.
        ipsec) cmd=$root/usr/sbin/ipsec;;
        *) cmd=/usr/libexec/ipsec/$cmd;;
    esac
    # unshare -m makes the mounts private: the bind mount stays in here.
    exec unshare -m --propagation private /bin/sh -c '
        mount --bind "$1/usr/libexec" /usr/libexec || exit 2
        export LD_LIBRARY_PATH="$1/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        shift
        exec "$@"' sh "$root" "$cmd" "$@"
}

case ${1:-} in
    setup) cmd_setup;;
    root) require_setup; echo "$CACHE/root";;
    exec) shift; cmd_exec "$@";;
    *) echo "usage: $0 setup | root | exec CMD..." >&2; exit 2;;
esac
