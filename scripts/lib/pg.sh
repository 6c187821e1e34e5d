# shellcheck shell=bash
# Throwaway PostgreSQL cluster for scripts (demo, benchmarks). Source this file, then:
#   pg_start [extra postgresql.conf lines...]   # sets PGSNAP_PG_DIR, PGSNAP_PG_PORT, PGSNAP_CONNINFO
#   pg_stop                                      # also registered on EXIT
# initdb/pg_ctl refuse root, so as root they run as the `postgres` user.
PG_BIN="${PGSNAP_PG_BIN:-/usr/lib/postgresql/15/bin}"

_pg_as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_start() {
    [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL 15 is missing: run bash scripts/setup.sh" >&2; return 1; }
    PGSNAP_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pgsnap-pg.XXXXXX")"
    chmod 755 "$PGSNAP_PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PGSNAP_PG_DIR"
    PGSNAP_PG_PORT="$(_free_port)"
    _pg_as "$PG_BIN/initdb" -D "$PGSNAP_PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    {
        echo "port = $PGSNAP_PG_PORT"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$PGSNAP_PG_DIR'"
        echo "wal_level = logical"
        echo "max_replication_slots = 20"
        echo "max_wal_senders = 20"
        echo "max_connections = 100"
        echo "shared_buffers = 256MB"
        for line in "$@"; do echo "$line"; done
    } >>"$PGSNAP_PG_DIR/data/postgresql.conf"
    _pg_as "$PG_BIN/pg_ctl" -D "$PGSNAP_PG_DIR/data" -l "$PGSNAP_PG_DIR/server.log" -w start >/dev/null
    PGSNAP_CONNINFO="host=127.0.0.1 port=$PGSNAP_PG_PORT user=postgres"
    export PGSNAP_PG_DIR PGSNAP_PG_PORT PGSNAP_CONNINFO
    trap pg_stop EXIT
}

pg_stop() {
    if [ -n "${PGSNAP_PG_DIR:-}" ] && [ -d "$PGSNAP_PG_DIR" ]; then
        _pg_as "$PG_BIN/pg_ctl" -D "$PGSNAP_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PGSNAP_PG_DIR"
    fi
    PGSNAP_PG_DIR=""
}

pg_psql() { # pg_psql DB [psql args...]
    local db="$1"; shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGSNAP_CONNINFO dbname=$db" "$@"
}
