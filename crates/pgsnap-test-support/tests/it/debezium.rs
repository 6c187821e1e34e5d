//! Tests of the embedded Debezium forwarder against real PostgreSQL and tansu
//! (needs `bash scripts/setup.sh --kafka`).

use std::time::{Duration, Instant};

use pgsnap_test_support::debezium::{Debezium, DebeziumOptions};
use pgsnap_test_support::kafka::Tansu;
use pgsnap_test_support::{shared_cluster, unique_db};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::process_alive;

/// Reads `n` records of partition 0 of `topic` from offset 0 (or panics
/// after `timeout`), as (key, value) JSON.
fn read_records(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<(Value, Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "pgsnap-debezium-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0)).unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "read {} of {n} records of {topic}", out.len());
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                assert_eq!(m.offset(), out.len() as i64, "offsets are dense from 0");
                let key = serde_json::from_slice(m.key().expect("a key")).unwrap();
                let value = serde_json::from_slice(m.payload().expect("no tombstones")).unwrap();
                out.push((key, value));
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    let (low, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).unwrap();
    // One record per produce batch keeps tansu 0.6's high watermark right
    // (with multi-record batches it is smaller than the record count).
    assert_eq!((low, high), (0, n as i64), "watermarks of {topic}");
    out
}

#[test]
fn forwards_changes_of_an_existing_slot_one_record_per_batch() {
    let test_start = Instant::now();
    let db = unique_db("dbz_fwd");
    let cluster = shared_cluster();
    cluster.psql(&db, "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2))");
    cluster.psql(&db, "CREATE TABLE other (id int PRIMARY KEY)");
    cluster.psql(&db, "CREATE PUBLICATION p FOR TABLE items");
    // Before the slot: not streamed (Debezium starts at the slot's consistent point).
    cluster.psql(&db, "INSERT INTO items VALUES (100, 'before slot', 1)");
    let created_lsn = cluster.psql(
        &db,
        &format!("SELECT lsn FROM pg_create_logical_replication_slot('{db}', 'pgoutput')"),
    );
    // After the slot, before the connector: streamed (snapshot.mode=no_data
    // starts at the slot's confirmed_flush_lsn).
    cluster.psql(&db, "INSERT INTO items VALUES (1, 'one', 1.5)");

    let broker = Tansu::start();
    let topic = "dbz.public.items";
    broker.create_topic(topic, 1);

    let mut debezium = Debezium::start(
        DebeziumOptions::new(cluster, &db, &db, "p", "dbz", &broker.bootstrap())
            .with_table("public.items"),
    );
    eprintln!("Debezium ready (JVM start to slot active) after {:?}", debezium.ready_after());
    assert!(process_alive(debezium.pid()));
    assert_eq!(
        cluster.psql(
            &db,
            &format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{db}'")
        ),
        "t"
    );

    cluster.psql(
        &db,
        "BEGIN; INSERT INTO items SELECT g, 'item ' || g, g * 10 FROM generate_series(2, 5) g; COMMIT",
    );
    cluster.psql(&db, "UPDATE items SET price = price + 0.25 WHERE id IN (1, 2)");
    cluster.psql(&db, "DELETE FROM items WHERE id = 3");
    cluster.psql(&db, "INSERT INTO other VALUES (1)"); // not in the publication
    cluster.psql(
        &db,
        "BEGIN; INSERT INTO items VALUES (6, 'six', 6); UPDATE items SET name = 'SIX' WHERE id = 6; \
         DELETE FROM items WHERE id = 4; COMMIT",
    );
    let expected = [
        ("c", 1),
        ("c", 2),
        ("c", 3),
        ("c", 4),
        ("c", 5),
        ("u", 1),
        ("u", 2),
        ("d", 3),
        ("c", 6),
        ("u", 6),
        ("d", 4),
    ];
    // Transaction number (0-based) of each expected event.
    let tx_of = [0, 1, 1, 1, 1, 2, 2, 3, 4, 4, 4];

    debezium.wait_forwarded(expected.len() as u64, Duration::from_secs(20));
    let records = read_records(&broker.bootstrap(), topic, expected.len(), Duration::from_secs(20));

    let mut tx_ids: Vec<i64> = Vec::new();
    for (i, ((key, value), (op, id))) in records.iter().zip(expected).enumerate() {
        assert_eq!(key, &serde_json::json!({ "id": id }), "key of record {i}");
        assert_eq!(value["op"], op, "op of record {i}: {value}");
        let source = &value["source"];
        assert_eq!(source["connector"], "postgresql");
        assert_eq!(source["version"], "3.6.3.Final");
        assert_eq!(source["snapshot"], "false");
        assert_eq!(source["db"], db.as_str());
        assert_eq!(
            (source["schema"].as_str(), source["table"].as_str()),
            (Some("public"), Some("items"))
        );
        assert!(source["lsn"].as_i64().is_some(), "source.lsn of record {i}: {value}");
        tx_ids
            .push(source["txId"].as_i64().unwrap_or_else(|| panic!("source.txId of {i}: {value}")));
        match op {
            "d" => {
                assert!(value["after"].is_null());
                assert_eq!(value["before"]["id"], id);
            }
            _ => assert_eq!(value["after"]["id"], id),
        }
    }
    // decimal.handling.mode=string, JSON without schemas.
    assert_eq!(records[0].1["after"]["price"], "1.50");
    assert_eq!(records[5].1["after"]["price"], "1.75");
    assert!(records[0].1.get("schema").is_none() && records[0].0.get("schema").is_none());
    // Same txId within a transaction, increasing across transactions.
    for i in 1..tx_ids.len() {
        if tx_of[i] == tx_of[i - 1] {
            assert_eq!(tx_ids[i], tx_ids[i - 1], "records {} and {i}", i - 1);
        } else {
            assert!(tx_ids[i] > tx_ids[i - 1], "records {} and {i}: {tx_ids:?}", i - 1);
        }
    }
    assert_eq!(debezium.forwarded(), expected.len() as u64);

    let pid = debezium.pid();
    debezium.stop();
    assert!(!process_alive(pid), "forwarder {pid} still runs after stop()");
    let offsets = std::fs::read(debezium.offset_file()).unwrap();
    let offsets = String::from_utf8_lossy(&offsets);
    assert!(offsets.contains("lsn_commit"), "offset file: {offsets}");
    // The slot stays (slot.drop.on.stop=false), inactive, and Debezium
    // confirmed the streamed changes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let slot = cluster.psql(
            &db,
            &format!(
                "SELECT active, confirmed_flush_lsn > '{created_lsn}' FROM pg_replication_slots \
                 WHERE slot_name = '{db}'"
            ),
        );
        if slot == "f|t" {
            break;
        }
        assert!(Instant::now() < deadline, "slot after stop: {slot:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.psql(&db, &format!("SELECT pg_drop_replication_slot('{db}')"));
    eprintln!("test took {:?}", test_start.elapsed());
}

#[test]
fn a_missing_publication_fails_with_debeziums_error() {
    let db = unique_db("dbz_nopub");
    let cluster = shared_cluster();
    cluster.psql(&db, "CREATE TABLE items (id int PRIMARY KEY)");
    cluster.psql(&db, &format!("SELECT pg_create_logical_replication_slot('{db}', 'pgoutput')"));
    let broker = Tansu::start();
    let panic = std::panic::catch_unwind(|| {
        Debezium::start(DebeziumOptions::new(
            cluster,
            &db,
            &db,
            "no_such_pub",
            "x",
            &broker.bootstrap(),
        ))
    })
    .expect_err("start fails without the publication");
    let msg = panic.downcast_ref::<String>().unwrap();
    let first_line = msg.lines().next().unwrap();
    assert!(first_line.contains("Publication autocreation is disabled"), "{msg}");
    cluster.psql(&db, &format!("SELECT pg_drop_replication_slot('{db}')"));
}

/// Set for the child process of [`watchdog_kills_the_forwarder_of_a_killed_test_process`].
const WATCHDOG_CHILD_ENV: &str = "PGSNAP_TEST_SUPPORT_DEBEZIUM_WATCHDOG_CHILD";

#[test]
#[ignore = "helper process for watchdog_kills_the_forwarder_of_a_killed_test_process"]
fn debezium_watchdog_child() {
    if std::env::var_os(WATCHDOG_CHILD_ENV).is_none() {
        return;
    }
    let db = unique_db("dbz_watchdog");
    let cluster = shared_cluster();
    cluster.psql(&db, "CREATE TABLE items (id int PRIMARY KEY)");
    cluster.psql(&db, "CREATE PUBLICATION p FOR TABLE items");
    cluster.psql(&db, &format!("SELECT pg_create_logical_replication_slot('{db}', 'pgoutput')"));
    let broker = Tansu::start();
    let debezium =
        Debezium::start(DebeziumOptions::new(cluster, &db, &db, "p", "w", &broker.bootstrap()));
    println!("FORWARDER {}", debezium.pid());
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn watchdog_kills_the_forwarder_of_a_killed_test_process() {
    let pid: u32 = crate::kill9_child_after(
        "debezium::debezium_watchdog_child",
        WATCHDOG_CHILD_ENV,
        "FORWARDER ",
        |p| {
            assert!(crate::process_alive(p.parse().unwrap()));
        },
    )
    .parse()
    .unwrap();
    crate::wait_until_gone(|| !crate::process_alive(pid));
    assert!(!crate::process_alive(pid), "Debezium forwarder {pid} outlived its test process");
}
