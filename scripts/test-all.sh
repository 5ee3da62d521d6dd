#!/usr/bin/env bash
# Runs every test of the project on a Debian 12 machine, as root: installs
# what is missing (apt packages, the _iked user), builds, then runs the unit,
# property and in-process tests and the root tests (namespaces, privilege
# drop). Idempotent. Exit status 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "test-all: $*" >&2; exit 1; }
# Each step prints its start and, with the next step (or the end), how long
# it took, so a slow step is visible in CI's log.
started=$SECONDS
step_name=""
step_started=$SECONDS
step_done() {
    [ -n "$step_name" ] && echo "--- $step_name: $((SECONDS - step_started)) s (total $((SECONDS - started)) s)"
    return 0
}
step() { step_done; step_name="$*"; step_started=$SECONDS; echo; echo "=== $* ==="; }
trap 'status=$?; step_done; echo "test-all: exit $status after $((SECONDS - started)) s"' EXIT
# Test steps run to the end even when one fails; the failures are listed
# at the end and make the exit status non-zero.
failed=()
run() { "$@" || failed+=("$step_name: $*"); }

[ "$(id -u)" = 0 ] || die "run as root (tests use network namespaces and drop privileges): sudo $0"
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (https://rustup.rs), then rerun"

step "packages"
need=""
# nftables: the road-warrior tests' NAT (masquerade) namespace, on this
# machine and in the kernel lab (which runs this machine's root file system).
for p in pkg-config libssl-dev iproute2 iputils-ping tcpdump psmisc mandoc nftables \
         charon-systemd strongswan-swanctl libcharon-extra-plugins \
         debootstrap dpkg-dev fakeroot; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    echo "installing:$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null
else
    echo "all present"
fi

step "libreswan 4.10 peer (downloaded and unpacked once, cached)"
# Its Debian package conflicts with strongSwan's: tests/lab/libreswan.sh
# unpacks it beside it. The tests would do this themselves; here its
# download shows in the log with its own time.
run tests/lab/libreswan.sh setup

step "unprivileged users"
# One user per child process (iked(8)): ikev2 runs as _iked, pfkey as
# _iked_pfkey, ca as _iked_ca, each with a group of its own.
for u in _iked _iked_pfkey _iked_ca; do
    if ! id "$u" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/empty --shell /usr/sbin/nologin "$u"
        echo "created $u"
    else
        echo "$u exists"
    fi
done

step "build"
cargo build --workspace --all-targets

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

step "fuzz: mutations of real IKE messages through the decoder (bounded in time)"
# Prints the executions per second and the total executed.
IKED_FUZZ_SECONDS=${IKED_FUZZ_SECONDS:-60} \
    run cargo test -p iked-common --test wire_fuzz -- --nocapture

step "fuzz: the IKEv2 engine's states (bounded in time, release build)"
# Two engines driven through every state with mutated, spliced, dropped and
# reordered datagrams, out-of-order IPC replies and timers. Prints the
# executions, the rate, the seeds and how often each state was reached; a
# failure prints the seed and the command that replays it. Release: a debug
# build runs a few times slower.
IKED_ENGINE_FUZZ_SECONDS=${IKED_ENGINE_FUZZ_SECONDS:-60} \
    run cargo test --release -p iked-ikev2 --test engine_fuzz -- --nocapture

# Hostile load (issue 10). Each in a step of its own, alone on the machine,
# with its numbers printed; the workspace run below skips them.
step "flood: spoofed IKE_SA_INIT at 10k/s against iked while strongSwan connects"
run cargo test -p iked-tests --test flood -- --include-ignored --nocapture

step "IPC load: thousands of policies, 5,000 kernel requests, 20,000 half-open SAs"
run cargo test -p iked-tests --test ipc_load -- --include-ignored --nocapture

# Remote access (issue 14), each file in a step of its own so that its
# time shows; the workspace run below skips them.
step "road warriors: strongSwan EAP-MSCHAPv2 clients beside and behind a NAT, refusals (this kernel, IKE level)"
run cargo test -p iked-tests --test interop_roadwarrior -- --include-ignored --nocapture --test-threads=1

step "iked as a road-warrior client of iked and of strongSwan (address on the interface)"
run cargo test -p iked-tests --test interop_vip_client -- --include-ignored --nocapture --test-threads=1

step "kernel lab: four road warriors, two behind one NAT, ping through ESP at once; iked as client through ESP; refusals install nothing"
run cargo test -p iked-tests --test kernel_lab_roadwarrior -- --include-ignored --nocapture

step "kernel lab: MOBIKE (a strongSwan client changes its address) and a NAT mapping change"
run cargo test -p iked-tests --test kernel_lab_mobike -- --include-ignored --nocapture

step "Debian package: build, install in a clean root, start, reload, stop, purge"
# The clean Debian 12 root is made once with debootstrap and cached in
# /var/cache/iked-package-root.
run cargo test -p iked-tests --test package -- --include-ignored --nocapture

# The operator's interface (issue 16): daemons started and reloaded,
# ikectl commands, monitor streams and logs under load, each test alone.
step "operator's interface: every ikectl command, stats and monitor, live reloads, log lines, load checks"
run cargo test -p iked-tests --test ikectl_commands --test stats_monitor --test reload_live \
    --test log_lines --test load_checks -- --include-ignored --nocapture --test-threads=1

step "tests (unit, property, in-process, root, strongSwan, kernel lab, demo)"
# The fuzz tests run again here, briefly (their default of a few seconds).
run cargo test --workspace --no-fail-fast -- --include-ignored \
    --skip strongswan_gets_through_a_spoofed_ike_sa_init_flood \
    --skip thousands_of_policies_queued_kernel_requests_and_a_huge_show_sa_never_stall_ipc \
    --skip a_child_that_stops_reading_makes_the_parent_fail_closed_at_the_queue_bound \
    --skip strongswan_road_warriors_beside_and_behind_a_nat_get_distinct_pool_addresses_over_eap \
    --skip wrong_password_unknown_user_address_outside_the_pool_and_selectors_outside_the_lease_are_refused \
    --skip an_empty_pool_refuses_the_next_client \
    --skip a_client_behind_the_nat_that_crashes_and_reconnects_gets_its_address_back_and_its_neighbour_keeps_its_sa \
    --skip iked_client_gets_an_address_from_an_iked_gateway_on_its_interface_until_terminate \
    --skip iked_client_gets_an_address_from_a_strongswan_gateway_on_its_interface_until_terminate \
    --skip four_road_warriors_two_behind_one_nat_ping_the_protected_host_through_esp_at_once \
    --skip iked_client_of_an_iked_gateway_pings_from_its_leased_address_through_esp \
    --skip refused_road_warriors_install_nothing_in_a_kernel_with_esp \
    --skip strongswan_client_changes_its_address_and_keeps_its_tunnel \
    --skip a_nat_mapping_change_is_followed_without_mobike \
    --skip the_debian_package_installs_starts_reloads_stops_and_purges \
    --skip every_command_in_text_and_json_against_one_daemon \
    --skip completions_are_generated_for_bash_zsh_and_fish \
    --skip sa_commands_delete_with_the_peer \
    --skip a_control_group_member_may_not_load_files \
    --skip monitor_sees_a_handshake_rekey_delete_and_failure_in_order_and_stats_count_them \
    --skip monitor_text_shows_a_reload_and_stats_fail_clearly_without_a_daemon \
    --skip reload_adds_changes_and_removes_policies_with_live_sas_atomically \
    --skip a_child_that_does_not_answer_the_prepare_aborts_the_reload_for_all \
    --skip every_line_is_whole_under_load_with_one_prefix \
    --skip refusals_reach_syslog_at_the_default_level_under_the_chosen_facility \
    --skip the_line_checks_tell_good_lines_from_bad_ones \
    --skip bad_configurations_stop_the_start_with_file_line_col_and_the_reason \
    --skip files_others_can_read_stop_the_start_naming_the_file_and_its_mode \
    --skip xfrm_algorithms_are_asked_from_the_kernel \
    --skip a_refused_reload_keeps_the_old_configuration_in_force

step_done
step_name=""
if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "test-all: FAILED:"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
echo
echo "test-all: every step passed"
