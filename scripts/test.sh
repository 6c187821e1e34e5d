#!/usr/bin/env bash
# The single command that runs pgsnap's whole test suite:
#
#   bash scripts/test.sh
#
# 1. scripts/setup.sh --kafka installs the binaries the tests need, including
#                             the tansu broker venv (idempotent; well under 2 s
#                             when everything is already there)
# 2. cargo fmt --check                                  \
# 3. cargo clippy -D warnings                            |
# 4. cargo doc, warnings denied                          | skipped with
# 5. cargo deny check bans licenses sources (deny.toml)  | PGSNAP_TEST_SKIP_LINT=1
# 6. cargo package of every published crate, each        |
#    holding only src/, README.md and LICENSE           /
# 7. the files-only build of the pgsnap command pulls in neither librdkafka
#    nor the MySQL client nor the test support crate (cargo tree), and lints
# 8. cargo test (all targets, then doc tests)
# 9. the examples' black-box tests again, through `pgsnap <subcommand>`
#    (PGSNAP_FRONT=cli): one test list for both command-line fronts
#
# Tests start their own throwaway PostgreSQL clusters and tansu (Kafka)
# brokers through the pgsnap-test-support crate; nothing needs to be running
# beforehand.
# Exits non-zero on the first failing step; prints each step's time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -t 1 ]; then
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
fi

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-test.XXXXXX")"
trap 'rm -rf "$LOG_DIR"' EXIT

STEP_NAMES=()
STEP_TIMES=()

elapsed_since() {
    # Seconds (one decimal) since $1, an $EPOCHREALTIME value.
    # (The decimal separator follows the locale: drop either.)
    local start_us=${1//[.,]/} now_us=${EPOCHREALTIME//[.,]/}
    local ds=$(((now_us - start_us) / 100000))
    printf '%d.%d' $((ds / 10)) $((ds % 10))
}

print_timings() {
    echo
    echo "==> step timings"
    local i
    for i in "${!STEP_NAMES[@]}"; do
        printf '    %-12s %8s s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}"
    done
}

# One line over all cargo test runs so far ("test result: ok. 12 passed;
# 0 failed; 1 ignored; ..."), in the plain 'N passed, N failed' form.
print_test_summary() {
    local logs=("$LOG_DIR"/*.log)
    [ -e "${logs[0]}" ] || return 0
    cat "${logs[@]}" | awk '
        /^test result: / {
            for (i = 1; i <= NF; i++) {
                if ($(i + 1) ~ /^passed/) passed += $i
                if ($(i + 1) ~ /^failed/) failed += $i
                if ($(i + 1) ~ /^ignored/) ignored += $i
            }
        }
        END { printf "\ntests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }
    '
}

# step NAME COMMAND...: runs the command, records its time, stops on failure.
step() {
    local name=$1
    shift
    echo
    echo "==> $name: $*"
    local start=$EPOCHREALTIME rc=0
    "$@" || rc=$?
    local took
    took=$(elapsed_since "$start")
    STEP_NAMES+=("$name")
    STEP_TIMES+=("$took")
    if [ "$rc" -ne 0 ]; then
        echo "==> $name FAILED (exit $rc) after ${took} s"
        print_timings
        print_test_summary
        exit "$rc"
    fi
    echo "==> $name ok (${took} s)"
}

# cargo_test LOG_NAME ARGS...: runs `cargo test ARGS...`, keeping a copy of
# its output to count the results at the end.
cargo_test() {
    local log="$LOG_DIR/$1.log"
    shift
    echo "    cargo test $*"
    cargo test "$@" 2>&1 | tee "$log"
}

# Dependencies: licenses, sources and duplicate versions (deny.toml). No
# advisories: they need the RustSec database from the network. Needs no network
# once cargo has every crate of Cargo.lock (a fresh machine downloads the few
# that only other platforms build).
deny_check() {
    cargo deny --locked check --hide-inclusion-graph bans licenses sources
}

# Every published crate packages (as `cargo publish` would, without the
# verifying build), and its .crate holds only what a user needs.
package_crates() {
    # (A step runs in an `||` list, where `set -e` does not apply: every
    # failure returns explicitly.)
    local meta target_dir crates=()
    meta=$(cargo metadata --no-deps --locked --format-version 1) || return 1
    target_dir=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta") || return 1
    # "name version" of each member without `publish = false`.
    mapfile -t crates < <(python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] != []:
        print(p["name"], p["version"])' <<<"$meta") || return 1
    local args=() c
    for c in "${crates[@]}"; do args+=(-p "${c% *}"); done
    # Offline first (the index cache is normally complete after a build);
    # online if the cache lacks an entry. Cargo warns, once per target, that
    # tests and benches are left out: that is the point, so those lines go.
    local quiet='^warning: ignoring (test|benchmark|example) '
    if ! cargo package --offline --no-verify --allow-dirty "${args[@]}" 2>&1 | grep -Ev "$quiet"; then
        echo "    retrying online"
        cargo package --no-verify --allow-dirty "${args[@]}" 2>&1 | grep -Ev "$quiet" || return 1
    fi
    local allowed='^[^/]+/(src/.*\.rs|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|README\.md|LICENSE|\.cargo_vcs_info\.json)$'
    local name version file extra
    for c in "${crates[@]}"; do
        name=${c% *} version=${c#* }
        file="$target_dir/package/$name-$version.crate"
        [ -f "$file" ] || { echo "$file is missing after cargo package"; return 1; }
        extra=$(tar -tzf "$file" | grep -Ev "$allowed" || true)
        if [ -n "$extra" ]; then
            echo "$name: the package holds files a user does not need (set \`include\` in its Cargo.toml):"
            echo "$extra"
            return 1
        fi
        printf '    %-22s %3d files, %6s KiB\n' "$name" "$(tar -tzf "$file" | wc -l)" "$(($(stat -c %s "$file") / 1024))"
    done
}

TOTAL_START=$EPOCHREALTIME

step setup bash scripts/setup.sh --kafka

if [ "${PGSNAP_TEST_SKIP_LINT:-0}" = "1" ]; then
    echo
    echo "==> fmt, clippy, docs, deny, package: skipped (PGSNAP_TEST_SKIP_LINT=1)"
else
    step fmt cargo fmt --all --check
    step clippy cargo clippy --workspace --all-targets -- -D warnings
    step docs env RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --quiet
    step deny deny_check
    step package package_crates
fi

# The files-only command must not build what it does not use.
files_only_tree() {
    local tree
    tree=$(cargo tree -p pgsnap-cli --no-default-features --features files -e normal)
    if grep -E 'rdkafka-sys|mysql_async|pgsnap-test-support' <<<"$tree"; then
        echo "the files-only build of pgsnap-cli depends on the crates above"
        return 1
    fi
    echo "    files-only pgsnap: $(grep -c . <<<"$tree") dependency lines, none of rdkafka-sys, mysql_async, pgsnap-test-support"
    if [ "${PGSNAP_TEST_SKIP_LINT:-0}" != "1" ]; then
        cargo clippy --quiet -p pgsnap-cli --no-default-features --features files -- -D warnings
    fi
}
step features files_only_tree

step test cargo_test test --workspace --all-targets --no-fail-fast
step doctest cargo_test doctest --workspace --doc --no-fail-fast
cli_front() {
    PGSNAP_FRONT=cli cargo_test cli-front -p pgsnap-examples --test it --no-fail-fast
}
step cli-front cli_front

print_timings
printf '    %-12s %8s s\n' total "$(elapsed_since "$TOTAL_START")"

print_test_summary
