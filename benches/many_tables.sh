#!/usr/bin/env bash
# Many small relations: pgsnap's `--plan` and full run against `pg_dump -Fd -j 2 -Z 0`, side
# by side in one hyperfine run on the same throwaway PostgreSQL, plus the plan time at two
# more sizes to show how it grows with the number of relations.
#
#   bash benches/many_tables.sh           # 5,000 tables of 20 rows + a table of 1,000 daily
#                                         # partitions; plans at 1,000 and 10,000 relations
#   TABLES=2000 PARTITIONS=500 SIZES="1000 5000" RUNS=3 bash benches/many_tables.sh
#
# Every relation stays locked until the copy ends (pgsnap and pg_dump alike), so the cluster
# gets max_locks_per_transaction = 256 (PostgreSQL's default of 64 covers about 6,400 locks
# over 100 connections). Prints a markdown table; paste it into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TABLES="${TABLES:-5000}"
PARTITIONS="${PARTITIONS:-1000}"
ROWS="${ROWS:-20}"
SIZES="${SIZES:-1000 10000}"
RUNS="${RUNS:-5}"
JOBS="${JOBS:-2}"

bash scripts/setup.sh >/dev/null
cargo build --release --example snapshot_to_files 2>&1 | tail -1
BIN="$PWD/target/release/examples/snapshot_to_files"
source scripts/lib/pg.sh
pg_start "max_locks_per_transaction = 256" "shared_buffers = 512MB" "max_wal_size = 4GB"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-many.XXXXXX")"
trap 'pg_stop; rm -rf "$WORK"' EXIT

# make_db NAME TABLES PARTITIONS ROWS: TABLES tables (int key, text, numeric, timestamptz) of
# ROWS rows each, and one table `events` range-partitioned by day into PARTITIONS partitions
# of ROWS rows each.
make_db() {
    pg_psql postgres -c "CREATE DATABASE $1"
    pg_psql "$1" -v tables="$2" -v parts="$3" -v rows="$4" >/dev/null <<'SQL'
SELECT format('CREATE TABLE public.t%s (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), created timestamptz NOT NULL DEFAULT now())', i)
  FROM generate_series(1, :tables) i \gexec
SELECT format('INSERT INTO public.t%s SELECT g, %L || g, g * 1.5, now() FROM generate_series(1, %s) g', i, 'name-', :rows)
  FROM generate_series(1, :tables) i \gexec
CREATE TABLE public.events (id bigint NOT NULL, day date NOT NULL, payload text, PRIMARY KEY (day, id)) PARTITION BY RANGE (day);
SELECT format('CREATE TABLE public.events_%s PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)', to_char(d, 'YYYYMMDD'), d, d + 1)
  FROM (SELECT date '2020-01-01' + k AS d FROM generate_series(0, :parts - 1) k) s \gexec
INSERT INTO public.events SELECT g, date '2020-01-01' + (g % :parts), 'payload ' || g FROM generate_series(1, :parts * :rows) g;
VACUUM ANALYZE;
SQL
}

make_db many "$TABLES" "$PARTITIONS" "$ROWS"
echo "database many: $TABLES tables + $PARTITIONS partitions of $ROWS rows"
args=()
for n in $SIZES; do
    # The same mix as `many`: five sixths plain tables, one sixth partitions.
    parts=$((n / 6))
    make_db "rel$n" "$((n - parts))" "$parts" "$ROWS"
    args+=(-n "pgsnap --plan at $n relations" "$BIN --source '$PGSNAP_CONNINFO dbname=rel$n' --out $WORK/plan --plan --json")
done
SRC="$PGSNAP_CONNINFO dbname=many"
SHM="/dev/shm/pgsnap-many-$$"
trap 'pg_stop; rm -rf "$WORK" "$SHM"' EXIT

hyperfine --style basic --runs "$RUNS" --warmup 1 --export-markdown "$WORK/results.md" \
    --prepare "rm -rf $WORK/out $WORK/plan $SHM; sync" \
    -n "pgsnap --plan ($TABLES tables + $PARTITIONS partitions)" "$BIN --source '$SRC' --out $WORK/plan --plan --json" \
    -n "pgsnap -j$JOBS full run (text, uncompressed)" "$BIN --source '$SRC' --out $WORK/out --jobs $JOBS" \
    -n "pg_dump -Fd -j$JOBS -Z0" "$PG_BIN/pg_dump -Fd -j $JOBS -Z 0 -f $WORK/out '$SRC'" \
    -n "pgsnap -j$JOBS full run to /dev/shm (no disk cost)" "$BIN --source '$SRC' --out $SHM --jobs $JOBS" \
    "${args[@]}" >&2
echo
cat "$WORK/results.md"
