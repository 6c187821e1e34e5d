#!/usr/bin/env bash
# End-to-end benchmark of the StarRocks sink: the same snapshot into files (snapshot_to_files)
# and into the StarRocks test double (migrate_to_starrocks, CSV and JSON bodies), side by
# side in one hyperfine run on the same throwaway PostgreSQL (pgbench data).
#
#   bash benches/e2e_starrocks.sh                # scale 10 (~100 MB of COPY text), 3 runs each
#   SCALE=2 RUNS=2 bash benches/e2e_starrocks.sh # quicker
#
# The double is NOT StarRocks: it parses every row, converts each value and keeps it in
# memory, on the same two cores as pgsnap and PostgreSQL. Its cost is included in the
# StarRocks rows, so the ratio is an upper bound of what pgsnap's own transcoding and HTTP
# path add; a real StarRocks cluster has its own (different) cost.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCALE="${SCALE:-10}"
RUNS="${RUNS:-3}"
JOBS="${JOBS:-2}"

bash scripts/setup.sh >/dev/null
cargo build --release --example snapshot_to_files --example migrate_to_starrocks 2>&1 | tail -1
cargo build --release -p pgsnap-test-support --bin pgsnap-starrocks-double 2>&1 | tail -1
FILES="$PWD/target/release/examples/snapshot_to_files"
MIGRATE="$PWD/target/release/examples/migrate_to_starrocks"
DOUBLE="$PWD/target/release/pgsnap-starrocks-double"
source scripts/lib/pg.sh
pg_start "shared_buffers = 512MB" "max_wal_size = 4GB"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-srbench.XXXXXX")"
SHM="/dev/shm/pgsnap-srbench-$$"
DOUBLE_PID=""
trap 'pg_stop; [ -n "$DOUBLE_PID" ] && kill "$DOUBLE_PID" 2>/dev/null; rm -rf "$WORK" "$SHM"' EXIT

pg_psql postgres -c "CREATE DATABASE bench"
"$PG_BIN/pgbench" -q -i -s "$SCALE" "$PGSNAP_CONNINFO dbname=bench" 2>&1 | tail -1
pg_psql bench -c "VACUUM ANALYZE"
SRC="$PGSNAP_CONNINFO dbname=bench"

# One database per run in the double, so every run loads into empty tables.
dbs=()
for i in $(seq 0 $((RUNS * 2 + 4))); do dbs+=(--database "b$i"); done
"$DOUBLE" "${dbs[@]}" >"$WORK/double.json" &
DOUBLE_PID=$!
for _ in $(seq 50); do [ -s "$WORK/double.json" ] && break; sleep 0.1; done
FE=$(sed -E 's/.*"fe":"([^"]+)".*/\1/' "$WORK/double.json")
SQL=$(sed -E 's/.*"mysql":"([^"]+)".*/\1/' "$WORK/double.json")
echo 0 >"$WORK/n"
cat >"$WORK/migrate.sh" <<SH
n=\$(cat "$WORK/n"); echo \$((n + 1)) >"$WORK/n"
exec "$MIGRATE" --source '$SRC' --fe "$FE" --fe-sql "$SQL" --database "b\$n" --create-tables \
    --state "$WORK/state" --jobs $JOBS --format "\$1" >/dev/null
SH

hyperfine --style basic --runs "$RUNS" --warmup 1 --export-markdown "$WORK/results.md" \
    --export-json "$WORK/results.json" \
    --prepare "rm -rf $SHM $WORK/state" \
    -n "snapshot_to_files -j$JOBS to /dev/shm" "$FILES --source '$SRC' --out $SHM --jobs $JOBS" \
    -n "migrate_to_starrocks -j$JOBS csv into the double" "bash $WORK/migrate.sh csv" \
    -n "migrate_to_starrocks -j$JOBS json into the double" "bash $WORK/migrate.sh json" \
    >&2
echo
cat "$WORK/results.md"
echo
echo "CPU time of the pgsnap process itself (user + system, mean), which excludes the double:"
python3 - "$WORK/results.json" <<'PY'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[0]["user"] + rs[0]["system"]
print("| command | pgsnap CPU s | relative |\n|:---|---:|---:|")
for r in rs:
    cpu = r["user"] + r["system"]
    print(f"| `{r['command']}` | {cpu:.3f} | {cpu / base:.2f} |")
PY
echo
rm -rf "$WORK/state"
rss=$( { /usr/bin/time -f '%M' bash "$WORK/migrate.sh" csv; } 2>&1 | tail -1)
echo "Peak RSS of migrate_to_starrocks -j$JOBS csv (pgsnap only, GNU time): ${rss} KiB"
