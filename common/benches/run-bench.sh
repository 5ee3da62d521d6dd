#!/bin/sh
# run-bench.sh - our per-handshake crypto cost next to `openssl speed` for the
# same primitives on this machine: the ceiling the daemon will be compared to.
#
#   common/benches/run-bench.sh [seconds per item, default 1]
#
# Prints one table: for each primitive, our rate (through iked_common::crypto),
# OpenSSL's own rate (openssl speed), and ours/openssl. For one handshake per
# side it also prints a floor built from openssl speed figures:
#   keygen + derive (2 x the DH op) + one seal + one open + N HMACs,
# where N counts the PRF calls of that side (SKEYSEED, prf+ blocks for SK_*
# and Child SA keys, two AUTH computations of three PRF calls each).
set -eu
SECONDS_PER_ITEM=${1:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "machine: $(nproc) cores, $(openssl version), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && IKED_BENCH_SECONDS=$SECONDS_PER_ITEM cargo bench -q -p iked-common --bench crypto_handshake) \
    | grep '^iked-bench ' > "$OUT/ours"

speed() { # name, then openssl speed arguments
    name=$1; shift
    openssl speed -mr -seconds "$SECONDS_PER_ITEM" "$@" 2>/dev/null | sed -n "s/^/$name /p" >> "$OUT/openssl"
}
speed ecdhx25519 ecdhx25519
speed ffdh2048 ffdh2048
speed aes128gcm -bytes 256 -evp aes-128-gcm
speed aes256cbc -bytes 256 -evp aes-256-cbc
speed hmac64 -bytes 64 -hmac sha256
speed hmac320 -bytes 320 -hmac sha256

python3 - "$OUT/ours" "$OUT/openssl" <<'PY'
import sys
ours = {}
for line in open(sys.argv[1]):
    _, name, ops, _us = line.split()
    ours[name] = float(ops)
ssl = {}
for line in open(sys.argv[2]):
    name, rec = line.split(' ', 1)
    f = rec.strip().split(':')
    if rec.startswith('+F5:') or rec.startswith('+F8:'):   # +F5:idx:bits:ops/s:s/op (ecdh, ffdh)
        ssl[name] = float(f[3])
    elif rec.startswith('+F:'):                            # +F:idx:alg:bytes/s (one -bytes size)
        ssl[name] = float(f[3]) / {'aes128gcm': 256, 'aes256cbc': 256, 'hmac64': 64, 'hmac320': 320}[name]
missing = [n for n in ('ecdhx25519', 'ffdh2048', 'aes128gcm', 'aes256cbc', 'hmac64', 'hmac320') if n not in ssl]
if missing:
    sys.exit(f'openssl speed gave no figure for {missing}')
t = {k: 1e6 / v for k, v in ssl.items()}   # microseconds per op
cbc_etm = 1e6 / (t['aes256cbc'] + t['hmac320'])
floors = {
    # keygen ~ derive for both (one scalar multiplication / exponentiation each)
    'handshake_initiator_x25519_aes128gcm16': 2 * t['ecdhx25519'] + 2 * t['aes128gcm'] + 14 * t['hmac64'],
    'handshake_responder_x25519_aes128gcm16': 2 * t['ecdhx25519'] + 2 * t['aes128gcm'] + 14 * t['hmac64'],
    'handshake_initiator_modp2048_aes256cbc_sha256': 2 * t['ffdh2048'] + 2 * 1e6 / cbc_etm + 18 * t['hmac64'],
    'handshake_responder_modp2048_aes256cbc_sha256': 2 * t['ffdh2048'] + 2 * 1e6 / cbc_etm + 18 * t['hmac64'],
}
rows = [
    ('x25519_derive', 'ecdhx25519 derive', ssl['ecdhx25519']),
    ('x25519_keygen', 'ecdhx25519 derive', ssl['ecdhx25519']),
    ('modp2048_derive', 'ffdh2048 derive (ffdhe2048)', ssl['ffdh2048']),
    ('modp2048_keygen', 'ffdh2048 derive (ffdhe2048)', ssl['ffdh2048']),
    ('aes128gcm16_seal_256', 'aes-128-gcm 256 B', ssl['aes128gcm']),
    ('aes128gcm16_open_256', 'aes-128-gcm 256 B', ssl['aes128gcm']),
    ('aes256cbc_sha256_seal_256', 'aes-256-cbc 256 B + hmac 320 B', cbc_etm),
    ('aes256cbc_sha256_open_256', 'aes-256-cbc 256 B + hmac 320 B', cbc_etm),
    ('hmac_sha256_prf_64', 'hmac(sha256) 64 B', ssl['hmac64']),
] + [(name, 'floor from openssl speed', 1e6 / floor) for name, floor in floors.items()]
print(f"{'ours':48} {'ops/s':>10} {'us/op':>9} | {'openssl speed':32} {'ops/s':>11} {'us/op':>8} | ours/openssl")
for name, label, ref in rows:
    if name not in ours:
        sys.exit(f'benchmark gave no figure for {name}')
    print(f"{name:48} {ours[name]:10.0f} {1e6 / ours[name]:9.2f} | {label:32} {ref:11.0f} {1e6 / ref:8.2f} | {ours[name] / ref:6.2f}x")
PY
