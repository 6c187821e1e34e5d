#!/usr/bin/env bash
# What the Prometheus metrics cost: the same snapshot with metrics off and with
# `--metrics-addr` on (scraped every second by curl, as Prometheus would), side by side in
# one hyperfine run on one throwaway PostgreSQL (pgbench data).
#
#   bash benches/metrics.sh                          # scale 50 (~500 MB of COPY text)
#   SCALE=10 ROUNDS=2 RUNS=3 bash benches/metrics.sh # quicker
#
# ROUNDS hyperfine runs of RUNS runs each, the order of the two commands swapped every round,
# so that load from elsewhere on the machine (our machines are shared and noisy) falls on
# both alike; prints each round's markdown table and the medians over all runs; paste them
# into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCALE="${SCALE:-50}"
RUNS="${RUNS:-5}"
ROUNDS="${ROUNDS:-4}"
JOBS="${JOBS:-2}"

bash scripts/setup.sh >/dev/null
cargo build --release --example snapshot_to_files 2>&1 | tail -1
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/snapshot_to_files"
source scripts/lib/pg.sh
pg_start "shared_buffers = 1GB" "max_wal_size = 4GB" "checkpoint_timeout = 30min"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-bench-metrics.XXXXXX")"
SCRAPER=""
trap '[ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null; pg_stop; rm -rf "$WORK"' EXIT

pg_psql postgres -c "CREATE DATABASE bench"
"$PG_BIN/pgbench" -q -i -s "$SCALE" "$PGSNAP_CONNINFO dbname=bench" 2>&1 | tail -1
pg_psql bench -c "VACUUM ANALYZE"
SRC="$PGSNAP_CONNINFO dbname=bench"

# A free port for the metrics, and a scraper that asks for /metrics every second for as
# long as the benchmark runs (it finds nothing between runs and when metrics are off).
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(while true; do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/metrics" || true; sleep 1; done) &
SCRAPER=$!

OUT="/dev/shm/pgsnap-bench-metrics-$$"
trap '[ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null; pg_stop; rm -rf "$WORK" "$OUT"' EXIT
# To memory (/dev/shm): the cheapest output, where any cost of the metrics shows most.
OFF_NAME="pgsnap -j$JOBS to /dev/shm, metrics off"
OFF_CMD="$BIN --source '$SRC' --out $OUT --jobs $JOBS"
ON_NAME="pgsnap -j$JOBS to /dev/shm, --metrics-addr (scraped every 1 s)"
ON_CMD="$BIN --source '$SRC' --out $OUT --jobs $JOBS --metrics-addr 127.0.0.1:$PORT"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        order=(-n "$OFF_NAME" "$OFF_CMD" -n "$ON_NAME" "$ON_CMD")
    else
        order=(-n "$ON_NAME" "$ON_CMD" -n "$OFF_NAME" "$OFF_CMD")
    fi
    hyperfine --style basic --runs "$RUNS" --warmup 1 --prepare "rm -rf $OUT" \
        --export-markdown "$WORK/round$round.md" --export-json "$WORK/round$round.json" \
        "${order[@]}" >&2
    echo
    echo "Round $round:"
    cat "$WORK/round$round.md"
done
echo
python3 - "$WORK" "$OFF_NAME" "$ON_NAME" <<'PY'
import glob, json, statistics, sys
work, off, on = sys.argv[1:4]
times = {off: [], on: []}
for f in sorted(glob.glob(work + "/round*.json")):
    for r in json.load(open(f))["results"]:
        times[r["command"]] += r["times"]
print(f"All {len(times[off])} runs of each, rounds interleaved:")
print()
print("| Command | median [s] | mean [s] | min [s] |")
print("|:---|---:|---:|---:|")
for name in (off, on):
    t = times[name]
    print(f"| `{name}` | {statistics.median(t):.3f} | {statistics.mean(t):.3f} ± {statistics.stdev(t):.3f} | {min(t):.3f} |")
m_off, m_on = statistics.median(times[off]), statistics.median(times[on])
print()
print(f"metrics on / off: median {m_on / m_off:.3f}, mean {statistics.mean(times[on]) / statistics.mean(times[off]):.3f}, min {min(times[on]) / min(times[off]):.3f}")
PY
# One scrape of a finished-looking run, for the record: what a scrape carries.
rm -rf "$OUT"
"$BIN" --source "$SRC" --out "$OUT" --jobs "$JOBS" --metrics-addr "127.0.0.1:$PORT" --throttle 200MB >/dev/null 2>&1 &
RUN=$!
sleep 1.5
echo
echo "A scrape mid-run: $(curl -s "http://127.0.0.1:$PORT/metrics" | wc -c) bytes, $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -vc '^#') series"
wait "$RUN" || true
