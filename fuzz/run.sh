#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each (default 20), from
# the seeds: proto/golden (messages), examples/ (task files), fuzz/seeds
# (host lists, node files), and for core_session whole sessions built from
# the golden messages. Stable toolchain: --sanitizer none (no nightly -Z
# flags are needed then; libFuzzer's coverage-guided search still runs).
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-20}"
golden=proto/golden

# Sessions for core_session: frames separated by 0xC1, each led by a
# header byte (bit 0: manager socket; bits 1-2: peer; bit 3: admin;
# bits 4-7: seconds/10 the clock moves).
sessions=fuzz/corpus/core_session-seeds
mkdir -p "$sessions"
frame() { printf "\\x$1"; cat "$golden/$2.msgpack"; printf '\xc1'; }
{
    frame 00 from_client.hello
    frame 01 from_manager.register
    frame 00 from_client.submit
    frame 01 from_manager.heartbeat
    frame 01 from_manager.results
    frame 02 from_client.hello
    frame 02 from_client.watch
    frame 02 from_client.command.cancel
    frame 00 from_client.command.status
    frame 11 from_manager.drain_request
    frame 01 from_manager.goodbye
    frame 08 from_client.command.shutdown
} >"$sessions/session"
for file in "$golden"/*.msgpack; do
    { printf '\x00'; cat "$file"; } >"$sessions/client-$(basename "$file")"
    { printf '\x01'; cat "$file"; } >"$sessions/manager-$(basename "$file")"
done

run() {
    local target="$1"
    shift
    mkdir -p "fuzz/corpus/$target"
    echo "== fuzz $target for $seconds s"
    cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" "$@" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
}

cargo fuzz build --sanitizer none
run client_messages "$golden"
run manager_messages "$golden"
run core_session "$sessions"
run task_files examples
run host_lists fuzz/seeds/hostlist
run node_files fuzz/seeds/nodefile
