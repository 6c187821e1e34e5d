#!/usr/bin/env bash
# End-to-end benchmark: pgsnap against pg_dump -j and raw parallel COPY, side by side in one
# run on the same throwaway PostgreSQL (pgbench data), plus pgsnap's peak RSS at two sizes.
#
#   bash benches/e2e.sh                 # scale 50 (~500 MB of COPY text), 5 runs each
#   SCALE=10 RUNS=2 bash benches/e2e.sh # quicker
#   BASELINE_BIN=/path/to/older/snapshot_to_files bash benches/e2e.sh
#                                       # adds an older build's rows, side by side
#
# Prints a markdown table (hyperfine) and the RSS figures; paste them into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCALE="${SCALE:-50}"
SMALL_SCALE="${SMALL_SCALE:-10}"
RUNS="${RUNS:-5}"
JOBS="${JOBS:-2}"

bash scripts/setup.sh >/dev/null
cargo build --release --example snapshot_to_files 2>&1 | tail -1
BIN="$PWD/target/release/examples/snapshot_to_files"
source scripts/lib/pg.sh
pg_start "shared_buffers = 1GB" "max_wal_size = 4GB" "checkpoint_timeout = 30min"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-bench.XXXXXX")"
trap 'pg_stop; rm -rf "$WORK"' EXIT

load() { # load DB SCALE
    pg_psql postgres -c "CREATE DATABASE $1"
    "$PG_BIN/pgbench" -q -i -s "$2" "$PGSNAP_CONNINFO dbname=$1" 2>&1 | tail -1
    pg_psql "$1" -c "VACUUM ANALYZE"
}
load bench "$SCALE"
load small "$SMALL_SCALE"
SRC="$PGSNAP_CONNINFO dbname=bench"
pages=$(pg_psql bench -At -c "SELECT pg_relation_size('pgbench_accounts') / current_setting('block_size')::int")
half=$((pages / 2))
copy_bytes=$(pg_psql bench -At -c "SELECT sum(length(t::text))+count(*) FROM pgbench_accounts t" 2>/dev/null || echo "?")
echo "pgbench scale $SCALE: pgbench_accounts $pages pages; about $copy_bytes bytes of COPY text"

# Two parallel raw COPYs of ctid halves, each in its own session, to $1 (a directory) or
# to /dev/null when no directory is given.
cat >"$WORK/rawcopy.sh" <<SH
a=/dev/null; b=/dev/null
if [ -n "\${1:-}" ]; then mkdir -p "\$1"; a="\$1/a.copy"; b="\$1/b.copy"; fi
"$PG_BIN/psql" -X -q "$SRC" -c "COPY (SELECT * FROM pgbench_accounts WHERE ctid < '($half,0)'::tid) TO STDOUT" >"\$a" &
"$PG_BIN/psql" -X -q "$SRC" -c "COPY (SELECT * FROM pgbench_accounts WHERE ctid >= '($half,0)'::tid) TO STDOUT" >"\$b" &
wait
SH
SHM="/dev/shm/pgsnap-bench-$$"
trap 'pg_stop; rm -rf "$WORK" "$SHM"' EXIT

baseline=()
if [ -n "${BASELINE_BIN:-}" ]; then
    baseline=(-n "baseline pgsnap -j$JOBS text to /dev/shm (memory)" "$BASELINE_BIN --source '$SRC' --out $SHM --jobs $JOBS"
              -n "baseline pgsnap -j$JOBS text to disk" "$BASELINE_BIN --source '$SRC' --out $WORK/out --jobs $JOBS")
fi

# Output on disk goes to $WORK/out; `sync` before each run so one run's dirty pages do not
# slow the next. pgsnap fsyncs every chunk; pg_dump fsyncs its output at the end.
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-markdown "$WORK/results.md" \
    --prepare "rm -rf $WORK/out $SHM; sync" \
    -n "raw COPY x2 (ctid halves) to /dev/null" "bash $WORK/rawcopy.sh" \
    -n "raw COPY x2 (ctid halves) to files on disk" "bash $WORK/rawcopy.sh $WORK/out" \
    -n "pgsnap -j$JOBS text to /dev/shm (memory)" "$BIN --source '$SRC' --out $SHM --jobs $JOBS" \
    -n "pgsnap -j$JOBS text to disk" "$BIN --source '$SRC' --out $WORK/out --jobs $JOBS" \
    -n "pgsnap -j$JOBS text zstd to disk" "$BIN --source '$SRC' --out $WORK/out --jobs $JOBS --compress zstd" \
    -n "pg_dump -Fd -j$JOBS -Z0 to disk" "$PG_BIN/pg_dump -Fd -j $JOBS -Z 0 -f $WORK/out '$SRC'" \
    -n "pg_dump -Fd -j$JOBS (gzip) to disk" "$PG_BIN/pg_dump -Fd -j $JOBS -f $WORK/out '$SRC'" \
    "${baseline[@]}" >&2
echo
cat "$WORK/results.md"

echo
echo "Peak RSS of pgsnap -j$JOBS (text, none), GNU time:"
for db in small bench; do
    rm -rf "$WORK/out"
    rss=$(/usr/bin/time -f '%M' "$BIN" --source "$PGSNAP_CONNINFO dbname=$db" --out "$WORK/out" --jobs "$JOBS" 2>&1 >/dev/null | tail -1)
    size=$(du -sb "$WORK/out" | cut -f1)
    echo "| $db | $((size / 1000000)) MB written | ${rss} KiB peak RSS |"
done
