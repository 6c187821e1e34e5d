#!/usr/bin/env bash
# The main job on a local default: a throwaway PostgreSQL with sample data (pgbench tables,
# a partitioned table, awkward types and names), snapshotted in parallel to a local
# directory, report printed.
#
#   bash scripts/demo.sh            # output in ./pgsnap-demo (replaced each run)
#   PGSNAP_DEMO_SCALE=50 bash scripts/demo.sh   # more data (scale 50 is about 500 MB)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/lib/pg.sh

OUT="${PGSNAP_DEMO_OUT:-$PWD/pgsnap-demo}"
SCALE="${PGSNAP_DEMO_SCALE:-5}"

echo "==> building the example"
cargo build --release --example snapshot_to_files

echo "==> starting a throwaway PostgreSQL"
pg_start
pg_psql postgres -c "CREATE DATABASE demo"
"$PG_BIN/pgbench" -q -i -s "$SCALE" "$PGSNAP_CONNINFO dbname=demo" 2>&1 | tail -1
pg_psql demo <<'SQL'
CREATE TABLE events (id bigint, at timestamptz NOT NULL, kind text, payload jsonb, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_other PARTITION OF events DEFAULT;
INSERT INTO events SELECT g, timestamptz '2025-06-01' + g * interval '7 minutes', 'kind ' || (g % 5),
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b\tc'))
  FROM generate_series(1, 200000) g;
CREATE TABLE "Odd ""Names"" Here" (id serial PRIMARY KEY, "Value" numeric, note text, tags text[], span tsrange, raw bytea);
INSERT INTO "Odd ""Names"" Here" ("Value", note, tags, span, raw)
SELECT g / 7.0, CASE WHEN g % 3 = 0 THEN NULL ELSE E'line\nbreak\ttab \\ é' END, ARRAY['x', NULL, 'y z'],
       tsrange('2026-01-01', '2026-01-02'), decode(md5(g::text), 'hex')
  FROM generate_series(1, 10000) g;
ANALYZE;
SQL

rm -rf "$OUT"
echo "==> pgsnap: snapshot to $OUT"
set +e
./target/release/examples/snapshot_to_files --source "$PGSNAP_CONNINFO dbname=demo" --out "$OUT" --jobs 2 --chunk-size 16MB
code=$?
set -e
echo "==> exit code $code; manifest: $OUT/manifest.json"
ls "$OUT"
exit "$code"
