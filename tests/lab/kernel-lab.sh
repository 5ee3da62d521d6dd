#!/usr/bin/env bash
# iked kernel lab: boots Debian's stock kernel (ESP, AH, PF_KEY, XFRM, veth,
# netns, AES-GCM, ChaCha20-Poly1305 as modules) in a disposable qemu VM so the
# kernel tests can install real SAs and send real ESP, on any build machine
# whose own kernel lacks them.
#
#   tests/lab/kernel-lab.sh setup                 root, once per machine: packages + kernel + initrd
#   tests/lab/kernel-lab.sh run [opts] -- CMD...  boot, run CMD as root in the same cwd, power off;
#                                                 exits with CMD's status (124: VM did not finish)
#   options: --timeout SECONDS (300)  --mem MiB (1024)  --cpus N (2)  --share DIR (repeatable)
#
# Inside the VM the host root file system is visible read-only below a tmpfs
# overlay (so target/ binaries run as they are), and the current directory
# plus every --share DIR are mounted writable at their own paths. 9p cannot
# hold sockets or FIFOs: keep runtime state under the VM's /tmp or /run.
set -euo pipefail

LAB_CACHE=${IKED_LAB_CACHE:-/var/cache/iked-kernel-lab}
LAB_PACKAGES="qemu-system-x86 busybox-static cpio kmod iproute2 iputils-ping tcpdump"
# Modules the initrd needs before the root file system is reachable (9p over virtio, overlayfs).
EARLY_MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev
drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci fs/netfs/netfs fs/fscache/fscache
net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay"

fail() { echo "kernel-lab: $*" >&2; exit 2; }

kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1
}

cmd_setup() {
    [ "$(id -u)" = 0 ] || fail "setup needs root (it installs packages)"
    # Tests may call setup concurrently: one at a time, the others then
    # find the cache complete.
    mkdir -p "$(dirname "$LAB_CACHE")"
    exec 9> "$LAB_CACHE.lock"
    flock 9
    local want=() p
    for p in $LAB_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || want+=("$p"); done
    if [ ${#want[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null
    fi
    if [ -f "$LAB_CACHE/complete" ]; then echo "kernel-lab: ready ($(cat "$LAB_CACHE/release"))"; return 0; fi
    local pkg; pkg=$(kernel_package)
    if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(kernel_package); fi
    [ -n "$pkg" ] || fail "apt knows no linux-image-amd64 dependency"
    rm -rf "$LAB_CACHE"; mkdir -p "$LAB_CACHE/download"
    (cd "$LAB_CACHE/download" && apt-get download -q "$pkg" >/dev/null) || fail "cannot download $pkg"
    dpkg-deb -x "$LAB_CACHE"/download/*.deb "$LAB_CACHE/kernel"
    rm -rf "$LAB_CACHE/download"
    local release; release=$(ls "$LAB_CACHE/kernel/lib/modules")
    depmod -b "$LAB_CACHE/kernel" "$release"
    echo "$release" > "$LAB_CACHE/release"
    make_initrd "$release"
    touch "$LAB_CACHE/complete"
    echo "kernel-lab: ready ($release)"
}

make_initrd() {
    local release=$1 tree="$LAB_CACHE/initrd-tree"
    local modules="$LAB_CACHE/kernel/lib/modules/$release/kernel" m names=""
    rm -rf "$tree"; mkdir -p "$tree"/{bin,dev,proc,sys,ro,rw,root,mods}
    cp /bin/busybox "$tree/bin/busybox"
    for m in $EARLY_MODULES; do
        cp "$modules/$m.ko"* "$tree/mods/"
        names="$names $(basename "$m")"
    done
    # Debian may ship compressed modules; busybox insmod wants them plain.
    for m in "$tree"/mods/*.ko.xz; do [ -e "$m" ] && xz -d "$m"; done
    for m in "$tree"/mods/*.ko.zst; do [ -e "$m" ] && zstd -q -d --rm "$m"; done
    cat > "$tree/init" <<INIT
#!/bin/busybox sh
bb=/bin/busybox
\$bb mount -t proc proc /proc; \$bb mount -t sysfs sysfs /sys; \$bb mount -t devtmpfs devtmpfs /dev
for m in $names; do \$bb insmod /mods/\$m.ko || echo "kernel-lab: cannot load \$m"; done
\$bb mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostfs /ro || { echo "kernel-lab: host fs not mounted"; \$bb poweroff -f; }
\$bb mount -t tmpfs -o size=75% overlay-rw /rw; \$bb mkdir -p /rw/upper /rw/work
\$bb mount -t overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work root /root
for d in proc sys dev; do \$bb mount --move /\$d /root/\$d; done
\$bb mount -t tmpfs run /root/run; \$bb mkdir -p /root/run/lab
\$bb mount -t 9p -o trans=virtio,version=9p2000.L control /root/run/lab
exec \$bb switch_root /root /bin/sh /run/lab/guest.sh
INIT
    chmod 755 "$tree/init"
    (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1 > "$LAB_CACHE/initrd.gz")
    rm -rf "$tree"
}

cmd_run() {
    local timeout=300 mem=1024 cpus=2 shares=()
    while [ $# -gt 0 ]; do
        case $1 in
            --timeout) timeout=$2; shift 2;;
            --mem) mem=$2; shift 2;;
            --cpus) cpus=$2; shift 2;;
            --share) shares+=("$(realpath "$2")"); shift 2;;
            --) shift; break;;
            *) fail "unknown option $1";;
        esac
    done
    [ $# -gt 0 ] || fail "usage: kernel-lab.sh run [options] -- CMD..."
    [ -f "$LAB_CACHE/complete" ] || fail "not set up: run 'tests/lab/kernel-lab.sh setup' as root first"
    command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing: run setup"
    local release; release=$(cat "$LAB_CACHE/release")
    # One VM at a time on this machine. Software emulation needs every core
    # it is given: two VMs side by side (cargo runs a file's tests in
    # parallel) each ran many times slower than alone, and one overran its
    # timeout in CI. The timeout counts from here, once the VM has the
    # machine; the wait for the lock is bounded too.
    exec 8> "$LAB_CACHE.run-lock"
    local waited=$SECONDS
    flock -w 3600 8 || fail "another kernel-lab VM held the run lock for an hour"
    waited=$((SECONDS - waited))
    [ "$waited" -lt 2 ] || echo "kernel-lab: waited ${waited}s for another VM to finish" >&2
    control=$(mktemp -d /tmp/iked-lab.XXXXXX)
    trap 'rm -rf "$control"' EXIT
    shares=("$(pwd)" "${shares[@]}")
    local qemu_shares=() guest_mounts="" n=0 s
    qemu_shares+=(-virtfs "local,path=/,mount_tag=hostfs,security_model=none,readonly=on,multidevs=remap")
    qemu_shares+=(-virtfs "local,path=$LAB_CACHE/kernel/lib/modules,mount_tag=modules,security_model=none,readonly=on")
    qemu_shares+=(-virtfs "local,path=$control,mount_tag=control,security_model=none")
    for s in "${shares[@]}"; do
        qemu_shares+=(-virtfs "local,path=$s,mount_tag=share$n,security_model=none,multidevs=remap")
        guest_mounts+="mkdir -p '$s' && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share$n '$s'"$'\n'
        n=$((n + 1))
    done
    printf '%q ' "$@" > "$control/command"
    cat > "$control/guest.sh" <<GUEST
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t tmpfs tmp /tmp
$guest_mounts
mkdir -p /lib/modules && mount -t 9p -o trans=virtio,version=9p2000.L,ro modules /lib/modules
ip link set lo up
cd '$(pwd)'
export IKED_KERNEL_LAB=1
echo "kernel-lab: kernel \$(uname -r), running: \$(cat /run/lab/command)" > /dev/ttyS0
sh -c "\$(cat /run/lab/command)" < /dev/null > /dev/ttyS0 2>&1
echo \$? > /run/lab/status
sync
poweroff -f
GUEST
    # Software emulation only: build machines are often VMs whose /dev/kvm
    # exists but does not work (nested virtualisation), and tcg boots in seconds.
    timeout "$timeout" qemu-system-x86_64 -accel tcg,thread=multi -m "$mem" -smp "$cpus" -nographic -no-reboot \
        -kernel "$LAB_CACHE/kernel/boot/vmlinuz-$release" -initrd "$LAB_CACHE/initrd.gz" \
        -append "console=ttyS0 panic=-1 loglevel=3" -nic none "${qemu_shares[@]}" < /dev/null \
        | tr -d '\r' | sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' \
        | grep -av -e 'SeaBIOS' -e '^iPXE' -e 'Press Ctrl-B' -e '^Booting from ROM' -e 'Probing EDD' -e '^$' || true
    if [ -f "$control/status" ]; then
        return "$(cat "$control/status")"
    fi
    echo "kernel-lab: the VM did not finish within ${timeout}s" >&2
    return 124
}

case ${1:-} in
    setup) cmd_setup;;
    run) shift; cmd_run "$@";;
    *) echo "usage: $0 setup | $0 run [--timeout S] [--mem MiB] [--cpus N] [--share DIR] -- CMD..." >&2; exit 2;;
esac
