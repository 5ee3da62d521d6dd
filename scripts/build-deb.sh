#!/bin/bash
# Builds the Debian package of iked from this workspace with dpkg-deb:
#
#     ./scripts/build-deb.sh [--debug] [--no-build] [OUTDIR]
#
# writes OUTDIR/iked_VERSION-1_ARCH.deb (OUTDIR defaults to target/debian).
# A release build by default; --debug packs target/debug (the tests do,
# to reuse the build they already have); --no-build packs what is there.
#
# Why a plain dpkg-deb script: dh-cargo builds against Debian's packaged
# crates (librust-*-dev), and several of ours are not packaged in Debian 12;
# cargo-deb is not in Debian and would have to be built from crates.io on
# every CI machine. dpkg-deb and dpkg-shlibdeps come with dpkg-dev, and
# every file and mode of the package is visible here.
# DEBFULLNAME and DEBEMAIL name the maintainer, as for dch(1).
set -euo pipefail

cd "$(dirname "$0")/.."
workspace=$PWD
profile=release
build=1
outdir=
for arg in "$@"; do
    case "$arg" in
        --debug) profile=debug ;;
        --no-build) build= ;;
        -*) echo "build-deb.sh: unknown option $arg" >&2; exit 2 ;;
        *) outdir=$arg ;;
    esac
done
outdir=${outdir:-$workspace/target/debian}

for tool in dpkg-deb dpkg-shlibdeps fakeroot gzip; do
    command -v "$tool" >/dev/null || {
        echo "build-deb.sh: $tool is missing: apt-get install dpkg-dev fakeroot" >&2
        exit 1
    }
done

if [ -n "$build" ]; then
    if [ "$profile" = release ]; then
        cargo build --release -p iked -p ikectl
    else
        cargo build -p iked -p ikectl
    fi
fi
bin=$workspace/target/$profile
for b in iked ikectl; do
    [ -x "$bin/$b" ] || { echo "build-deb.sh: $bin/$b is not built" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
debversion=$version-1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
dist=$workspace/dist

install -d -m 0755 "$root/usr/sbin" "$root/usr/share/man/man8" \
    "$root/usr/share/man/man5" "$root/usr/share/doc/iked" \
    "$root/lib/systemd/system" "$root/usr/lib/tmpfiles.d" \
    "$root/usr/share/lintian/overrides" "$root/DEBIAN"
install -m 0755 "$bin/iked" "$bin/ikectl" "$root/usr/sbin/"
# Debug info stays in target/; the package carries the code only (as
# Debian's dh_strip does it).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$root/usr/sbin/iked" "$root/usr/sbin/ikectl"
for page in man/*.8; do
    gzip -9n <"$page" >"$root/usr/share/man/man8/$(basename "$page").gz"
done
for page in man/*.5; do
    gzip -9n <"$page" >"$root/usr/share/man/man5/$(basename "$page").gz"
done
chmod 0644 "$root"/usr/share/man/man*/*.gz

# The configuration and the certificate store of iked(8): the store's
# private/ only root may enter.
install -d -m 0755 "$root/etc/iked" "$root/etc/iked/ca" "$root/etc/iked/certs" \
    "$root/etc/iked/crls" "$root/etc/iked/pubkeys"
install -d -m 0700 "$root/etc/iked/private"
install -m 0600 "$dist/debian/iked.conf" "$root/etc/iked/iked.conf"

install -m 0644 "$dist/systemd/iked.service" "$root/lib/systemd/system/"
install -m 0644 "$dist/tmpfiles.d/iked.conf" "$root/usr/lib/tmpfiles.d/iked.conf"
install -m 0644 "$dist/debian/copyright" "$root/usr/share/doc/iked/copyright"
install -m 0644 "$dist/debian/lintian-overrides" "$root/usr/share/lintian/overrides/iked"
# The maintainer as Debian's tools take it from the environment.
maintainer="${DEBFULLNAME:-iked builder} <${DEBEMAIL:-root@localhost}>"
{
    echo "iked ($debversion) unstable; urgency=medium"
    echo
    echo "  * Built from the iked workspace."
    echo
    echo " -- $maintainer  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$root/usr/share/doc/iked/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/iked/changelog.Debian.gz"

install -m 0755 "$dist/debian/postinst" "$dist/debian/prerm" "$dist/debian/postrm" \
    "$root/DEBIAN/"
echo /etc/iked/iked.conf >"$root/DEBIAN/conffiles"

# The shared libraries the binaries link (libc6, libssl3), as Debian's
# own packages compute them.
mkdir -p "$stage/src/debian"
printf 'Source: iked\n\nPackage: iked\nArchitecture: any\n' >"$stage/src/debian/control"
depends=$(cd "$stage/src" && dpkg-shlibdeps -O -e"$root/usr/sbin/iked" -e"$root/usr/sbin/ikectl" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

cat >"$root/DEBIAN/control" <<CONTROL
Package: iked
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends, passwd, procps
Section: net
Priority: optional
Description: IKEv2 VPN daemon, privilege-separated (after OpenBSD iked)
 iked negotiates IPsec tunnels with IKEv2 (RFC 7296) and installs the ESP
 SAs through Linux XFRM or PF_KEY. A root parent starts three confined
 children (protocol, kernel key tables, long-term secrets), each chrooted
 under a user of its own. It reads an iked.conf(5) modelled on OpenBSD's
 and is controlled with ikectl(8).
 .
 The systemd unit iked.service is installed but not enabled: write
 /etc/iked/iked.conf, then run systemctl enable --now iked.
CONTROL

mkdir -p "$outdir"
deb=$outdir/iked_${debversion}_$arch.deb
fakeroot dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
