#!/usr/bin/env bash
# The iked demo: two gateways in network namespaces, each with a protected
# host behind it, an IKEv2 tunnel between them (PSK, AES-GCM, X25519, tunnel
# mode), a ping from host to host through ESP, and a one-line verdict.
#
#   scripts/demo.sh                    both gateways run iked
#   scripts/demo.sh --peer strongswan  gateway B runs strongSwan instead
#
#   host-a 10.1.1.10 -- gw-a 10.1.1.1 | 198.18.0.1 ==ESP== 198.18.0.2 | 10.2.1.1 gw-b -- 10.2.1.10 host-b
#
# Run as root on Debian 12. Installs what it needs; removes only what it
# created. When this kernel cannot carry ESP, it runs itself inside the
# project's kernel-lab VM (Debian's stock kernel under qemu).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PEER=iked
INSIDE_LAB=0
while [ $# -gt 0 ]; do
    case $1 in
        --peer) PEER=${2:-}; shift 2 ;;
        --inside-lab) INSIDE_LAB=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "demo: unknown argument $1 (try --help)"; exit 2 ;;
    esac
done
case $PEER in iked|strongswan) ;; *) echo "demo: --peer must be iked or strongswan"; exit 2 ;; esac

say() { echo "demo: $*"; }
die() { echo "demo: FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the demo creates network namespaces): sudo $0"

BIN=$ROOT/target/release
if [ "$INSIDE_LAB" = 0 ]; then
    command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (rustup), then rerun"
    need=""
    for p in pkg-config libssl-dev iproute2 iputils-ping tcpdump; do
        dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    if [ "$PEER" = strongswan ]; then
        for p in charon-systemd strongswan-swanctl libcharon-extra-plugins; do
            dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
        done
    fi
    if [ -n "$need" ]; then
        say "installing$need"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null \
            || die "apt-get install$need failed"
    fi
    # One user per child process (iked(8)): ikev2, pfkey, ca.
    for u in _iked _iked_pfkey _iked_ca; do
        id $u >/dev/null 2>&1 || { useradd --system --user-group --home-dir /var/empty --shell /usr/sbin/nologin $u && say "created user $u"; }
    done
    say "building iked (release)"
    cargo build --release --quiet -p iked -p ikectl || die "build failed"

    # Can this kernel carry ESP? Try an SA in a scratch namespace.
    probe=iked-demo-probe-$$
    ip netns add $probe 2>/dev/null || die "cannot create a network namespace (kernel without netns?)"
    if ! ip -n $probe xfrm state list >/dev/null 2>&1; then
        ip netns del $probe; die "this kernel has no XFRM (CONFIG_XFRM_USER): iked cannot install SAs"
    fi
    if ! ip -n $probe xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode tunnel \
            aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128 2>/dev/null; then
        ip netns del $probe
        say "this kernel cannot carry ESP (no esp4): running the demo inside the kernel-lab VM"
        command -v qemu-system-x86_64 >/dev/null || say "installing qemu for the kernel lab"
        tests/lab/kernel-lab.sh setup || die "kernel-lab setup failed"
        exec tests/lab/kernel-lab.sh run --timeout 600 -- env DEMO_VERBOSE="${DEMO_VERBOSE:-}" "$ROOT/scripts/demo.sh" --inside-lab --peer "$PEER"
    fi
    ip netns del $probe
fi

# Inside the VM (or on a kernel with ESP) from here on.
[ -x "$BIN/iked" ] || die "$BIN/iked is missing: build it first"
for u in _iked _iked_pfkey _iked_ca; do
    id $u >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/empty --shell /usr/sbin/nologin $u
done

RUN=$(mktemp -d /tmp/iked-demo.XXXXXX)
NS="demo-ha demo-a demo-b demo-hb"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    for ns in $NS; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$RUN"
}
trap cleanup EXIT

for ns in $NS; do
    ip netns list | grep -qw "^$ns" && die "namespace $ns exists already (a demo still running?)"
done
for ns in $NS; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add eth0 netns demo-ha type veth peer name lan netns demo-a
ip link add wan netns demo-a type veth peer name wan netns demo-b
ip link add lan netns demo-b type veth peer name eth0 netns demo-hb
ip -n demo-ha addr add 10.1.1.10/24 dev eth0; ip -n demo-ha link set eth0 up
ip -n demo-ha route add default via 10.1.1.1
ip -n demo-a addr add 10.1.1.1/24 dev lan; ip -n demo-a link set lan up
ip -n demo-a addr add 198.18.0.1/24 dev wan; ip -n demo-a link set wan up
ip -n demo-b addr add 198.18.0.2/24 dev wan; ip -n demo-b link set wan up
ip -n demo-b addr add 10.2.1.1/24 dev lan; ip -n demo-b link set lan up
ip -n demo-hb addr add 10.2.1.10/24 dev eth0; ip -n demo-hb link set eth0 up
ip -n demo-hb route add default via 10.2.1.1
for gw in demo-a demo-b; do ip netns exec $gw sysctl -qw net.ipv4.ip_forward=1; done
# No route to the far subnet by hand: once the tunnel is up, each gateway
# (iked, or strongSwan with install_routes) routes it towards the other in
# a table of its own, and the IPsec policies make that traffic travel
# inside ESP.
ip netns exec demo-a ping -c1 -W2 198.18.0.2 >/dev/null || die "the gateways cannot reach each other"
say "network: host-a 10.1.1.10 -- gw-a 198.18.0.1 <-> 198.18.0.2 gw-b -- host-b 10.2.1.10"

PSK="demo-psk-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
policy() { # side local peer srcnet dstnet srcid dstid mode
    cat <<EOF
# written by scripts/demo.sh
ikev2 "demo" $8 esp tunnel from $4 to $5 \\
    local $2 peer $3 \\
    ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 \\
    childsa enc aes-128-gcm group curve25519 \\
    srcid $6 dstid $7 psk "$PSK"
EOF
}
# iked refuses a configuration readable by others than root: write 0600.
umask 077
policy a 198.18.0.1 198.18.0.2 10.1.1.0/24 10.2.1.0/24 gw-a.demo gw-b.demo active > "$RUN/a.conf"
policy b 198.18.0.2 198.18.0.1 10.2.1.0/24 10.1.1.0/24 gw-b.demo gw-a.demo passive > "$RUN/b.conf"

start_iked() { # side
    ip netns exec demo-$1 "$BIN/iked" -d -f "$RUN/$1.conf" -s "$RUN/$1.sock" > "$RUN/$1.log" 2>&1 &
    PIDS+=($!)
}
start_strongswan_b() {
    mkdir -p "$RUN/swan/swanctl/conf.d"
    cat > "$RUN/swan/strongswan.conf" <<EOF
charon-systemd { journal { default = -1 } }
charon {
    load_modular = no
    load = random nonce openssl aes sha1 sha2 hmac gcm kdf curve25519 kernel-netlink socket-default vici
    install_routes = yes
    plugins { vici { socket = unix://$RUN/swan/charon.vici } }
    filelog { demo { path = $RUN/b.log
                     default = 1
                     ike = 2 } }
}
swanctl { load = random nonce openssl aes sha1 sha2 hmac pem pkcs1 pkcs8 x509 pubkey }
EOF
    cat > "$RUN/swan/swanctl/swanctl.conf" <<EOF
connections {
    demo {
        version = 2
        local_addrs = 198.18.0.2
        remote_addrs = 198.18.0.1
        proposals = aes128gcm16-prfsha256-x25519
        local { auth = psk
                id = gw-b.demo }
        remote { auth = psk
                 id = gw-a.demo }
        children { demo { local_ts = 10.2.1.0/24
                          remote_ts = 10.1.1.0/24
                          esp_proposals = aes128gcm16-x25519
                          mode = tunnel } }
    }
}
secrets { ike-demo { id-a = gw-a.demo
                     id-b = gw-b.demo
                     secret = "$PSK" } }
EOF
    STRONGSWAN_CONF=$RUN/swan/strongswan.conf ip netns exec demo-b /usr/sbin/charon-systemd \
        > "$RUN/swan/charon.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do [ -S "$RUN/swan/charon.vici" ] && break; sleep 0.1; done
    [ -S "$RUN/swan/charon.vici" ] || die "strongSwan did not start: $(cat "$RUN/swan/charon.out")"
    STRONGSWAN_CONF=$RUN/swan/strongswan.conf SWANCTL_DIR=$RUN/swan/swanctl \
        swanctl --load-all --noprompt --uri "unix://$RUN/swan/charon.vici" >/dev/null \
        || die "swanctl --load-all failed"
}

ip netns exec demo-a tcpdump -i wan -n -l esp > "$RUN/esp.txt" 2> "$RUN/tcpdump.err" &
PIDS+=($!)

if [ "$PEER" = strongswan ]; then start_strongswan_b; say "gateway B: strongSwan $(swanctl --version 2>/dev/null | awk '{print $2}')"; else start_iked b; say "gateway B: iked"; fi
start_iked a
say "gateway A: iked (initiator)"

START=$(date +%s%N); [ -n "${DEMO_VERBOSE:-}" ] && date +%T.%N
ikectl_a() { "$BIN/ikectl" -s "$RUN/a.sock" "$@"; }
up=0
while [ $(( ($(date +%s%N) - START) / 1000000000 )) -lt 30 ]; do
    json=$(ikectl_a --json show sa 2>&1)
    [ -n "${DEMO_VERBOSE:-}" ] && echo "$(date +%T.%N) $json" | cut -c1-200
    if echo "$json" | grep -q '"installed":true'; then up=1; break; fi
    printf '\rdemo: waiting for the tunnel ... %2ds' $(( ($(date +%s%N) - START) / 1000000000 ))
    sleep 0.5
done
echo
ms=$(( ($(date +%s%N) - START) / 1000000 ))
ELAPSED=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
[ "$up" = 1 ] || { tail -20 "$RUN/a.log"; die "no tunnel within 30 s (log above)"; }
say "tunnel up after ${ELAPSED}s"
[ -n "${DEMO_VERBOSE:-}" ] && grep -v ' key ' "$RUN/a.log"; date +%T.%N

echo "--- ikectl show sa (gateway A) ---"
ikectl_a show sa
if [ "$PEER" = iked ]; then
    echo "--- ikectl show sa (gateway B) ---"
    "$BIN/ikectl" -s "$RUN/b.sock" show sa
else
    echo "--- swanctl --list-sas (gateway B) ---"
    STRONGSWAN_CONF=$RUN/swan/strongswan.conf swanctl --list-sas --uri "unix://$RUN/swan/charon.vici"
fi

echo "--- ping host-a 10.1.1.10 -> host-b 10.2.1.10 through the tunnel ---"
ping_out=$(ip netns exec demo-ha ping -c 5 -i 0.2 -W 2 10.2.1.10)
echo "$ping_out" | tail -2
sleep 0.5
received=$(echo "$ping_out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
rtt=$(echo "$ping_out" | sed -n 's/^rtt.* = [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
esp=$(grep -c 'ESP(spi=' "$RUN/esp.txt")
echo "--- ESP on gateway A's wan (tcpdump), first lines ---"
head -4 "$RUN/esp.txt"

if [ "${received:-0}" -ge 4 ] && [ "$esp" -ge 8 ]; then
    echo "demo: PASS: iked <-> $PEER tunnel up in ${ELAPSED}s, $received/5 pings through ESP, rtt avg ${rtt} ms, $esp ESP packets seen"
    exit 0
fi
die "iked <-> $PEER: $received/5 pings answered, $esp ESP packets seen"
